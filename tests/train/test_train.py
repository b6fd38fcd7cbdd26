"""nninteractive-train: the loss falls, the output folder loads and predicts, resume is exact,
training and inference share one encoding, and the command line refuses what cannot work."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_nninteractive.cli.train import main as train_main
from napari_nninteractive.core.autozoom import full_box
from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.model import LoadedModel, load_model_folder
from napari_nninteractive.core.prompts import Box, Point
from napari_nninteractive.core.session import Session
from napari_nninteractive.samples.training_set import write_training_set
from napari_nninteractive.train import output
from napari_nninteractive.train.dataset import ObjectTable, load_dataset
from napari_nninteractive.train.loop import Progress, TrainConfig, Trainer, dice_ce_loss
from napari_nninteractive.train.presets import make_plans, tiny_architecture
from napari_nninteractive.train.simulation import Simulator

PATCH = (16, 16, 16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_training_set(tmp_path_factory.mktemp("ds") / "Dataset001_Tiny", 4, 2, (32, 32, 32), seed=3)


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plans") / "plans.json"
    path.write_text(json.dumps(make_plans(tiny_architecture(), PATCH, "3d_tiny")))
    return path


def config(dataset: Path, out: Path, plans: Path | None = None, **kw) -> TrainConfig:
    kw.setdefault("epochs", 2)
    kw.setdefault("iterations_per_epoch", 3)
    kw.setdefault("batch_size", 2)
    kw.setdefault("val_every", 0)
    kw.setdefault("val_objects", 1)
    return TrainConfig(dataset, out, plans=None if plans is None else str(plans), device="cpu", **kw)


def weights(folder: Path, name: str = output.FINAL) -> dict[str, torch.Tensor]:
    return torch.load(output.checkpoint_path(folder, name), weights_only=True)["network_weights"]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(dataset, plans, tmp_path):
    trainer = Trainer(
        config(dataset, tmp_path / "m", plans, epochs=1, iterations_per_epoch=40, lr=3e-3), Progress(False)
    )
    x, y = trainer.sim.batch(4, trainer._predict, np.random.default_rng(99), augment=False)

    def loss() -> float:
        with torch.no_grad():
            return float(dice_ce_loss(trainer.network(x), y))

    before = loss()
    trainer.run()
    after = loss()
    assert after < before - 0.05, (before, after)
    log = json.loads((tmp_path / "m" / "training_log.json").read_text())
    assert log["epochs"][0]["iteration"] == 40 and np.isfinite(log["epochs"][0]["loss"])


def test_the_output_folder_loads_and_predicts_what_the_trainer_predicts(dataset, plans, tmp_path):
    out = tmp_path / "m"
    trainer = Trainer(config(dataset, out, plans, val_every=1), Progress(False))
    trainer.run()
    names = {p.name for p in out.iterdir()}
    assert {"plans.json", "dataset.json", "inference_info.json", "LICENSE", "training_log.json"} <= names
    assert {"training_progress.png", "validation", "validation_best"} <= names
    assert (out / "validation" / "results.csv").is_file() and (out / "validation_best" / "dice.png").is_file()
    assert "trained from scratch" in (out / "LICENSE").read_text()
    ckpt = torch.load(output.checkpoint_path(out, output.FINAL), weights_only=True)
    assert ckpt["init_args"]["configuration"] == "3d_tiny" and ckpt["trainer_name"] == "nninteractive-train"
    assert len(ckpt["logging"]["val_auc"]) == 2
    loaded = load_model_folder(out)
    assert loaded.patch_size == PATCH and loaded.configuration == "3d_tiny"
    case = load_dataset(dataset, "test").cases[0]
    direct = LoadedModel(trainer.network.eval(), loaded.patch_size, 1, loaded.metadata)
    centre = tuple(int(v) for v in np.argwhere(case.labels == 1).mean(0))
    for prompts in ([Point(centre)], [Box(((centre[0], centre[0] + 1), (2, 20), (3, 25)))]):
        masks = []
        for model in (direct, loaded):
            session = Session(NetworkEngine(model, device="cpu"))
            session.set_image(case.image)
            session.add_prompts(prompts)
            masks.append(session.read_mask().copy())
        assert masks[0].shape == case.labels.shape
        np.testing.assert_array_equal(masks[0], masks[1])


def test_resume_gives_the_weights_of_an_uninterrupted_run(dataset, plans, tmp_path):
    whole = tmp_path / "whole"
    Trainer(config(dataset, whole, plans, epochs=3), Progress(False)).run()
    part = tmp_path / "part"
    epochs_run = []
    first = Trainer(config(dataset, part, plans, epochs=3), Progress(False))
    first.run(stop=lambda: epochs_run.append(1) or True)  # stop after the first epoch
    assert first.epoch == 1
    second = Trainer(config(dataset, part, plans, epochs=3, resume=True), Progress(False))
    second.run()
    assert second.iteration == 9
    a, b = weights(whole), weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and the same seed gives the same weights again; another seed does not
    again = tmp_path / "again"
    Trainer(config(dataset, again, plans, epochs=3), Progress(False)).run()
    assert all(torch.equal(a[k], weights(again)[k]) for k in a)
    other = tmp_path / "other"
    Trainer(config(dataset, other, plans, epochs=3, seed=1), Progress(False)).run()
    assert not all(torch.equal(a[k], weights(other)[k]) for k in a)


class Recorder:
    """A network that records its inputs and predicts nothing."""

    def __init__(self):
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return torch.stack([torch.ones_like(x[:, 0]), torch.zeros_like(x[:, 0])], 1)


def test_the_simulation_encodes_prompts_exactly_as_inference(dataset):
    data = load_dataset(dataset)
    table = ObjectTable(data)
    start_meta = LoadedModel(None, PATCH).metadata
    sim = Simulator(data, table, start_meta, PATCH, max_corrections=3)
    rng = np.random.default_rng(5)
    points = 0
    for _ in range(8):
        ep = sim.start(rng)
        first = ep.prompts[0]
        if isinstance(first, Point):  # the very input of inference's first pass, window centred on the click
            points += 1
            net = Recorder()
            session = Session(NetworkEngine(LoadedModel(net, PATCH), device="cpu", autozoom=False))
            session.set_image(data.cases[ep.case].image)
            session.add_prompts([first])
            centred = replace(ep, window=full_box([int(c) for c in first.coord], PATCH))
            torch.testing.assert_close(sim.encode(centred), net.inputs[0][0], rtol=0, atol=0)
        for _ in range(2):  # two corrections of an empty prediction
            sim.correct(ep, np.zeros(PATCH, bool), rng)
        if ep.done:
            continue
        x = sim.encode(ep)
        # inference: the same prompts, one at a time, through a session on the network engine
        net = Recorder()
        engine = NetworkEngine(LoadedModel(net, PATCH), device="cpu", autozoom=False)
        session = Session(engine)
        session.set_image(data.cases[ep.case].image)
        session.add_prompts(ep.prompts)
        # the window the engine chose differs from the episode's; compose the episode's window with it
        engine_x, _ = engine.network_input(ep.prev, ep.window, 1.0, prev_offset=[lo for lo, _ in ep.window])
        torch.testing.assert_close(x, engine_x[0], rtol=0, atol=0)
        assert x.shape == (1 + 7, *PATCH) and float(x[2:].abs().sum()) > 0  # prompts are in the window
        assert net.inputs, "the session ran the network"
    assert points >= 1, "no episode started with a click"


def test_fine_tuning_keeps_plans_and_metadata_and_inherits_the_licence(dataset, tmp_path):
    from napari_nninteractive.testing import write_model_folder

    source = write_model_folder(
        tmp_path / "nnInteractive_v1.0", patch_size=PATCH, metadata="legacy", licence="CC BY-NC-SA 4.0"
    )
    out = tmp_path / "tuned"
    cfg = TrainConfig(
        dataset, out, from_dir=source, epochs=1, iterations_per_epoch=2, batch_size=1, val_every=0, device="cpu"
    )
    trainer = Trainer(cfg, Progress(False))
    assert trainer.lr == 3e-4
    trainer.run()
    assert (out / "plans.json").read_text() == (source / "plans.json").read_text() or json.loads(
        (out / "plans.json").read_text()
    ) == json.loads((source / "plans.json").read_text())
    assert (out / "inference_session_class.json").read_text() == (source / "inference_session_class.json").read_text()
    assert json.loads((out / "dataset.json").read_text()) == json.loads((source / "dataset.json").read_text())
    licence = (out / "LICENSE").read_text()
    assert "fine-tuned" in licence and "nnInteractive_v1.0" in licence and "CC BY-NC-SA 4.0" in licence
    assert load_model_folder(out).licence == "CC BY-NC-SA 4.0"  # the line the plugin shows is the inherited one
    changed = weights(out)
    original = torch.load(source / "fold_0" / "checkpoint_final.pth", weights_only=False)["network_weights"]
    assert any(not torch.equal(changed[k], original[k]) for k in changed)


def test_the_command_line_trains_and_refuses_what_cannot_work(dataset, plans, tmp_path, capsys):
    out = tmp_path / "cli"
    args = [str(dataset), "-o", str(out), "--plans", str(plans), "--epochs", "1", "--iterations-per-epoch", "2", "-q"]
    assert train_main(args) == 0
    assert "wrote the model folder" in capsys.readouterr().out
    assert train_main(args) == 2  # the folder is not empty now
    assert "--resume" in capsys.readouterr().err
    resume = [str(dataset), "-o", str(out), "--plans", str(plans), "--epochs", "3", "--iterations-per-epoch", "2"]
    assert train_main([*resume, "-q", "--resume"]) == 0
    assert json.loads((out / "training_log.json").read_text())["epochs"][-1]["epoch"] == 3
    fresh = tmp_path / "fresh"
    for extra, words in (
        (["--epochs", "0"], "--epochs must be 1 or more"),
        (["--merge-probability", "2"], "--merge-probability"),
        (["--resume"], "no training run to continue"),
        (["--plans", "no-such-preset"], "neither a preset"),
        (["--configuration", "nope"], "has no configuration 'nope'"),
    ):
        base = [str(dataset), "-o", str(fresh), "--plans", str(plans), "-q"]
        assert train_main(base + extra) == 2
        assert words in capsys.readouterr().err
    assert train_main([str(dataset), "-o", str(dataset), "--plans", str(plans)]) == 2
    assert "is the dataset" in capsys.readouterr().err
    bad = tmp_path / "bad"
    write_training_set(bad, 2, 0, (24, 24, 24))
    (bad / "labelsTr" / "case_001.nii.gz").unlink()
    assert train_main([str(bad), "-o", str(tmp_path / "x"), "--plans", str(plans), "-q"]) == 2
    assert "case_001" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):  # --from and --plans together
        train_main([str(dataset), "-o", str(fresh), "--plans", str(plans), "--from", str(tmp_path)])


@pytest.mark.slow
def test_two_processes_train_together_with_torchrun(dataset, plans, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "napari_nninteractive.cli.train",
        str(dataset),
        "-o",
        str(out),
        "--plans",
        str(plans),
        "--epochs",
        "2",
        "--iterations-per-epoch",
        "2",
        "--batch-size",
        "1",
        "--device",
        "cpu",
        "-q",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote the model folder") == 1  # rank 0 alone writes
    log = json.loads((out / "training_log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    assert load_model_folder(out).patch_size == PATCH
    latest = torch.load(output.checkpoint_path(out, output.LATEST), weights_only=True)
    assert len(latest["rng_states"]) == 2 and latest["rng_states"][0] != latest["rng_states"][1]


def test_out_of_memory_is_explained_with_the_fix(dataset, plans, tmp_path, monkeypatch):
    from napari_nninteractive.train.loop import TrainError

    trainer = Trainer(config(dataset, tmp_path / "m", plans, batch_size=4), Progress(False))

    def boom():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "_step", boom)
    with pytest.raises(TrainError, match=r"lower --batch-size \(e\.g\. 2\)"):
        trainer.run()
