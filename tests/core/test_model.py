"""Model folders: metadata styles, network building, strict weights, and clear errors."""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.model import (
    ModelFolderError,
    build_network,
    choose_device,
    load_checkpoint,
    load_model_folder,
    parse_metadata,
    resolve_configuration,
)
from napari_nninteractive.core.prompts import PromptError, PromptKind
from napari_nninteractive.core.session import Session
from napari_nninteractive.testing import make_plans, v1_architecture, write_model_folder


@pytest.fixture
def folder(tmp_path, tiny_model_dir):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def test_legacy_folder_loads_with_legacy_defaults(tiny_model_dir):
    model = load_model_folder(tiny_model_dir)
    meta = model.metadata
    assert (meta.interaction_decay, meta.point_radius, meta.scribble_thickness) == (0.9, 4, (2, 2, 2))
    assert meta.supported == frozenset(PromptKind) and not meta.supports_3d_box
    assert model.patch_size == (64, 64, 64) and model.n_inputs == 8
    assert model.configuration == "3d_fullres_ps192_bs24" and model.trainer_name == "nnInteractiveTrainer"
    assert model.licence == "Random weights for testing only (not a trained model)"
    assert not model.network.training
    out = model.network(torch.zeros(1, 8, 64, 64, 64))
    assert out.shape == (1, 2, 64, 64, 64)


def test_new_metadata_is_preferred_and_parsed(tiny_model_dir_new, tmp_path):
    model = load_model_folder(tiny_model_dir_new)
    assert model.metadata.interaction_decay == 0.98
    both = tmp_path / "both"
    shutil.copytree(tiny_model_dir_new, both)
    (both / "inference_session_class.json").write_text(json.dumps("nnInteractiveInferenceSessionV3"))
    assert parse_metadata(both).interaction_decay == 0.98  # inference_info.json wins


def test_legacy_dict_metadata_defaults_and_scalar_thickness(folder):
    (folder / "inference_session_class.json").write_text(json.dumps({"preferred_scribble_thickness": 3}))
    meta = parse_metadata(folder)
    assert (meta.interaction_decay, meta.point_radius, meta.scribble_thickness) == (0.98, 4, (3, 3, 3))
    assert meta.pad_mode_image == "constant"


def test_supported_interactions_restrict_prompts(folder):
    (folder / "inference_session_class.json").unlink()
    (folder / "inference_info.json").write_text(
        json.dumps({"supported_interactions": ["point", "bbox2d"], "supports_initial_label": False})
    )
    engine = NetworkEngine.from_folder(folder, device="cpu", autozoom=False)
    assert engine.supported_kinds == {PromptKind.POINT, PromptKind.BBOX}
    s = Session(engine)
    s.set_image(np.random.default_rng(0).normal(size=(64, 64, 64)).astype(np.float32))
    with pytest.raises(PromptError, match="does not support scribble"):
        s.add_scribble(np.ones((1, 2, 2)), bbox=((3, 4), (3, 5), (3, 5)))
    with pytest.raises(PromptError, match="only 2-D boxes"):
        s.add_bbox([[2, 9], [2, 9], [2, 9]])


def test_3d_box_support_from_metadata(folder):
    (folder / "inference_info.json").write_text(json.dumps({"supported_interactions": ["point", "bbox3d"]}))
    meta = parse_metadata(folder)
    assert meta.supports_3d_box and PromptKind.BBOX in meta.supported


def test_full_v1_architecture_builds_with_expected_parameter_count(tmp_path):
    plans = make_plans(v1_architecture())
    resolved = resolve_configuration(plans, "3d_fullres_ps192_bs24", tmp_path / "plans.json")
    assert resolved["patch_size"] == [192, 192, 192] and resolved["batch_size"] == 24
    net = build_network(resolved, 8, tmp_path / "plans.json")
    n = sum(p.numel() for p in net.parameters())
    assert n == 102_355_818  # ~102.4 M, spec section 1
    assert type(net).__name__ == "ResidualEncoderUNet"
    assert net.encoder.stem.convs[0].conv.in_channels == 8


def test_inheritance_child_keys_win_and_loops_are_errors(tmp_path):
    plans = {"configurations": {"a": {"patch_size": [1, 1, 1], "x": 1}, "b": {"inherits_from": "a", "x": 2}}}
    assert resolve_configuration(plans, "b", tmp_path) == {"patch_size": [1, 1, 1], "x": 2, "inherits_from": "a"}
    loop = {"configurations": {"a": {"inherits_from": "b"}, "b": {"inherits_from": "a"}}}
    with pytest.raises(ModelFolderError, match="loops"):
        resolve_configuration(loop, "a", tmp_path)


# ----------------------------------------------------------------------------- errors


def _expect(folder, match, **kw):
    with pytest.raises(ModelFolderError, match=match):
        load_model_folder(folder, **kw)


def test_missing_folder(tmp_path):
    _expect(tmp_path / "nope", "does not exist.*plans.json")


