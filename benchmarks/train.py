"""Training from scratch and fine-tuning on a shifted domain, measured with simulated users.

1. Writes two synthetic nnU-Net datasets (``samples/training_set.py``): *base* (crowded touching
   blobs of near-equal brightness) and *shifted* (inverted contrast, capsules and boxes), 24 training
   and 6 held-out 64^3 cases each.
2. Held-out AUC (random agent, 5 corrections, seed 0, every object) of the weight-free engine and of
   the ``cpu-small`` network at random initialisation.
3. Trains ``cpu-small`` from scratch on *base* for ``--minutes`` (default 15), loads the written
   model folder from disk, checks it gives the same masks as the trainer's network, and measures it.
4. Fine-tunes that model on *shifted* for ``--finetune-minutes`` (default 5): AUC on shifted before/after.

    python benchmarks/train.py [--minutes 15] [--finetune-minutes 5] [--work /root/scratch/bench_train]

Prints one table; the closing notes of issue 17 quote it. On a GPU machine ``--v1-speed`` also times
training iterations of the full v1.0 architecture (192^3, batch 2).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.model import LoadedModel, load_model_folder
from napari_nninteractive.core.prompts import Box, Point
from napari_nninteractive.core.session import Session
from napari_nninteractive.samples.training_set import write_training_set
from napari_nninteractive.train.dataset import ObjectTable, load_dataset
from napari_nninteractive.train.loop import Progress, TrainConfig, Trainer
from napari_nninteractive.train.start import from_plans
from napari_nninteractive.train.validate import evaluate_cases, mean_auc


def held_out_auc(session: Session, folder: Path) -> tuple[float, list[float], int]:
    """Mean AUC, mean Dice@0..5 and object count over every object of the held-out cases."""
    runs = evaluate_cases(session, ObjectTable(load_dataset(folder, "test")))
    return mean_auc(runs), np.mean([r.dices for r in runs], 0).tolist(), len(runs)


def network_session(model: LoadedModel, autozoom: bool = True) -> Session:
    return Session(NetworkEngine(model, device="cpu", autozoom=autozoom))


def same_masks(net_a: torch.nn.Module, model_b: LoadedModel, folder: Path) -> bool:
    """The trainer's network and the folder loaded from disk give identical masks on a few prompts."""
    case = load_dataset(folder, "test").cases[0]
    model_a = LoadedModel(net_a, model_b.patch_size, model_b.n_image_channels, model_b.metadata)
    centre = tuple(int(v) for v in np.argwhere(case.labels == 1).mean(0))
    prompts = [[Point(centre)], [Box(((centre[0], centre[0] + 1), (10, 40), (10, 40)))]]
    for ps in prompts:
        masks = []
        for model in (model_a, model_b):
            s = network_session(model)
            s.set_image(case.image)
            s.add_prompts(ps)
            masks.append(s.read_mask().copy())
        if not np.array_equal(*masks):
            return False
    return True


