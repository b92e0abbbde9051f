"""JSON as the data plane writes and reads it: msgspec's encoder and parser, held to what Python's json module reads
and refuses.

msgspec is an order of magnitude faster than the json module (encoding a task and parsing its result were about a
fifth of a producer's CPU per task on the bus, and as much again of an agent's), and it reads every document the
json module reads as the same value, integers of any size included. The two differ at the edges, and there the json
module's path runs instead:
- writing: NaN and Infinity, which msgspec writes as null (the literals the json module would write are refused by
  other languages' parsers), are refused. An encoding with a null in it is made again by the json module, which
  refuses them; a message with no null needs no second look. What msgspec cannot write (non-string keys but
  numbers, circular or deep values, objects of unknown types) is written or refused by the json module, as before.
  msgspec writes some types the json module refuses, in its documented forms: datetimes as RFC 3339 strings, sets
  as arrays, dataclasses and enums, UUIDs and Decimals as strings, bytes as base64.
- reading: documents msgspec refuses (the NaN and Infinity literals a foreign producer may write, numbers past a
  double's range, lone surrogates, other encodings than UTF-8) are read by the json module, or refused with its
  error.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder().decode
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_c_make_encoder: Any
try:
    from _json import make_encoder as _c_make_encoder
except ImportError:  # an interpreter without the C accelerator: the stdlib encoder is still correct
    _c_make_encoder = None


def _make_stdlib_dumps() -> Any:
    if _c_make_encoder is None:
        return _ENCODER.encode
    e = _ENCODER
    # JSONEncoder.encode builds a new C encoder and a closure on every call. One C encoder, built once, gives
    # byte-identical output. It keeps no circular-reference map (a shared one is left dirty by an error
    # mid-encode); a circular value hits the C recursion limit instead, reported as the same ValueError.
    c_encode = _c_make_encoder(None, e.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def dumps(value: Any) -> str:
        try:
            return "".join(c_encode(value, 0))
        except RecursionError as exc:
            raise ValueError("Circular reference detected (or nesting too deep)") from exc

    return dumps


_stdlib_dumps = _make_stdlib_dumps()


def _stdlib_encode(value: Any) -> str:
    try:
        return _stdlib_dumps(value)
    except RecursionError as exc:  # the pure-Python encoder, when the C one is missing
        raise ValueError(f"value is not JSON-serialisable: nesting too deep ({exc})") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"value is not JSON-serialisable: {exc}") from exc


def dumps(value: Any, *, check_finite: bool = True) -> bytes:
    """Compact UTF-8 JSON. Raises ValueError ("value is not JSON-serialisable: ...") for what it cannot write, NaN
    and Infinity included. ``check_finite=False`` is for writers whose numbers are finite already (a journal entry's
    are a validated result's and clock times): they skip the second look, and a NaN would be written as null."""
    try:
        out = _ENCODE(value)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
        return _stdlib_encode(value).encode()
    if check_finite and b"null" in out:  # perhaps a NaN or an Infinity
        return _stdlib_encode(value).encode()
    return out


def dumps_text(value: Any) -> str:
    """:func:`dumps` as a str."""
    return dumps(value).decode()


def loads(raw: bytes | str) -> Any:
    """The value of a JSON document; raises what ``json.loads`` raises for what neither parser reads."""
    try:
        return _DECODE(raw)
    except (msgspec.DecodeError, RecursionError):
        return json.loads(raw)
