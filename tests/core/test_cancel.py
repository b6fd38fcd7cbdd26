"""Cancel inside a forward pass: the network checks before each convolution, and nothing changes."""

import numpy as np
import torch

from napari_nninteractive.core.engines.base import PredictionCancelled, RunControl
from napari_nninteractive.core.engines.network import NetworkEngine, cancel_points
from napari_nninteractive.core.session import Session

from ..conftest import sphere_image

SHAPE, C = (32, 32, 32), (16, 16, 16)


def _engine(tiny_model_dir):
    return NetworkEngine.from_folder(tiny_model_dir, device="cpu", autozoom=False)


def test_a_cancel_during_the_pass_stops_it_before_its_end_and_changes_nothing(tiny_model_dir):
    engine = _engine(tiny_model_dir)
    convs = [m for m in engine.model.network.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    ran = []
    for m in convs:
        m.register_forward_hook(lambda module, args, out: ran.append(module))
    session = Session(engine)
    session.set_image(sphere_image(SHAPE, C, 6))
    asked = []

    def should_cancel():  # pressed once the pass has started (after the checks before it)
        asked.append(1)
        return len(asked) > 3

    session.set_run_control(None, should_cancel)
    try:
        session.add_point(C)
        raise AssertionError("the prediction was not cancelled")
    except PredictionCancelled:
        pass
    assert 0 < len(ran) < len(convs)  # stopped inside the pass, not after it
    assert not session.read_mask().any() and session.state().pending == 1  # mask unchanged, the prompt queued
    session.set_run_control(None, None)
    hooks = sum(len(m._forward_pre_hooks) for m in convs)
    assert hooks == 0  # the checks are gone after the pass
    session.predict()
    assert session.read_mask().any()


def test_the_checks_change_no_output(tiny_model_dir):
    net = _engine(tiny_model_dir).model.network
    x = torch.randn(1, 8, 64, 64, 64)
    with torch.inference_mode():
        plain = net(x)
        with cancel_points(net, RunControl(None, lambda: False)):
            checked = net(x)
    assert np.array_equal(plain.numpy(), checked.numpy())
