"""The engine registry: every engine's name, description and options, and :func:`make_engine`.

The command lines (``--engine``, ``--device`` choices and help) and the widget (engine and device
combos) list from here, so adding an engine is one entry in :data:`ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import Engine, EngineError


@dataclass(frozen=True)
class EngineInfo:
    """One engine as users choose it."""

    #: The name on the command line and in the widget.
    name: str
    #: One line for ``--help`` and tooltips.
    description: str
    #: Whether it needs a model folder.
    needs_model: bool
    #: Options it honours beyond the image: ``"device"``, ``"fold"``, ``"autozoom"``, ``"cpu_bf16"``,
    #: ``"trust_checkpoint"``, ``"compile"``.
    options: frozenset[str]
    build: Callable[..., Engine]


def _network(
    model: str | Path | None,
    device: str,
    autozoom: bool,
    fold: int | str | None,
    cpu_bf16: bool,
    trust_checkpoint: bool,
    compile: bool = False,
) -> Engine:
    if model is None:
        raise EngineError("The network engine needs a model folder (--model DIR, or Model folder in the widget).")
    from .network import NetworkEngine

    return NetworkEngine.from_folder(
        model,
        fold=fold,
        device=device,
        autozoom=autozoom,
        cpu_bf16=cpu_bf16,
        trust_checkpoint=trust_checkpoint,
        compile=compile,
    )


def _watershed(*_: object) -> Engine:
    from .seeded_watershed import SeededWatershedEngine

    return SeededWatershedEngine()


def _random_walker(*_: object) -> Engine:
    from .random_walker import RandomWalkerEngine

    return RandomWalkerEngine()


_NETWORK_OPTIONS = frozenset({"device", "fold", "autozoom", "cpu_bf16", "trust_checkpoint", "compile"})

#: Every engine, by name.
ENGINES: dict[str, EngineInfo] = {
    "network": EngineInfo(
        "network", "the nnInteractive network from a model folder (GPU recommended)", True, _NETWORK_OPTIONS, _network
    ),
    "weight-free": EngineInfo(
        "weight-free",
        "seeded watershed on image evidence; no weights, no download, CPU",
        False,
        frozenset(),
        _watershed,
    ),
    "random-walker": EngineInfo(
        "random-walker", "scikit-image random walker; a baseline for evaluation", False, frozenset(), _random_walker
    ),
}
#: ``auto``: the network when a model folder is given, else the weight-free engine.
AUTO = "auto"
#: What ``--engine`` and the widget offer, in order.
ENGINE_CHOICES = (AUTO, *ENGINES)
#: Where the network may run; ``auto`` picks CUDA, then MPS, then the CPU (``cuda:1`` also works).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def engine_help() -> str:
    """The engine choices in one paragraph, for ``--help``."""
    return "; ".join(
        [f"{AUTO} (default): network with a model folder, else weight-free"]
        + [f"{info.name}: {info.description}" for info in ENGINES.values()]
    )


def resolve(engine: str, model: str | Path | None) -> EngineInfo:
    """The engine ``engine`` names (``auto`` decided by whether a model folder is given)."""
    if engine == AUTO:
        return ENGINES["network" if model is not None else "weight-free"]
    info = ENGINES.get(engine)
    if info is None:
        raise EngineError(f"unknown engine {engine!r}; use one of {', '.join(ENGINE_CHOICES)}.")
    return info


def make_engine(
    model: str | Path | None = None,
    engine: str = AUTO,
    device: str = "auto",
    autozoom: bool = True,
    fold: int | str | None = None,
    cpu_bf16: bool = False,
    trust_checkpoint: bool = False,
    compile: bool = False,
) -> Engine:
    """Build an engine from the registry.

    ``engine="auto"`` uses the nnInteractive network when ``model`` (a model folder) is given and
    the weight-free seeded-watershed engine otherwise. ``cpu_bf16`` runs the network's CPU passes
    under bfloat16 autocast (see :class:`~.network.NetworkEngine`); ``trust_checkpoint`` allows
    the globals the checkpoint names (they can run code from the file); ``compile`` compiles the network
    with ``torch.compile`` and warms it up before returning (seconds to minutes).
    """
    return resolve(engine, model).build(model, device, autozoom, fold, cpu_bf16, trust_checkpoint, compile)


__all__ = ["AUTO", "DEVICE_CHOICES", "ENGINES", "ENGINE_CHOICES", "EngineInfo", "engine_help", "make_engine", "resolve"]
