"""nnInteractive model folders: metadata, network building, weights and device choice (spec 1).

``load_model_folder`` turns an official trained-model folder into a :class:`LoadedModel`
(network in eval mode + everything the engine needs to encode prompts). Every failure raises
:class:`ModelFolderError` naming the file at fault and what to do.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import jsonio
from .architectures import lookup
from .checkpoint import load_checkpoint
from .errors import CheckpointError, ModelFolderError, UnsafeCheckpointError
from .folds import CHECKPOINT_NAME, folds
from .prompts import PromptKind

log = logging.getLogger(__name__)

LEGACY_METADATA = "inference_session_class.json"
NEW_METADATA = "inference_info.json"
N_PROMPT_INPUTS = 7  # prev_seg + 6 prompt channels
N_OUTPUTS = 2
#: Sanity bounds on what a plans file may ask to build (refused beyond them, before building).
MAX_PATCH_EDGE, MAX_FEATURES, MAX_STAGES, MAX_IMAGE_CHANNELS = 512, 1024, 10, 16
MAX_KERNEL, MAX_STRIDE, MAX_BLOCKS = 7, 4, 16


@dataclass(frozen=True)
class InteractionMetadata:
    """How a model expects prompts to be encoded."""

    point_radius: int = 4
    scribble_thickness: tuple[int, int, int] = (2, 2, 2)
    interaction_decay: float = 0.98
    pad_mode_image: str = "constant"
    supported: frozenset[PromptKind] = frozenset(PromptKind)
    supports_3d_box: bool = False

    @property
    def supports_initial_mask(self) -> bool:
        return PromptKind.MASK in self.supported


@dataclass
class LoadedModel:
    """A network ready for inference plus the facts needed to feed it.

    ``network`` maps a float tensor ``(1, n_image_channels + 7, *patch_size)`` to logits
    ``(1, 2, *patch_size)``; any callable works (tests inject deterministic ones).
    """

    network: Any
    patch_size: tuple[int, int, int]
    n_image_channels: int = 1
    metadata: InteractionMetadata = field(default_factory=InteractionMetadata)
    licence: str | None = None
    folder: Path | None = None
    configuration: str | None = None
    trainer_name: str | None = None
    #: ``torch.compile`` forms of ``network`` by (backend, device, precision), shared by the engines of this
    #: model (:func:`~.engines.accel.compiled`); they go with the model.
    compiled_forms: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_inputs(self) -> int:
        return self.n_image_channels + N_PROMPT_INPUTS


# ----------------------------------------------------------------------------- devices


def choose_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Pick ``cuda`` > ``mps`` > ``cpu`` for ``"auto"``; check an explicit choice exists."""
    pref = str(preference or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ModelFolderError("Device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto.")
    if pref == "mps" and not has_mps:
        raise ModelFolderError("Device 'mps' was requested but Apple MPS is not available; use --device cpu or auto.")
    if not (pref == "cpu" or pref == "mps" or pref.startswith("cuda")):
        raise ModelFolderError(f"Unknown device {preference!r}; use auto, cpu, cuda or mps.")
    return torch.device(pref)


# ----------------------------------------------------------------------------- metadata


def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


_INTERACTION_NAMES = {
    "point": PromptKind.POINT,
    "points": PromptKind.POINT,
    "bbox": PromptKind.BBOX,
    "bbox2d": PromptKind.BBOX,
    "2dbbox": PromptKind.BBOX,
    "box": PromptKind.BBOX,
    "scribble": PromptKind.SCRIBBLE,
    "scribbles": PromptKind.SCRIBBLE,
    "lasso": PromptKind.LASSO,
    "initiallabel": PromptKind.MASK,
    "initialmask": PromptKind.MASK,
    "initialseg": PromptKind.MASK,
    "mask": PromptKind.MASK,
}
_BOX3D_NAMES = {"bbox3d", "3dbbox", "box3d"}


def parse_metadata(folder: Path) -> InteractionMetadata:
    """Read ``inference_info.json`` (preferred) or the legacy ``inference_session_class.json``."""
    new, legacy = folder / NEW_METADATA, folder / LEGACY_METADATA
    path = new if new.is_file() else legacy if legacy.is_file() else None
    if path is None:
        raise ModelFolderError(
            f"{folder} has neither {NEW_METADATA} nor {LEGACY_METADATA}; this is not a complete "
            "nnInteractive model folder. Download the model folder again."
        )
    data = _read_json(path)
    if isinstance(data, str):  # legacy: the session class name only
        return InteractionMetadata(point_radius=4, scribble_thickness=(2, 2, 2), interaction_decay=0.9)
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path} must hold a JSON string or object, not {jsonio.type_name(data)}.")
    err = ModelFolderError
    thick = jsonio.get(data, "preferred_scribble_thickness", (int, float, list), str(path), err, [2, 2, 2])
    thick = [thick] * 3 if not isinstance(thick, list) else thick
    thick = jsonio.as_numbers(thick, 3, f"{path}: preferred_scribble_thickness", err, lo=0, hi=64)
    radius = jsonio.get(data, "point_radius", (int, float), str(path), err, 4)
    decay = jsonio.get(data, "interaction_decay", (int, float), str(path), err, 0.98)
    kwargs: dict[str, Any] = dict(
        point_radius=int(jsonio.as_number(radius, f"{path}: point_radius", err, lo=0, hi=64)),
        scribble_thickness=tuple(int(t) for t in thick),
        interaction_decay=float(jsonio.as_number(decay, f"{path}: interaction_decay", err, lo=0, hi=1)),
        pad_mode_image=jsonio.get(data, "pad_mode_image", str, str(path), err, "constant"),
    )
    if kwargs["pad_mode_image"] != "constant":
        warnings.warn(
            f"{path}: pad_mode_image={kwargs['pad_mode_image']!r} is not supported; using 'constant'.",
            stacklevel=2,
        )
    if "supported_interactions" in data:
        listed = jsonio.get(data, "supported_interactions", list, str(path), err)
        if not all(isinstance(n, str) for n in listed):
            raise ModelFolderError(f"{path}: supported_interactions must be a list of names (strings).")
        names = {_norm_name(n) for n in listed}
        kinds = {_INTERACTION_NAMES[n] for n in names if n in _INTERACTION_NAMES}
        unknown = names - set(_INTERACTION_NAMES) - _BOX3D_NAMES
        if unknown:
            log.info("%s: ignoring unknown interaction names %s", path, sorted(unknown))
        box3d = bool(names & _BOX3D_NAMES)
        if box3d:
            kinds.add(PromptKind.BBOX)
        kwargs.update(supported=frozenset(kinds), supports_3d_box=box3d)
    if "supports_initial_label" in data:
        supported = set(kwargs.get("supported", frozenset(PromptKind)))
        initial = jsonio.get(data, "supports_initial_label", bool, str(path), err)
        (supported.add if initial else supported.discard)(PromptKind.MASK)
        kwargs["supported"] = frozenset(supported)
    _check_channel_layout(path, data)
    return InteractionMetadata(**kwargs)


