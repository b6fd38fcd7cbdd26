"""Safe by default: files from someone else never run code, and no command destroys the user's data.

Malicious checkpoints and plans files try to write a marker file; each test asserts the marker
does not exist and the message is clear. Output tests assert the user's files are byte-identical
afterwards and that no temporary or partial file is left.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_nninteractive.cli.segment import main as segment
from napari_nninteractive.core import atomic
from napari_nninteractive.core.checkpoint import allowed_names, load_checkpoint
from napari_nninteractive.core.document import ImageRef, ObjectRecord, SessionDocument, SessionFileError, save_document
from napari_nninteractive.core.errors import CheckpointError, ModelFolderError, OutputError, UnsafeCheckpointError
from napari_nninteractive.core.model import load_model_folder
from napari_nninteractive.io.export import label_map, write_label_map
from napari_nninteractive.io.volumes import VolumeIOError, write_mask
from napari_nninteractive.testing import write_model_folder


class Payload:
    """Unpickling this runs ``code`` (here: it writes a marker file)."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("safety") / "model")


@pytest.fixture
def folder(model_dir, tmp_path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "model"))


def _poison_checkpoint(folder: Path, marker: Path) -> Path:
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = load_checkpoint(path)
    ckpt["logging"] = {"note": Payload(_marker_code(marker))}
    torch.save(ckpt, path)
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- checkpoints


def test_malicious_checkpoint_is_refused_without_running_its_payload(folder, tmp_path):
    marker = tmp_path / "marker"
    _poison_checkpoint(folder, marker)
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.exec.*could run code.*--trust-checkpoint") as info:
        load_model_folder(folder)
    assert not marker.exists()
    assert info.value.names == ["builtins.exec"]


def test_trusting_a_checkpoint_is_an_explicit_loud_opt_in(folder, tmp_path):
    marker = tmp_path / "marker"
    _poison_checkpoint(folder, marker)
    with pytest.warns(UserWarning, match=r"builtins\.exec allowed \(trusted by the user\)"):
        model = load_model_folder(folder, trust_checkpoint=True)
    assert marker.exists() and model.patch_size == (64, 64, 64)  # the user asked for it: the file ran


