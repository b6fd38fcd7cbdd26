"""Reading JSON from files someone else made: size and depth limits, and typed field access.

:func:`read_json` refuses a file that is a folder, unreadable, too large, not UTF-8, not JSON,
uses ``NaN``/``Infinity`` or nests deeper than :data:`~.errors.MAX_JSON_DEPTH`; :func:`get` and
the ``as_*`` helpers check a field's JSON type and range. Every refusal raises the caller's
:class:`~.errors.UserError` subclass with a message naming the file, the field and the fix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .errors import MAX_JSON_BYTES, MAX_JSON_DEPTH, UserError

_MISSING = object()
_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows; give finite numbers")


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def loads(text: str | bytes, source: str, error: type[UserError], max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``text`` (from ``source``, named in messages) as strict JSON within the depth limit."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise error(
            f"{source} nests JSON deeper than {max_depth} levels; it is not a file this plugin wrote."
        ) from None
    except UnicodeDecodeError:
        raise error(f"{source} is not UTF-8 text; it is not a JSON file.") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers with too many digits
        raise error(f"{source} is not valid JSON ({exc}); fix or replace the file.") from None
    if depth(data) > max_depth:
        raise error(f"{source} nests JSON deeper than {max_depth} levels; it is not a file this plugin wrote.")
    return data


def read_json(path: str | Path, error: type[UserError], kind: str = "model", missing: str = "") -> Any:
    """Read and parse the JSON file ``path``; ``kind`` selects the size limit in :data:`MAX_JSON_BYTES`."""
    path = Path(path)
    limit = MAX_JSON_BYTES[kind]
    if path.is_dir():
        raise error(f"{path} is a folder, not a JSON file; pass the file itself.")
    if path.exists() and not path.is_file():
        raise error(f"{path} is not a regular file (a device, pipe or socket); pass a JSON file.")
    try:
        too_big = error(
            f"{path} is more than the {limit >> 20} MiB a {kind} JSON file may have; it is not a "
            "file this plugin can use."
        )
        if path.stat().st_size > limit:
            raise too_big
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)  # bounded even if the file grows while it is read
        if len(raw) > limit:
            raise too_big
    except FileNotFoundError:
        raise error(f"{path} does not exist.{' ' + missing if missing else ''}") from None
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror or exc}); check that it is a file you may read.") from None
    return loads(raw, str(path), error)


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def get(
    obj: dict[str, Any],
    key: str,
    types: type | tuple[type, ...],
    where: str,
    error: type[UserError],
    default: Any = _MISSING,
) -> Any:
    """``obj[key]`` checked to be of JSON ``types`` (``bool`` is never accepted as a number)."""
    if key not in obj:
        if default is _MISSING:
            raise error(f"{where}: missing field {key!r}.")
        return default
    value = obj[key]
    types = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise error(f"{where}: field {key!r} must be {wanted}, not {type_name(value)} ({_short(value)}).")
    return value


def as_number(
    value: Any, where: str, error: type[UserError], integer: bool = False, lo: float = -1e12, hi: float = 1e12
) -> float | int:
    """A finite JSON number within ``[lo, hi]`` (an integer when ``integer``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise error(f"{where} must be {kind}, not {type_name(value)} ({_short(value)}).")
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"{where} must be finite, not {value}.")
    if not lo <= value <= hi:
        raise error(f"{where} = {_short(value)} is out of range [{lo:g}, {hi:g}].")
    return value


def as_numbers(
    value: Any,
    n: int | None,
    where: str,
    error: type[UserError],
    integer: bool = False,
    lo: float = -1e12,
    hi: float = 1e12,
) -> list[float | int]:
    """A JSON list of ``n`` (any number when None) finite numbers."""
    if not isinstance(value, list) or (n is not None and len(value) != n):
        size = f"{n} " if n is not None else ""
        raise error(f"{where} must be a list of {size}numbers, not {_short(value)}.")
    return [as_number(v, f"{where}[{i}]", error, integer, lo, hi) for i, v in enumerate(value)]


def as_box(
    value: Any, n: int, where: str, error: type[UserError], integer: bool = False, lo: float = -1e12, hi: float = 1e12
) -> tuple[tuple[float | int, ...], ...]:
    """A JSON list of ``n`` ``[lo, hi]`` number pairs (a half-open box), as a tuple of pairs."""
    if not isinstance(value, list) or len(value) != n:
        raise error(f"{where} must be a list of {n} [lo, hi] pairs (one per axis), not {_short(value)}.")
    return tuple(tuple(as_numbers(pair, 2, f"{where}[{i}]", error, integer, lo, hi)) for i, pair in enumerate(value))


def as_rows(
    value: Any,
    n: int,
    where: str,
    error: type[UserError],
    min_rows: int = 1,
    max_rows: int = 1 << 31,
    lo: float = -1e12,
    hi: float = 1e12,
) -> np.ndarray:
    """A JSON list of ``min_rows`` to ``max_rows`` lists of ``n`` finite numbers, as a float array ``(rows, n)``.

    The count and every row's type and length are checked before the array is made.
    """
    if not isinstance(value, list) or not min_rows <= len(value) <= max_rows:
        count = f"{len(value)} rows" if isinstance(value, list) else _short(value)
        raise error(f"{where} must be a list of {min_rows} to {max_rows} lists of {n} numbers, not {count}.")
    for i, row in enumerate(value):
        if type(row) is not list or len(row) != n or any(type(v) not in (int, float) for v in row):
            as_numbers(row, n, f"{where}[{i}]", error, lo=lo, hi=hi)
    try:
        arr = np.array(value, dtype=float).reshape(len(value), n)
        bad = ~(np.isfinite(arr) & (arr >= lo) & (arr <= hi)).all(axis=1)
    except OverflowError:  # an integer beyond float range
        arr, bad = None, np.ones(len(value), bool)
    for row_index in np.flatnonzero(bad):  # the first bad row raises with its own message
        as_numbers(value[row_index], n, f"{where}[{row_index}]", error, lo=lo, hi=hi)
    if arr is None:
        raise error(f"{where} holds a number too large for a coordinate.")
    return arr


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["as_box", "as_number", "as_numbers", "as_rows", "depth", "get", "loads", "read_json", "type_name"]