_DEFAULT_CHANNELS = ["bbox+", "bbox-", "point+", "point-", "scribble+", "scribble-"]


def _check_channel_layout(path: Path, data: dict[str, Any]) -> None:
    """Accept only channel layouts equal to the spec's order; refuse anything else loudly."""
    n = data.get("interaction_channels")
    if n is not None and not (isinstance(n, int) and n == N_PROMPT_INPUTS):
        raise ModelFolderError(
            f"{path}: interaction_channels={n!r}, but this plugin feeds {N_PROMPT_INPUTS} "
            "interaction channels (prev_seg + 6 prompt channels). This model is not supported."
        )
    mapping = data.get("channel_mapping")
    if mapping is None:
        return
    if isinstance(mapping, dict):
        try:
            order = [k for k, _ in sorted(mapping.items(), key=lambda kv: int(kv[1]))]
        except (TypeError, ValueError, OverflowError):
            order = None
        if order is not None and [_norm_name(k) for k in order if _norm_name(k) not in ("prevseg", "image")] == [
            _norm_name(k) for k in _DEFAULT_CHANNELS
        ]:
            return
    raise ModelFolderError(
        f"{path}: channel_mapping {mapping!r} differs from the channel order this plugin feeds "
        f"({', '.join(_DEFAULT_CHANNELS)}); this model is not supported."
    )


def _read_json(path: Path) -> Any:
    return jsonio.read_json(path, ModelFolderError, "model", missing="Download the model folder again.")


def read_licence(folder: Path) -> str | None:
    """First non-empty line of ``LICENSE`` in the folder (its first 64 KiB), if there is one."""
    path = folder / "LICENSE"
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in head.splitlines():
        if line.strip():
            return line.strip()[:300]
    return None


# ----------------------------------------------------------------------------- plans / network


