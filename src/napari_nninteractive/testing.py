"""Model folders in the official nnInteractive format with random weights, and synthetic volumes.

For tests, benchmarks and the README example: the folders go through exactly the same loading
code as the released nnInteractive_v1.0 model, but their random weights segment nothing
meaningful. Run ``python -m napari_nninteractive.testing --help`` for the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .core import atomic
from .samples.synthetic import enclosing_box, synthetic_volume
from .train.presets import V1_CONFIGURATION, architecture, make_plans, tiny_architecture, v1_architecture

__all__ = [
    "architecture",
    "enclosing_box",
    "make_plans",
    "synthetic_volume",
    "tiny_architecture",
    "v1_architecture",
    "write_model_folder",
]


def write_model_folder(
    folder: str | Path,
    arch: dict | None = None,
    patch_size=(64, 64, 64),
    metadata: str | dict = "legacy",
    licence: str | None = "Random weights for testing only (not a trained model)",
    seed: int = 0,
    fold: int | str = 0,
    configuration: str = V1_CONFIGURATION,
    n_image_channels: int = 1,
) -> Path:
    """Write an official-format model folder with random weights; returns its path.

    ``metadata``: ``"legacy"`` (bare-string ``inference_session_class.json`` like v1.0),
    ``"new"`` (an ``inference_info.json`` dict), or a dict written as ``inference_info.json``.
    """
    import torch

    from .core.model import N_PROMPT_INPUTS, build_network, resolve_configuration

    folder = Path(folder)
    arch = tiny_architecture() if arch is None else arch
    plans = make_plans(arch, patch_size, configuration)
    atomic.write_text(folder / "plans.json", json.dumps(plans, indent=2), make_parents=True)
    channels = {str(i): f"image_{i}" for i in range(n_image_channels)}
    dataset = {"channel_names": channels, "labels": {"background": 0, "foreground": 1}, "file_ending": ".nii.gz"}
    atomic.write_text(folder / "dataset.json", json.dumps(dataset, indent=2))
    if metadata == "legacy":
        atomic.write_text(folder / "inference_session_class.json", json.dumps("nnInteractiveInferenceSessionV3"))
    else:
        info = (
            {
                "point_radius": 4,
                "preferred_scribble_thickness": [2, 2, 2],
                "interaction_decay": 0.98,
                "supported_interactions": ["point", "bbox2d", "scribble", "lasso", "initial_label"],
            }
            if metadata == "new"
            else metadata
        )
        atomic.write_text(folder / "inference_info.json", json.dumps(info, indent=2))
    if licence:
        atomic.write_text(folder / "LICENSE", f"\n{licence}\n")
    torch.manual_seed(seed)
    resolved = resolve_configuration(plans, configuration, folder / "plans.json")
    net = build_network(resolved, n_image_channels + N_PROMPT_INPUTS, folder / "plans.json")
    # The keys and value types nnU-Net trainers write (numpy scalars in the log, a torch.device),
    # so every test load goes through the checkpoint allowlist (core/checkpoint.py).
    ckpt = {
        "network_weights": net.state_dict(),
        "init_args": {
            "plans": plans,
            "configuration": configuration,
            "fold": fold,
            "dataset_json": dataset,
            "device": torch.device("cpu"),
        },
        "trainer_name": "nnInteractiveTrainer",
        "grad_scaler_state": None,
        "logging": {"train_losses": [np.float64(0.5), np.float64(0.4)], "ema_fg_dice": [np.float64(0.1)]},
        "_best_ema": np.float64(0.1),
        "current_epoch": 1,
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    with atomic.replacing(folder / f"fold_{fold}" / "checkpoint_final.pth", make_parents=True) as tmp:
        torch.save(ckpt, tmp)
    return folder


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_nninteractive.testing",
        description="Write a random-weight model folder in the official nnInteractive format and a "
        "synthetic example (volume, its reference labels, prompts). The weights are random: masks are meaningless; this "
        "checks the whole pipeline without downloading the real model.",
    )
    parser.add_argument(
        "out",
        type=Path,
        help="folder to write (model/, volume.nii.gz, labels.nii.gz, prompts.json; created if needed, these replaced)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="use the full v1.0 architecture (102 M parameters, 192^3) instead of a tiny one",
    )
    parser.add_argument("--size", type=int, default=128, help="edge of the synthetic cubic volume (default 128)")
    from .cli.common import guarded

    return guarded(parser.prog, _write_example, parser.parse_args(argv))


def _write_example(args: argparse.Namespace) -> int:
    import nibabel as nib

    atomic.check_output(args.out, folder=True, may_replace_folder=lambda p: True, what="output folder")
    arch, patch = (v1_architecture(), (192,) * 3) if args.full else (tiny_architecture(), (64,) * 3)
    write_model_folder(args.out / "model", arch, patch)
    image, labels = synthetic_volume((args.size,) * 3)
    with atomic.replacing(args.out / "volume.nii.gz") as tmp:
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp))
    with atomic.replacing(args.out / "labels.nii.gz") as tmp:  # the reference, for nninteractive-eval
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(tmp))
    obj = labels == 1
    centre = [int(v) for v in np.argwhere(obj).mean(axis=0).round()]
    outside = np.argwhere((labels == 0) & (image < 40))  # a background voxel for the negative click
    far = outside[np.argmax(((outside - centre) ** 2).sum(axis=1) < 30**2)]
    prompts = {
        "interactions": [
            {"type": "point", "positive": True, "coord": centre},
            {"type": "bbox", "positive": True, "bbox": enclosing_box(obj, centre[0])},
            {"type": "point", "positive": False, "coord": [int(v) for v in far]},
        ]
    }
    atomic.write_text(args.out / "prompts.json", json.dumps(prompts, indent=2))
    out = args.out
    print(
        f"wrote {out}/model, {out}/volume.nii.gz, {out}/labels.nii.gz (reference) and {out}/prompts.json\n"
        f"next: nninteractive-segment {out}/volume.nii.gz --prompts {out}/prompts.json --model {out}/model "
        f"-o {out}/mask.nii.gz\n"
        f"      nninteractive-eval {out}/volume.nii.gz {out}/labels.nii.gz --out {out}/eval   (weight-free; "
        f"--model {out}/model measures the random network)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