def test_cli_refuses_a_malicious_checkpoint_with_one_line(folder, tmp_path, capsys):
    marker = tmp_path / "marker"
    _poison_checkpoint(folder, marker)
    np.save(tmp_path / "img.npy", np.zeros((8, 16, 16), np.float32))
    (tmp_path / "p.json").write_text(json.dumps({"interactions": [{"type": "point", "coord": [4, 8, 8]}]}))
    code = segment(
        [
            str(tmp_path / "img.npy"),
            "--prompts",
            str(tmp_path / "p.json"),
            "--model",
            str(folder),
            "-o",
            str(tmp_path / "o.npy"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "could run code" in err and "--trust-checkpoint" in err and "Traceback" not in err
    assert err.count("\n") == 1 and not marker.exists() and not (tmp_path / "o.npy").exists()


def test_what_nnunet_checkpoints_hold_loads_weights_only(folder):
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = load_checkpoint(path)
    ckpt.update(
        {
            "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.99, "nesterov": True}]},
            "grad_scaler_state": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0},
            "logging": {
                "mean_fg_dice": [np.float64(0.5)],
                "ema_fg_dice": [np.float64(0.4)],
                "dice_per_class_or_region": [[np.float32(0.3)]],
                "train_losses": [np.float64(0.2)],
                "epoch_start_timestamps": [1.5],
                "lrs": [np.float64(0.01)],
            },
            "_best_ema": np.float64(0.45),
            "current_epoch": 1000,
            "init_args": {**ckpt["init_args"], "device": torch.device("cpu"), "unpack_dataset": True},
        }
    )
    torch.save(ckpt, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_checkpoint(path)
    assert loaded["current_epoch"] == 1000 and float(loaded["_best_ema"]) == 0.45
    assert "numpy.dtype" in allowed_names() and not any(
        n.startswith(("builtins", "os", "posix")) for n in allowed_names()
    )


def test_numpy_arrays_in_a_checkpoint_are_refused(folder):
    """An array's constructor can allocate any amount from a few pickle bytes: not on the allowlist."""
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = load_checkpoint(path)
    ckpt["logging"] = {"x": np.zeros(3)}
    torch.save(ckpt, path)
    with pytest.raises(UnsafeCheckpointError, match="numpy.ndarray"):
        load_checkpoint(path)


def test_a_checkpoint_whose_pickle_unpacks_to_gigabytes_is_refused_before_unpickling(folder, tmp_path):
    import zipfile

    path = folder / "fold_0" / "checkpoint_final.pth"
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bomb, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = b"N" * (80 << 20) + data
                zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
            else:
                zout.writestr(info, data)
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(CheckpointError, match="unpacks to 80 MiB"):
        load_checkpoint(bomb)


@pytest.mark.parametrize(
    "ckpt, match",
    [
        ({"network_weights": [1, 2]}, "no 'network_weights' dictionary"),
        ({"network_weights": {"w": 3}}, "not a named tensor"),
        ({"network_weights": {}, "init_args": ["configuration"]}, "'init_args' must be a dictionary"),
        ([1, 2, 3], "no 'network_weights'"),
    ],
)
def test_checkpoint_fields_of_the_wrong_type(tmp_path, ckpt, match):
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "c.pth")


def test_checkpoint_that_is_a_folder(tmp_path):
    (tmp_path / "c.pth").mkdir()
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path / "c.pth")


# ----------------------------------------------------------------------------- plans and metadata


def _edit_arch(folder: Path, **changes) -> None:
    plans = json.loads((folder / "plans.json").read_text())
    for cfg in plans["configurations"].values():
        if "architecture" in cfg:
            for key, value in changes.items():
                if key.startswith("kw_"):
                    cfg["architecture"]["arch_kwargs"][key[3:]] = value
                else:
                    cfg["architecture"][key] = value
    (folder / "plans.json").write_text(json.dumps(plans))


@pytest.mark.parametrize(
    "changes",
    [
        {"network_class_name": "torch.hub.load"},
        {"network_class_name": "torch.nn.modules.module.Module"},
        {"network_class_name": "os.system"},
        {"kw_conv_op": "torch.hub.load"},
        {"kw_nonlin": "builtins.eval"},
        {"kw_norm_op": "hubconf.Evil"},
    ],
)
def test_plans_can_only_name_allowlisted_classes_and_never_run_the_folders_files(folder, tmp_path, changes):
    marker = tmp_path / "marker"
    (folder / "hubconf.py").write_text(f"{_marker_code(marker)}\nEvil = None\ndef load(*a, **k):\n    pass\n")
    _edit_arch(folder, **changes)
    with pytest.raises(ModelFolderError, match="not a network class or layer this plugin builds"):
        load_model_folder(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    "file, data, match",
    [
        ("plans.json", [], "no 'configurations' object"),
        ("plans.json", {"configurations": []}, "no 'configurations' object"),
        ("plans.json", {"configurations": {"3d_fullres_ps192_bs24": 5}}, "must be a JSON object"),
        ("dataset.json", [], "must hold a JSON object"),
        ("dataset.json", {"channel_names": "CT"}, "channel_names must be an object"),
        ("dataset.json", {"channel_names": {str(i): "x" for i in range(100)}}, "channel_names must be an object"),
        ("inference_info.json", {"point_radius": "4"}, "point_radius' must be an integer or a number"),
        ("inference_info.json", {"interaction_decay": 7}, "interaction_decay = 7 is out of range"),
        ("inference_info.json", {"preferred_scribble_thickness": [1, None, 2]}, r"preferred_scribble_thickness\[1\]"),
        ("inference_info.json", {"supported_interactions": "point"}, "must be a list"),
        ("inference_info.json", {"supported_interactions": [1, 2]}, "list of names"),
        ("inference_info.json", {"supports_initial_label": "yes"}, "must be true or false"),
        ("inference_info.json", {"pad_mode_image": 3}, "must be a string"),
    ],
)
def test_model_json_fields_of_the_wrong_type(folder, file, data, match):
    (folder / file).write_text(json.dumps(data))
    with pytest.raises(ModelFolderError, match=match):
        load_model_folder(folder)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"kw_features_per_stage": [10**9, 16, 32]}, "out of range"),
        ({"kw_n_stages": "three"}, "must be an integer"),
        ({"arch_kwargs": [1]}, "'arch_kwargs' must be an object"),
        ({"_kw_requires_import": "conv_op"}, "'_kw_requires_import' must be a list"),
        ({"kw_kernel_sizes": None}, "cannot build"),
        ({"kw_kernel_sizes": [[51, 51, 51]] * 3}, "kernel_sizes.*out of range"),
        ({"kw_n_blocks_per_stage": [200000, 1, 1]}, "n_blocks_per_stage.*out of range"),
        ({"kw_n_conv_per_stage_decoder": [200000, 1]}, "n_conv_per_stage_decoder.*out of range"),
    ],
)
def test_plans_architecture_fields_of_the_wrong_type_or_size(folder, changes, match):
    _edit_arch(folder, **changes)
    with pytest.raises(ModelFolderError, match=match):
        load_model_folder(folder)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"[" * 100_000 + b"]" * 100_000, "deeper than"),
        (b"\xff\xfe garbage", "not UTF-8|not valid JSON"),
        (b'{"configurations": NaN}', "not a number JSON allows"),
    ],
)
def test_hostile_plans_files(folder, content, match):
    (folder / "plans.json").write_bytes(content)
    with pytest.raises(ModelFolderError, match=match):
        load_model_folder(folder)


