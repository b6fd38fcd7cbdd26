"""Fixtures for the server tests: in-process apps, a protocol-level test client that mirrors the buffer, images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from napari_nninteractive.core.remote.wire import decode, encode
from napari_nninteractive.server import Host, ServerConfig, create_app, network_source, weight_free_source
from napari_nninteractive.server.engines import EngineSource
from napari_nninteractive.testing import write_model_folder

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def volume(shape=(24, 40, 40), seed=0) -> np.ndarray:
    """A bright box on a noisy background, ``(X, Y, Z)`` float32."""
    rng = np.random.default_rng(seed)
    img = rng.normal(10, 2, shape).astype(np.float32)
    x, y, z = (s // 2 for s in shape)
    img[x - 6 : x + 6, y - 9 : y + 9, z - 8 : z + 8] += 90
    return img


class Lease:
    """One claimed session, spoken to in raw HTTP; keeps the client's mirror of the target buffer."""

    def __init__(self, http: Any, headers: dict[str, str] | None = None):
        self.http = http
        self.auth = dict(headers or {})
        reply = http.post("/claim", headers=self.auth)
        assert reply.status_code == 200, reply.text
        self.token = reply.json()["lease_token"]
        self.headers = {**self.auth, "X-Lease-Token": self.token}
        self.mirror: np.ndarray | None = None

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.http.post(path, json=body, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def upload(self, path: str, array: np.ndarray, meta: dict[str, Any] | None = None, image: bool = False) -> Any:
        headers = dict(self.headers)
        if meta is not None:
            headers["X-Meta"] = json.dumps(meta, separators=(",", ":"))
        headers["Content-Type"] = "application/octet-stream"
        return self.http.post(path, content=encode(array, image=image), headers=headers)

    def start(self, image: np.ndarray, dtype: str = "uint8") -> None:
        """``set_image`` and ``set_target_buffer`` as a client must send them; the mirror starts at zero."""
        reply = self.upload("/set_image", image[None], image=True)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"original_image_shape": [1, *image.shape]}
        reply = self.post("/set_target_buffer", {"shape": list(image.shape), "dtype": dtype})
        assert reply.status_code == 200, reply.text
        self.mirror = np.zeros(image.shape, dtype=dtype)

    def apply(self, reply: Any) -> dict[str, Any]:
        """Check a prediction response and paste it into the mirror (the protocol's sync rule 2)."""
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/octet-stream"
        meta = json.loads(reply.headers["x-meta"])
        if meta["bbox"] is None:
            assert reply.content == b""
            return meta
        assert meta["ran_prediction"] is True
        box = tuple(slice(lo, hi) for lo, hi in meta["bbox"])
        values = decode(reply.content)
        assert list(values.shape) == meta["shape"] == [hi - lo for lo, hi in meta["bbox"]]
        assert values.dtype.name == meta["dtype"]
        assert self.mirror is not None
        self.mirror[box] = values
        return meta

    def act(self, path: str, body: Any = None) -> dict[str, Any]:
        return self.apply(self.post(path, body))

    def act_upload(self, path: str, array: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
        return self.apply(self.upload(path, array, meta))


def server_buffer(host: Host, lease: Lease) -> np.ndarray:
    buffer = host.registry.peek(lease.token).session.buffer
    assert buffer is not None
    return buffer


@contextmanager
def serving(
    config: ServerConfig | None = None, source: EngineSource | None = None
) -> Iterator[tuple[Host, TestClient]]:
    """An app on an in-process test client (its lifespan started), with the test key unless ``config`` says otherwise."""
    host = Host(config or ServerConfig(api_key=KEY), source or weight_free_source())
    with TestClient(create_app(host), raise_server_exceptions=False) as client:
        yield host, client


@pytest.fixture
def app_client() -> Iterator[tuple[Host, TestClient]]:
    with serving() as pair:
        yield pair


@pytest.fixture
def lease(app_client) -> Lease:
    _, client = app_client
    started = Lease(client, AUTH)
    started.start(volume())
    return started


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory) -> Path:
    """A tiny random-weight model folder with a 32^3 patch (legacy metadata: every kind, 2-D boxes only)."""
    return write_model_folder(tmp_path_factory.mktemp("server_models") / "tiny32", patch_size=(32, 32, 32))


@pytest.fixture(scope="session")
def tiny_source(small_model_dir) -> EngineSource:
    """The network of :func:`small_model_dir`, loaded once, on the CPU."""
    return network_source(small_model_dir, device="cpu")
