"""Training samples from simulated users, encoded by the inference code itself.

One sample is an *episode* on one object: a network-sized window around the object, an initial
prompt, then corrections, each placed by the evaluation's simulated users (:mod:`..eval.simulate`,
:mod:`..eval.agents`) on the errors of the network's own prediction. Every input is built by
:meth:`NetworkEngine.network_input <..core.engines.network.NetworkEngine.network_input>` from the
engine's :class:`~..core.encoding.PromptStore`: the same normalisation, prompt rasters, decay of
older prompts and ``prev_seg`` channel as at inference, so training and inference cannot drift.

Schedule (after the nnInteractive paper; see README "Train or fine-tune"): the number of
corrections before the graded step is drawn uniformly from ``0..max_corrections``; the steps before
it run without gradients on the current network (their predictions become ``prev_seg`` and the
source of the next correction), and only the last step carries the loss. The cost per sample is
bounded, memory does not grow with the number of interactions, and the network learns both to
segment from a first prompt and to repair its own mistakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..core.engines.network import NetworkEngine
from ..core.geometry import BBox, bbox_to_slices, clip_bbox, crop_padded, relative_bbox, shift_bbox
from ..core.model import InteractionMetadata, LoadedModel
from ..core.prompts import Point, Prompt
from ..eval.agents import AGENT_NAMES, Agent, make_agent
from ..eval.runner import dice
from ..eval.simulate import KINDS, correction, make_prompt
from .dataset import ObjectTable, TrainingData

#: Predicts 0/1 masks ``(n, *P)`` for a batch of encoded inputs ``(n, C + 7, *P)`` (no gradients).
Predictor = Callable[[torch.Tensor], np.ndarray]


@dataclass
class Episode:
    """One simulated user's session on one object, inside one network window."""

    case: int
    window: BBox  # in image voxels, patch-sized, may reach outside the image
    target: np.ndarray  # bool, patch-shaped: the object inside the window
    inside: np.ndarray  # bool, patch-shaped: window voxels that lie in the image
    agent: Agent
    n_corrections: int  # corrections before the graded step
    state: Any = None  # the prompt store's snapshot
    prev: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # prev_seg, patch-shaped
    dices: list[float] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    done: bool = False  # nothing left to correct


def to_image(prompt: Prompt, offset: Sequence[int]) -> Prompt:
    """``prompt`` drawn in window coordinates, moved to image coordinates."""
    if isinstance(prompt, Point):
        return replace(prompt, coord=tuple(float(c) + o for c, o in zip(prompt.coord, offset)))
    assert prompt.bbox is not None  # simulated prompts always carry their box
    return replace(prompt, bbox=shift_bbox(prompt.bbox, offset))


