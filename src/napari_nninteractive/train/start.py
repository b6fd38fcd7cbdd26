"""Where training starts: an existing model folder (fine-tuning) or a plans file (from scratch)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.errors import UserError
from ..core.model import (
    LEGACY_METADATA,
    N_PROMPT_INPUTS,
    NEW_METADATA,
    InteractionMetadata,
    build_network,
    load_model_folder,
    resolve_configuration,
)
from ..core.prompts import PromptKind
from .presets import read_plans

#: ``inference_info.json`` of a model trained from scratch: the encoding the trainer used.
#: ``initial_label`` is not listed: the simulation never starts from a mask, so it is not trained.
SCRATCH_INFO: dict[str, Any] = {
    "point_radius": 4,
    "preferred_scribble_thickness": [2, 2, 2],
    "interaction_decay": 0.98,
    "supported_interactions": ["point", "bbox2d", "scribble", "lasso"],
}


class StartError(UserError, ValueError):
    """A starting point that does not fit the dataset; the message says what to do."""


@dataclass
class StartingPoint:
    """The network to train and everything the output model folder keeps from its origin."""

    network: torch.nn.Module
    plans: dict[str, Any]
    configuration: str
    patch_size: tuple[int, int, int]
    n_image_channels: int
    metadata: InteractionMetadata
    description: str  # "fine-tuned from X" / "trained from scratch (plans Y)"
    source: Path | None = None  # the model folder fine-tuned
    licence: str | None = None  # the source's LICENSE text, whole
    dataset_json: dict[str, Any] | None = None  # the source's dataset.json (kept when fine-tuning)
    metadata_files: dict[str, str] = field(default_factory=dict)  # file name -> text to write


def from_model_folder(folder: str | Path, n_image_channels: int) -> StartingPoint:
    """Fine-tune ``folder`` (official format): its weights, plans, configuration and metadata."""
    folder = Path(folder).expanduser()
    model = load_model_folder(folder)
    if model.n_image_channels != n_image_channels:
        raise StartError(
            f"{folder} takes {model.n_image_channels} image channel(s) but the dataset has {n_image_channels}; "
            "fine-tune on data with the same channels, or train from scratch with --plans."
        )
    plans = json.loads((folder / "plans.json").read_text(encoding="utf-8"))
    dataset_json = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    meta_files = {
        name: (folder / name).read_text(encoding="utf-8")
        for name in (LEGACY_METADATA, NEW_METADATA)
        if (folder / name).is_file()
    }
    assert model.configuration is not None  # load_model_folder requires one
    return StartingPoint(
        network=model.network,
        plans=plans,
        configuration=model.configuration,
        patch_size=model.patch_size,
        n_image_channels=n_image_channels,
        metadata=model.metadata,
        description=f"fine-tuned from {folder.name}",
        source=folder,
        licence=(folder / "LICENSE").read_text(encoding="utf-8", errors="replace")
        if (folder / "LICENSE").is_file()
        else None,
        dataset_json=dataset_json,
        metadata_files=meta_files,
    )


def from_plans(plans: str | Path, configuration: str | None, n_image_channels: int, seed: int) -> StartingPoint:
    """A new network from a plans file or preset, initialised from ``seed``."""
    data, name, where = read_plans(plans, configuration)
    resolved = resolve_configuration(data, name, where)
    patch = resolved.get("patch_size")
    if not (isinstance(patch, list) and len(patch) == 3 and all(isinstance(p, int) and p > 0 for p in patch)):
        raise StartError(f"{where}: configuration {name!r} has no 3-D patch_size of positive integers.")
    torch.manual_seed(seed)
    network = build_network(resolved, n_image_channels + N_PROMPT_INPUTS, where)
    return StartingPoint(
        network=network,
        plans=data,
        configuration=name,
        patch_size=(patch[0], patch[1], patch[2]),
        n_image_channels=n_image_channels,
        metadata=InteractionMetadata(
            point_radius=SCRATCH_INFO["point_radius"],
            scribble_thickness=tuple(SCRATCH_INFO["preferred_scribble_thickness"]),
            interaction_decay=SCRATCH_INFO["interaction_decay"],
            supported=frozenset({PromptKind.POINT, PromptKind.BBOX, PromptKind.SCRIBBLE, PromptKind.LASSO}),
        ),
        description=f"trained from scratch ({where}, configuration {name})",
        metadata_files={NEW_METADATA: json.dumps(SCRATCH_INFO, indent=2)},
    )


def default_batch_size(start: StartingPoint, device: torch.device) -> int:
    """The configuration's batch size on a GPU; at most 4 on a CPU."""
    resolved = resolve_configuration(start.plans, start.configuration, Path("plans.json"))
    size = resolved.get("batch_size", 2)
    size = size if isinstance(size, int) and size > 0 else 2
    return size if device.type == "cuda" else min(size, 4)
