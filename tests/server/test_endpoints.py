"""Every endpoint's happy path with the weight-free engine; the mirror equals a local session step by step."""

from __future__ import annotations

import json
import struct

import numpy as np

from napari_nninteractive.core.engines.registry import make_engine
from napari_nninteractive.core.session import Session
from napari_nninteractive.server import ServerConfig, weight_free_source

from .conftest import AUTH, KEY, Lease, server_buffer, serving, volume


def _same(local: Session, lease: Lease, host) -> None:
    assert lease.mirror is not None
    np.testing.assert_array_equal(lease.mirror, local.mask)
    np.testing.assert_array_equal(server_buffer(host, lease), lease.mirror)


def test_prediction_responses_mirror_a_local_session(app_client):
    host, client = app_client
    image = volume()
    lease = Lease(client, AUTH)
    lease.start(image)
    local = Session(make_engine(engine="weight-free"))
    local.set_image(image)

    meta = lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
    local.add_point((12, 20, 20))
    assert meta["ran_prediction"] and meta["bbox"] is not None
    _same(local, lease, host)

    lease.act("/add_bbox_interaction", {"bbox_coords": [[12, 13], [9, 31], [10, 30]], "include_interaction": True})
    local.add_bbox([[12, 13], [9, 31], [10, 30]])
    _same(local, lease, host)

    crop = np.zeros((3, 4, 4), np.uint8)
    crop[1, 1:3, 1:3] = 1
    box = [[10, 13], [2, 6], [2, 6]]
    meta = {"include_interaction": False, "interaction_bbox": box}
    lease.act_upload("/add_scribble_interaction", crop, meta)
    local.add_scribble(crop, positive=False, bbox=tuple(map(tuple, box)))
    _same(local, lease, host)

    lasso = np.zeros(image.shape, np.uint8)
    lasso[13, 8:32, 8:32] = 1
    queued = lease.act_upload("/add_lasso_interaction", lasso, {"include_interaction": True, "run_prediction": False})
    assert queued == {"ran_prediction": False, "bbox": None}
    local.add_lasso(lasso, run=False)
    queued = lease.act(
        "/add_point_interaction",
        {"coordinates": [11.6, 19.4, 20], "include_interaction": True, "run_prediction": False},
    )
    assert queued == {"ran_prediction": False, "bbox": None}
    local.add_point((12, 19, 20), run=False)
    assert lease.act("/predict", {})["ran_prediction"] is True
    local.predict()
    _same(local, lease, host)
    assert lease.act("/predict", {"force_full_refine": True}) == {"ran_prediction": False, "bbox": None}

    assert lease.act("/undo", {})["ran_prediction"] is True
    local.undo()
    _same(local, lease, host)
    assert lease.act("/redo")["ran_prediction"] is True
    local.redo()
    _same(local, lease, host)

    assert lease.post("/reset_interactions", {}).json() == {}
    lease.mirror[...] = 0  # sync rule 3: the client zeroes its own copy
    local.reset_object()
    _same(local, lease, host)
    assert not lease.mirror.any()

    seg = np.zeros(image.shape, np.uint8)
    seg[8:16, 12:28, 12:28] = 1
    assert lease.act_upload("/add_initial_seg_interaction", seg, {}) == {"ran_prediction": False, "bbox": None}
    lease.mirror[...] = seg  # sync rule 4
    local.set_initial_mask(seg)
    _same(local, lease, host)

    lease.mirror[...] = seg
    meta = lease.act_upload("/add_initial_seg_interaction", seg, {"run_prediction": True})
    assert meta["ran_prediction"] is True
    local.set_initial_mask(seg, refine=True)
    _same(local, lease, host)


