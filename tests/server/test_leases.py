"""Leases: clocks, expiry, capacity, the in-flight guard, concurrency; a real server in a thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from napari_nninteractive.core.engines.registry import make_engine
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.session import Session
from napari_nninteractive.server import BackgroundServer, EngineSource, ServerConfig
from napari_nninteractive.server.errors import AtCapacity, LeaseError
from napari_nninteractive.server.hosting import Registry

from .conftest import AUTH, KEY, Lease, serving, volume

POINT = {"coordinates": [12, 20, 20], "include_interaction": True}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_registry_clocks_reaping_and_the_in_flight_guard():
    clock = _Clock()
    registry = Registry(ServerConfig(max_sessions=3, liveness_timeout=60, idle_timeout=600), object, clock=clock)
    dead, idle, busy = (registry.claim() for _ in range(3))
    with pytest.raises(AtCapacity, match=r"server is at capacity \(3 sessions\)") as caught:
        registry.claim()
    assert caught.value.status == 503 and caught.value.headers == {"Retry-After": "10"}
    for t in range(50, 651, 50):  # idle and busy heartbeat (seen only); busy acts
        clock.now = float(t)
        for hosted in (idle, busy):
            with registry.use(hosted.token, active=hosted is busy):
                pass
        assert registry.remaining(registry.peek(idle.token)) == max(0.0, 600 - t)
    clock.now = 650.5
    with registry.use(busy.token):
        assert registry.sweep() == [(dead.token, "dead"), (idle.token, "idle")]
        clock.now = 10_000.0
        assert registry.sweep() == []  # a request in flight: never reaped
    assert registry.sweep() == [(busy.token, "dead")]
    for token in (dead.token, "", None):
        registry.release(token)  # idempotent
        with pytest.raises(LeaseError):
            registry.peek(token)
    assert len(registry) == 0 and len({dead.token, idle.token, busy.token}) == 3


def test_expired_sessions_get_410_and_capacity_503():
    config = ServerConfig(api_key=KEY, max_sessions=2, liveness_timeout=0.3, idle_timeout=0.6, sweep_seconds=0.02)
    with serving(config) as (host, client):
        a, b = Lease(client, AUTH), Lease(client, AUTH)
        reply = client.post("/claim", headers=AUTH)
        assert reply.status_code == 503 and reply.headers["retry-after"] == "10"
        assert reply.json() == {"detail": "server is at capacity (2 sessions)"}
        deadline = time.monotonic() + 1.5
        while len(host.registry) and time.monotonic() < deadline:
            assert b.post("/heartbeat", {}).status_code in (200, 410)  # b stays alive but idle
            time.sleep(0.05)
        # heartbeats prove liveness only: both are gone, a as dead and b as idle
        for lease in (a, b):
            reply = lease.post("/heartbeat", {})
            assert reply.status_code == 410 and reply.json() == {"detail": "lease expired or unknown"}
        assert Lease(client, AUTH).token  # a slot is free again
        text = client.get("/metrics", headers=AUTH).text
        assert 'nninteractive_sessions_ended_total{reason="dead"} 1' in text
        assert 'nninteractive_sessions_ended_total{reason="idle"} 1' in text


class _Slow(SeededWatershedEngine):
    """The weight-free engine, ``delay`` seconds slower per prediction."""

    delay = 0.8

    def _predict(self, mask, new, control):
        time.sleep(self.delay)
        return super()._predict(mask, new, control)


@pytest.mark.slow
def test_in_flight_requests_are_never_reaped_and_heartbeats_answer_at_once():
    config = ServerConfig(api_key=KEY, liveness_timeout=0.25, idle_timeout=5.0, sweep_seconds=0.02)
    with (
        BackgroundServer(config, EngineSource.probe(_Slow)) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        assert server.url.startswith("http://127.0.0.1:")
        lease, other = Lease(http, AUTH), Lease(http, AUTH)
        lease.start(volume())
        other.start(volume())
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(lease.post, "/add_point_interaction", POINT)
            time.sleep(0.15)
            start = time.monotonic()
            assert other.post("/heartbeat", {}).status_code == 200
            assert http.get("/healthz").status_code == 200
            assert time.monotonic() - start < 0.3  # not behind the prediction
            queued = pool.submit(other.post, "/add_point_interaction", POINT)
            time.sleep(0.25)
            for held in (lease, other):  # both past their liveness timeout, but in flight
                server.host.registry.peek(held.token)
            assert "nninteractive_device_queue_length 2" in http.get("/metrics", headers=AUTH).text
            assert slow.result().status_code == 200
            assert queued.result().status_code == 200  # waited for the device, FIFO
        deadline = time.monotonic() + 2
        while len(server.host.registry) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(server.host.registry) == 0  # reaped once nothing is in flight
        assert lease.post("/heartbeat", {}).status_code == 410


def test_release_during_a_request_lets_it_finish():
    with serving(ServerConfig(api_key=KEY), EngineSource.probe(_Slow)) as (_host, client):
        lease = Lease(client, AUTH)
        lease.start(volume())
        done = []
        worker = threading.Thread(target=lambda: done.append(lease.post("/add_point_interaction", POINT)))
        worker.start()
        time.sleep(0.2)
        assert lease.post("/release").json() == {"released": True}
        worker.join(10)
        assert done[0].status_code == 200
        assert lease.post("/undo", {}).status_code == 410


def test_concurrent_sessions_do_not_see_each_other():
    images = [volume(seed=1), volume((20, 36, 32), seed=2)]
    points = [[12, 20, 20], [10, 18, 16]]
    with BackgroundServer(ServerConfig(api_key=KEY)) as server, httpx.Client(base_url=server.url, timeout=30) as http:

        def one(i: int) -> tuple[np.ndarray, np.ndarray]:
            lease = Lease(http, AUTH)
            lease.start(images[i])
            local = Session(make_engine(engine="weight-free"))
            local.set_image(images[i])
            for positive in (True, False, True):
                lease.act("/add_point_interaction", {"coordinates": points[i], "include_interaction": positive})
                local.add_point(points[i], positive)
            return lease.mirror, local.mask

        with ThreadPoolExecutor(2) as pool:
            for mirror, local in pool.map(one, range(2)):
                np.testing.assert_array_equal(mirror, local)