def test_missing_metadata(folder):
    (folder / "inference_session_class.json").unlink()
    _expect(folder, "neither inference_info.json nor inference_session_class.json")


def test_missing_plans(folder):
    (folder / "plans.json").unlink()
    _expect(folder, "plans.json is missing")


def test_no_fold(folder):
    shutil.rmtree(folder / "fold_0")
    _expect(folder, "no fold_\\*/checkpoint_final.pth")


def test_ambiguous_fold_and_explicit_choice(folder):
    shutil.copytree(folder / "fold_0", folder / "fold_1")
    _expect(folder, "several folds \\['0', '1'\\]")
    assert load_model_folder(folder, fold=1).patch_size == (64, 64, 64)
    _expect(folder, "fold_3.*does not exist", fold=3)


def test_truncated_checkpoint(folder):
    ckpt = folder / "fold_0" / "checkpoint_final.pth"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    _expect(folder, "truncated or corrupt")


def test_corrupt_checkpoint(folder):
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"not a checkpoint at all" * 10)
    _expect(folder, "truncated or corrupt")


def test_weights_that_do_not_fit_the_plans(folder):
    plans = json.loads((folder / "plans.json").read_text())
    for cfg in plans["configurations"].values():
        if "architecture" in cfg:
            cfg["architecture"]["arch_kwargs"]["features_per_stage"] = [8, 16, 32]
    (folder / "plans.json").write_text(json.dumps(plans))
    _expect(folder, "do not fit the network built from")


def test_plans_may_only_name_allowlisted_classes(folder):
    plans = json.loads((folder / "plans.json").read_text())
    for cfg in plans["configurations"].values():
        if "architecture" in cfg:
            cfg["architecture"]["network_class_name"] = "os.system"
    (folder / "plans.json").write_text(json.dumps(plans))
    _expect(folder, "'os.system', which is not a network class or layer this plugin builds")


def test_unknown_channel_mapping_is_refused(folder):
    (folder / "inference_info.json").write_text(json.dumps({"channel_mapping": {"point+": 0, "bbox+": 1}}))
    _expect(folder, "channel_mapping")


def test_checkpoint_with_numpy_values_in_its_log_loads_without_full_unpickling(tmp_path):
    folder = write_model_folder(tmp_path / "m")
    ckpt_path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = load_checkpoint(ckpt_path)
    ckpt["logging"] = {"epoch_end_timestamps": [1.0, 2.0], "mean_fg_dice": [np.float64(0.5)]}
    ckpt["_best_ema"] = np.float32(0.7)
    torch.save(ckpt, ckpt_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "trusted" warning: the allowlist covers numpy values
        model = load_model_folder(folder)
    assert model.patch_size == (64, 64, 64)


def test_state_dict_prefixes_from_compiled_or_parallel_training_are_accepted(tmp_path):
    folder = write_model_folder(tmp_path / "m")
    ckpt_path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = load_checkpoint(ckpt_path)
    ckpt["network_weights"] = {"_orig_mod." + k: v for k, v in ckpt["network_weights"].items()}
    torch.save(ckpt, ckpt_path)
    assert load_model_folder(folder).n_inputs == 8


def test_device_choice():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ModelFolderError, match="Unknown device"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelFolderError, match="no CUDA GPU"):
            choose_device("cuda")


@pytest.mark.slow
def test_cpu_bf16_option_runs_the_network_in_bfloat16_and_agrees(tiny_model_dir):
    """Opt-in bfloat16 autocast on the CPU; float32 stays the default (spec: faster precisions must agree)."""
    image = np.zeros((48, 64, 64), np.float32)
    image[14:34, 20:44, 20:44] = 100
    image += np.random.default_rng(0).normal(0, 5, image.shape).astype(np.float32)
    masks, dtypes = [], []
    for bf16 in (False, True):
        engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu", autozoom=False, cpu_bf16=bf16)
        conv = next(m for m in engine.model.network.modules() if isinstance(m, torch.nn.Conv3d))
        conv.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
        s = Session(engine)
        s.set_image(image)
        s.add_point((24, 32, 32))
        masks.append(s.mask.astype(bool))
    assert dtypes == [torch.float32, torch.bfloat16]
    inter = (masks[0] & masks[1]).sum()
    assert masks[0].any() and 2 * inter / (masks[0].sum() + masks[1].sum()) > 0.95  # random weights: measured 0.99


def test_engines_sharing_one_network_follow_its_device():
    """A server's sessions share one model: when one engine moves the weights (a GPU fallback), all follow."""
    from napari_nninteractive.core.engines.network import NetworkEngine

    from ..conftest import fake_model

    net = torch.nn.Conv3d(8, 2, 1)
    model = fake_model(net, patch=16)
    a, b = NetworkEngine(model, "cpu"), NetworkEngine(model, "cpu")
    net.to("meta")  # stands in for an accelerator on this CPU-only machine
    assert a.device.type == b.device.type == "meta"
    net.to_empty(device="cpu")
    assert a.device.type == b.device.type == "cpu" and not a.fall_back_to_cpu()
