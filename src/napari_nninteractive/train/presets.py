"""Plans for training from scratch: nnU-Net-style ``plans.json`` entries and the built-in presets.

A plans file names its network as data (``core/architectures.py`` allowlists what may be built);
these helpers write such entries. ``--plans`` takes a plans file or one of :data:`PRESETS`:

- ``cpu-small``: a 4-stage residual-encoder U-Net (~2.4 M parameters) on 32^3 patches, which
  trains on a laptop CPU in minutes (the benchmark's network);
- ``v1``: the nnInteractive v1.0 architecture (~102 M parameters, 192^3 patches): for GPUs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from ..core.errors import UserError

CONV = "torch.nn.modules.conv.Conv3d"
NORM = "torch.nn.modules.instancenorm.InstanceNorm3d"
NONLIN = "torch.nn.LeakyReLU"
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
V1_CONFIGURATION = "3d_fullres_ps192_bs24"


class PlansError(UserError, ValueError):
    """A ``--plans`` argument that names neither a preset nor a readable plans file."""


def architecture(features, blocks, strides, decoder) -> dict[str, Any]:
    """A ResidualEncoderUNet ``architecture`` entry as nnU-Net-style plans store it."""
    n = len(features)
    return {
        "network_class_name": RESENC,
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": list(features),
            "conv_op": CONV,
            "kernel_sizes": [[3, 3, 3]] * n,
            "strides": [[s, s, s] for s in strides],
            "n_blocks_per_stage": list(blocks),
            "n_conv_per_stage_decoder": list(decoder),
            "conv_bias": True,
            "norm_op": NORM,
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": NONLIN,
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def v1_architecture() -> dict[str, Any]:
    """The nnInteractive v1.0 network: ~102.4 M parameters."""
    return architecture([32, 64, 128, 256, 320, 320], [1, 3, 4, 6, 6, 6], [1, 2, 2, 2, 2, 2], [1, 1, 1, 1, 1])


def tiny_architecture() -> dict[str, Any]:
    """A 3-stage network with a few thousand parameters; a 64^3 forward takes milliseconds."""
    return architecture([4, 8, 16], [1, 1, 1], [1, 2, 2], [1, 1])


def cpu_small_architecture() -> dict[str, Any]:
    """A 4-stage network (~2.4 M parameters) that learns simple structures on a CPU in minutes."""
    return architecture([16, 32, 64, 128], [1, 1, 2, 2], [1, 2, 2, 2], [1, 1, 1])


def make_plans(
    arch: dict[str, Any], patch_size=(192, 192, 192), configuration: str = V1_CONFIGURATION
) -> dict[str, Any]:
    """Plans with a base configuration and ``configuration`` inheriting from it (as v1.0 does)."""
    base = configuration.rsplit("_bs", 1)[0] if "_bs" in configuration else configuration + "_base"
    return {
        "dataset_name": "Dataset_synthetic",
        "plans_name": "nnInteractivePlans",
        "configurations": {
            base: {
                "data_identifier": "nnInteractive",
                "batch_size": 2,
                "patch_size": list(patch_size),
                "spacing": [1.0, 1.0, 1.0],
                "architecture": copy.deepcopy(arch),
            },
            configuration: {"inherits_from": base, "batch_size": 24},
        },
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
    }


#: ``--plans`` names -> (plans, configuration).
def _cpu_small() -> dict[str, Any]:
    plans = make_plans(cpu_small_architecture(), (32, 32, 32), "3d_ps32_bs4")
    plans["configurations"]["3d_ps32_bs4"]["batch_size"] = 4
    return plans


PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "cpu-small": (_cpu_small(), "3d_ps32_bs4"),
    "v1": (make_plans(v1_architecture(), (192, 192, 192)), V1_CONFIGURATION),
}


def read_plans(plans: str | Path, configuration: str | None = None) -> tuple[dict[str, Any], str, Path]:
    """``(plans, configuration name, where)`` for a preset name or a plans file; ``where`` names it in messages.

    Without ``configuration``: a preset's own, or a file's one leaf configuration (one that no other
    inherits from); with several, the name is required. A name the plans lack is refused.
    """
    name = str(plans)
    if name in PRESETS:
        preset, default = PRESETS[name]
        data, where, configuration = copy.deepcopy(preset), Path(f"preset {name}"), configuration or default
    else:
        where = Path(plans).expanduser()
        if not where.is_file():
            raise PlansError(
                f"--plans {name!r} is neither a preset ({', '.join(PRESETS)}) nor a plans file; pass a plans.json path."
            )
        try:
            data = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlansError(f"{where} is not a readable JSON plans file ({exc}).") from None
    configs = data.get("configurations") if isinstance(data, dict) else None
    if not isinstance(configs, dict) or not configs:
        raise PlansError(f"{where} has no 'configurations'; pass an nnU-Net plans.json.")
    if configuration is None:
        parents = {v.get("inherits_from") for v in configs.values() if isinstance(v, dict)}
        leaves = [k for k, v in configs.items() if isinstance(v, dict) and k not in parents]
        if len(leaves) != 1:
            raise PlansError(f"{where} has configurations {sorted(configs)}; choose one with --configuration.")
        configuration = leaves[0]
    if configuration not in configs:
        raise PlansError(
            f"{where} has no configuration {configuration!r}; pass one of {sorted(configs)} with --configuration."
        )
    return data, configuration, where
