"""``nninteractive-segment --server`` and ``nninteractive-eval --server``: the same files as a local run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_nninteractive.cli import eval as eval_cli
from napari_nninteractive.cli import segment
from napari_nninteractive.io.volumes import read_volume
from napari_nninteractive.server import BackgroundServer, ServerConfig

from ..cli.test_cli import PROMPTS, SHAPE
from ..conftest import sphere, sphere_image


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(ServerConfig(api_key="k3y")) as running:
        yield running


@pytest.fixture
def files(tmp_path):
    image = sphere_image(SHAPE, (24, 28, 20), 9, fg=300, bg=20) + np.random.default_rng(0).normal(0, 3, SHAPE).astype(
        np.float32
    )
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "labels.npy", sphere(SHAPE, (24, 28, 20), 9).astype(np.uint8))
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    return tmp_path


def test_segment_on_a_server_writes_the_local_result(files, server, capsys, monkeypatch):
    monkeypatch.setenv("NN_INTERACTIVE_API_KEY", "k3y")
    common = [str(files / "image.npy"), "--prompts", str(files / "prompts.json")]
    assert segment.main([*common, "-o", str(files / "local.npy"), "--save-steps", str(files / "l.npz")]) == 0
    remote = [*common, "--server", server.url, "-o", str(files / "remote.npy"), "--save-steps", str(files / "r.npz")]
    assert segment.main(remote) == 0
    out = capsys.readouterr().out
    assert server.url in out and "interaction(s)" in out
    local, far = read_volume(files / "local.npy").array, read_volume(files / "remote.npy").array
    assert far.any() and np.array_equal(local, far)
    with np.load(files / "l.npz") as a, np.load(files / "r.npz") as b:
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert len(server.host.registry) == 0  # released at the end


def test_segment_server_errors_are_one_line(files, server, capsys, monkeypatch):
    monkeypatch.delenv("NN_INTERACTIVE_API_KEY", raising=False)
    base = [str(files / "image.npy"), "--prompts", str(files / "prompts.json"), "-o", str(files / "m.npy")]
    cases = [
        (["--server", server.url], "needs an API key"),
        (["--server", server.url, "--api-key", "wrong"], "refused the API key"),
        (["--server", "http://127.0.0.1:9", "--api-key", "k3y"], "Cannot reach the server"),
        (["--server", server.url, "--model", str(files)], "--model choose the engine in this process"),
        (["--server", "ftp://x"], "not a server URL"),
    ]
    for extra, message in cases:
        assert segment.main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "wrong" not in err.replace("'wrong'", "")
    assert not (files / "m.npy").exists()


def test_eval_on_a_server(files, server, capsys):
    out = files / "eval"
    argv = [str(files / "image.npy"), str(files / "labels.npy"), "--interactions", "2", "--out", str(out)]
    assert eval_cli.main([*argv, "--server", server.url, "--api-key", "k3y"]) == 0
    remote = (out / "results.csv").read_text()
    assert eval_cli.main([*argv[:-1], str(files / "local_eval")]) == 0
    local = (files / "local_eval" / "results.csv").read_text()

    def columns(text):  # every column but the time: image, label, agent, engine, prompt, dice, auc, forward passes
        return [row.split(",")[:9] + row.split(",")[10:] for row in text.splitlines()]

    assert columns(remote) == columns(local)
    assert any(int(row[-1]) > 0 for row in columns(remote)[1:])
    capsys.readouterr()
