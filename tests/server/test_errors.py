"""Every client mistake gets a 4xx with a clear detail, never a 500; auth and check order as the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_nninteractive.core.engines.base import EngineError
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.server import EngineSource, ServerConfig

from .conftest import AUTH, KEY, Lease, serving, volume

POINT = {"coordinates": [12, 20, 20], "include_interaction": True}


def detail(reply, status: int) -> str:
    assert reply.status_code == status, reply.text
    return reply.json()["detail"]


def test_auth(app_client):
    _, client = app_client
    assert client.get("/healthz").json() == {"ok": True}
    for headers in (
        {},
        {"Authorization": "bearer test-key"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ):
        reply = client.get("/capabilities", headers=headers)
        assert detail(reply, 401) == "Missing bearer token"
        assert "www-authenticate" not in reply.headers
    for value in ("Bearer wrong", "Bearer  test-key", "Bearer test-key "):
        assert detail(client.post("/claim", headers={"Authorization": value}), 401) == "Invalid bearer token"
    assert client.post("/claim", headers=AUTH).status_code == 200


def test_no_key_means_no_auth():
    with serving(ServerConfig(api_key="")) as (_, client):
        assert client.post("/claim").status_code == 200


def test_check_order(app_client):
    _, client = app_client
    # malformed JSON is refused before auth
    reply = client.post("/predict", content=b"{nope", headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and reply.json()["detail"][0]["type"] == "json_invalid"
    # then auth, then the lease, then the fields
    assert reply.status_code == 422
    assert detail(client.post("/add_point_interaction", json={}), 401) == "Missing bearer token"
    assert detail(client.post("/add_point_interaction", json={}, headers=AUTH), 410) == "lease token missing"
    reply = client.post("/add_point_interaction", json={}, headers={**AUTH, "X-Lease-Token": "0" * 32})
    assert detail(reply, 410) == "lease expired or unknown"
    assert detail(client.post("/heartbeat", headers=AUTH), 410) == "lease token missing"
    assert (
        detail(client.get("/lease_status", headers={**AUTH, "X-Lease-Token": "x"}), 410) == "lease expired or unknown"
    )


def test_json_endpoints_need_a_json_object(lease):
    for content, ctype in (
        (b'{"do_autozoom": true}', "text/plain"),
        (b'{"do_autozoom": true}', None),
        (b"", "application/json"),
        (b"[1]", "application/json"),
    ):
        headers = dict(lease.headers)
        if ctype:
            headers["Content-Type"] = ctype
        reply = lease.http.post("/set_do_autozoom", content=content, headers=headers)
        assert reply.status_code == 422 and isinstance(reply.json()["detail"], list), (ctype, reply.text)


@pytest.mark.parametrize(
    "path, body, words",
    [
        ("/add_point_interaction", {"include_interaction": True}, "coordinates"),
        ("/add_point_interaction", {"coordinates": [1, 2, 3]}, "include_interaction"),
        ("/add_point_interaction", {"coordinates": [1, 2], "include_interaction": True}, "coordinates"),
        ("/add_point_interaction", {"coordinates": [1, 2, "a"], "include_interaction": True}, "coordinates"),
        ("/add_point_interaction", {"coordinates": [99, 2, 3], "include_interaction": True}, "outside"),
        ("/add_point_interaction", {**POINT, "run_prediction": "yes"}, "run_prediction"),
        ("/add_bbox_interaction", {"include_interaction": True}, "bbox_coords"),
        (
            "/add_bbox_interaction",
            {"bbox_coords": [[5, 5], [1, 9], [1, 9]], "include_interaction": True},
            "zero extent",
        ),
        ("/add_bbox_interaction", {"bbox_coords": [[1, 2], [1, 9]], "include_interaction": True}, "bbox_coords"),
        ("/predict", {"force_full_refine": 1}, "force_full_refine"),
        ("/set_do_autozoom", {}, "do_autozoom"),
        ("/set_target_buffer", {"dtype": "uint8"}, "missing required field: shape"),
        ("/set_target_buffer", {"shape": [24, 40, 40]}, "missing required field: dtype"),
        ("/set_target_buffer", {"shape": [24, 40], "dtype": "uint8"}, "shape must be 3D"),
        ("/set_target_buffer", {"shape": [24, 40, True], "dtype": "uint8"}, "shape must contain only integers"),
        ("/set_target_buffer", {"shape": [24, 40, 0], "dtype": "uint8"}, "shape dimensions must be positive"),
        ("/set_target_buffer", {"shape": [24, 40, 40], "dtype": "nonsense"}, "invalid dtype: 'nonsense'"),
        ("/set_target_buffer", {"shape": [24, 40, 40], "dtype": 3}, "invalid dtype"),
        (
            "/set_target_buffer",
            {"shape": [24, 40, 40], "dtype": "float32"},
            "target buffer must be bool or an integer type",
        ),
        ("/set_target_buffer", {"shape": [24, 40, 41], "dtype": "uint8"}, "differs from the image"),
    ],
)
def test_bad_fields_are_400(lease, path, body, words):
    assert words in detail(lease.post(path, body), 400)


def test_target_buffer_over_the_cap_is_413():
    with serving(ServerConfig(api_key=KEY, max_buffer_bytes=1000)) as (_, client):
        lease = Lease(client, AUTH)
        reply = lease.post("/set_target_buffer", {"shape": [10, 10, 11], "dtype": "uint8"})
        assert detail(reply, 413) == "target buffer would require 1100 bytes, limit is 1000 bytes"


def test_binary_mistakes_are_400(lease):
    mask = np.zeros(lease.mirror.shape, np.uint8)
    mask[12, 20, 20] = 1
    good = lease.upload("/add_scribble_interaction", mask, {"include_interaction": True})
    body = good.request.content
    assert good.status_code == 200
    cases = [
        (body, "{not json", "Bad X-Meta"),
        (body, "[" * 5000, "Bad X-Meta"),
        (body, None, "include_interaction"),
        (b"", '{"include_interaction": true}', "at least 8"),
        (b"XXXX" + body[4:], '{"include_interaction": true}', "magic"),
        (body[:5] + b"\x07" + body[6:], '{"include_interaction": true}', "codec"),
        (body[:-10], '{"include_interaction": true}', "truncated"),
        (body, '{"include_interaction": true, "interaction_bbox": [[0, 1], [0, 1]]}', "interaction_bbox"),
        (body, '{"include_interaction": true, "interaction_bbox": [[0, 2], [0, 2], [0, 2]]}', "mask has shape"),
    ]
    for content, meta, words in cases:
        headers = dict(lease.headers)
        if meta is not None:
            headers["X-Meta"] = meta
        reply = lease.http.post("/add_scribble_interaction", content=content, headers=headers)
        assert words in detail(reply, 400), (meta, words)
    small = np.zeros((3, 3, 3), np.uint8)
    assert "segmentation has shape" in detail(lease.upload("/add_initial_seg_interaction", small, {}), 400)


def test_no_image_and_no_buffer_are_400(app_client):
    _, client = app_client
    lease = Lease(client, AUTH)
    assert "no image; call set_image" in detail(lease.post("/add_point_interaction", POINT), 400)
    assert "no image" in detail(lease.post("/predict", {}), 400)
    assert "no image" in detail(lease.post("/reset_interactions", {}), 400)
    assert "no image" in detail(lease.post("/set_target_buffer", {"shape": [2, 2, 2], "dtype": "uint8"}), 400)
    assert lease.upload("/set_image", volume()[None], image=True).status_code == 200
    assert "no target buffer" in detail(lease.post("/add_point_interaction", POINT), 400)
    assert "no target buffer" in detail(
        lease.upload("/add_lasso_interaction", np.ones((24, 40, 40)), {"include_interaction": True}), 400
    )
    # a failed set_image leaves no image, and says why on every later call
    assert "4-D" in detail(lease.upload("/set_image", volume(), image=True), 400)
    assert "no image" in detail(lease.post("/set_target_buffer", {"shape": [24, 40, 40], "dtype": "uint8"}), 400)
    zero = np.zeros((1, 8, 8, 8), np.float32)
    assert "zero" in detail(lease.upload("/set_image", zero, image=True), 400)
    later = detail(lease.post("/set_target_buffer", {"shape": [8, 8, 8], "dtype": "uint8"}), 400)
    assert "last set_image failed" in later and "zero" in later
    assert detail(lease.http.post("/set_image", content=b"junk", headers=lease.headers), 400)
    assert lease.post("/undo", {}).status_code == 200  # nothing to undo is not an error


def test_body_limits():
    with serving(ServerConfig(api_key=KEY, max_upload_bytes=2000)) as (_, client):
        lease = Lease(client, AUTH)
        big = np.random.default_rng(0).random((1, 10, 10, 10))
        reply = lease.upload("/set_image", big, image=True)
        words = detail(reply, 413)
        assert words.startswith("image too large") and "--max-upload-mb" in words

        def chunks():
            for _ in range(10):
                yield b"x" * 500

        reply = client.post("/add_scribble_interaction", content=chunks(), headers=lease.headers)
        assert "upload too large" in detail(reply, 413)
        reply = lease.post("/add_point_interaction", {"coordinates": [1] * 600_000, "include_interaction": True})
        assert "too large" in detail(reply, 413)
        reply = lease.http.post(
            "/predict", content=b"[" * 40 + b"]" * 40, headers={**lease.headers, "Content-Type": "application/json"}
        )
        assert "deeper than 32" in detail(reply, 400)
        nested = {"force_full_refine": False}
        for _ in range(20):
            nested = {"x": nested}
        assert lease.post("/predict", nested).status_code == 400  # within depth: an unknown field is fine, no image


def test_unknown_path_and_method(app_client):
    _, client = app_client
    assert detail(client.get("/nope", headers=AUTH), 404) == "Not Found"
    reply = client.get("/claim", headers=AUTH)
    assert reply.status_code == 405 and "POST" in reply.headers["allow"]


class _Broken(SeededWatershedEngine):
    def __init__(self, error: Exception):
        super().__init__()
        self.error = error

    def _predict(self, mask, new, control):
        raise self.error


@pytest.mark.parametrize(
    "error, words",
    [
        (RuntimeError("boom"), "internal server error; see the server log"),
        (EngineError("the GPU is on fire"), "GPU is on fire"),
    ],
)
def test_server_faults_are_500_json(error, words, caplog):
    source = EngineSource.probe(lambda: _Broken(error))
    with serving(ServerConfig(api_key=KEY), source) as (_, client):
        lease = Lease(client, AUTH)
        lease.start(volume())
        reply = lease.post("/add_point_interaction", POINT)
        assert words in detail(reply, 500)
        # the prompt stays queued and the session keeps working
        assert lease.post("/heartbeat", {}).status_code == 200
        assert (
            json.loads(lease.post("/add_point_interaction", {**POINT, "run_prediction": False}).headers["x-meta"])[
                "ran_prediction"
            ]
            is False
        )