def test_plans_file_that_is_a_folder_or_huge(folder):
    (folder / "plans.json").unlink()
    (folder / "plans.json").mkdir()
    with pytest.raises(ModelFolderError, match="missing|folder"):
        load_model_folder(folder)
    (folder / "plans.json").rmdir()
    with open(folder / "plans.json", "wb") as fh:
        fh.truncate(17 << 20)  # sparse: 17 MiB of zeros
    with pytest.raises(ModelFolderError, match="MiB"):
        load_model_folder(folder)


def test_fold_names_cannot_walk_out_of_the_folder(folder):
    with pytest.raises(ModelFolderError, match="not a fold name"):
        load_model_folder(folder, fold="../../etc")


# ----------------------------------------------------------------------------- outputs of the command line


@pytest.fixture
def case(tmp_path):
    image = np.zeros((8, 16, 16), np.float32)
    image[2:6, 4:12, 4:12] = 100
    np.save(tmp_path / "img.npy", image)
    (tmp_path / "p.json").write_text(json.dumps({"interactions": [{"type": "point", "coord": [4, 8, 8]}]}))
    return tmp_path


def _segment(case, out, *extra, capsys=None):
    code = segment([str(case / "img.npy"), "--prompts", str(case / "p.json"), "-o", str(out), "-q", *map(str, extra)])
    err = capsys.readouterr().err if capsys else ""
    return code, err


def test_output_that_is_the_input_is_refused(case, capsys):
    before = _files(case)
    os.symlink(case / "img.npy", case / "link.npy")
    for out in (case / "img.npy", case / "link.npy"):
        code, err = _segment(case, out, capsys=capsys)
        assert code == 2 and "is also an input" in err and "Traceback" not in err
    assert {k: v for k, v in _files(case).items() if k != "link.npy"} == before


def test_save_steps_equal_to_the_output_is_refused(case, capsys):
    code, err = _segment(case, case / "o.npz", "--save-steps", case / "o.npz", capsys=capsys)
    assert code == 2 and "different names" in err and not (case / "o.npz").exists()
    code, err = _segment(case, case / "o.npy", "--save-steps", case / "s.txt", capsys=capsys)
    assert code == 2 and "must end with .npz" in err and not (case / "o.npy").exists()


def test_output_onto_a_folder_or_under_a_file_is_refused(case, capsys):
    (case / "x.nii.gz").mkdir()
    (case / "x.nii.gz" / "keep.txt").write_text("mine")
    code, err = _segment(case, case / "x.nii.gz", capsys=capsys)
    assert code == 2 and "existing folder" in err and (case / "x.nii.gz" / "keep.txt").read_text() == "mine"
    code, err = _segment(case, case / "p.json" / "o.npy", capsys=capsys)
    assert code == 2 and "a file stands where a folder" in err


def test_unknown_output_type_is_refused_before_any_work(case, capsys):
    code, err = _segment(case, case / "o.png", capsys=capsys)
    assert code == 2 and "unknown file type" in err and "loaded" not in capsys.readouterr().out


def test_upper_case_suffixes_write_what_they_say(case):
    assert _segment(case, case / "o.NPY")[0] == 0
    assert np.load(case / "o.NPY").sum() > 0 and not (case / "o.NPY.npy").exists()
    assert _segment(case, case / "o.NII.GZ")[0] == 0
    assert (case / "o.NII.GZ").read_bytes()[:2] == b"\x1f\x8b"  # gzip, as the suffix says
    assert _segment(case, case / "o.npy", "--save-steps", case / "S.NPZ")[0] == 0
    assert np.load(case / "S.NPZ").files == ["step_000"]