class Simulator:
    """Draws training episodes from a dataset's objects and encodes them for the network.

    Parameters
    ----------
    data, table
        The cases and their objects (:mod:`.dataset`).
    metadata
        The model's interaction metadata (point radius, decay): the encoding uses it as inference does.
    patch_size
        The network's input size.
    max_corrections
        Corrections before the graded step are drawn from ``0..max_corrections``.
    merge_probability
        Chance that a target is the union of touching objects (ambiguity, see :class:`.dataset.ObjectTable`).
    agents
        Names of the evaluation's agents; each episode picks one at random.
    """

    def __init__(
        self,
        data: TrainingData,
        table: ObjectTable,
        metadata: InteractionMetadata,
        patch_size: Sequence[int],
        max_corrections: int = 4,
        merge_probability: float = 0.1,
        agents: Sequence[str] = AGENT_NAMES,
    ):
        self.data, self.table = data, table
        self.metadata = metadata
        self.patch_size = tuple(int(p) for p in patch_size)
        self.max_corrections = int(max_corrections)
        self.merge_probability = float(merge_probability)
        self.kinds = tuple(k for k in KINDS if k in metadata.supported)
        self.agents = tuple(agents)
        self._encoders: dict[int, NetworkEngine] = {}

    def encoder(self, case: int) -> NetworkEngine:
        """A network engine without a network, holding case ``case``: the inference encoding."""
        if case not in self._encoders:
            model = LoadedModel(None, self.patch_size, self.data.n_channels, self.metadata)
            engine = NetworkEngine(model, device="cpu", autozoom=False)
            engine.set_image(self.data.cases[case].image)
            self._encoders[case] = engine
        return self._encoders[case]

    # ------------------------------------------------------------------ one episode

    def start(self, rng: np.random.Generator) -> Episode:
        """A new episode: object, window, agent, number of corrections and the first prompt."""
        case, mask = self.table.sample(rng, self.merge_probability)
        voxels = np.flatnonzero(mask)  # C order, as argwhere, without its (n, 3) index array
        centre = np.unravel_index(voxels[int(rng.integers(len(voxels)))], mask.shape)
        jitter = [int(rng.integers(-(p // 4), p // 4 + 1)) for p in self.patch_size]
        lo = [int(c) + j - p // 2 for c, j, p in zip(centre, jitter, self.patch_size)]
        window = tuple((a, a + p) for a, p in zip(lo, self.patch_size))
        target = crop_padded(mask, window).astype(bool)
        if not target.any():  # the jitter moved the object out: centre it
            lo = [int(c) - p // 2 for c, p in zip(centre, self.patch_size)]
            window = tuple((a, a + p) for a, p in zip(lo, self.patch_size))
            target = crop_padded(mask, window).astype(bool)
        inside = np.zeros(self.patch_size, bool)  # the window's voxels that lie in the image
        inside[bbox_to_slices(relative_bbox(clip_bbox(window, mask.shape), window))] = True
        agent = make_agent(self.agents[int(rng.integers(len(self.agents)))], self.kinds)
        agent.reset(rng)
        ep = Episode(case, window, target, inside, agent, int(rng.integers(self.max_corrections + 1)))
        ep.prev = np.zeros(self.patch_size, np.uint8)
        engine = self.encoder(case)
        engine.clear_prompts()
        ep.state = engine.get_state()
        self._add(ep, make_prompt(agent.choose(0, [], rng), target, True, rng))
        return ep

    def _add(self, ep: Episode, prompt: Prompt) -> None:
        engine = self.encoder(ep.case)
        shape = self.data.cases[ep.case].labels.shape
        placed = to_image(prompt, [lo for lo, _ in ep.window]).validated(shape)
        engine.set_state(ep.state)
        engine.prompt_store.add(placed)
        ep.state = engine.get_state()
        ep.prompts.append(placed)

    def encode(self, ep: Episode) -> torch.Tensor:
        """The network input ``(C + 7, *P)`` of the episode's current step."""
        engine = self.encoder(ep.case)
        engine.set_state(ep.state)
        x, _ = engine.network_input(ep.prev, ep.window, 1.0, prev_offset=[lo for lo, _ in ep.window])
        return x[0]

    def correct(self, ep: Episode, pred: np.ndarray, rng: np.random.Generator) -> None:
        """Take the network's prediction as ``prev_seg`` and add the user's correction of it."""
        pred = pred.astype(bool) & ep.inside
        ep.prev = pred.astype(np.uint8)
        ep.dices.append(dice(pred, ep.target))
        kind = ep.agent.choose(len(ep.prompts), ep.dices, rng)
        prompt = correction(kind, ep.target, pred, rng)
        if prompt is None:
            ep.done = True
        else:
            self._add(ep, prompt)

    # ------------------------------------------------------------------ a batch

    def episodes(self, n: int, predict: Predictor, rng: np.random.Generator) -> list[Episode]:
        """``n`` episodes run up to their graded step (the earlier steps batched through ``predict``)."""
        eps = [self.start(rng) for _ in range(n)]
        for step in range(1, self.max_corrections + 1):
            active = [e for e in eps if e.n_corrections >= step and not e.done]
            if not active:
                break
            preds = predict(torch.stack([self.encode(e) for e in active]))
            for e, p in zip(active, preds):
                self.correct(e, p, rng)
        return eps

    def batch(
        self, n: int, predict: Predictor, rng: np.random.Generator, augment: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``(n, C + 7, *P)`` float32 and targets ``(n, *P)`` int64 for one training step."""
        eps = self.episodes(n, predict, rng)
        x = torch.stack([self.encode(e) for e in eps])
        y = torch.from_numpy(np.stack([e.target for e in eps]).astype(np.int64))
        if augment:
            x, y = augment_batch(x, y, self.data.n_channels, rng)
        return x, y


def augment_batch(
    x: torch.Tensor, y: torch.Tensor, n_image: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirroring (every channel and the target alike) and image intensity scale, shift and noise.

    A mirrored encoded sample is the encoding of the mirrored image and prompts, so augmenting after
    encoding keeps the encoding exact. Intensity changes touch only the image channels.
    """
    x, y = x.clone(), y.clone()
    for i in range(x.shape[0]):
        axes = [a for a in range(3) if rng.random() < 0.5]
        if axes:
            x[i] = torch.flip(x[i], [a + 1 for a in axes])
            y[i] = torch.flip(y[i], axes)
        scale, shift = float(rng.uniform(0.85, 1.15)), float(rng.normal(0, 0.1))
        x[i, :n_image] = x[i, :n_image] * scale + shift
        if rng.random() < 0.3:
            noise = rng.normal(0, float(rng.uniform(0, 0.1)), size=tuple(x[i, :n_image].shape))
            x[i, :n_image] += torch.from_numpy(noise.astype(np.float32))
    return x, y
