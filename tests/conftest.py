"""Shared fixtures: tiny model folders, deterministic fake networks, synthetic volumes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_nninteractive.core.model import InteractionMetadata, LoadedModel
from napari_nninteractive.testing import write_model_folder

DATA_DIR = Path(
    os.environ.get("NNINTERACTIVE_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


class ThresholdNet:
    """Predicts foreground where the (normalised) image channel exceeds ``threshold``.

    Deterministic and resolution-aware: a zoomed-out (resampled) input shows the same object,
    so AutoZoom behaviour can be predicted by hand. Records every input it sees.
    """

    def __init__(self, threshold: float = 0.0):
        self.threshold = threshold
        self.calls: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.detach().clone())
        fg = (x[:, 0] > self.threshold).float()
        return torch.stack([1 - fg, fg], dim=1)


class SlowNet(ThresholdNet):
    """A :class:`ThresholdNet` whose every pass takes ``delay`` seconds (for cancel and threading tests)."""

    def __init__(self, threshold: float = 0.0, delay: float = 0.3):
        super().__init__(threshold)
        self.delay = delay

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(self.delay)
        return super().__call__(x)


def fake_model(network, patch=64, **meta) -> LoadedModel:
    """A :class:`LoadedModel` around any callable network."""
    return LoadedModel(network=network, patch_size=(patch,) * 3, metadata=InteractionMetadata(**meta))


def sphere(shape, centre, radius) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((g - c) ** 2 for g, c in zip(grids, centre)) <= radius**2


def sphere_image(shape, centre, radius, fg=100.0, bg=0.0) -> np.ndarray:
    """Bright sphere on a dark background, plus a faint corner marker so std > 0 elsewhere."""
    img = np.full(shape, bg, dtype=np.float32)
    img[sphere(shape, centre, radius)] = fg
    return img


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Official-format folder, legacy metadata (bare string, like v1.0), tiny random network."""
    return write_model_folder(tmp_path_factory.mktemp("models") / "tiny_legacy", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir_new(tmp_path_factory) -> Path:
    """Official-format folder with the newer inference_info.json metadata."""
    return write_model_folder(tmp_path_factory.mktemp("models") / "tiny_new", metadata="new", seed=1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """Model cache and autosaves of every test go to a temporary folder, never the user's home."""
    monkeypatch.setenv("NNINTERACTIVE_HOME", str(tmp_path_factory.mktemp("home")))