def test_disk_full_while_writing_keeps_the_earlier_output(case, monkeypatch, capsys):
    assert _segment(case, case / "o.npy", "--save-steps", case / "s.npz")[0] == 0
    before = _files(case)
    real = np.save

    def full(file, *a, **k):
        with open(file, "wb") as fh:
            fh.write(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    code, err = _segment(case, case / "o.npy", capsys=capsys)
    assert code == 2 and "No space left on device" in err and "free disk space" in err
    monkeypatch.setattr(np, "save", real)

    def full_z(file, **arrays):
        Path(file).write_bytes(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_z)
    code, err = _segment(case, case / "o2.npy", "--save-steps", case / "s.npz", capsys=capsys)
    assert code == 2 and "No space left on device" in err
    assert {k: v for k, v in _files(case).items() if k != "o2.npy"} == before
    assert not [p for p in case.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_really_full_file_system(tmp_path, case):
    """A 256 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        (mnt / "o.npy").write_bytes(b"earlier result")
        np.save(case / "big.npy", np.ones((64, 64, 64), np.float32))  # a 1 MiB mask as .npy does not fit
        code = segment([str(case / "big.npy"), "--prompts", str(case / "p.json"), "-o", str(mnt / "o.npy"), "-q"])
        assert code == 2
        assert (mnt / "o.npy").read_bytes() == b"earlier result" and [p.name for p in mnt.iterdir()] == ["o.npy"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_killed_mid_write_leaves_the_earlier_file_and_the_next_write_removes_the_temp(tmp_path):
    target = tmp_path / "mask.nii.gz"
    target.write_bytes(b"earlier good result")
    script = textwrap.dedent(f"""
        import os, signal
        from napari_nninteractive.core.atomic import replacing
        with replacing({str(target)!r}) as tmp:
            tmp.write_bytes(b"half a mask")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"earlier good result"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "mask.nii.gz"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".mask.nii.gz.")  # hidden, never the target
    atomic.write_bytes(target, b"new result")
    assert target.read_bytes() == b"new result" and [p.name for p in tmp_path.iterdir()] == ["mask.nii.gz"]


def test_internal_bugs_keep_their_traceback_and_ask_for_a_report(case, monkeypatch, capsys):
    import napari_nninteractive.cli.segment as cli

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "run", broken)
    code, err = _segment(case, case / "o.npy", capsys=capsys)
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err and "please report it" in err


# ----------------------------------------------------------------------------- session files and exports


def test_write_mask_refuses_its_own_input(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"user data")
    with pytest.raises(OutputError, match="also an input"):
        write_mask(tmp_path / "a.npy", np.zeros((2, 2, 2)), inputs=[tmp_path / "a.npy"])
    assert (tmp_path / "a.npy").read_bytes() == b"user data"


def _doc(path=None):
    mask = np.zeros((4, 5, 6), bool)
    mask[1:3, 1:3, 1:3] = True
    image = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
    return SessionDocument(ImageRef.of(image, "img", path), [ObjectRecord(1, "a", mask)])


def test_session_save_onto_a_folder_or_the_image_is_refused(tmp_path):
    (tmp_path / "x.nii.gz").mkdir()
    (tmp_path / "x.nii.gz" / "keep.txt").write_text("mine")
    with pytest.raises(SessionFileError, match="existing folder"):
        save_document(_doc(), tmp_path / "x.nii.gz")
    assert (tmp_path / "x.nii.gz" / "keep.txt").read_text() == "mine"
    (tmp_path / "img.nii.gz").write_bytes(b"the scan")
    with pytest.raises(SessionFileError, match="also an input"):
        save_document(_doc(tmp_path / "img.nii.gz"), tmp_path / "img.nii.gz")
    assert (tmp_path / "img.nii.gz").read_bytes() == b"the scan"


