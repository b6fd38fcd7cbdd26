"""Choosing an engine: the nnInteractive network when a model folder is given, else weight-free."""

from __future__ import annotations

from pathlib import Path

from .base import Engine, EngineError

ENGINES = ("auto", "network", "weight-free", "random-walker")


def make_engine(model: str | Path | None = None, engine: str = "auto", device: str = "auto",
                autozoom: bool = True, fold: int | str | None = None, cpu_bf16: bool = False,
                trust_checkpoint: bool = False) -> Engine:
    """Build an engine.

    ``engine="auto"`` uses the nnInteractive network when ``model`` (a model folder) is given and
    the weight-free seeded-watershed engine otherwise; ``"random-walker"`` is the baseline.
    ``cpu_bf16`` runs the network's CPU passes under bfloat16 autocast (see :class:`NetworkEngine`);
    ``trust_checkpoint`` allows full unpickling of the checkpoint (it can run code from the file).
    """
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "network" or (engine == "auto" and model is not None):
        if model is None:
            raise EngineError("the network engine needs a model folder (--model DIR)")
        from .network import NetworkEngine

        return NetworkEngine.from_folder(model, fold=fold, device=device, autozoom=autozoom, cpu_bf16=cpu_bf16,
                                         trust_checkpoint=trust_checkpoint)
    from .seeded import RandomWalkerEngine, SeededWatershedEngine

    return RandomWalkerEngine() if engine == "random-walker" else SeededWatershedEngine()
