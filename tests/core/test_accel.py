"""How passes use the device (core/engines/accel.py): overlapped refinement, channels-last, torch.compile.

None of them may change a mask: each is compared with the plain path on the CPU, where the refinement's
asynchronous (CUDA) order is simulated; a CUDA test runs where a GPU is present.
"""

import numpy as np
import pytest
import torch

from napari_nninteractive.core.engines import accel
from napari_nninteractive.core.engines.base import EngineError
from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.testing import synthetic_volume

from ..conftest import fake_model, sphere_image


class SampleNormalised(torch.nn.Module):
    """Deterministic and per sample, like the network: foreground where the image minus the sample's mean, plus
    half the previous mask, is high. It keeps each input it saw and a copy, to check the input stayed unchanged
    until its pass was collected."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x):
        self.seen.append((x, x.clone()))
        img = x[:, 0] - x[:, 0].mean(dim=(1, 2, 3), keepdim=True)
        fg = (img + 0.5 * x[:, 1] > 0.8).float()
        return torch.stack([1 - fg, fg], dim=1)


def _steps(engine, image, prompts) -> list[np.ndarray]:
    session = Session(engine)
    session.set_image(image)
    steps = []
    for prompt in prompts:
        prompt(session)
        steps.append(session.mask.copy())
    return steps


def _stand_in_prompts():
    return (
        lambda s: s.add_bbox([[12, 13], [12, 60], [12, 60]]),
        lambda s: s.add_point((12, 20, 50), positive=False),
        lambda s: s.add_point((12, 40, 40)),
    )


@pytest.mark.parametrize("batch", [1, 8])
def test_overlapped_refinement_gives_the_masks_of_one_pass_after_the_other(batch, monkeypatch):
    image = sphere_image((24, 72, 72), (12, 36, 36), 22)  # far larger than the 32^3 patch: zoom out, then refine
    unchanged: list[bool] = []  # per pass collected in the asynchronous order
    real_masks = accel.Pending.masks

    def masks(self):  # when a queued pass is collected, its input is still what the network was handed
        if asynchronous:
            x, copy = net.seen[-1]  # the next pass is launched only after this one is collected
            unchanged.append(torch.equal(x, copy))
        return real_masks(self)

    results = {}
    for overlap, asynchronous in ((False, False), (True, False), (True, True)):
        net = SampleNormalised()
        engine = NetworkEngine(fake_model(net, 32), device="cpu")
        engine.refine_batch, engine.overlap = batch, overlap
        # as on CUDA: a pass is queued, and the next input goes into the other buffer while it runs
        monkeypatch.setattr(accel, "asynchronous", lambda device, a=asynchronous: a)
        monkeypatch.setattr(accel.Pending, "masks", masks)
        results[overlap, asynchronous] = _steps(engine, image, _stand_in_prompts())
        assert len(net.seen) > 3 * 2  # refinement ran: more passes than the prompts' coarse ones
    assert len(unchanged) > 3 and all(unchanged)
    assert any(m.any() for m in results[False, False])
    for key in ((True, False), (True, True)):
        for plain, fast in zip(results[False, False], results[key]):
            assert np.array_equal(plain, fast)


def _network_prompts():
    return (
        lambda s: s.add_bbox([[20, 21], [8, 88], [10, 86]]),  # larger than the 64^3 patch: zoom, refine
        lambda s: s.add_point((20, 50, 50), positive=False),
        lambda s: s.add_point((30, 40, 40)),
    )


def test_channels_last_gives_the_same_masks(tiny_model_dir):
    image, _ = synthetic_volume((48, 96, 96))
    plain = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    plain.channels_last = False
    expected = _steps(plain, image, _network_prompts())
    assert plain.forward_passes > 1
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    assert not engine.channels_last  # the default: on for CUDA only
    engine.channels_last = True
    conv = next(m for m in engine.model.network.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    for a, b in zip(expected, _steps(engine, image, _network_prompts())):
        assert np.array_equal(a, b)
    engine.channels_last = None  # back to the default, and to the ordinary layout
    assert conv.weight.is_contiguous()


def test_compiled_network_gives_the_same_masks_warm_from_the_start(tiny_model_dir, monkeypatch):
    image, _ = synthetic_volume((48, 96, 96))
    eager = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    eager.cpu_onednn = False  # compiled graphs take PyTorch's own kernels (aot_eager: the same ones)
    expected = _steps(eager, image, _network_prompts())
    warm_ups = []
    real_warm_up = NetworkEngine.warm_up
    monkeypatch.setattr(NetworkEngine, "warm_up", lambda self: (warm_ups.append(1), real_warm_up(self)))
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    engine.compile("aot_eager")  # the default backend (inductor) builds C++: minutes here; same code path
    assert engine.compiled == "aot_eager" and engine.refine_batch == 1 and engine.forward_passes == 0
    assert warm_ups == [1]
    for a, b in zip(expected, _steps(engine, image, _network_prompts())):
        assert np.array_equal(a, b)
    shared = NetworkEngine(engine.model, device="cpu")  # a second session on the same network (a server's)
    shared.compile("aot_eager")
    assert warm_ups == [1]  # already warm
    assert accel.compiled(engine.model.network, "aot_eager") is accel.compiled(shared.model.network, "aot_eager")


def test_a_compiler_that_fails_says_so_and_leaves_the_engine_plain(tiny_model_dir):
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    batch = engine.refine_batch
    with pytest.raises(EngineError, match="torch.compile failed.*without compiling"):
        engine.compile("no-such-backend")
    assert engine.compiled is None and engine.refine_batch == batch
    assert not accel.is_compiled(engine.model.network, "no-such-backend")


def test_cancel_is_honoured_between_compiled_passes(tiny_model_dir):
    from napari_nninteractive.core.engines.base import PredictionCancelled, RunControl

    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    engine.compile("aot_eager")
    image, _ = synthetic_volume((48, 96, 96))
    engine.set_image(image[None])
    passes = []
    control = RunControl(progress=passes.append, should_cancel=lambda: len(passes) >= 2)
    with pytest.raises(PredictionCancelled):
        engine.predict(np.zeros(image.shape, np.uint8), [_box().validated(image.shape)], control)
    assert len(passes) == 2  # stopped before the third pass began


def _box():
    from napari_nninteractive.core.prompts import Box

    return Box(((20, 21), (8, 88), (10, 86)), True)


def test_host_buffers_are_ordinary_memory_on_the_cpu(tiny_model_dir):
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    assert engine.pinned_memory and not engine._pinned()  # pinned only for a CUDA device
    x = accel.host_zeros((2, 3), pinned=False)
    assert not x.is_pinned() and not x.any()
    assert not accel.asynchronous(torch.device("cpu"))
    plain = NetworkEngine.from_folder(tiny_model_dir, device="cpu").spec_as_written()
    assert not (plain.overlap or plain.pinned_memory or plain.channels_last) and plain.compiled is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_passes_pin_copy_asynchronously_and_give_the_cpus_masks():
    image = sphere_image((24, 72, 72), (12, 36, 36), 22)
    cpu = _steps(NetworkEngine(fake_model(SampleNormalised(), 32), device="cpu"), image, _stand_in_prompts())
    engine = NetworkEngine(fake_model(SampleNormalised(), 32), device="cuda")
    assert engine._pinned() and engine.channels_last and accel.asynchronous(engine.device)
    for a, b in zip(cpu, _steps(engine, image, _stand_in_prompts())):
        assert np.array_equal(a, b)