def test_export_never_replaces_a_foreign_folder_the_image_or_a_file_with_a_folder(tmp_path):
    labels = label_map([np.ones((2, 3, 4), bool)], [1])
    (tmp_path / "x.nii.gz").mkdir()
    (tmp_path / "x.nii.gz" / "keep.txt").write_text("mine")
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "keep.txt").write_text("mine")
    (tmp_path / "f.zarr").write_bytes(b"a file")
    (tmp_path / "img.nii.gz").write_bytes(b"the scan")
    for path, match in (
        ("x.nii.gz", "existing folder"),
        ("x.zarr", "other contents"),
        ("f.zarr", "existing file"),
        ("img.nii.gz", "also an input"),
    ):
        with pytest.raises(VolumeIOError, match=match):
            write_label_map(tmp_path / path, labels, inputs=[tmp_path / "img.nii.gz"])
    assert (tmp_path / "x.nii.gz" / "keep.txt").read_text() == "mine" and (tmp_path / "x.zarr" / "keep.txt").exists()
    assert (tmp_path / "f.zarr").read_bytes() == b"a file" and (tmp_path / "img.nii.gz").read_bytes() == b"the scan"
    write_label_map(tmp_path / "y.zarr", labels)
    write_label_map(tmp_path / "y.zarr", labels + 1)  # an earlier zarr export is replaced whole
    write_label_map(tmp_path / "Y.NII.GZ", labels)
    assert (tmp_path / "Y.NII.GZ").read_bytes()[:2] == b"\x1f\x8b"


def test_label_map_of_masks_on_different_grids(tmp_path):
    with pytest.raises(VolumeIOError, match="different shapes"):
        label_map([np.ones((2, 3, 4), bool), np.ones((2, 3, 5), bool)], [1, 2])


def test_output_in_a_read_only_folder(tmp_path, case, monkeypatch, capsys):
    """A read-only tmpfs where mounting is allowed (root); otherwise an injected EACCES."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        import tempfile

        def refuse(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkdtemp", refuse)
        expected = "choose a folder you may write to"
    else:
        expected = "read-only"
    try:
        code, err = _segment(case, mnt / "o.npy", capsys=capsys)
        assert code == 2 and expected in err and "Traceback" not in err
    finally:
        subprocess.run(["umount", str(mnt)], check=False, capture_output=True)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_volume_whose_header_promises_more_than_the_file_holds(tmp_path, suffix):
    import zipfile

    np.save(tmp_path / "a.npy", np.zeros((4, 4, 4), np.float32))
    raw = (tmp_path / "a.npy").read_bytes().replace(b"'shape': (4, 4, 4)", b"'shape': (9999, 99999, 9)")
    path = tmp_path / f"lie{suffix}"
    if suffix == ".npy":
        path.write_bytes(raw)
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("image.npy", raw)
    with pytest.raises(VolumeIOError, match=r"promises \(9999, 99999, 9\) voxels.*truncated or damaged"):
        from napari_nninteractive.io.volumes import read_volume

        read_volume(path)


def test_prompt_file_that_is_a_device_or_pipe_or_too_long(case, tmp_path, capsys):
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    for prompts in (fifo, Path("/dev/zero")):
        code = segment([str(case / "img.npy"), "--prompts", str(prompts), "-o", str(case / "o.npy"), "-q"])
        assert code == 2 and "not a regular file" in capsys.readouterr().err
    many = json.dumps({"interactions": [{"type": "point", "coord": [4, 8, 8], "run": False}] * 2001})
    (tmp_path / "many.json").write_text(many)
    code = segment([str(case / "img.npy"), "--prompts", str(tmp_path / "many.json"), "-o", str(case / "o.npy"), "-q"])
    assert code == 2 and "split it into several files" in capsys.readouterr().err


def test_stale_temp_cleanup_never_touches_folders_that_are_not_its_own(tmp_path):
    for name in (".important.npy.old.tmp", ".important.npy.backup.tmp", ".x.npy.1.abc.tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.txt").write_text("precious")
        os.utime(tmp_path / name, (0, 0))  # very old
    atomic.write_bytes(tmp_path / "important.npy", b"new")
    atomic.write_bytes(tmp_path / "*.npy", b"new")
    for name in (".important.npy.old.tmp", ".important.npy.backup.tmp", ".x.npy.1.abc.tmp"):
        assert (tmp_path / name / "data.txt").read_text() == "precious"


def test_a_plans_file_that_breaks_the_forward_pass_is_a_user_error(folder, tmp_path, capsys):
    _edit_arch(folder, kw_nonlin_kwargs={"negative_slope": "abc"})
    np.save(tmp_path / "img.npy", np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32))
    (tmp_path / "p.json").write_text(json.dumps({"interactions": [{"type": "point", "coord": [4, 8, 8]}]}))
    code = segment(
        [
            str(tmp_path / "img.npy"),
            "--prompts",
            str(tmp_path / "p.json"),
            "--model",
            str(folder),
            "-o",
            str(tmp_path / "o.npy"),
            "--device",
            "cpu",
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "plans file's architecture settings are damaged" in err and "Traceback" not in err
