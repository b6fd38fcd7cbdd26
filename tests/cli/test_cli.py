"""``nninteractive-segment`` on synthetic volumes in every format, prompt-file errors, real data."""

import json

import nibabel as nib
import numpy as np
import pytest

from napari_nninteractive.cli.segment import main
from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.io.prompt_file import load_prompt_file
from napari_nninteractive.io.volumes import read_volume

from ..conftest import DATA_DIR, sphere_image

SHAPE = (48, 56, 40)
PROMPTS = {
    "interactions": [
        {"type": "point", "positive": True, "coord": [24, 28, 20]},
        {"type": "bbox", "positive": True, "bbox": [[24, 25], [10, 40], [8, 30]], "run": False},
        {"type": "scribble", "positive": False, "voxels": [[24, 5, 5], [24, 5, 6], [24, 6, 6]]},
        {"type": "lasso", "positive": True, "polygon": [[20, 20, 10], [20, 20, 30], [20, 40, 30], [20, 40, 10]]},
    ]
}


@pytest.fixture
def case(tmp_path):
    image = sphere_image(SHAPE, (24, 28, 20), 9, fg=300, bg=20) + np.random.default_rng(0).normal(0, 3, SHAPE).astype(
        np.float32
    )
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    return image, prompts


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_documents_the_prompt_format(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for needle in (
        "--prompts",
        "--model",
        "--no-autozoom",
        "--save-steps",
        '"type": "point"',
        "polygon",
        '"run": false',
        ".nii.gz",
        "step_000",
    ):
        assert needle in text


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".tif", ".npy", ".npz"])
def test_cli_runs_on_every_format_and_matches_the_python_api(suffix, case, tmp_path, tiny_model_dir, capsys):
    image, prompts = case
    src = tmp_path / f"image{suffix}"
    affine = np.diag([2.0, 1.5, 3.0, 1.0])
    if suffix == ".nii.gz":
        nib.save(nib.Nifti1Image(image, affine), str(src))
    else:
        _write_image(src, image)
    out, steps = tmp_path / f"mask{suffix}", tmp_path / "steps.npz"
    code, text, err = _run(
        [
            src,
            "--prompts",
            prompts,
            "--model",
            tiny_model_dir,
            "-o",
            out,
            "--device",
            "cpu",
            "--no-autozoom",
            "--save-steps",
            steps,
        ],
        capsys,
    )
    assert code == 0, err
    assert text.count("forward pass") == 4 and "queued" in text
    mask = np.asarray(read_volume(out).array)
    assert mask.shape == SHAPE and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    saved = np.load(steps)
    assert sorted(saved.files) == ["step_000", "step_001", "step_002", "step_003"]
    assert np.array_equal(saved["step_003"], mask)
    assert np.array_equal(saved["step_000"], saved["step_001"])  # step 1 was only queued

    session = Session(NetworkEngine.from_folder(tiny_model_dir, device="cpu", autozoom=False))
    session.set_image(image)
    for item in load_prompt_file(prompts, SHAPE):
        session.add_prompt(item.prompt, run=item.run)
    assert np.array_equal(session.mask, mask)
    if suffix == ".nii.gz":
        assert np.allclose(nib.load(str(out)).affine, affine)


def _write_image(path, image):
    import nrrd
    import tifffile

    s = str(path)
    if s.endswith(".nrrd"):
        nrrd.write(s, image)
    elif s.endswith(".tif"):
        tifffile.imwrite(s, image)
    elif s.endswith(".npy"):
        np.save(s, image)
    else:
        np.savez(s, image=image)


def test_mask_item_and_refine(case, tmp_path, tiny_model_dir, capsys):
    image, _ = case
    np.save(tmp_path / "img.npy", image)
    init = np.zeros(SHAPE, np.uint8)
    init[20:28, 24:32, 16:24] = 1
    nib.save(nib.Nifti1Image(init, np.eye(4)), str(tmp_path / "init.nii.gz"))
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"interactions": [{"type": "mask", "path": "init.nii.gz"}]}))
    code, _, err = _run(
        [
            tmp_path / "img.npy",
            "--prompts",
            prompts,
            "--model",
            tiny_model_dir,
            "-o",
            tmp_path / "o.npy",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "o.npy"), init)  # no refine: the mask as given


@pytest.mark.parametrize(
    "item, message",
    [
        ({"type": "point", "coord": [1, 2, 3], "colour": "red"}, "interaction 0 (point): unknown key(s) ['colour']"),
        ({"type": "circle"}, "interaction 0: unknown type 'circle'"),
        ({"type": "bbox", "positive": True}, "missing key 'bbox'"),
        ({"type": "point", "coord": [1, 2, 300]}, "outside the image"),
        ({"type": "bbox", "bbox": [[1, 5], [1, 5], [1, 5]]}, "3-D box"),
        ({"type": "lasso", "voxels": [[1, 1, 1], [1, 1, 999]]}, "outside the image"),
    ],
)
def test_bad_prompt_files_give_one_clear_line(item, message, case, tmp_path, tiny_model_dir, capsys):
    image, _ = case
    np.save(tmp_path / "img.npy", image)
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"interactions": [item]}))
    code, _, err = _run(
        [
            tmp_path / "img.npy",
            "--prompts",
            prompts,
            "--model",
            tiny_model_dir,
            "-o",
            tmp_path / "o.npy",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.npy").exists()


def test_missing_image_and_unknown_suffix(tmp_path, tiny_model_dir, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"interactions": []}))
    code, _, err = _run(
        [tmp_path / "none.nii.gz", "--prompts", prompts, "--model", tiny_model_dir, "-o", tmp_path / "o.npy"], capsys
    )
    assert code == 2 and "does not exist" in err
    code, _, err = _run(
        [tmp_path / "x.jpg", "--prompts", prompts, "--model", tiny_model_dir, "-o", tmp_path / "o.npy"], capsys
    )
    assert code == 2 and "unknown file type" in err