def test_undo_redo_ran_flags_and_queued_prompts(lease):
    assert lease.act("/undo", {}) == {"ran_prediction": False, "bbox": None}
    assert lease.act("/redo") == {"ran_prediction": False, "bbox": None}
    lease.act(
        "/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True, "run_prediction": False}
    )
    # undoing a queued prompt changes no voxel: ran, but no box (as the reference)
    assert lease.act("/undo", {}) == {"ran_prediction": True, "bbox": None}
    assert lease.act("/predict", {}) == {"ran_prediction": False, "bbox": None}  # nothing queued any more
    first = lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
    assert lease.mirror.any()
    undone = lease.act("/undo", {})
    assert undone["bbox"] == first["bbox"] and not lease.mirror.any()  # tight box of what flipped back
    assert lease.act("/redo")["bbox"] == first["bbox"]


def test_empty_scribble_adds_nothing_and_echoes_run(lease):
    empty = np.zeros(lease.mirror.shape, np.uint8)
    assert lease.act_upload("/add_scribble_interaction", empty, {"include_interaction": True}) == {
        "ran_prediction": True,
        "bbox": None,
    }


def test_empty_initial_seg_clears_the_object(lease):
    lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
    empty = np.zeros(lease.mirror.shape, np.uint8)
    meta = lease.act_upload("/add_initial_seg_interaction", empty, {"run_prediction": True})
    assert meta["ran_prediction"] is True and meta["bbox"] is not None
    assert not lease.mirror.any()


def test_set_image_wipes_the_buffer_and_set_target_buffer_zeroes_the_object(app_client):
    host, client = app_client
    lease = Lease(client, AUTH)
    lease.start(volume())
    lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
    assert lease.post("/set_target_buffer", {"shape": [24, 40, 40], "dtype": "<i2"}).json() == {}
    buffer = server_buffer(host, lease)
    assert buffer.dtype == np.int16 and not buffer.any()
    assert not host.registry.peek(lease.token).session.core.mask.any()
    lease.mirror = np.zeros((24, 40, 40), np.int16)
    meta = lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
    assert meta["dtype"] == "int16"
    np.testing.assert_array_equal(server_buffer(host, lease), lease.mirror)

    assert lease.upload("/set_image", volume((20, 30, 30))[None], image=True).status_code == 200
    reply = lease.post("/add_point_interaction", {"coordinates": [5, 5, 5], "include_interaction": True})
    assert reply.status_code == 400 and "set_target_buffer" in reply.json()["detail"]


def test_set_do_autozoom_is_per_session(app_client):
    _, client = app_client
    lease = Lease(client, AUTH)
    assert lease.post("/set_do_autozoom", {"do_autozoom": False}).json() == {}
    assert lease.post("/set_do_autozoom", {"do_autozoom": "no"}).status_code == 400


