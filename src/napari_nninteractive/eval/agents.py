"""User agents (nnInteractive paper): which prompt type a simulated user picks each time."""

from __future__ import annotations

import numpy as np

from ..core.prompts import PromptKind
from .simulate import KINDS

AGENT_NAMES = ("random", "sunk-cost", "point", "box", "scribble", "lasso")
_SINGLE = {
    "point": PromptKind.POINT,
    "box": PromptKind.BBOX,
    "scribble": PromptKind.SCRIBBLE,
    "lasso": PromptKind.LASSO,
}


class Agent:
    """Chooses the prompt type of interaction ``k`` given the Dice history so far."""

    name = "agent"

    def __init__(self, kinds=KINDS):
        self.kinds = tuple(kinds)

    def reset(self, rng: np.random.Generator) -> None:
        """Start a new object."""

    def choose(self, k: int, dice_history: list[float], rng: np.random.Generator) -> PromptKind:
        raise NotImplementedError


class SingleTypeAgent(Agent):
    """Uses one prompt type throughout."""

    def __init__(self, kind: PromptKind):
        super().__init__((kind,))
        self.name = {v: k for k, v in _SINGLE.items()}[kind]

    def choose(self, k, dice_history, rng):
        return self.kinds[0]


class RandomAgent(Agent):
    """Picks the prompt type at random for every interaction."""

    name = "random"

    def choose(self, k, dice_history, rng):
        return self.kinds[int(rng.integers(len(self.kinds)))]


class SunkCostAgent(Agent):
    """Keeps one prompt type while it pays off, then switches to another random type.

    The type chosen at random for the first interaction is kept as long as each interaction
    raises Dice by more than ``min_gain``; after one that does not, a different type is drawn.
    """

    name = "sunk-cost"

    def __init__(self, kinds=KINDS, min_gain: float = 0.01):
        super().__init__(kinds)
        self.min_gain = min_gain
        self.current: PromptKind | None = None

    def reset(self, rng):
        self.current = None

    def choose(self, k, dice_history, rng):
        if self.current is None:
            self.current = self.kinds[int(rng.integers(len(self.kinds)))]
        elif len(dice_history) >= 2 and dice_history[-1] - dice_history[-2] <= self.min_gain:
            others = [t for t in self.kinds if t != self.current]
            self.current = others[int(rng.integers(len(others)))]
        return self.current


def make_agent(name: str, kinds=KINDS) -> Agent:
    """Agent by CLI name: ``random``, ``sunk-cost``, ``point``, ``box``, ``scribble``, ``lasso``."""
    if name == "random":
        return RandomAgent(kinds)
    if name == "sunk-cost":
        return SunkCostAgent(kinds)
    if name in _SINGLE:
        return SingleTypeAgent(_SINGLE[name])
    raise ValueError(f"unknown agent {name!r}; use one of {', '.join(AGENT_NAMES)}")