def v1_speed(iterations: int = 5) -> str:
    if not torch.cuda.is_available():
        return "no CUDA device: skipped"
    import json
    import tempfile

    from napari_nninteractive.train.presets import PRESETS

    with tempfile.TemporaryDirectory() as tmp:
        ds = write_training_set(Path(tmp) / "ds", 2, 1, (192, 192, 192))
        plans = Path(tmp) / "plans.json"
        plans.write_text(json.dumps(PRESETS["v1"][0]))
        cfg = TrainConfig(
            ds,
            Path(tmp) / "out",
            plans="v1",
            epochs=1,
            iterations_per_epoch=iterations,
            batch_size=2,
            val_every=0,
            device="cuda",
        )
        trainer = Trainer(cfg, Progress(enabled=False))
        trainer.val_table = None
        trainer._step()  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iterations):
            trainer._step()
        torch.cuda.synchronize()
        return f"{(time.perf_counter() - t0) / iterations:.2f} s/iteration (batch 2, 192^3, fp16 autocast), peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--finetune-minutes", type=float, default=5)
    p.add_argument("--work", type=Path, default=Path("bench_train"))
    p.add_argument("--v1-speed", action="store_true")
    p.add_argument(
        "--no-autozoom", action="store_true", help="evaluate the trained models with AutoZoom off (quick runs)"
    )
    a = p.parse_args()
    az = not a.no_autozoom
    shutil.rmtree(a.work, ignore_errors=True)
    base = write_training_set(a.work / "Dataset001_Base", 24, 6, domain="base", seed=0)
    shifted = write_training_set(a.work / "Dataset002_Shifted", 24, 6, domain="shifted", seed=1)
    rows: list[tuple[str, float, list[float], int, float]] = []

    def measure(name: str, session: Session, folder: Path) -> float:
        t0 = time.perf_counter()
        auc, dices, n = held_out_auc(session, folder)
        rows.append((name, auc, dices, n, time.perf_counter() - t0))
        print(f"{name:<42} AUC {auc:.3f}  Dice@0..5 {' '.join(f'{d:.2f}' for d in dices)}  ({n} objects)", flush=True)
        return auc

    wf_base = measure("weight-free engine, base", Session(SeededWatershedEngine()), base)
    wf_shift = measure("weight-free engine, shifted", Session(SeededWatershedEngine()), shifted)
    start = from_plans("cpu-small", None, 1, seed=0)
    init = LoadedModel(start.network.eval(), start.patch_size, 1, start.metadata)
    # AutoZoom off: a random network's masks touch every border, so AutoZoom would zoom out to the maximum with
    # dozens of refinement passes on every step (minutes per object) for an AUC near zero either way
    init_auc = measure("cpu-small, random init, base (AutoZoom off)", network_session(init, False), base)

    t0 = time.perf_counter()
    cfg = TrainConfig(base, a.work / "model_base", plans="cpu-small", minutes=a.minutes, val_every=0, seed=0)
    trainer = Trainer(cfg, Progress())
    trainer.run()
    train_s = time.perf_counter() - t0
    loaded = load_model_folder(a.work / "model_base")
    identical = same_masks(trainer.network.eval(), loaded, base)
    scratch_auc = measure("trained from scratch, base", network_session(loaded, az), base)
    before = measure(
        "trained on base, shifted (before fine-tune)",
        network_session(load_model_folder(a.work / "model_base"), az),
        shifted,
    )

    t1 = time.perf_counter()
    cfg2 = TrainConfig(
        shifted,
        a.work / "model_shifted",
        from_dir=a.work / "model_base",
        minutes=a.finetune_minutes,
        val_every=0,
        seed=0,
    )
    Trainer(cfg2, Progress()).run()
    tune_s = time.perf_counter() - t1
    after = measure(
        "fine-tuned on shifted, shifted", network_session(load_model_folder(a.work / "model_shifted"), az), shifted
    )

    print()
    print(
        f"training from scratch: {trainer.iteration} iterations in {train_s / 60:.1f} min (incl. validation); "
        f"fine-tune {tune_s / 60:.1f} min"
    )
    print(
        f"from scratch: AUC {init_auc:.3f} (random init) -> {scratch_auc:.3f}; weight-free {wf_base:.3f}; "
        f"trained - weight-free = {scratch_auc - wf_base:+.3f} (goal: >= 0.85 and above weight-free)"
    )
    print(
        f"fine-tune on shifted: AUC {before:.3f} -> {after:.3f} ({after - before:+.3f}, goal >= +0.15); "
        f"weight-free on shifted {wf_shift:.3f}"
    )
    print(f"model folder loaded from disk gives the trainer's masks: {identical}")
    if a.v1_speed:
        print(f"v1.0 architecture on CUDA: {v1_speed()}")


if __name__ == "__main__":
    main()
