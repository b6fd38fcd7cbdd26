"""Refinement patches that do not overlap run as one batch: the same masks as one by one, fewer network calls."""

import numpy as np
import pytest
import torch

from napari_nninteractive.core.engines.network import NetworkEngine, independent_groups
from napari_nninteractive.core.model import load_model_folder
from napari_nninteractive.core.session import Session
from napari_nninteractive.testing import tiny_architecture, write_model_folder

from ..conftest import sphere_image


class Counting:
    """Wraps a network and counts its calls and the samples it saw."""

    def __init__(self, net):
        self.net, self.calls, self.samples = net, 0, 0

    def __call__(self, x):
        self.calls += 1
        self.samples += x.shape[0]
        return self.net(x)


def test_groups_are_consecutive_disjoint_and_bounded():
    boxes = [((0, 8), (0, 8)), ((0, 8), (8, 16)), ((4, 12), (4, 12)), ((20, 28), (0, 8)), ((20, 28), (8, 16))]
    assert independent_groups(boxes, 8) == [[0, 1], [2, 3, 4]]  # box 2 overlaps 0 and 1: a new group
    assert independent_groups(boxes, 2) == [[0, 1], [2, 3], [4]]
    assert independent_groups(boxes, 1) == [[0], [1], [2], [3], [4]]


class SampleNormalised:
    """A deterministic stand-in that, like the network, normalises each sample on its own: foreground where the
    image channel minus the sample's mean, plus half the previous mask, is high. Mixing samples of a batch would
    change its output."""

    def __call__(self, x):
        img = x[:, 0] - x[:, 0].mean(dim=(1, 2, 3), keepdim=True)
        fg = (img + 0.5 * x[:, 1] > 0.8).float()
        return torch.stack([1 - fg, fg], dim=1)


@pytest.mark.slow
def test_batched_refinement_gives_the_masks_of_one_by_one():
    from ..conftest import fake_model

    shape = (24, 72, 72)
    image = sphere_image(shape, (12, 36, 36), 22)  # far larger than the 32^3 patch: zoom out, then refine
    masks, nets = {}, {}
    for batch in (1, 8):
        nets[batch] = Counting(SampleNormalised())
        engine = NetworkEngine(fake_model(nets[batch], 32), device="cpu")
        engine.refine_batch = batch
        session = Session(engine)
        session.set_image(image)
        steps = []
        for call in (
            lambda s=session: s.add_bbox([[12, 13], [12, 60], [12, 60]]),
            lambda s=session: s.add_point((12, 20, 50), positive=False),
        ):
            call()
            steps.append(session.mask.copy())
        masks[batch] = steps
    assert any(m.any() for m in masks[1])
    for one, batched in zip(masks[1], masks[8]):
        assert np.array_equal(one, batched)
    assert nets[1].samples == nets[8].samples  # the same passes ...
    assert nets[8].calls < nets[1].calls  # ... in fewer calls


def test_the_network_gives_each_sample_of_a_batch_what_it_gives_alone(tmp_path):
    folder = write_model_folder(tmp_path / "m", tiny_architecture(), (32, 32, 32), seed=3)
    net = load_model_folder(folder).network.eval()
    torch.manual_seed(0)
    xs = torch.randn(3, 8, 32, 32, 32)
    with torch.inference_mode():
        batched = net(xs)
        for i in range(3):
            alone = net(xs[i : i + 1])
            assert torch.equal(batched[i, 1] > batched[i, 0], alone[0, 1] > alone[0, 0])