def resolve_configuration(plans: object, name: str, plans_path: Path) -> dict[str, Any]:
    """The configuration ``name`` with ``inherits_from`` chains applied (child keys win)."""
    configs = plans.get("configurations") if isinstance(plans, dict) else None
    if not isinstance(configs, dict):
        raise ModelFolderError(f"{plans_path} has no 'configurations' object; download the model folder again.")
    chain, seen = [], set()
    while name is not None:
        if not isinstance(name, str):
            raise ModelFolderError(
                f"{plans_path}: a configuration name must be a string, not {jsonio.type_name(name)}."
            )
        if name in seen:
            raise ModelFolderError(f"{plans_path}: configuration inheritance loops at {name!r}.")
        if name not in configs:
            raise ModelFolderError(
                f"{plans_path} has no configuration {name!r} (it has {sorted(configs)}); the "
                "checkpoint and plans.json do not belong together."
            )
        if not isinstance(configs[name], dict):
            raise ModelFolderError(f"{plans_path}: configuration {name!r} must be a JSON object.")
        seen.add(name)
        chain.append(configs[name])
        name = configs[name].get("inherits_from")
    resolved: dict[str, Any] = {}
    for cfg in reversed(chain):
        resolved.update(cfg)
    return resolved


def _check_arch_kwargs(kwargs: dict[str, Any], where: str) -> None:
    """Refuse sizes no nnU-Net plan uses before torch tries to allocate them."""
    n = kwargs.get("n_stages")
    if n is not None:
        jsonio.as_number(n, f"{where}: n_stages", ModelFolderError, integer=True, lo=1, hi=MAX_STAGES)
    for key, hi in (
        ("features_per_stage", MAX_FEATURES),
        ("n_blocks_per_stage", MAX_BLOCKS),
        ("n_conv_per_stage", MAX_BLOCKS),
        ("n_conv_per_stage_decoder", MAX_BLOCKS),
        ("kernel_sizes", MAX_KERNEL),
        ("strides", MAX_STRIDE),
    ):
        value = kwargs.get(key)
        if value is None:
            continue
        flat = value if isinstance(value, list) else [value]
        flat = [v for item in flat for v in (item if isinstance(item, list) else [item])]
        lo = 0 if key == "n_conv_per_stage_decoder" else 1
        jsonio.as_numbers(flat, None, f"{where}: {key}", ModelFolderError, integer=True, lo=lo, hi=hi)


def build_network(configuration: dict[str, Any], n_inputs: int, plans_path: Path) -> torch.nn.Module:
    """Instantiate the configuration's architecture with ``n_inputs`` inputs and 2 outputs.

    Class names are looked up in :func:`.architectures.allowed_classes`, never imported.
    """
    err, where = ModelFolderError, f"{plans_path}: architecture"
    arch = configuration.get("architecture")
    if not isinstance(arch, dict) or "network_class_name" not in arch:
        raise ModelFolderError(f"{plans_path}: the configuration has no 'architecture' to build.")
    kwargs = dict(jsonio.get(arch, "arch_kwargs", dict, where, err, {}))
    _check_arch_kwargs(kwargs, where)
    for key in jsonio.get(arch, "_kw_requires_import", list, where, err, []):
        if not isinstance(key, str):
            raise ModelFolderError(f"{where}: _kw_requires_import must list argument names (strings).")
        if kwargs.get(key) is not None:
            kwargs[key] = lookup(kwargs[key], f"{where}: {key}", err)
    cls = lookup(arch["network_class_name"], f"{where}: network_class_name", err)
    try:
        network: torch.nn.Module = cls(input_channels=n_inputs, num_classes=N_OUTPUTS, deep_supervision=False, **kwargs)
        return network
    except (TypeError, ValueError, AssertionError, KeyError, IndexError, RuntimeError, AttributeError) as exc:
        raise ModelFolderError(
            f"{plans_path}: cannot build {arch['network_class_name']} from its arch_kwargs "
            f"({type(exc).__name__}: {str(exc)[:300]}); the plans file is damaged."
        ) from None


# ----------------------------------------------------------------------------- folder


