"""The HTTP surface: every endpoint of the nnInteractive remote protocol 2.6.0, plus ``/redo`` and ``/metrics``.

:func:`create_app` wires a :class:`~.host.Host` into a FastAPI app. The order of checks is the
reference's: a JSON body is parsed first (422 for malformed JSON or a wrong ``Content-Type``),
then the bearer key (401), then the lease (410), then the fields (400). Lease-only endpoints
(``heartbeat``, ``lease_status``, ``release``, ``claim``, ``capabilities``, ``healthz``) run on the
event loop and never wait for a session, so they answer at once while a prediction runs;
actions run in worker threads under their session's lock, and engine runs on the one device
thread.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Body, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..core.engines.base import EngineError
from ..core.errors import UserError
from ..core.prompts import PromptKind
from ..core.remote.protocol import BINARY, LEASE_HEADER, META_HEADER, meta_header
from .errors import status_of
from .host import Host
from .middleware import Guard
from .observe import PROMETHEUS
from .sessions import Prediction, ServerSession

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Endpoints whose body is one NNIA array (parameters in ``X-Meta``).
BINARY_PATHS = ("/set_image", "/add_scribble_interaction", "/add_lasso_interaction", "/add_initial_seg_interaction")
#: A JSON endpoint's body: an object, parsed by FastAPI (422 for malformed JSON or another Content-Type).
JsonBody = Annotated[dict[str, Any], Body()]
MISSING_KEY, INVALID_KEY = "Missing bearer token", "Invalid bearer token"
Upload = Callable[[ServerSession, bytes, str | None, Callable[[], None]], T]


def prediction_response(prediction: Prediction) -> Response:
    """200 ``application/octet-stream`` with ``X-Meta``; the body is empty when ``bbox`` is null."""
    return Response(prediction.body, media_type=BINARY, headers={META_HEADER: meta_header(prediction.meta())})


def create_app(host: Host) -> FastAPI:
    """The FastAPI app serving ``host``; its startup starts the reaper, its shutdown closes ``host``."""
    registry = host.registry
    api_key = (host.config.api_key or "").encode("utf-8")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        host.start()
        try:
            yield
        finally:
            host.close()

    app = FastAPI(
        title="nninteractive-serve",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    async def require_key(request: Request) -> None:
        """The bearer check: ``Bearer `` exactly, then the key compared in constant time."""
        if not api_key:
            return
        value = request.headers.get("authorization")
        if value is None or not value.startswith("Bearer "):
            raise HTTPException(401, MISSING_KEY)
        if not hmac.compare_digest(value[7:].encode("latin-1", "replace"), api_key):
            raise HTTPException(401, INVALID_KEY)

    auth = [Depends(require_key)]

    async def act(request: Request, work: Callable[[ServerSession], T]) -> T:
        """An action with a JSON body (already received): stamps *seen* and *active*, runs ``work`` under the lock."""
        with registry.use(request.headers.get(LEASE_HEADER), active=True) as hosted:

            def locked() -> T:
                with registry.busy(hosted), hosted.lock:
                    return work(hosted.session)

            return await run_in_threadpool(locked)

    async def upload(request: Request, work: Upload[T]) -> T:
        """An action whose body is an NNIA array: *active* is stamped once the array is decoded."""
        with registry.use(request.headers.get(LEASE_HEADER)) as hosted:
            body = await request.body()
            meta = request.headers.get(META_HEADER)

            def locked() -> T:
                with registry.busy(hosted), hosted.lock:
                    return work(hosted.session, body, meta, lambda: registry.touch_active(hosted))

            return await run_in_threadpool(locked)

    # ------------------------------------------------------------------ errors

    @app.exception_handler(EngineError)
    async def engine_failed(_: Request, exc: Exception) -> JSONResponse:
        log.warning("the engine failed: %s", exc)
        return JSONResponse({"detail": f"the prediction failed on the server: {exc}"}, status_code=500)

    @app.exception_handler(UserError)
    async def client_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc), headers=getattr(exc, "headers", None))

    @app.exception_handler(MemoryError)
    async def out_of_memory(_: Request, exc: Exception) -> JSONResponse:
        log.error("out of memory while serving a request")
        return JSONResponse({"detail": "the server ran out of memory; send a smaller image"}, status_code=500)

    # ------------------------------------------------------------------ server and leases

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/capabilities", dependencies=auth)
    async def capabilities() -> dict[str, Any]:
        return host.capabilities

    @app.get("/metrics", dependencies=auth)
    async def metrics() -> Response:
        return Response(host.metrics_text(), media_type=PROMETHEUS)

    @app.post("/claim", dependencies=auth)
    async def claim() -> Response:
        hosted = await run_in_threadpool(registry.claim)
        cfg = host.config
        reply = {
            "lease_token": hosted.token,
            "idle_timeout_seconds": float(cfg.idle_timeout),
            "liveness_timeout_seconds": float(cfg.liveness_timeout),
            "max_sessions": cfg.max_sessions,
        }
        return Response(json.dumps(reply), media_type="application/json")  # ", " and ": " as the reference

    @app.post("/release", dependencies=auth)
    async def release(request: Request) -> dict[str, bool]:
        registry.release(request.headers.get(LEASE_HEADER))
        return {"released": True}

    @app.post("/heartbeat", dependencies=auth)
    async def heartbeat(request: Request) -> dict[str, float]:
        with registry.use(request.headers.get(LEASE_HEADER)) as hosted:
            return {"remaining_seconds": registry.remaining(hosted)}

    @app.get("/lease_status", dependencies=auth)
    async def lease_status(request: Request) -> dict[str, float]:
        hosted = registry.peek(request.headers.get(LEASE_HEADER))
        return {
            "remaining_seconds": registry.remaining(hosted),
            "idle_timeout_seconds": float(host.config.idle_timeout),
        }

    # ------------------------------------------------------------------ session state

    @app.post("/set_image", dependencies=auth)
    async def set_image(request: Request) -> dict[str, Any]:
        return await upload(request, ServerSession.set_image)

    @app.post("/set_target_buffer", dependencies=auth)
    async def set_target_buffer(request: Request, body: JsonBody) -> dict[str, Any]:
        await act(request, lambda s: s.set_target_buffer(body))
        return {}

    @app.post("/set_do_autozoom", dependencies=auth)
    async def set_do_autozoom(request: Request, body: JsonBody) -> dict[str, Any]:
        await act(request, lambda s: s.set_do_autozoom(body))
        return {}

    @app.post("/reset_interactions", dependencies=auth)
    async def reset_interactions(request: Request) -> dict[str, Any]:
        await act(request, ServerSession.reset)
        return {}

    # ------------------------------------------------------------------ prediction endpoints

    @app.post("/undo", dependencies=auth)
    async def undo(request: Request) -> Response:
        return prediction_response(await act(request, ServerSession.undo))

    @app.post("/redo", dependencies=auth)
    async def redo(request: Request) -> Response:
        """Our extension: redo the last undone action (``ran_prediction``: whether something was redone)."""
        return prediction_response(await act(request, ServerSession.redo))

    @app.post("/predict", dependencies=auth)
    async def predict(request: Request, body: JsonBody) -> Response:
        return prediction_response(await act(request, lambda s: s.predict(body)))

    @app.post("/add_point_interaction", dependencies=auth)
    async def add_point(request: Request, body: JsonBody) -> Response:
        return prediction_response(await act(request, lambda s: s.add_point(body)))

    @app.post("/add_bbox_interaction", dependencies=auth)
    async def add_bbox(request: Request, body: JsonBody) -> Response:
        return prediction_response(await act(request, lambda s: s.add_bbox(body)))

    @app.post("/add_scribble_interaction", dependencies=auth)
    async def add_scribble(request: Request) -> Response:
        return prediction_response(await upload(request, _region(PromptKind.SCRIBBLE)))

    @app.post("/add_lasso_interaction", dependencies=auth)
    async def add_lasso(request: Request) -> Response:
        return prediction_response(await upload(request, _region(PromptKind.LASSO)))

    @app.post("/add_initial_seg_interaction", dependencies=auth)
    async def add_initial_seg(request: Request) -> Response:
        return prediction_response(await upload(request, ServerSession.add_initial_seg))

    known = [getattr(route, "path", "") for route in app.routes]
    app.add_middleware(Guard, config=host.config, metrics=host.metrics, binary_paths=BINARY_PATHS, known_paths=known)
    return app


def _region(kind: PromptKind) -> Upload[Prediction]:
    def work(session: ServerSession, body: bytes, meta: str | None, decoded: Callable[[], None]) -> Prediction:
        return session.add_region(kind, body, meta, decoded)

    return work


__all__ = ["BINARY_PATHS", "INVALID_KEY", "MISSING_KEY", "create_app", "prediction_response"]
