"""What the dock says when a session starts (no Qt needed)."""

from __future__ import annotations

from types import SimpleNamespace

from napari_nninteractive.core.api import Capabilities
from napari_nninteractive.core.prompts import PromptKind
from napari_nninteractive.gui.session_words import describe_start


def _server_session(patch, device="cpu"):
    caps = Capabilities("nnInteractive network", "the nnInteractive network", frozenset(PromptKind), device=device)
    return SimpleNamespace(capabilities=caps, snapshot={"patch_size": list(patch)})


def test_the_slow_cpu_warning_is_for_large_networks_only():
    choice = SimpleNamespace(remote=True, fold=None, label="http://gpu-box:1527", autozoom=True)
    assert "a minute per forward pass" in describe_start(_server_session((192, 192, 192)), choice).cpu_warning
    assert describe_start(_server_session((32, 32, 32)), choice).cpu_warning is None  # e.g. a cpu-small model
    assert describe_start(_server_session((192, 192, 192), "cuda"), choice).cpu_warning is None
