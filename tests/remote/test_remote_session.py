"""Our client on our server (in-process, 127.0.0.1, ephemeral port) gives exactly the local session's masks."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from napari_nninteractive.core.engines.network import NetworkEngine
from napari_nninteractive.core.engines.registry import make_engine
from napari_nninteractive.core.model import load_model_folder
from napari_nninteractive.core.prompts import Box, InitialMask, Lasso, Point, PromptError, Scribble
from napari_nninteractive.core.remote import transport as T
from napari_nninteractive.core.remote.client import EXPIRED_NOTICE, RemoteSession
from napari_nninteractive.core.session import Session
from napari_nninteractive.server import BackgroundServer, EngineSource, ServerConfig, weight_free_source

from ..conftest import ThresholdNet, fake_model, sphere, sphere_image

SHAPE = (24, 40, 40)


def image() -> np.ndarray:
    img = sphere_image(SHAPE, (12, 20, 20), 7) + sphere_image(SHAPE, (12, 8, 30), 4, fg=60)
    img[0, 0, 0] = 5
    return img


def scribble() -> Scribble:
    crop = np.zeros((1, 3, 5), bool)
    crop[0, 1, :] = True
    return Scribble(crop, ((12, 13), (19, 22), (18, 23)), True)


def lasso() -> Lasso:
    crop = np.ones((1, 6, 6), bool)
    return Lasso(crop, ((12, 13), (5, 11), (27, 33)), False)


def initial() -> InitialMask:
    return InitialMask(sphere(SHAPE, (12, 8, 30), 3).astype(np.uint8), None, True, False)


#: Operations in order; each is ("add", prompts, run) or the name of a session method.
SCRIPT = [
    ("add", [Point((12, 20, 20), True)], True),
    ("add", [Box(((12, 13), (4, 13), (25, 35)), False)], True),
    ("add", [scribble()], True),
    ("undo",),
    ("redo",),
    ("add", [lasso()], True),
    ("add", [Point((12, 8, 30), True), Point((12, 22, 22), False)], False),
    ("predict",),
    ("undo",),
    ("undo",),
    ("reset_object",),
    ("undo",),
    ("add", [initial()], True),
    ("add", [Point((12, 9, 31), True)], True),
    ("next_object",),
    ("add", [Point((12, 20, 20), True)], True),
]


#: A shorter script for the random-weight network (about 2 s per forward pass here).
NETWORK_SCRIPT = [
    ("add", [Point((12, 20, 20), True)], True),
    ("add", [Box(((12, 13), (4, 13), (25, 35)), False)], True),
    ("add", [lasso()], True),
    ("add", [scribble()], True),
    ("undo",),
    ("redo",),
    ("add", [initial(), Point((12, 9, 31), False)], True),
    ("reset_object",),
    ("undo",),
]


def run_script(session, script=SCRIPT):
    out = []
    for op in script:
        change = session.add_prompts(op[1], run=op[2]) if op[0] == "add" else getattr(session, op[0])()
        out.append((session.read_mask(), change.can_undo, change.can_redo, change.pending, len(change.history)))
    return out


def same_as_local(make_engine_fn, server: BackgroundServer, script=SCRIPT):
    local = Session(make_engine_fn())
    local.set_image(image())
    expected = run_script(local, script)
    with RemoteSession(server.url) as remote:
        remote.set_image(image())
        got = run_script(remote, script)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert np.array_equal(e[0], g[0]), f"step {i} {script[i][0]}: masks differ"
        assert e[1:] == g[1:], f"step {i} {script[i][0]}: undo/redo/pending/history {e[1:]} != {g[1:]}"
    assert any(e[0].any() for e in expected)
    assert local.state().rounds is not None and remote.state().rounds is None  # not known here: not saved as ()


@pytest.fixture(scope="module")
def weight_free_server():
    with BackgroundServer(ServerConfig(), weight_free_source()) as server:
        yield server


def test_every_operation_matches_the_local_session_weight_free(weight_free_server):
    same_as_local(lambda: make_engine(engine="weight-free"), weight_free_server)


def test_every_operation_matches_the_local_session_network_engine():
    """The network engine's encoding, AutoZoom and refinement behind a deterministic stand-in network."""
    model = fake_model(ThresholdNet(), patch=16)

    def engine():
        return NetworkEngine(model, "cpu", True)

    with BackgroundServer(ServerConfig(), EngineSource.probe(engine)) as server:
        same_as_local(engine, server)


@pytest.mark.slow
def test_random_weight_model_folder_matches_the_local_session(tiny_model_dir):
    model = load_model_folder(tiny_model_dir)

    def engine():
        return NetworkEngine(model, "cpu", False)

    with BackgroundServer(ServerConfig(autozoom=False), EngineSource.probe(engine)) as server:
        same_as_local(engine, server, NETWORK_SCRIPT)


def test_changes_carry_the_changed_voxels(weight_free_server):
    with RemoteSession(weight_free_server.url) as remote:
        remote.set_image(image())
        buffer = np.zeros(SHAPE, np.uint8)
        change = remote.add_prompts([Point((12, 20, 20), True)])
        assert change.bbox is not None and change.values is not None and change.flipped is not None
        before = buffer[tuple(slice(lo, hi) for lo, hi in change.bbox)].copy()
        buffer[tuple(slice(lo, hi) for lo, hi in change.bbox)] = change.values
        assert np.array_equal(buffer, remote.read_mask())
        assert np.array_equal(change.flipped, before != change.values) and change.flipped.any()
        assert remote.capabilities.undo_depth is None and remote.capabilities.redo


def test_bad_prompts_are_refused_here_with_the_local_message(weight_free_server):
    with RemoteSession(weight_free_server.url) as remote:
        remote.set_image(image())
        with pytest.raises(PromptError, match="outside the image"):
            remote.add_prompts([Point((99, 0, 0))])
        assert remote.state().pending == 0 and not remote.read_mask().any()


