"""The remote client's URL parsing, pool, heartbeat and error messages, against scripted HTTP answers."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

from napari_nninteractive.core.prompts import PromptKind
from napari_nninteractive.core.remote import transport as T
from napari_nninteractive.core.remote.client import RemoteSession, capabilities_from

SNAPSHOT = {
    "supported_interactions": {"scribble": True, "lasso": True, "points": True, "bbox2d": True, "bbox3d": False},
    "channel_mapping": {"prev_seg": 0},
    "num_interaction_channels": 7,
    "supports_initial_label": True,
    "supports_zero_shot_label_refinement": True,
    "preferred_scribble_thickness": [2, 2, 2],
    "interaction_decay": 0.98,
    "patch_size": [192, 192, 192],
    "do_autozoom": True,
    "inference_session_version": "2.6.0",
    "license": "CC BY-NC-SA 4.0",
    "supports_undo": True,
}


def scripted(answers: dict[tuple[str, str], object], log: list | None = None) -> httpx.MockTransport:
    """A transport answering ``(host, path)`` with a status (int), a JSON body (dict) or a callable."""

    def handle(request: httpx.Request) -> httpx.Response:
        if log is not None:
            log.append((request.url.host, request.url.path, dict(request.headers)))
        answer = answers.get((request.url.host, request.url.path), answers.get(("*", request.url.path), 404))
        if callable(answer):
            return answer(request)
        if isinstance(answer, int):
            detail = {401: "Invalid bearer token", 503: "server is at capacity (3 sessions)", 404: "Not Found"}
            return httpx.Response(answer, json={"detail": detail.get(answer, "failed")})
        return httpx.Response(200, json=answer)

    return httpx.MockTransport(handle)


CLAIM = {"lease_token": "a" * 32, "idle_timeout_seconds": 600.0, "liveness_timeout_seconds": 60.0, "max_sessions": 3}


def test_parse_servers_completes_and_checks_urls():
    assert T.parse_servers("gpu-a:1600, gpu-b\nhttps://tls.example:8443/") == [
        "http://gpu-a:1600",
        "http://gpu-b:1527",
        "https://tls.example:8443",
    ]
    assert T.parse_servers(["http://x:1"]) == ["http://x:1"]
    for bad in ("", " , ", "ftp://x", "http://"):
        with pytest.raises(T.RemoteError):
            T.parse_servers(bad)


def test_pool_claims_from_the_first_server_with_a_free_slot():
    log: list = []
    answers = {("full", "/claim"): 503, ("free", "/claim"): CLAIM, ("*", "/capabilities"): SNAPSHOT}
    session = RemoteSession(["http://full:1527", "http://free:1527"], transport=scripted(answers, log))
    try:
        assert session.server_url == "http://free:1527"
        assert [(h, p) for h, p, _ in log[:2]] == [("full", "/claim"), ("free", "/claim")]
        caps = session.capabilities
        assert caps.licence == "CC BY-NC-SA 4.0" and caps.undo_depth == 1 and not caps.redo
        assert "http://free:1527" in caps.description and "(192, 192, 192)" in caps.description
        assert caps.supported_kinds == frozenset(PromptKind) and not caps.supports_3d_box
    finally:
        session.close()
    assert ("free", "/release") in [(h, p) for h, p, _ in log]


def test_all_servers_full_says_what_to_do():
    answers = {("*", "/claim"): 503}
    with pytest.raises(T.ServerFull, match="All 2 servers are full.*--max-sessions"):
        RemoteSession("http://a:1, http://b:2", transport=scripted(answers))


def test_key_errors_name_the_fix_and_never_the_key(monkeypatch):
    monkeypatch.delenv(T.API_KEY_ENV, raising=False)
    answers = {("*", "/claim"): 401}
    with pytest.raises(T.AuthenticationFailed, match="needs an API key.*NN_INTERACTIVE_API_KEY"):
        RemoteSession("http://a:1", transport=scripted(answers))
    with pytest.raises(T.AuthenticationFailed, match="refused the API key") as info:
        RemoteSession("http://a:1", api_key="s3cret-key", transport=scripted(answers))
    assert "s3cret-key" not in str(info.value)


def test_key_from_the_environment_is_sent_as_bearer(monkeypatch):
    monkeypatch.setenv(T.API_KEY_ENV, "from-env")
    log: list = []
    answers = {("*", "/claim"): CLAIM, ("*", "/capabilities"): SNAPSHOT}
    session = RemoteSession("http://a:1", transport=scripted(answers, log))
    session.close()
    assert all(h.get("authorization") == "Bearer from-env" for _, _, h in log)
    assert "from-env" not in repr(session) and "from-env" not in repr(session._lease)


def test_unreachable_server_is_a_clear_error():
    t0 = time.perf_counter()
    with pytest.raises(T.ServerUnreachable, match="Cannot reach the server at http://127.0.0.1:9.*nninteractive-serve"):
        RemoteSession("http://127.0.0.1:9", timeouts=T.Timeouts(connect=2, read=2, write=2))
    assert time.perf_counter() - t0 < 10


def test_not_a_server_and_server_failures():
    with pytest.raises(T.RequestRefused, match="not an nnInteractive server"):
        RemoteSession("http://a:1", transport=scripted({}))
    answers = {("*", "/claim"): CLAIM, ("*", "/capabilities"): SNAPSHOT, ("*", "/set_image"): 413}
    session = RemoteSession("http://a:1", transport=scripted(answers))
    with pytest.raises(T.ImageTooLarge, match="too large.*Crop or downsample"):
        session.set_image(np.ones((4, 5, 6), np.float32))
    answers[("*", "/set_image")] = 500
    with pytest.raises(T.ServerFailed, match="failed on the image upload.*server's log"):
        session.set_image(np.ones((4, 5, 6), np.float32))
    session.close()


def test_heartbeat_runs_concurrently_with_a_long_request():
    beats: list[float] = []
    started = threading.Event()

    def heartbeat(request):
        beats.append(time.perf_counter())
        return httpx.Response(200, json={"remaining_seconds": 500.0})

    def slow_image(request):
        started.set()
        time.sleep(1.0)
        return httpx.Response(200, json={"original_image_shape": [1, 4, 5, 6]})

    answers = {
        ("*", "/claim"): CLAIM,
        ("*", "/capabilities"): SNAPSHOT,
        ("*", "/set_image"): slow_image,
        ("*", "/set_target_buffer"): {},
    }
    answers[("*", "/heartbeat")] = heartbeat
    session = RemoteSession("http://a:1", transport=scripted(answers), heartbeat_seconds=0.1)
    t0 = time.perf_counter()
    session.set_image(np.ones((4, 5, 6), np.float32))
    during = [b for b in beats if t0 < b < t0 + 1.0]
    session.close()
    assert len(during) >= 3  # beats kept going while the upload waited


def test_capabilities_from_reads_our_extension():
    snap = json.loads(json.dumps(SNAPSHOT))
    snap["napari_nninteractive"] = {"undo_levels": None, "redo": True, "engine": "weight-free", "device": "cpu"}
    caps = capabilities_from(snap, "http://x:1")
    assert caps.undo_depth is None and caps.redo and caps.name == "weight-free" and caps.device == "cpu"
    snap["supports_undo"] = False
    assert capabilities_from(snap, "http://x:1").undo_depth == 0
    snap["license"] = "!!MISSING!!"
    assert capabilities_from(snap, "http://x:1").licence is None
