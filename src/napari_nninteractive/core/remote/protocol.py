"""The nnInteractive remote protocol (version 2.6.0) in one place: paths, headers, fields and prompt requests.

Both our client (:mod:`.client`) and our server (:mod:`napari_nninteractive.server`) speak it
through this module, so a field name or a capability flag is written down once. Arrays travel as
NNIA bodies (:mod:`.wire`); the spatial axes are sent in the caller's order and never reordered
(napari's ``(z, y, x)`` is the protocol's ``[X, Y, Z]``).

* :func:`prompt_request` turns one of our validated prompts into the request that adds it.
* :func:`point_prompt`, :func:`bbox_prompt`, :func:`region_prompt` and :func:`initial_seg_prompt`
  read such a request back into a prompt, raising :class:`ProtocolError` (a 400) with a message
  that names the field.
* :data:`KIND_FLAGS` maps our prompt kinds to the capability snapshot's ``supported_interactions``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import jsonio
from ..errors import UserError
from ..geometry import BBox, bbox_inside, bbox_is_empty, bbox_shape
from ..prompts import Box, InitialMask, Lasso, Point, Prompt, PromptKind, Scribble

#: ``inference_session_version`` of the protocol we speak.
PROTOCOL_VERSION = "2.6.0"
DEFAULT_PORT = 1527
#: Where servers and clients read the API key when none is given.
API_KEY_ENV = "NN_INTERACTIVE_API_KEY"
LEASE_HEADER = "x-lease-token"
META_HEADER = "x-meta"
JSON = "application/json"
BINARY = "application/octet-stream"

#: ``supported_interactions`` flag of each prompt kind (a 3-D box needs ``bbox3d`` as well).
KIND_FLAGS: dict[PromptKind, str] = {
    PromptKind.POINT: "points",
    PromptKind.BBOX: "bbox2d",
    PromptKind.SCRIBBLE: "scribble",
    PromptKind.LASSO: "lasso",
}
#: Our extensions live under this key of ``/capabilities``; reference clients ignore it.
EXTENSIONS = "napari_nninteractive"
#: Extension field of a prediction response's ``X-Meta``: the forward passes (or solver runs) it took.
FORWARD_PASSES = "forward_passes"

#: Endpoints that add a prompt, by kind.
ADD_PATHS: dict[PromptKind, str] = {
    PromptKind.POINT: "/add_point_interaction",
    PromptKind.BBOX: "/add_bbox_interaction",
    PromptKind.SCRIBBLE: "/add_scribble_interaction",
    PromptKind.LASSO: "/add_lasso_interaction",
    PromptKind.MASK: "/add_initial_seg_interaction",
}


class ProtocolError(UserError, ValueError):
    """A request that does not follow the protocol (HTTP 400); the message names the field."""


@dataclass(frozen=True)
class Request:
    """One request: a JSON body, or an array body with its ``X-Meta``."""

    path: str
    json: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    array: np.ndarray | None = None


def meta_header(meta: dict[str, Any]) -> str:
    """``X-Meta`` as the reference writes it: compact ASCII JSON."""
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=True)


def box_json(box: BBox) -> list[list[int]]:
    return [[int(lo), int(hi)] for lo, hi in box]


def prompt_request(prompt: Prompt, run: bool) -> Request:
    """The request that adds the validated ``prompt`` (``run``: predict at once; the default, so not sent)."""
    path = ADD_PATHS[prompt.kind]
    queued: dict[str, Any] = {} if run else {"run_prediction": False}
    if isinstance(prompt, Point):
        return Request(
            path, {"coordinates": [int(c) for c in prompt.coord], "include_interaction": prompt.positive} | queued
        )
    if isinstance(prompt, Box):
        return Request(path, {"bbox_coords": box_json(prompt.bbox), "include_interaction": prompt.positive} | queued)
    if isinstance(prompt, InitialMask):
        raise ValueError("an initial mask is sent whole with initial_seg_request()")
    assert prompt.bbox is not None, "validated region prompts have a bbox"
    meta = {"include_interaction": prompt.positive, "interaction_bbox": box_json(prompt.bbox)} | queued
    return Request(path, meta=meta, array=np.ascontiguousarray(prompt.mask, dtype=np.uint8))


def initial_seg_request(mask: np.ndarray, run: bool) -> Request:
    """``add_initial_seg_interaction`` with the full-size 0/1 ``mask`` (``run``: refine it)."""
    return Request(ADD_PATHS[PromptKind.MASK], meta={"run_prediction": run}, array=np.asarray(mask, dtype=np.uint8))


# ---------------------------------------------------------------------- reading requests (server side)


def _flag(obj: dict[str, Any], key: str, where: str, default: Any = ...) -> bool:
    if default is ...:
        return bool(jsonio.get(obj, key, bool, where, ProtocolError))
    return bool(jsonio.get(obj, key, bool, where, ProtocolError, default))


def run_flags(obj: dict[str, Any], where: str, run_default: bool = True) -> tuple[bool, bool]:
    """``run_prediction`` and ``override_capability_checks`` of a request."""
    return _flag(obj, "run_prediction", where, run_default), _flag(obj, "override_capability_checks", where, False)


def point_prompt(body: dict[str, Any]) -> Point:
    where = "add_point_interaction"
    coords = jsonio.as_numbers(
        jsonio.get(body, "coordinates", list, where, ProtocolError), 3, f"{where}: 'coordinates'", ProtocolError
    )
    return Point(tuple(float(c) for c in coords), _flag(body, "include_interaction", where))


def bbox_prompt(body: dict[str, Any]) -> Box:
    where = "add_bbox_interaction"
    raw = jsonio.as_box(
        jsonio.get(body, "bbox_coords", list, where, ProtocolError), 3, f"{where}: 'bbox_coords'", ProtocolError
    )
    box = tuple((int(round(lo)), int(round(hi))) for lo, hi in raw)
    if any(hi <= lo for lo, hi in box):
        raise ProtocolError(
            f"{where}: 'bbox_coords' {box_json(box)} has zero extent on an axis; every axis needs hi > lo."
        )
    return Box(box, _flag(body, "include_interaction", where))


def region_prompt(kind: PromptKind, meta: dict[str, Any], mask: np.ndarray, shape: tuple[int, ...]) -> Scribble | Lasso:
    """A scribble or lasso from its ``X-Meta`` and mask (the whole image, or ``interaction_bbox``)."""
    where = ADD_PATHS[kind].lstrip("/")
    positive = _flag(meta, "include_interaction", where)
    raw = jsonio.get(meta, "interaction_bbox", (list, type(None)), where, ProtocolError, None)
    box: BBox | None = None
    if raw is not None:
        pairs = jsonio.as_box(raw, 3, f"{where}: 'interaction_bbox'", ProtocolError, integer=True)
        box = tuple((int(lo), int(hi)) for lo, hi in pairs)
        if bbox_is_empty(box) or not bbox_inside(box, shape):
            raise ProtocolError(
                f"{where}: 'interaction_bbox' {box_json(box)} must have positive extents inside the image {list(shape)}."
            )
        if tuple(mask.shape) != bbox_shape(box):
            raise ProtocolError(
                f"{where}: the mask has shape {list(mask.shape)} but 'interaction_bbox' spans {list(bbox_shape(box))}."
            )
    elif tuple(mask.shape) != tuple(shape):
        raise ProtocolError(
            f"{where}: the mask has shape {list(mask.shape)} but the image is {list(shape)}; send a full-size mask or an 'interaction_bbox'."
        )
    cls = Scribble if kind is PromptKind.SCRIBBLE else Lasso
    return cls(np.asarray(mask) != 0, box, positive)


def initial_seg_prompt(
    meta: dict[str, Any], seg: np.ndarray, shape: tuple[int, ...]
) -> tuple[InitialMask | None, bool]:
    """The initial mask (``None`` when it is empty: the object is cleared) and ``run_prediction``."""
    where = "add_initial_seg_interaction"
    run, _ = run_flags(meta, where, run_default=False)
    if tuple(seg.shape) != tuple(shape):
        raise ProtocolError(f"{where}: the segmentation has shape {list(seg.shape)} but the image is {list(shape)}.")
    mask = np.asarray(seg) != 0
    if not mask.any():
        return None, run
    return InitialMask(mask, None, True, run), run


def parse_meta(text: str | None) -> dict[str, Any]:
    """The ``X-Meta`` header as a JSON object (``{}`` when absent)."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep for the parser
        raise ProtocolError(f"Bad X-Meta: {exc}") from None
    if not isinstance(value, dict) or jsonio.depth(value) > 8:
        raise ProtocolError("Bad X-Meta: it must be a flat JSON object.")
    return value


__all__ = [
    "ADD_PATHS",
    "API_KEY_ENV",
    "BINARY",
    "DEFAULT_PORT",
    "EXTENSIONS",
    "FORWARD_PASSES",
    "JSON",
    "KIND_FLAGS",
    "LEASE_HEADER",
    "META_HEADER",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Request",
    "bbox_prompt",
    "box_json",
    "initial_seg_prompt",
    "meta_header",
    "parse_meta",
    "point_prompt",
    "prompt_request",
    "region_prompt",
    "run_flags",
]