def test_expired_session_is_renewed_with_the_mask():
    config = ServerConfig(idle_timeout=1.0, liveness_timeout=1.0, sweep_seconds=0.1)
    with BackgroundServer(config, weight_free_source()) as server:
        local = Session(make_engine(engine="weight-free"))
        local.set_image(image())
        local.add_prompts([Point((12, 20, 20), True)])
        with RemoteSession(server.url, heartbeat_seconds=0.2) as remote:
            remote.set_image(image())
            first = remote.add_prompts([Point((12, 20, 20), True)])
            assert np.array_equal(remote.read_mask(), local.read_mask())
            old = remote._lease.token
            deadline = time.monotonic() + 10
            while len(server.host.registry) and time.monotonic() < deadline:
                time.sleep(0.1)  # idle: heartbeats do not postpone the idle timeout
            change = remote.add_prompts([Point((12, 8, 30), True)])
            assert EXPIRED_NOTICE in change.notices and remote._lease.token != old
        # what the renewed session did: the mask as an initial segmentation, then the new prompt
        local.add_prompts([InitialMask(local.read_mask(), None, True, False)])
        local.add_prompts([Point((12, 8, 30), True)])
        assert np.array_equal(remote.read_mask(), local.read_mask())
        assert first.bbox is not None


def test_capacity_and_the_pool():
    config = ServerConfig(max_sessions=1)
    with BackgroundServer(config) as a, BackgroundServer(config) as b:
        first = RemoteSession(a.url)
        try:
            with pytest.raises(T.ServerFull, match="full"):
                RemoteSession(a.url)
            with RemoteSession([a.url, b.url]) as second:
                assert second.server_url == b.url
                second.set_image(image())
                assert second.add_prompts([Point((12, 20, 20), True)]).bbox is not None
        finally:
            first.close()
        with RemoteSession([a.url, b.url]) as third:  # released: a has a free slot again
            assert third.server_url == a.url


def test_api_key(monkeypatch):
    monkeypatch.delenv(T.API_KEY_ENV, raising=False)
    with BackgroundServer(ServerConfig(api_key="k3y")) as server:
        with pytest.raises(T.AuthenticationFailed, match="needs an API key"):
            RemoteSession(server.url)
        with pytest.raises(T.AuthenticationFailed, match="refused the API key"):
            RemoteSession(server.url, api_key="wrong")
        with RemoteSession(server.url, api_key="k3y") as remote:
            remote.set_image(image())
            assert remote.add_prompts([Point((12, 20, 20), True)]).bbox is not None


def test_concurrent_clients_do_not_see_each_other(weight_free_server):
    prompts = {0: Point((12, 20, 20), True), 1: Point((12, 8, 30), True)}
    expected = {}
    for k, p in prompts.items():
        local = Session(make_engine(engine="weight-free"))
        local.set_image(image() * (k + 1))
        local.add_prompts([p])
        expected[k] = local.read_mask()
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def client(k):
        try:
            with RemoteSession(weight_free_server.url) as remote:
                remote.set_image(image() * (k + 1))
                for _ in range(3):
                    remote.add_prompts([prompts[k]])
                    remote.undo()
                remote.add_prompts([prompts[k]])
                results[k] = remote.read_mask()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for k in prompts:
        assert np.array_equal(results[k], expected[k])
    assert not np.array_equal(expected[0], expected[1])


def test_no_undo_server(weight_free_server):
    config = replace(ServerConfig(), undo=False)
    with BackgroundServer(config) as server, RemoteSession(server.url) as remote:
        remote.set_image(image())
        change = remote.add_prompts([Point((12, 20, 20), True)])
        assert not change.can_undo and remote.capabilities.undo_depth == 0
        assert remote.undo().bbox is None and remote.read_mask().any()


def test_tls_with_a_self_signed_certificate(tmp_path, monkeypatch):
    from ..server.test_run import self_signed

    certfile, keyfile = self_signed(tmp_path)
    config = ServerConfig(api_key="k3y", ssl_certfile=certfile, ssl_keyfile=keyfile)
    with BackgroundServer(config) as server:
        assert server.url.startswith("https://")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(T.ServerUnreachable, match="does not trust.*SSL_CERT_FILE"):
            RemoteSession(server.url, api_key="k3y")
        monkeypatch.setenv("SSL_CERT_FILE", certfile)
        with RemoteSession(server.url, api_key="k3y") as remote:
            remote.set_image(image())
            assert remote.add_prompts([Point((12, 20, 20), True)]).bbox is not None


def test_a_renewed_session_gets_queued_and_new_prompts_once():
    config = ServerConfig(idle_timeout=1.0, liveness_timeout=1.0, sweep_seconds=0.1)
    with (
        BackgroundServer(config, weight_free_source()) as server,
        RemoteSession(server.url, heartbeat_seconds=0.2) as remote,
    ):
        remote.set_image(image())
        remote.add_prompts([Point((12, 20, 20), True)])
        remote.add_prompts([Point((12, 8, 30), True)], run=False)  # queued on the server
        deadline = time.monotonic() + 10
        while len(server.host.registry) and time.monotonic() < deadline:
            time.sleep(0.1)
        change = remote.add_prompts([Point((12, 22, 22), False)])
        assert EXPIRED_NOTICE in change.notices
        (hosted,) = server.host.registry._live.values()
        history = [p.coord for p in hosted.session.core.prompt_history if isinstance(p, Point)]
        assert history == [(12, 8, 30), (12, 22, 22)]  # after the seeded mask: each prompt once
        undone = remote.undo()
        assert undone.pending == 1 and remote.state().pending == 1
