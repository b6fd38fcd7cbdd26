"""Run simulated users against any engine through the session interface; Dice and AUC.

``evaluate`` drives any :class:`~napari_nninteractive.core.api.SegmentationSession` (a local
:class:`~napari_nninteractive.core.session.Session` on the network or a weight-free engine, or
another backend) over the objects of a label volume and returns one :class:`ObjectRun` per object
and agent. It keeps its own copy of the mask, updated from each operation's change.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..core.api import SegmentationSession, paste
from ..core.prompts import Prompt
from .agents import Agent, make_agent
from .simulate import KINDS, correction, make_prompt


def dice(mask: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two binary masks; 1.0 when both are empty."""
    a, b = mask.astype(bool), reference.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def normalized_auc(dices: list[float]) -> float:
    """Trapezoidal area under Dice@k for k = 0..N, divided by N (Dice@0 when N = 0)."""
    if len(dices) == 1:
        return float(dices[0])
    area = sum((a + b) / 2 for a, b in itertools.pairwise(dices))
    return float(area / (len(dices) - 1))


#: A round whose Dice falls by more than this counts as a drop (``drop_share``).
DROP = 0.05


def count_drops(dices: list[float], threshold: float = DROP) -> int:
    """Rounds ``k >= 1`` whose Dice fell by more than ``threshold`` from round ``k - 1``."""
    return sum(1 for a, b in itertools.pairwise(dices) if b < a - threshold)


def drop_share(runs: list[ObjectRun], threshold: float = DROP) -> float:
    """The share of correction rounds (interactions 1..N of every run) whose Dice fell by more than ``threshold``."""
    rounds = sum(len(r.steps) - 1 for r in runs)
    return sum(count_drops(r.dices, threshold) for r in runs) / rounds if rounds else 0.0


@dataclass
class Step:
    """One interaction of a simulated user."""

    interaction: int
    kind: str | None  # None: nothing left to correct
    positive: bool | None
    dice: float
    seconds: float
    forward_passes: int


@dataclass
class ObjectRun:
    """A simulated user's whole session on one object."""

    image: str
    label: int
    agent: str
    engine: str
    steps: list[Step] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)

    @property
    def dices(self) -> list[float]:
        return [s.dice for s in self.steps]

    @property
    def auc(self) -> float:
        return normalized_auc(self.dices)

    @property
    def drop_share(self) -> float:
        """The share of this run's correction rounds whose Dice fell by more than :data:`DROP`."""
        return drop_share([self])


def simulate_object(
    session: SegmentationSession,
    reference: np.ndarray,
    agent: Agent,
    n_interactions: int,
    rng: np.random.Generator,
    label: int = 1,
    image: str = "image",
    engine: str | None = None,
) -> ObjectRun:
    """Prompt, predict and correct ``n_interactions`` times on one object (Dice@0..N)."""
    reference = reference.astype(bool)
    if not reference.any():
        raise ValueError(f"label {label} has no voxel in the reference")
    caps = session.capabilities
    mask = session.read_mask()  # our copy of the object, updated from each change
    paste(session.reset_object(), mask)
    agent.reset(rng)
    run = ObjectRun(image, int(label), agent.name, engine or caps.name)
    for k in range(n_interactions + 1):
        kind = agent.choose(k, run.dices, rng)
        prompt = make_prompt(kind, reference, True, rng) if k == 0 else correction(kind, reference, mask, rng)
        if prompt is None:  # perfect already: the user has nothing to correct
            run.steps.append(Step(k, None, None, run.dices[-1], 0.0, 0))
            continue
        t0 = time.perf_counter()
        change = session.add_prompts([prompt])
        seconds = time.perf_counter() - t0
        paste(change, mask)
        run.prompts.append(prompt.validated(session.shape, caps.supports_3d_box))
        run.steps.append(
            Step(k, kind.value, bool(prompt.positive), dice(mask, reference), seconds, change.forward_passes)
        )
    return run


def label_values(labels: np.ndarray, wanted: Iterable[int] | None = None) -> list[int]:
    """The label values to evaluate: ``wanted`` (checked to exist) or every nonzero value."""
    present = [int(v) for v in np.unique(labels) if v != 0]
    if wanted is None:
        return present
    missing = [v for v in wanted if v not in present]
    if missing:
        raise ValueError(f"label value(s) {missing} do not occur in the label file (it has {present})")
    return list(wanted)


def evaluate(
    session: SegmentationSession,
    labels: np.ndarray,
    agents: Iterable[str] = ("random",),
    n_interactions: int = 5,
    seed: int = 0,
    wanted: Iterable[int] | None = None,
    image: str = "image",
    on_object: Callable[[int, int, ObjectRun], None] | None = None,
    engine: str | None = None,
) -> list[ObjectRun]:
    """Evaluate every (agent, label) pair; the session must already hold the image.

    Each pair gets its own generator seeded by ``(seed, label, agent index)``, so a run is
    reproducible and adding labels or agents does not change the others. ``engine`` names the
    engine in the results (default: the session's capabilities name).
    """
    values = label_values(labels, wanted)
    kinds = tuple(k for k in KINDS if k in session.capabilities.supported_kinds)
    agent_objs = [make_agent(name, kinds) for name in agents]
    jobs = [(a_i, agent, v) for a_i, agent in enumerate(agent_objs) for v in values]
    runs = []
    for done, (a_i, agent, value) in enumerate(jobs, start=1):
        rng = np.random.default_rng([seed, value, a_i])
        run = simulate_object(session, labels == value, agent, n_interactions, rng, value, image, engine)
        runs.append(run)
        if on_object is not None:
            on_object(done, len(jobs), run)
    return runs