CT = DATA_DIR / "tptbox" / "sub-ct_label-22_ct.nii.gz"
VERT = DATA_DIR / "tptbox" / "sub-ct_seg-vert_label-22_msk.nii.gz"


@pytest.mark.skipif(not CT.exists(), reason=f"shared data not found at {CT} (set NNINTERACTIVE_TEST_DATA)")
def test_cli_on_real_ct(tmp_path, tiny_model_dir, capsys):
    vert = np.asarray(read_volume(VERT).array)
    centre = [int(v) for v in np.argwhere(vert == 22).mean(axis=0).round()]
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"interactions": [{"type": "point", "positive": True, "coord": centre}]}))
    out = tmp_path / "l3.nii.gz"
    code, text, err = _run([CT, "--prompts", prompts, "--model", tiny_model_dir, "-o", out, "--device", "cpu"], capsys)
    assert code == 0, err
    written = nib.load(str(out))
    assert written.shape == nib.load(str(CT)).shape
    assert np.allclose(written.affine, nib.load(str(CT)).affine)
    assert "[1/1] point+" in text


def test_fusion_switch_matches_the_python_api_and_is_refused_with_a_server(case, tmp_path, capsys):
    from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine

    image, prompts = case
    src = tmp_path / "image.npy"
    np.save(src, image)
    masks = {}
    for flag in ("--fusion", "--no-fusion"):
        out = tmp_path / f"mask{flag}.npy"
        code, _, err = _run([src, "--prompts", prompts, "-o", out, flag], capsys)
        assert code == 0, err
        masks[flag] = np.load(out)
    for flag, fusion in (("--fusion", True), ("--no-fusion", False)):
        session = Session(SeededWatershedEngine(), fusion=fusion)
        session.set_image(image)
        for item in load_prompt_file(prompts, SHAPE):
            session.add_prompt(item.prompt, run=item.run)
        assert np.array_equal(session.mask, masks[flag]), flag
    code, _, err = _run(
        [src, "--prompts", prompts, "-o", tmp_path / "m.npy", "--fusion", "--server", "http://x"], capsys
    )
    assert code == 2 and "--fusion/--no-fusion" in err and len(err.strip().splitlines()) == 1


def test_compile_reaches_the_network_and_is_refused_with_a_server(case, tmp_path, tiny_model_dir, capsys, monkeypatch):
    from napari_nninteractive.core.engines.network import NetworkEngine

    image, prompts = case
    src = tmp_path / "image.npy"
    np.save(src, image)
    compiled = []
    real_compile = NetworkEngine.compile
    # the default backend builds C++ for minutes on this CPU; aot_eager takes the same path in seconds
    monkeypatch.setattr(
        NetworkEngine,
        "compile",
        lambda self, backend="inductor": (compiled.append(backend), real_compile(self, "aot_eager")),
    )
    argv = [src, "--prompts", prompts, "--model", tiny_model_dir, "--device", "cpu", "-o", tmp_path / "m.npy"]
    code, _, err = _run(argv + ["--compile"], capsys)
    assert code == 0, err
    assert compiled == ["inductor"] and np.load(tmp_path / "m.npy").shape == SHAPE
    code, _, err = _run(argv + ["--compile", "--server", "http://x"], capsys)
    assert code == 2 and "--compile" in err and len(err.strip().splitlines()) == 1


def test_prompts_queued_at_the_end_run_with_their_notices_and_their_step(tmp_path, capsys):
    src, prompts, out, steps = tmp_path / "img.npy", tmp_path / "p.json", tmp_path / "m.npy", tmp_path / "s.npz"
    np.save(src, sphere_image(SHAPE, (24, 28, 20), 8))
    background_click = {"type": "point", "coord": [2, 2, 2], "run": False}  # queued: runs after the file
    prompts.write_text(json.dumps({"interactions": [background_click]}))
    code, text, err = _run([src, "--prompts", prompts, "-o", out, "--save-steps", steps], capsys)
    assert code == 0, err
    assert "predicted the queued prompts" in text and "only the prompted voxels change" in text  # its notice
    mask = np.load(out)
    saved = np.load(steps)
    assert sorted(saved.files) == ["step_000", "step_001"] and not saved["step_000"].any()  # queued: unchanged
    assert np.array_equal(saved["step_001"], mask) and 0 < mask.sum() < 1000  # the mask the queued click gave


def test_network_options_without_a_model_are_noted_not_silently_dropped(tmp_path, capsys):
    src, prompts, out = tmp_path / "img.npy", tmp_path / "p.json", tmp_path / "m.npy"
    np.save(src, sphere_image(SHAPE, (24, 28, 20), 8))
    prompts.write_text(json.dumps({"interactions": [{"type": "point", "coord": [24, 28, 20]}]}))
    code, _, err = _run([src, "--prompts", prompts, "-o", out, "--compile", "--fold", "2", "--api-key", "k"], capsys)
    assert code == 0 and np.load(out).any()
    assert "note: --fold, --compile apply to the network engine only; the weight-free engine runs" in err
    assert "note: --api-key is for --server" in err
    code, _, err = _run([src, "--prompts", prompts, "-o", out, "--device", "cpu"], capsys)
    assert code == 0 and "note:" not in err  # the CPU is what it runs on
