"""Hostile input to the demo, nninteractive-eval, nninteractive-download-model, the testing tool
and Session.set_output_buffer: one-line errors (exit 2), no traceback, nothing written or changed."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_nninteractive import testing
from napari_nninteractive.cli import demo
from napari_nninteractive.cli import download as download_cli
from napari_nninteractive.cli.eval import EvalUsageError
from napari_nninteractive.cli.eval import main as eval_main
from napari_nninteractive.core import hub
from napari_nninteractive.core.encoding import ImageError
from napari_nninteractive.core.errors import OutputError, UserError
from napari_nninteractive.core.session import Session
from napari_nninteractive.eval import report

from ..conftest import sphere, sphere_image
from ..core.test_session import make_session

SHAPE = (24, 28, 32)


def _one_line_error(capsys, prog: str, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert all(n in lines[0] for n in needles), err
    return lines[0]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


# ----------------------------------------------------------------------------- demo


@pytest.mark.slow
def test_demo_falls_back_to_headless_when_the_display_does_not_answer(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["DISPLAY"] = ":4321"  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "napari_nninteractive.cli.demo", "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "Cannot open a window on DISPLAY=:4321" in proc.stdout
        and "running the same segmentation headless" in proc.stdout
    )
    assert "Traceback" not in proc.stderr
    assert {p.name for p in tmp_path.iterdir()} == {
        "scan.nii.gz",
        "labels.nii.gz",
        "prompts.json",
        "mask.nii.gz",
        "overview.png",
    }


def test_display_problem_without_any_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(demo.sys, "platform", "linux")
    assert demo.display_problem() == "No display found" and not demo.has_display()


@pytest.mark.parametrize("under", [False, True])
def test_demo_out_that_is_a_file_is_refused(tmp_path, capsys, under):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    out = blocker / "sub" if under else blocker
    assert demo.main(["--headless", "--out", str(out)]) == 2
    _one_line_error(capsys, demo.PROG, str(blocker))
    assert blocker.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["file"]


# ----------------------------------------------------------------------------- nninteractive-eval


@pytest.fixture
def pair(tmp_path):
    import nibabel as nib

    image, labels = tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz"
    nib.save(nib.Nifti1Image(sphere_image(SHAPE, (12, 14, 16), 6), np.eye(4)), str(image))
    nib.save(nib.Nifti1Image(sphere(SHAPE, (12, 14, 16), 6).astype(np.uint8) * 3, np.eye(4)), str(labels))
    return image, labels


def _eval(pair, *extra):
    return eval_main([str(pair[0]), str(pair[1]), "--interactions", "1", "--device", "cpu", *extra])


@pytest.mark.parametrize("where", ["file", "under-file", "image", "labels"])
def test_eval_out_that_would_destroy_data_is_refused_before_evaluating(tmp_path, pair, capsys, where):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    out = {"file": blocker, "under-file": blocker / "res", "image": pair[0], "labels": pair[1]}[where]
    before = _snapshot(tmp_path)
    assert _eval(pair, "--out", str(out)) == 2
    line = _one_line_error(capsys, "nninteractive-eval", str(out if where != "under-file" else blocker))
    assert ("also an input" in line) == (where in ("image", "labels"))
    assert _snapshot(tmp_path) == before


def test_eval_output_name_taken_by_a_folder_is_refused(tmp_path, pair, capsys):
    out = tmp_path / "res"
    (out / "dice.png").mkdir(parents=True)
    before = _snapshot(tmp_path)
    assert _eval(pair, "--out", str(out)) == 2
    _one_line_error(capsys, "nninteractive-eval", "dice.png", "existing folder")
    assert _snapshot(tmp_path) == before


def test_eval_rewrites_its_own_outputs_in_an_existing_folder(tmp_path, pair, capsys):
    out = tmp_path / "res"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    assert _eval(pair, "--out", str(out)) == 0
    assert _eval(pair, "--out", str(out)) == 0
    assert (out / "mine.txt").read_text() == "kept"
    assert {p.name for p in out.iterdir()} == {"mine.txt", "results.csv", "summary.txt", "dice.png", "prompts"}
    assert not [p for p in out.rglob(".*")]  # no temporary left behind


@pytest.mark.parametrize(
    "labels, args, needle",
    [
        (np.full(SHAPE, 2.5, np.float32), (), "whole numbers"),
        (np.full(SHAPE, np.nan, np.float32), (), "whole numbers"),
        (np.full(SHAPE, -2, np.int16), (), "negative label values [-2]"),
        (np.zeros(SHAPE, np.uint8), (), "no labelled voxel"),
        (None, ("--labels", "9"), "do not occur"),
        (None, ("--labels", "x"), "comma-separated integers"),
        (None, ("--seed", "-1"), "--seed must be 0 or more"),
        (None, ("--interactions", "-1"), "--interactions must be 0 to 1000"),
        (None, ("--interactions", "1000000000"), "--interactions must be 0 to 1000"),
        (None, ("--labels", ","), "--labels names no label value"),
        (None, ("--agent", "psychic"), "unknown agent"),
    ],
)
def test_eval_bad_labels_and_arguments_are_one_line_errors(tmp_path, pair, capsys, labels, args, needle):
    import nibabel as nib

    if labels is not None:
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(pair[1]))
    before = _snapshot(tmp_path)
    assert _eval(pair, "--out", str(tmp_path / "res"), *args) == 2
    _one_line_error(capsys, "nninteractive-eval", needle)
    assert _snapshot(tmp_path) == before  # not even the --out folder


def test_eval_refuses_rgb_labels_and_says_it_reads_an_rgb_image_by_its_luminance(tmp_path, capsys):
    import tifffile

    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[10:20, 10:25] = (200, 120, 40)
    tifffile.imwrite(tmp_path / "img.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "lab.tif", (rgb[..., 0] > 0).astype(np.uint8))
    tifffile.imwrite(tmp_path / "rgb_lab.tif", rgb, photometric="rgb")
    pair = (tmp_path / "img.tif", tmp_path / "lab.tif")
    assert _eval(pair, "--out", str(tmp_path / "res")) == 0
    assert "RGB image: segmenting its luminance" in capsys.readouterr().out
    assert _eval((pair[0], tmp_path / "rgb_lab.tif"), "--out", str(tmp_path / "res2")) == 2
    _one_line_error(capsys, "nninteractive-eval", "is an RGB image; pass a label volume")


def test_eval_evaluates_a_label_or_an_agent_named_twice_once(tmp_path, pair):
    import csv

    out = tmp_path / "res"
    assert _eval(pair, "--out", str(out), "--labels", "3,3", "--agent", "point,point") == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["label"] for r in rows} == {"3"}  # one object, one agent, N + 1 rows


def test_eval_usage_errors_are_user_errors():
    from napari_nninteractive.cli.eval import build_parser, run

    assert issubclass(EvalUsageError, UserError) and issubclass(EvalUsageError, ValueError)
    with pytest.raises(EvalUsageError, match="unknown agent"):
        run(build_parser().parse_args(["a.nii", "b.nii", "--agent", "psychic"]))


def test_report_writes_refuse_a_path_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    from napari_nninteractive.eval.runner import ObjectRun, Step

    run = ObjectRun("img", 1, "random", "weight-free")
    run.steps.append(Step(0, "point", True, 0.5, 0.1, 1))
    with pytest.raises(OutputError, match="a file stands where a folder"):
        report.write_csv([run], blocker / "results.csv")
    with pytest.raises(OutputError, match="a file stands where a folder"):
        report.plot_dice([run], blocker / "dice.png")
    assert blocker.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["file"]


# ----------------------------------------------------------------------------- nninteractive-download-model


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("under", [False, True])
@pytest.mark.parametrize("listing", [False, True])
def test_download_cache_dir_that_is_a_file_is_refused(tmp_path, capsys, offline, under, listing):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    cache = blocker / "models" if under else blocker
    assert download_cli.main(["--cache-dir", str(cache)] + (["--list"] if listing else [])) == 2
    line = _one_line_error(capsys, download_cli.PROG, f"The model cache {cache} is not a folder", "--cache-dir")
    assert (f"({blocker} is a file)" in line) == under
    assert blocker.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a folder nobody may create in)")
def test_download_cache_dir_that_cannot_be_created_is_refused(capsys, offline):
    assert download_cli.main(["--cache-dir", "/proc/nninteractive-cache"]) == 2
    _one_line_error(capsys, download_cli.PROG, "Cannot create the model cache /proc/nninteractive-cache")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_download_name_that_is_a_path_is_refused(tmp_path, capsys, offline, name):
    assert download_cli.main(["--cache-dir", str(tmp_path / "cache"), "--name", name]) == 2
    _one_line_error(capsys, download_cli.PROG, "is not a folder name")
    assert list(tmp_path.iterdir()) == []


def test_download_error_is_a_user_error():
    assert issubclass(hub.DownloadError, UserError) and issubclass(hub.DownloadError, RuntimeError)


# ----------------------------------------------------------------------------- testing tool


def test_testing_tool_out_that_is_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    assert testing._main([str(blocker)]) == 2
    _one_line_error(capsys, "python -m napari_nninteractive.testing", "existing file")
    assert blocker.read_text() == "mine"


# ----------------------------------------------------------------------------- Session.set_output_buffer


def _read_only(shape):
    buf = np.zeros(shape, np.uint8)
    buf.flags.writeable = False
    return buf


@pytest.mark.parametrize(
    "make, needle",
    [
        (_read_only, "read-only"),
        (lambda shape: np.zeros(shape, np.complex64), "dtype complex64"),
        (lambda shape: np.zeros(shape, object), "dtype object"),
        (lambda shape: np.zeros(shape, "U1"), "dtype <U1"),
        (lambda shape: np.zeros(shape[:2], np.uint8), "shape"),
        (lambda shape: np.zeros(shape, np.uint8).tolist(), "numpy array"),
    ],
)
def test_unusable_output_buffer_is_refused_at_once(make, needle):
    s: Session = make_session()
    with pytest.raises(ImageError, match=needle):
        s.set_output_buffer(make(s.shape))
    assert s.mask.dtype == np.uint8 and s.mask.flags.writeable  # the internal mask stays the output


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int32, np.uint16, np.int64, np.float32])
def test_napari_like_label_buffers_are_accepted(dtype):
    s: Session = make_session()
    buf = np.zeros(s.shape, dtype)
    s.set_output_buffer(buf)
    assert s.mask is buf
