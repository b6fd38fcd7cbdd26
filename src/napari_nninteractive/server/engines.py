"""Where the server's engines come from, and the capability snapshot their facts give.

An :class:`EngineSource` is built once at startup: a factory that makes one engine per session,
plus the :class:`EngineFacts` every session shares. :func:`network_source` loads the model folder
once and gives each session a :class:`~..core.engines.network.NetworkEngine` around the same
weights; :func:`weight_free_source` gives each session a fresh weight-free engine. Tests pass any
factory to :meth:`EngineSource.probe`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.autozoom import AutoZoomConfig
from ..core.engines.base import Engine
from ..core.model import InteractionMetadata
from ..core.prompts import PromptKind
from ..core.remote.protocol import EXTENSIONS, KIND_FLAGS, PROTOCOL_VERSION
from .config import ServerConfig

#: The backend's input channels after the image: prev_seg, then a (positive, negative) pair per prompt kind.
CHANNEL_MAPPING: dict[str, Any] = {"prev_seg": 0, "bbox": [1, 2], "lasso": [1, 2], "point": [3, 4], "scribble": [5, 6]}
NUM_INTERACTION_CHANNELS = 7
MISSING_LICENCE = "!!MISSING!!"


@dataclass(frozen=True)
class EngineFacts:
    """What every session of one source can do (the capability snapshot's inputs)."""

    name: str
    description: str
    kinds: frozenset[PromptKind]
    supports_3d_box: bool
    scribble_thickness: tuple[int, int, int] = InteractionMetadata.scribble_thickness
    interaction_decay: float | None = None
    patch_size: tuple[int, int, int] | None = None
    licence: str | None = None
    device: str = "cpu"


def facts_of(engine: Engine) -> EngineFacts:
    """The facts of ``engine`` (a network engine adds its model's metadata, patch size and licence)."""
    model = getattr(engine, "model", None)
    meta = getattr(model, "metadata", None)
    device = getattr(engine, "device", None)
    facts = EngineFacts(
        engine.name,
        engine.describe(),
        frozenset(engine.supported_kinds),
        bool(engine.supports_3d_box),
        device=str(getattr(device, "type", device or "cpu")),
    )
    if isinstance(meta, InteractionMetadata):
        patch = getattr(model, "patch_size", None)
        facts = replace(
            facts,
            scribble_thickness=meta.scribble_thickness,
            interaction_decay=float(meta.interaction_decay),
            patch_size=None if patch is None else (int(patch[0]), int(patch[1]), int(patch[2])),
            licence=getattr(model, "licence", None),
        )
    return facts


@dataclass(frozen=True)
class EngineSource:
    """Makes one engine per session (``factory``) and says what they can do (``facts``)."""

    factory: Callable[[], Engine]
    facts: EngineFacts

    @classmethod
    def probe(cls, factory: Callable[[], Engine]) -> EngineSource:
        """A source whose facts are read from one engine ``factory`` makes now."""
        return cls(factory, facts_of(factory()))


def network_source(
    folder: str | Path,
    fold: int | str | None = None,
    device: str = "auto",
    autozoom: bool = True,
    trust_checkpoint: bool = False,
    compile: bool = False,
) -> EngineSource:
    """The nnInteractive network of ``folder``, loaded once; every session shares its weights (and, with
    ``compile``, its compiled form, built and warmed up by the probe here, before the server listens)."""
    from ..core.engines.network import NetworkEngine
    from ..core.model import choose_device, load_model_folder

    model = load_model_folder(folder, fold=fold, trust_checkpoint=trust_checkpoint)
    where = str(choose_device(device))
    return EngineSource.probe(lambda: NetworkEngine(model, where, autozoom, compile=compile))


def weight_free_source() -> EngineSource:
    """A fresh weight-free (seeded watershed) engine per session; no model, CPU."""
    from ..core.engines.registry import make_engine

    return EngineSource.probe(lambda: make_engine(engine="weight-free"))


def set_autozoom(engine: Engine, enabled: bool) -> None:
    """Switch AutoZoom of ``engine`` on or off (engines without AutoZoom ignore it)."""
    current = getattr(engine, "autozoom", None)
    if isinstance(current, AutoZoomConfig):
        engine.autozoom = replace(current, enabled=bool(enabled))  # type: ignore[attr-defined]


def capability_snapshot(facts: EngineFacts, config: ServerConfig) -> dict[str, Any]:
    """``GET /capabilities``: computed once at startup, never changed."""
    kinds = facts.kinds
    supported = {flag: kind in kinds for kind, flag in KIND_FLAGS.items()}
    supported["bbox3d"] = PromptKind.BBOX in kinds and facts.supports_3d_box
    initial = PromptKind.MASK in kinds
    return {
        "supported_interactions": supported,
        "channel_mapping": CHANNEL_MAPPING,
        "num_interaction_channels": NUM_INTERACTION_CHANNELS,
        "supports_initial_label": initial,
        "supports_zero_shot_label_refinement": initial,
        "preferred_scribble_thickness": list(facts.scribble_thickness),
        "interaction_decay": facts.interaction_decay,
        "patch_size": None if facts.patch_size is None else list(facts.patch_size),
        "do_autozoom": config.autozoom,
        "inference_session_version": PROTOCOL_VERSION,
        "license": facts.licence or MISSING_LICENCE,
        "supports_undo": config.undo,
        EXTENSIONS: {
            "version": __version__,
            "engine": facts.name,
            "description": facts.description,
            "undo_levels": None if config.undo else 0,
            "redo": config.undo,
            "device": facts.device,
        },
    }


__all__ = [
    "CHANNEL_MAPPING",
    "NUM_INTERACTION_CHANNELS",
    "EngineFacts",
    "EngineSource",
    "capability_snapshot",
    "facts_of",
    "network_source",
    "set_autozoom",
    "weight_free_source",
]
