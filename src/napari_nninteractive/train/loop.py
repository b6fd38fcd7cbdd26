"""The training loop: simulated episodes, Dice + cross-entropy, checkpoints that resume exactly.

Design (nnU-Net's defaults where they apply): the polynomial learning-rate decay
``lr * (1 - i / n) ** 0.9``; gradients clipped at norm 12; loss = cross-entropy + (1 - soft Dice of
the foreground); an *epoch* is a fixed number of iterations. The optimiser is AdamW by default:
nnU-Net's SGD (Nesterov momentum 0.99) is there (``optimizer="sgd"``), but it needs far more
iterations than a run of minutes has (after 3 CPU minutes on the benchmark's data: held-out AUC 0.71
with SGD, 0.84 with AdamW);
mixed precision (float16 autocast + gradient scaling) on CUDA only. ``--minutes`` plans the number of
iterations from the speed of the first epoch and keeps that plan (it is stored, so a resumed run
follows the same schedule); ``--epochs`` is fully reproducible: on the CPU, a run with a seed gives
the same weights every time, and stopping and resuming gives the same weights as not stopping
(the checkpoint holds the optimiser, the iteration and every random state). Several GPUs:
start with ``torchrun --nproc_per_node N nninteractive-train ...`` (DistributedDataParallel; each
process simulates its own episodes, rank 0 validates and writes).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checkpoint import load_checkpoint
from ..core.errors import UserError
from ..core.model import choose_device
from . import output
from .dataset import ObjectTable, TrainingData, load_dataset
from .simulation import Simulator
from .start import default_batch_size, from_model_folder, from_plans
from .validate import mean_auc, validate, write_validation

log = logging.getLogger(__name__)


class TrainError(UserError, RuntimeError):
    """A training run that cannot go on; the message says what to do."""


@dataclass
class TrainConfig:
    """Everything a run is made of (the command line's options)."""

    dataset: Path
    out: Path
    from_dir: Path | None = None
    plans: str | None = None
    configuration: str | None = None
    minutes: float | None = None
    epochs: int | None = None
    iterations_per_epoch: int = 50
    device: str = "auto"
    seed: int = 0
    batch_size: int | None = None
    lr: float | None = None  # default: see Trainer.default_lr
    optimizer: str = "adamw"  # or "sgd" (nnU-Net's); see Trainer.default_lr
    val_every: int = 10  # epochs; the last epoch always validates
    val_objects: int = 4  # objects per held-out case
    val_interactions: int = 5
    val_autozoom: bool = False  # see validate.validate
    objects: str = "labels"
    merge_probability: float = 0.1
    max_corrections: int = 4
    resume: bool = False
    threads: int | None = None


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Cross-entropy + (1 - soft Dice of the foreground), per sample then averaged (nnU-Net's DC_and_CE)."""
    ce = F.cross_entropy(logits.float(), target)
    prob = torch.softmax(logits.float(), 1)[:, 1]
    fg = (target == 1).float()
    dims = tuple(range(1, prob.ndim))
    inter = (prob * fg).sum(dims)
    dice = (2 * inter + smooth) / (prob.sum(dims) + fg.sum(dims) + smooth)
    return ce + (1 - dice.mean())


def poly_lr(base: float, iteration: int, total: int) -> float:
    return base * (1 - min(iteration, total - 1) / total) ** 0.9


class Progress:
    """One line on stderr: epoch, iteration, loss, learning rate, speed and time left."""

    def __init__(self, enabled: bool = True, stream=sys.stderr):
        self.enabled, self.stream = enabled, stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = 0.0

    def update(self, it: int, total: int, epoch: int, loss: float, lr: float, rate: float, final: bool = False) -> None:
        """Redraw the line (at most twice a second) on a terminal; elsewhere (a log file) only when ``final``."""
        if not self.enabled or (self.tty is False and not final) or (not final and time.monotonic() - self.last < 0.5):
            return
        self.last = time.monotonic()
        eta = (total - it) / rate if rate > 0 and total >= it else float("nan")
        bar = "#" * int(24 * it / max(total, 1))
        text = f"[{bar:<24}] it {it}/{total or '?'} epoch {epoch} loss {loss:.4f} lr {lr:.2e} {rate:.2f} it/s ETA {_clock(eta)}"
        print(
            ("\r" if self.tty else "") + text, end="\n" if final or not self.tty else "", file=self.stream, flush=True
        )

    def message(self, text: str) -> None:
        if self.enabled:
            print(("\n" if self.tty else "") + text, file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m:02d}:{s:02d}"


def _split(data: TrainingData, folder: Path, seed: int) -> tuple[TrainingData, TrainingData | None]:
    """Training cases and held-out cases: the dataset's test split, else 20 % of the cases (at least one)."""
    if (folder / "imagesTs").is_dir() and (folder / "labelsTs").is_dir():
        return data, load_dataset(folder, "test")
    if len(data.cases) < 2:
        return data, None
    n_val = max(1, round(0.2 * len(data.cases)))
    order = np.random.default_rng([seed, 7]).permutation(len(data.cases))
    held = sorted(int(i) for i in order[:n_val])
    train = [c for i, c in enumerate(data.cases) if i not in held]
    val = [data.cases[i] for i in held]
    copy = TrainingData(data.name, data.channel_names, data.label_names, data.file_ending, train)
    return copy, TrainingData(data.name, data.channel_names, data.label_names, data.file_ending, val)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class Trainer:
    """One training run (see the module docstring); :meth:`run` returns the output folder."""

    def __init__(self, cfg: TrainConfig, progress: Progress | None = None):
        self.cfg = cfg
        self.progress = progress or Progress()
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        if self.world > 1:
            self._init_distributed()
        else:
            self.device = choose_device(cfg.device)
        data = load_dataset(cfg.dataset)
        self.train_data, self.val_data = _split(data, Path(cfg.dataset), cfg.seed)
        self.table = ObjectTable(self.train_data, cfg.objects)
        self.val_table = ObjectTable(self.val_data, cfg.objects) if self.val_data is not None else None
        if cfg.from_dir is not None:
            self.start = from_model_folder(cfg.from_dir, data.n_channels)
        elif cfg.plans is not None:
            self.start = from_plans(cfg.plans, cfg.configuration, data.n_channels, cfg.seed)
        else:
            raise TrainError("Choose a starting point: --from MODEL_DIR (fine-tune) or --plans PLANS (from scratch).")
        self.network = self.start.network.to(self.device).train()
        self.batch_size = cfg.batch_size or default_batch_size(self.start, self.device)
        self.lr = cfg.lr or self.default_lr(cfg)
        self.sim = Simulator(
            self.train_data,
            self.table,
            self.start.metadata,
            self.start.patch_size,
            cfg.max_corrections,
            cfg.merge_probability,
        )
        if cfg.optimizer == "adamw":
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                self.network.parameters(), lr=self.lr, weight_decay=1e-4
            )
        elif cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(
                self.network.parameters(), lr=self.lr, momentum=0.99, nesterov=True, weight_decay=3e-5
            )
        else:
            raise TrainError(f"unknown optimizer {cfg.optimizer!r}; use sgd or adamw")
        self.amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.rng = np.random.default_rng([cfg.seed, self.rank])
        self.iteration, self.epoch, self.planned = 0, 0, self._planned_from_epochs()
        self.log: dict[str, Any] = {
            "description": self.start.description,
            "dataset": str(cfg.dataset),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
            "batch_size": self.batch_size,
            "lr": self.lr,
            "patch_size": list(self.start.patch_size),
            "epochs": [],
            "validation": [],
        }
        self.best_auc = -1.0
        self.model_ddp: Any = self.network
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # without deep supervision the decoder's lower segmentation heads get no gradient
            self.model_ddp = torch.nn.parallel.DistributedDataParallel(
                self.network, device_ids=ids, find_unused_parameters=True
            )

    # ------------------------------------------------------------------ setup

    @staticmethod
    def default_lr(cfg: TrainConfig) -> float:
        """AdamW: 1e-3 from scratch, 3e-4 fine-tuning; SGD: 1e-2 from scratch (nnU-Net), 1e-3 fine-tuning."""
        if cfg.optimizer == "adamw":
            return 3e-4 if cfg.from_dir is not None else 1e-3
        return 1e-3 if cfg.from_dir is not None else 1e-2

    def _init_distributed(self) -> None:
        import torch.distributed as dist

        local = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available() and self.cfg.device != "cpu":
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
            dist.init_process_group("nccl")
        else:
            self.device = torch.device("cpu")
            dist.init_process_group("gloo")

    def _planned_from_epochs(self) -> int | None:
        if self.cfg.epochs is not None:
            return int(self.cfg.epochs) * self.cfg.iterations_per_epoch
        return None

    def _agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (decisions taken from clocks must be the same everywhere)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @property
    def writer(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ checkpoints

    def _resume_state(self) -> dict[str, Any]:
        import torch.distributed as dist

        rngs = [self.rng.bit_generator.state]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, self.rng.bit_generator.state)
        return {
            "network_weights": self.network.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.scaler.state_dict() if self.amp else None,
            "iteration": self.iteration,
            "epoch": self.epoch,
            "planned_iterations": self.planned,
            "best_auc": self.best_auc,
            "rng_states": rngs,
            "torch_rng": torch.get_rng_state(),
            "log": self.log,
        }

    def _load_resume(self) -> None:
        path = output.checkpoint_path(self.cfg.out, output.LATEST)
        if not path.is_file():
            raise TrainError(f"--resume: {path} does not exist; start without --resume.")
        state = load_checkpoint(path)  # weights only, the project's allowlist; a damaged file is explained
        self.network.load_state_dict(state["network_weights"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        if self.amp and state.get("grad_scaler_state"):
            self.scaler.load_state_dict(state["grad_scaler_state"])
        self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
        if self.cfg.epochs is None:
            self.planned = state["planned_iterations"]
        self.best_auc = float(state["best_auc"])
        rngs = state["rng_states"]
        if len(rngs) != self.world:
            raise TrainError(f"--resume: the checkpoint was written by {len(rngs)} process(es); resume with as many.")
        self.rng.bit_generator.state = rngs[self.rank]
        torch.set_rng_state(state["torch_rng"])
        self.log = state["log"]
        self.progress.message(f"resumed at iteration {self.iteration} (epoch {self.epoch})")

    def _save_latest(self) -> None:
        state = self._resume_state()  # every rank joins the gather
        if self.writer:
            output.save(output.checkpoint_path(self.cfg.out, output.LATEST), state)

    def _write_final(self, name: str) -> None:
        ckpt = output.final_checkpoint(self.network.state_dict(), self.start, self.train_data, self.epoch, self.log)
        output.save(output.checkpoint_path(self.cfg.out, name), ckpt)

    # ------------------------------------------------------------------ steps

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> np.ndarray:
        with torch.autocast("cuda", torch.float16, enabled=self.amp):
            logits = self.network(x.to(self.device))
        return (logits.argmax(1) == 1).cpu().numpy()

    def _step(self) -> float:
        x, y = self.sim.batch(self.batch_size, self._predict, self.rng)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = poly_lr(self.lr, self.iteration, self.planned or 1)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", torch.float16, enabled=self.amp):
            loss = dice_ce_loss(self.model_ddp(x), y)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def _validate(self) -> None:
        if self.val_table is None or not self.writer:
            return
        t0 = time.perf_counter()
        runs = validate(
            self.network,
            self.start,
            self.val_table,
            self.device,
            self.cfg.val_interactions,
            self.cfg.seed,
            self.cfg.val_objects,
            self.cfg.val_autozoom,
        )
        auc = mean_auc(runs)
        dices = np.mean([r.dices for r in runs], axis=0).tolist() if runs else []
        self.log["validation"].append(
            {
                "epoch": self.epoch,
                "iteration": self.iteration,
                "auc": auc,
                "dice_at_k": dices,
                "objects": len(runs),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        folder = self.cfg.out / "validation"
        write_validation(runs, folder, f"epoch {self.epoch}: AUC {auc:.3f}")
        if auc > self.best_auc:
            self.best_auc = auc
            self._write_final(output.BEST)
            write_validation(runs, self.cfg.out / "validation_best", f"best, epoch {self.epoch}: AUC {auc:.3f}")
        self.progress.message(f"validation after epoch {self.epoch}: AUC {auc:.3f} ({len(runs)} objects)")

    # ------------------------------------------------------------------ run

    def run(self, stop: Callable[[], bool] | None = None) -> Path:
        """Train until the planned iterations are done (or ``stop()`` says so); returns the output folder."""
        try:
            return self._run(stop)
        except RuntimeError as exc:
            if _is_oom(exc):
                raise TrainError(
                    f"Out of memory on {self.device} with batch size {self.batch_size} and patch "
                    f"{self.start.patch_size}: lower --batch-size (e.g. {max(1, self.batch_size // 2)}), train a "
                    "smaller configuration, or free the GPU (another process may hold it; see nvidia-smi)."
                ) from None
            raise
        finally:
            if self.world > 1:
                import torch.distributed as dist

                dist.destroy_process_group()

    def _run(self, stop: Callable[[], bool] | None) -> Path:
        cfg = self.cfg
        if cfg.resume:
            self._load_resume()
        if self.writer:
            output.write_folder_files(cfg.out, self.start, self.train_data)
        deadline = None if cfg.minutes is None else time.monotonic() + 60 * cfg.minutes
        t_start, it0, losses = time.monotonic(), self.iteration, []
        while self.planned is None or self.iteration < self.planned:
            t_epoch, losses = time.monotonic(), []
            for _ in range(cfg.iterations_per_epoch):
                losses.append(self._step())
                self.iteration += 1
                rate = (self.iteration - it0) / max(time.monotonic() - t_start, 1e-9)
                self.progress.update(self.iteration, self.planned or 0, self.epoch, losses[-1], self._lr(), rate)
                if self.planned is not None and self.iteration >= self.planned:
                    break
            self.epoch += 1
            seconds = time.monotonic() - t_epoch
            if not self.progress.tty:  # a log file gets one line per epoch
                rate = (self.iteration - it0) / max(time.monotonic() - t_start, 1e-9)
                self.progress.update(
                    self.iteration, self.planned or 0, self.epoch, float(np.mean(losses)), self._lr(), rate, True
                )
            if self.planned is None:  # --minutes: plan from the first epoch's speed
                per_it = seconds / len(losses)
                self.planned = max(self.iteration, int(60 * cfg.minutes / per_it))
            self.log["epochs"].append(
                {
                    "epoch": self.epoch,
                    "iteration": self.iteration,
                    "loss": float(np.mean(losses)),
                    "lr": self._lr(),
                    "seconds": round(seconds, 2),
                }
            )
            out_of_time = deadline is not None and time.monotonic() > deadline
            self.planned, last = self._agree(
                (self.planned, self.iteration >= self.planned or out_of_time or (stop is not None and stop()))
            )
            if last or (cfg.val_every and self.epoch % cfg.val_every == 0):
                self._validate()
            self._save_latest()
            if self.writer:
                output.write_log(cfg.out, self.log)
            if last:
                break
        rate = (self.iteration - it0) / max(time.monotonic() - t_start, 1e-9)
        self.progress.update(
            self.iteration,
            self.planned or self.iteration,
            self.epoch,
            losses[-1] if losses else float("nan"),
            self._lr(),
            rate,
            final=True,
        )
        if self.writer:
            self._write_final(output.FINAL)
            output.write_log(cfg.out, self.log)
        return cfg.out

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])
