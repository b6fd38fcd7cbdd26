"""CPU convolutions through oneDNN at every batch size: a patch gives the same logits alone or batched."""

import threading

import torch

from napari_nninteractive.core import onednn
from napari_nninteractive.core.engines.network import NetworkEngine


def _net(tiny_model_dir):
    return NetworkEngine.from_folder(tiny_model_dir, device="cpu").model.network


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 8, 64, 64, 64, generator=g), torch.randn(1, 8, 64, 64, 64, generator=g)


def test_a_patch_gives_the_same_logits_alone_and_in_a_batch(tiny_model_dir):
    net = _net(tiny_model_dir)
    assert onednn.install(net) == sum(isinstance(m, torch.nn.Conv3d) for m in net.modules()) > 0
    a, b = _inputs()
    with torch.inference_mode(), onednn.onednn_convolutions():
        alone, batched = net(a), net(torch.cat([a, b]))
    assert torch.equal(alone[0], batched[0])


def test_values_agree_with_pytorchs_own_choice_to_float32_rounding(tiny_model_dir):
    net = _net(tiny_model_dir)
    a, b = _inputs()
    with torch.inference_mode():
        plain_one, plain_two = net(a), net(torch.cat([a, b]))
        with onednn.onednn_convolutions():
            one, two = net(a), net(torch.cat([a, b]))
        outside = net(a)  # the setting ends with the block
    assert torch.equal(outside, plain_one)
    assert torch.equal(two, plain_two)  # a batch of two already took oneDNN
    assert torch.allclose(one, plain_one, rtol=0, atol=1e-4 * float(plain_one.abs().max()))


def test_the_setting_belongs_to_the_thread_that_made_it(tiny_model_dir):
    net = _net(tiny_model_dir)
    a, _ = _inputs()
    seen = {}

    def other():
        with torch.inference_mode():
            seen["other"] = net(a)

    with torch.inference_mode():
        plain = net(a)
        with onednn.onednn_convolutions():
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
    assert torch.equal(seen["other"], plain)  # the other thread ran as PyTorch chooses


def test_engines_install_it_and_the_switches_turn_it_off(tiny_model_dir):
    engine = NetworkEngine.from_folder(tiny_model_dir, device="cpu")
    net = engine.model.network
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert engine.cpu_onednn and all(type(m) is onednn.OneDNNConv3d for m in convs)
    assert onednn.install(net) == len(convs)  # twice is harmless
    assert onednn.install(torch.nn.Linear(2, 2)) == 0  # nothing to install
    plain = NetworkEngine.from_folder(tiny_model_dir, device="cpu").spec_as_written()
    assert not plain.cpu_onednn and not plain.lean_inputs and plain.refine_batch == 1
    a, _ = _inputs()
    with torch.inference_mode():
        plain = net(a)
        with onednn.onednn_convolutions(False):
            assert torch.equal(net(a), plain)  # the engine's cpu_onednn = False
        torch.backends.mkldnn.enabled = False  # oneDNN switched off in torch itself
        try:
            without = net(a)
            with onednn.onednn_convolutions():
                assert torch.equal(net(a), without)
        finally:
            torch.backends.mkldnn.enabled = True


def test_an_installed_layer_pickles_and_loads():
    import pickle

    net = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3, padding=1))
    assert onednn.install(net) == 1
    back = pickle.loads(pickle.dumps(net))
    x = torch.randn(1, 2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), onednn.onednn_convolutions():
        assert type(back[0]) is onednn.OneDNNConv3d and torch.equal(back(x), net(x))


def test_a_compiled_network_traces_pytorchs_convolution_inside_the_setting(tiny_model_dir):
    net = _net(tiny_model_dir)
    compiled = torch.compile(net, backend="aot_eager")  # the compiler cannot trace the direct oneDNN call
    a, _ = _inputs()
    with torch.inference_mode():
        plain = net(a)
        with onednn.onednn_convolutions():
            assert torch.equal(compiled(a), plain)
