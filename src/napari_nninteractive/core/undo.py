"""The undo record of a session: bit-packed mask patches, prompt-state snapshots and the steps made of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import BBox, union_bbox
from .prompts import Prompt


@dataclass(frozen=True)
class Patch:
    """Old and new 0/1 values of one region, bit-packed (1 bit per voxel each)."""

    bbox: BBox
    shape: tuple[int, ...]
    old: np.ndarray
    new: np.ndarray

    @classmethod
    def of(cls, bbox: BBox, old: np.ndarray, new: np.ndarray) -> Patch:
        return cls(bbox, old.shape, np.packbits(old.astype(bool)), np.packbits(new.astype(bool)))

    def values(self, which: str) -> np.ndarray:
        return self._unpack(self.old if which == "old" else self.new)

    def flipped(self) -> np.ndarray:
        """Bool array of the region: the voxels whose value the patch changes."""
        return self._unpack(np.bitwise_xor(self.old, self.new)).view(bool)  # 0/1 bytes read as bools: no copy

    def _unpack(self, bits: np.ndarray) -> np.ndarray:
        return np.unpackbits(bits, count=int(np.prod(self.shape))).reshape(self.shape)


#: How an object's prompt history was predicted: one ``(count, fused)`` pair per prediction, oldest first.
#: ``count`` prompts of the history were predicted together (queued prompts run as one prediction),
#: ``fused``: whether multi-round result fusion ran on that prediction. Prompts beyond the counts' sum
#: were never predicted. Replaying the history this way gives the masks the user saw.
Rounds = tuple[tuple[int, bool], ...]


def read_rounds(rounds: object, n_prompts: int) -> Rounds:
    """``rounds`` as :data:`Rounds` for a history of ``n_prompts`` prompts; a ValueError says what is wrong."""
    if not isinstance(rounds, tuple | list) or not all(
        isinstance(r, tuple | list)
        and len(r) == 2
        and isinstance(r[0], int | np.integer)
        and not isinstance(r[0], bool)
        and r[0] >= 1
        and isinstance(r[1], bool | np.bool_)
        for r in rounds
    ):
        raise ValueError("each prediction round must be a pair [count >= 1, fused true/false]")
    total = sum(int(r[0]) for r in rounds)
    if total > n_prompts:
        raise ValueError(f"the prediction rounds count {total} prompts, but the history holds {n_prompts}")
    return tuple((int(n), bool(fused)) for n, fused in rounds)


@dataclass(frozen=True)
class Snapshot:
    """The prompt state a step returns to (the mask is in the steps' patches)."""

    engine_state: object  # the engine's prompts (those it has predicted with)
    pending: tuple[Prompt, ...]  # queued, not yet given to the engine
    history: tuple[Prompt, ...] = ()
    rounds: Rounds = ()  # how ``history`` was predicted


@dataclass(frozen=True)
class Step:
    """One undoable action: prompt state before/after and the mask regions it changed."""

    label: str
    before: Snapshot
    after: Snapshot
    patches: tuple[Patch, ...]

    @property
    def bbox(self) -> BBox | None:
        return union_bbox(*(p.bbox for p in self.patches))


def steps_nbytes(now: list[object], steps: list[Step]) -> tuple[int, int]:
    """(prompt data, bit-packed mask changes) held by the states ``now`` and the undo/redo ``steps``, in bytes.

    Prompt arrays are counted once however many states share them.
    """
    states = list(now)
    for step in steps:
        states += [step.before.engine_state, step.after.engine_state, step.before.pending, step.after.pending]
    arrays = {}
    for state in states:
        items = getattr(state, "rasters", state if isinstance(state, tuple) else ())
        for item in items:
            values = getattr(item, "values", getattr(item, "mask", None))
            if isinstance(values, np.ndarray):
                arrays[id(values)] = values.nbytes
    history = sum(p.old.nbytes + p.new.nbytes for step in steps for p in step.patches)
    return sum(arrays.values()), history


__all__ = ["Patch", "Rounds", "Snapshot", "Step", "read_rounds", "steps_nbytes"]
