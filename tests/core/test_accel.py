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


class ConvThreshold(torch.nn.Module):
    """A real 3x3x3 convolution (so memory formats and compilers apply) with a known answer: foreground where the
    image channel plus half the previous mask exceeds 0.5 (only the centre taps are nonzero)."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv = torch.nn.Conv3d(channels, 2, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([0.0, -0.5]))
            self.conv.weight[1, 0, 1, 1, 1] = 1.0
            self.conv.weight[1, 1, 1, 1, 1] = 0.5

    def forward(self, x):
        return self.conv(x)


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
        lambda s: s.add_bbox([[20, 21], [8, 152], [10, 150]]),  # far larger than the 64^3 patch: zoom, refine
        lambda s: s.add_point((20, 80, 80), positive=False),
        lambda s: s.add_point((30, 40, 40)),
    )


def _network_image():
    return synthetic_volume((48, 160, 160))[0]


def _count_refine_groups(engine) -> list[int]:
    """Wrap ``engine._launch``: the returned list gets the number of refinement passes of each interaction."""
    counts: list[int] = []
    real = engine._launch

    def launch(x, control, stage, step, total, message, zoom=1.0):
        if stage == "refine":
            if step == 1:
                counts.append(0)
            counts[-1] += 1
        return real(x, control, stage, step, total, message, zoom)

    engine._launch = launch
    return counts


def test_channels_last_gives_the_same_masks(tiny_model_dir):
    image = _network_image()
    plain = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    plain.channels_last = False
    expected = _steps(plain, image, _network_prompts())
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    assert not engine.channels_last  # the default: on for CUDA only
    engine.channels_last = True
    conv = next(m for m in engine.model.network.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    for a, b in zip(expected, _steps(engine, image, _network_prompts())):
        assert np.array_equal(a, b)
    engine.channels_last = None  # back to the default, and to the ordinary layout
    assert conv.weight.is_contiguous()


@pytest.mark.parametrize("way", ["channels_last", "compiled"])
def test_many_refinement_passes_in_flight_give_the_plain_masks(way):
    from torch._dynamo.testing import CompileCounter

    image = sphere_image((24, 72, 72), (12, 36, 36), 22)  # far larger than the 32^3 patch: zoom out, then refine
    plain = NetworkEngine(fake_model(ConvThreshold(), 32), device="cpu").spec_as_written()
    expected = _steps(plain, image, _stand_in_prompts())
    engine = NetworkEngine(fake_model(ConvThreshold(), 32), device="cpu")
    counter = CompileCounter()
    if way == "compiled":
        engine.compile(counter)
    else:
        engine.channels_last, engine.refine_batch = True, 1
    groups = _count_refine_groups(engine)
    for a, b in zip(expected, _steps(engine, image, _stand_in_prompts())):
        assert np.array_equal(a, b)
    assert any(m.any() for m in expected) and max(groups) > 2


def test_compiled_network_gives_the_same_masks_and_never_compiles_in_a_prediction(tiny_model_dir, monkeypatch):
    from torch._dynamo.testing import CompileCounter

    image = _network_image()
    eager = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    eager.cpu_onednn = False  # compiled graphs take PyTorch's own kernels (CompileCounter runs them as traced)
    expected = _steps(eager, image, _network_prompts())
    counter = CompileCounter()  # a backend that counts the graphs it is handed and runs them eagerly
    warm_ups = []
    real_warm_up = NetworkEngine.warm_up
    monkeypatch.setattr(NetworkEngine, "warm_up", lambda self: (warm_ups.append(1), real_warm_up(self)))
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    engine.compile(counter)
    assert engine.compiled is counter and engine.refine_batch == 1 and engine.forward_passes == 0
    assert warm_ups == [1] and counter.frame_count >= 1
    compiled_at_load = counter.frame_count
    for a, b in zip(expected, _steps(engine, image, _network_prompts())):
        assert np.array_equal(a, b)
    assert counter.frame_count == compiled_at_load  # every pass ran the graph built at load
    shared = NetworkEngine(engine.model, device="cpu")  # a second session on the same model (a server's)
    shared.compile(counter)
    assert warm_ups == [1] and counter.frame_count == compiled_at_load  # already warm


def test_a_compiled_network_goes_with_its_model(tiny_model_dir):
    import gc
    import weakref

    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    engine.compile("aot_eager")
    gone = weakref.ref(engine.model.network)
    del engine
    gc.collect()
    assert gone() is None  # no cache outside the model keeps the network (and its GPU memory) alive


def test_a_compiler_that_fails_says_why_and_leaves_the_engine_plain(tiny_model_dir):
    def no_compiler(graph, example_inputs):  # as inductor without a C++ compiler
        raise OSError("no C++ compiler found")

    for backend, cause in (("no-such-backend", "no-such-backend"), (no_compiler, "no C++ compiler found")):
        engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
        batch = engine.refine_batch
        with pytest.raises(EngineError, match="torch.compile failed.*without compiling") as failed:
            engine.compile(backend)
        assert cause in str(failed.value) and "plans" not in str(failed.value)
        assert engine.compiled is None and engine.refine_batch == batch
        assert not engine.model.compiled_forms


def test_falling_back_to_the_cpu_runs_it_uncompiled():
    class Callable:  # a network handed in by code, on a pretend GPU
        def __call__(self, x):
            return torch.stack([x[:, 0], -x[:, 0]], dim=1)

        def to(self, device):
            return self

    engine = NetworkEngine(fake_model(Callable(), 32), device="cpu")
    batch = engine.refine_batch
    engine.compile("aot_eager")
    assert engine.compiled == "aot_eager" and engine.refine_batch == 1
    engine.device = torch.device("meta")  # stands in for a GPU on this CPU-only machine
    assert engine.fall_back_to_cpu()
    assert engine.device.type == "cpu" and engine.compiled is None and engine.refine_batch == batch


def test_an_engine_whose_shared_network_fell_back_runs_it_eagerly(tiny_model_dir, monkeypatch):
    # A server's sessions share one model. When one engine falls back to the CPU, the network moves for
    # all; the others must run it eagerly too, not compile a CPU graph inside a user's prediction.
    image = _network_image()
    eager = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    expected = _steps(eager, image, _network_prompts())
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    engine.compile("aot_eager")
    engine._compiled_on = torch.device("meta")  # as if compiled for a GPU before another session's fall-back
    asked = []
    real = accel.compiled
    monkeypatch.setattr(accel, "compiled", lambda *args: (asked.append(args[-1]), real(*args))[1])
    for a, b in zip(expected, _steps(engine, image, _network_prompts())):
        assert np.array_equal(a, b)
    assert asked == []  # no compiled form was asked for (it would be compiled for the CPU, in the prediction)


def test_a_buffer_region_left_unwritten_is_cleared_at_the_next_use():
    from napari_nninteractive.core.engines.network_inputs import WindowBuffer

    buffer = WindowBuffer()
    x = buffer.take(1, 2, (4, 4, 4))
    x[0, 1] = 7.0
    buffer.written((0, 1))
    x = buffer.take(1, 2, (4, 4, 4), overwritten=[(0, 1)])  # the caller means to overwrite it ... but stops
    assert x[0, 1].eq(7).all()
    assert not buffer.take(1, 2, (4, 4, 4)).any()  # the next use without that promise finds zeros


def test_cancel_is_honoured_between_compiled_passes(tiny_model_dir):
    from napari_nninteractive.core.engines.base import PredictionCancelled, RunControl

    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    engine.compile("aot_eager")
    image = _network_image()
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
def test_cuda_passes_pin_copy_asynchronously_and_give_the_cpus_masks(monkeypatch):
    image = sphere_image((24, 72, 72), (12, 36, 36), 22)
    cpu = _steps(NetworkEngine(fake_model(ConvThreshold(), 32), device="cpu"), image, _stand_in_prompts())
    engine = NetworkEngine(fake_model(ConvThreshold(), 32), device="cuda")
    assert engine._pinned() and engine.channels_last and accel.asynchronous(engine.device)
    real_to_device = accel.to_device
    sources: list[tuple[torch.Tensor, torch.Tensor]] = []

    def slow_copy(x, device, channels_last):  # the stream is busy a while: a host write too early would show
        torch.cuda._sleep(10**7)
        sources.append((x, x.clone()))
        return real_to_device(x, device, channels_last)

    real_masks = accel.Pending.masks
    unchanged: list[bool] = []

    def masks(self):
        x, copy = sources[-1]
        unchanged.append(torch.equal(x, copy))
        return real_masks(self)

    monkeypatch.setattr(accel, "to_device", slow_copy)
    monkeypatch.setattr(accel.Pending, "masks", masks)
    for a, b in zip(cpu, _steps(engine, image, _stand_in_prompts())):
        assert np.array_equal(a, b)
    assert len(unchanged) > 3 and all(unchanged)
    assert all(x.is_pinned() for x, _ in sources)