def test_wire_format_of_a_response(app_client):
    _, client = app_client
    lease = Lease(client, AUTH)
    lease.start(volume(), dtype="uint16")
    reply = lease.post("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
    meta = json.loads(reply.headers["x-meta"])
    body = reply.content
    assert body[:4] == b"NNIA" and body[4] == 1 and body[5] in (1, 2) and body[6] == 3
    n = body[7]
    assert body[8 : 8 + n] == b"uint16"
    shape = struct.unpack_from("<3q", body, 8 + n)
    assert list(shape) == meta["shape"]
    pos = 8 + n + 24
    (nchunks,) = struct.unpack_from("<I", body, pos)
    ulen, clen = struct.unpack_from("<QQ", body, pos + 4)
    chunk = body[pos + 20 : pos + 20 + clen]
    assert nchunks == 1 and ulen == int(np.prod(shape)) * 2 and len(body) == pos + 20 + clen  # nothing trailing
    assert chunk[3] == 2  # blosc2 typesize == item size
    assert struct.unpack_from("<i", chunk, 4)[0] == ulen and struct.unpack_from("<i", chunk, 12)[0] == clen
    assert reply.headers["x-meta"] == json.dumps(meta, separators=(",", ":"))  # compact ASCII


def test_capability_snapshot_and_lease_endpoints(app_client):
    host, client = app_client
    caps = client.get("/capabilities", headers=AUTH).json()
    assert caps["supported_interactions"] == {
        "points": True,
        "bbox2d": True,
        "bbox3d": True,
        "scribble": True,
        "lasso": True,
    }
    assert caps["channel_mapping"] == {
        "prev_seg": 0,
        "bbox": [1, 2],
        "lasso": [1, 2],
        "point": [3, 4],
        "scribble": [5, 6],
    }
    assert caps["num_interaction_channels"] == 7
    assert caps["supports_initial_label"] is caps["supports_zero_shot_label_refinement"] is True
    assert caps["preferred_scribble_thickness"] == [2, 2, 2]
    assert caps["interaction_decay"] is None and caps["patch_size"] is None
    assert caps["do_autozoom"] is True and caps["supports_undo"] is True
    assert caps["inference_session_version"] == "2.6.0" and caps["license"] == "!!MISSING!!"
    ext = caps["napari_nninteractive"]
    assert ext["undo_levels"] is None and ext["redo"] is True and ext["device"] == "cpu" and ext["engine"]

    claim = client.post("/claim", headers=AUTH)
    assert claim.text.startswith('{"lease_token": "')  # written with spaces, as the reference
    token = claim.json()["lease_token"]
    assert len(token) == 32 and int(token, 16) >= 0 and token == token.lower()
    assert claim.json()["idle_timeout_seconds"] == 600.0 and claim.json()["max_sessions"] == 3
    headers = {**AUTH, "X-Lease-Token": token}
    assert 599 < client.post("/heartbeat", headers=headers, json={}).json()["remaining_seconds"] <= 600
    status = client.get("/lease_status", headers=headers).json()
    assert status["idle_timeout_seconds"] == 600.0
    assert client.get("/healthz").json() == {"ok": True}
    for _ in range(2):
        assert client.post("/release", headers=headers).json() == {"released": True}
    assert client.post("/release", headers=AUTH).json() == {"released": True}
    assert len(host.registry) == 0


def test_capabilities_follow_the_options():
    config = ServerConfig(api_key=KEY, undo=False, autozoom=False)
    with serving(config, weight_free_source()) as (_, client):
        caps = client.get("/capabilities", headers=AUTH).json()
        assert caps["supports_undo"] is False and caps["do_autozoom"] is False
        assert caps["napari_nninteractive"]["undo_levels"] == 0 and caps["napari_nninteractive"]["redo"] is False
        lease = Lease(client, AUTH)
        lease.start(volume())
        lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
        assert lease.act("/undo", {}) == {"ran_prediction": False, "bbox": None}


def test_metrics_text(lease):
    lease.act("/add_point_interaction", {"coordinates": [12, 20, 20], "include_interaction": True})
    client = lease.http
    assert client.get("/metrics").status_code == 401
    reply = client.get("/metrics", headers=AUTH)
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert "nninteractive_sessions 1\n" in text
    assert "nninteractive_device_queue_length 0\n" in text
    assert "nninteractive_prediction_seconds_count 1\n" in text
    assert 'nninteractive_prediction_seconds_bucket{le="+Inf"} 1\n' in text
    assert 'nninteractive_requests_total{path="/add_point_interaction",status="200"} 1\n' in text
    assert 'nninteractive_requests_total{path="/metrics",status="401"} 1\n' in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.split()) == 2


def test_initial_segmentation_values_are_kept_as_a_client_mirrors_them():
    """The official client copies the segmentation as it is into its buffer: the server's must match."""
    with serving() as (host, client):
        lease = Lease(client, AUTH)
        lease.start(volume())
        assert lease.mirror is not None
        seg = np.zeros(lease.mirror.shape, np.uint8)
        seg[10:14, 15:25, 15:25] = 255
        meta = lease.act_upload("/add_initial_seg_interaction", seg, {})
        assert meta == {"ran_prediction": False, "bbox": None}
        lease.mirror[...] = seg  # sync rule 4: the client copies the segmentation itself
        np.testing.assert_array_equal(server_buffer(host, lease), lease.mirror)
        assert host.registry.peek(lease.token).session.core.read_mask().sum() == int((seg != 0).sum())