def find_checkpoint(folder: Path, fold: int | str | None = None) -> Path:
    """``fold_X/checkpoint_final.pth``; ``fold`` is required when several folds exist."""
    if fold is not None:
        if not re.fullmatch(r"[A-Za-z0-9_]{1,32}", str(fold)):
            raise ModelFolderError(f"Fold {fold!r} is not a fold name (folds here: {folds(folder)}).")
        path = folder / f"fold_{fold}" / CHECKPOINT_NAME
        if not path.is_file():
            raise ModelFolderError(f"{path} does not exist; check the fold (folds here: {folds(folder)}).")
        return path
    found = sorted(p for p in folder.glob(f"fold_*/{CHECKPOINT_NAME}") if p.is_file())
    if not found:
        raise ModelFolderError(
            f"{folder} has no fold_*/{CHECKPOINT_NAME}; the download is incomplete. Download the model folder again."
        )
    if len(found) > 1:
        raise ModelFolderError(f"{folder} has several folds {folds(folder)}; choose one (fold=... / --fold).")
    return found[0]


def _clean_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in sd.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_model_folder(folder: str | Path, fold: int | str | None = None, trust_checkpoint: bool = False) -> LoadedModel:
    """Load an official nnInteractive model folder (network on CPU, eval mode).

    Nothing in the folder is executed: the checkpoint is read weights-only with an allowlist
    (:mod:`.checkpoint`; ``trust_checkpoint=True`` allows the globals the checkpoint names, which can run code
    from the file) and the plans may name only allowlisted classes (:mod:`.architectures`).
    Raises :class:`ModelFolderError` (or its :class:`~.checkpoint.UnsafeCheckpointError`).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelFolderError(
            f"Model folder {folder} does not exist. Pass the folder that holds plans.json, "
            "dataset.json and fold_0/ (e.g. .../nnInteractive_v1.0)."
        )
    plans_path, dataset_path = folder / "plans.json", folder / "dataset.json"
    for p in (plans_path, dataset_path):
        if not p.is_file():
            raise ModelFolderError(f"{p} is missing; this is not a complete model folder. Download it again.")
    metadata = parse_metadata(folder)
    plans, dataset = _read_json(plans_path), _read_json(dataset_path)
    if not isinstance(dataset, dict):
        raise ModelFolderError(f"{dataset_path} must hold a JSON object, not {jsonio.type_name(dataset)}.")
    channels = dataset.get("channel_names", dataset.get("modality", {"0": "image"}))
    if not isinstance(channels, dict) or not 1 <= len(channels) <= MAX_IMAGE_CHANNELS:
        raise ModelFolderError(
            f"{dataset_path}: channel_names must be an object with 1 to {MAX_IMAGE_CHANNELS} "
            f"entries, not {jsonio.type_name(channels)}."
        )
    n_image = len(channels)
    ckpt_path = find_checkpoint(folder, fold)
    ckpt = load_checkpoint(ckpt_path, trust=trust_checkpoint)
    init_args = ckpt.get("init_args") or {}
    config_name = init_args.get("configuration")
    if not isinstance(config_name, str) or not config_name:
        raise ModelFolderError(
            f"{ckpt_path} has no init_args['configuration'] name; it is not an nnInteractive checkpoint."
        )
    configuration = resolve_configuration(plans, config_name, plans_path)
    patch = configuration.get("patch_size")
    if not (isinstance(patch, list) and len(patch) == 3):
        raise ModelFolderError(f"{plans_path}: configuration {config_name!r} has no 3-D patch_size.")
    jsonio.as_numbers(patch, 3, f"{plans_path}: patch_size", ModelFolderError, integer=True, lo=1, hi=MAX_PATCH_EDGE)
    network = build_network(configuration, n_image + N_PROMPT_INPUTS, plans_path)
    try:
        network.load_state_dict(_clean_state_dict(ckpt["network_weights"]), strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()
        raise ModelFolderError(
            f"The weights in {ckpt_path} do not fit the network built from {plans_path} "
            f"(configuration {config_name!r}): {' '.join(first[:3])[:600]}. The checkpoint and "
            "plans.json come from different models; download the model folder again."
        ) from None
    network.eval()
    return LoadedModel(
        network=network,
        patch_size=(int(patch[0]), int(patch[1]), int(patch[2])),  # checked above: 3 integers
        n_image_channels=n_image,
        metadata=metadata,
        licence=read_licence(folder),
        folder=folder,
        configuration=config_name,
        trainer_name=ckpt.get("trainer_name") if isinstance(ckpt.get("trainer_name"), str) else None,
    )


__all__ = [
    "CheckpointError",
    "InteractionMetadata",
    "LoadedModel",
    "ModelFolderError",
    "UnsafeCheckpointError",
    "build_network",
    "choose_device",
    "find_checkpoint",
    "load_checkpoint",
    "load_model_folder",
    "parse_metadata",
    "read_licence",
    "resolve_configuration",
]
