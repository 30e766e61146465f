"""The wire protocol (docs/protocol.md) as pure functions: framing, parsing, builders.

Nothing here touches a socket, so the byte layout can be pinned by fixtures and the
parser fuzzed in isolation. Server code never builds JSON by hand; it calls the
constructors below, so a field renamed here is renamed everywhere.

Parsing is strict about types and lenient about extra fields: an unknown *field* is
ignored (a newer viewer may send more), an unknown *type* or a wrong field type is a
:class:`ProtocolError` naming what was expected and what arrived.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from rfb.encoders.base import EncodedPayload, Transport

PROTOCOL_VERSION = 1

# Names a client lists in hello.supported.
H264_ANNEXB = "webcodecs/h264-annexb"
IMAGE_JPEG = "image/jpeg"
IMAGE_PNG = "image/png"

# The fan-out groups (rfb.fanout): viewers of one group share one encoder and every
# payload, so a group is one transport *and* one format. A group's name is its key in
# ``display.stats.groups``; "image" is the JPEG group (the name predates PNG groups).
GROUP_TRANSPORTS: dict[str, Transport] = {"webcodecs": "webcodecs", "image": "image", "png": "image"}
# What each name in hello.supported asks for.
MEDIA_GROUPS: dict[str, str] = {H264_ANNEXB: "webcodecs", IMAGE_JPEG: "image", IMAGE_PNG: "png"}

# Close codes (docs/protocol.md, "Close codes").
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_UNAUTHORIZED = 4001
CLOSE_ORIGIN = 4003
CLOSE_BAD_HELLO = 4400
CLOSE_NO_TRANSPORT = 4406

# Bounds on what a client may send: generous for honest viewers, small enough that a
# hostile one cannot make the server keep or log much.
MAX_SUPPORTED = 16
MAX_NAME_CHARS = 64
MAX_TOKEN_CHARS = 512
MAX_TEXT_CHARS = 256
MAX_SEQ = 2**63 - 1
MAX_DECODE_MS = 1e7  # ms: hours; beyond this a decode time is noise, not a measurement

_LENGTH = struct.Struct("<I")


class ProtocolError(ValueError):
    """A message that does not follow docs/protocol.md; the text says what was expected."""


# ---------------------------------------------------------------- binary framing


def pack_payload(header: dict[str, Any], payload: bytes) -> bytes:
    """One binary message: uint32 LE header length, compact UTF-8 JSON header, payload.

    The JSON is compact and keeps the dict's key order, so the bytes are reproducible
    (tests pin them) and the header costs as little as it can on every frame.
    """
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError(f"expected a header dict with a string 'type', got {header!r}")
    encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return b"".join((_LENGTH.pack(len(encoded)), encoded, payload))


def unpack_payload(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a binary message into (header, payload); the inverse of :func:`pack_payload`."""
    if len(data) < _LENGTH.size:
        raise ProtocolError(f"expected a binary message of at least 4 bytes, got {len(data)}")
    (length,) = _LENGTH.unpack_from(data)
    end = _LENGTH.size + length
    if end > len(data):
        raise ProtocolError(f"header length {length} runs past the message end ({len(data)} bytes)")
    try:
        header = json.loads(bytes(data[_LENGTH.size : end]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"expected a UTF-8 JSON header, got undecodable bytes ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError(f"expected a JSON header object with a string 'type', got {header!r}")
    return header, bytes(data[end:])


def payload_header(
    payload: EncodedPayload, *, seq: int, timestamp_us: int, pixel_ratio: float | None = None
) -> dict[str, Any]:
    """The header of one payload: ``video_chunk`` for H.264, ``image_frame`` for images.

    ``pixel_ratio`` (frame pixels per CSS pixel, from ``publish()``) travels with the
    frame it describes, so a viewer places each frame by its own ratio; it is left out
    when the application did not give one, and the header stays as it was.
    """
    header = _media_header(payload, seq=seq, timestamp_us=timestamp_us)
    if pixel_ratio is not None:
        header["pixel_ratio"] = pixel_ratio
    return header


def _media_header(payload: EncodedPayload, *, seq: int, timestamp_us: int) -> dict[str, Any]:
    if payload.transport == "webcodecs":
        return {
            "type": "video_chunk",
            "seq": seq,
            "timestamp_us": timestamp_us,
            "width": payload.width,
            "height": payload.height,
            "codec": payload.codec,
            "keyframe": payload.keyframe,
        }
    return {
        "type": "image_frame",
        "seq": seq,
        "timestamp_us": timestamp_us,
        "width": payload.width,
        "height": payload.height,
        "mime": payload.mime,
    }


def still_header(payload: EncodedPayload, *, seq: int, timestamp_us: int) -> dict[str, Any]:
    """The header of a lossless still: an ``image_frame`` flagged ``"still": true``.

    The viewer draws it over whatever it shows (video or image) and drops it when its
    next frame is drawn; a viewer that ignores the flag just draws one more image.
    """
    return {**payload_header(payload, seq=seq, timestamp_us=timestamp_us), "still": True}


# ---------------------------------------------------------------- server -> client text


def config_message(*, transport: Transport, codec: str | None, width: int, height: int, client_id: int) -> str:
    """``config``: (re)configure the decoder; a ``codec`` of null means "wait for the next config"."""
    return _dumps(
        {
            "type": "config",
            "transport": transport,
            "codec": codec,
            "width": width,
            "height": height,
            "client_id": client_id,
        }
    )


def stats_message(*, median_ms: float | None, p95_ms: float | None, fps: float, window_s: float) -> str:
    """``stats``: this viewer's frames over the last ``window_s`` seconds, as the server saw them.

    Latency runs from ``publish()`` to the arrival of the viewer's ``ack`` (with
    ``decode_ms``) for that frame; ``latency_ms`` is null when no frame was drawn.
    """
    latency = None if median_ms is None or p95_ms is None else {"median": round(median_ms, 1), "p95": round(p95_ms, 1)}
    return _dumps({"type": "stats", "latency_ms": latency, "fps": round(fps, 1), "window_s": round(window_s, 3)})


def error_message(message: str) -> str:
    """``error``: a message was rejected but the connection stays open."""
    return _dumps({"type": "error", "message": message})


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class Hello:
    supported: tuple[str, ...]
    token: str | None = None
    client: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    decode_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RequestKeyframe:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class EventMessage:
    """An input event, still raw: :func:`rfb.events.parse_event` validates its fields."""

    event: dict[str, Any]


ClientMessage = Hello | Ack | RequestKeyframe | EventMessage


def parse_client_message(text: str) -> ClientMessage:
    """Parse one text message from a viewer, or raise :class:`ProtocolError`."""
    if not isinstance(text, str):
        raise ProtocolError(f"expected a JSON text message, got {type(text).__name__}")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"expected a JSON object, got malformed JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise ProtocolError("expected a JSON object, got malformed JSON (nested too deeply)") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        raise ProtocolError(f"expected a JSON object, got malformed JSON ({str(exc)[:60]})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "hello":
        return _parse_hello(obj)
    if kind == "ack":
        seq = obj.get("seq")
        if not _is_int(seq) or not 1 <= seq <= MAX_SEQ:
            raise ProtocolError(f"ack.seq: expected a positive integer, got {_short(seq)}")
        return Ack(seq, _optional_number(obj, "decode_ms", "ack", MAX_DECODE_MS))
    if kind == "request_keyframe":
        return RequestKeyframe(_optional_text(obj, "reason", "request_keyframe", MAX_TEXT_CHARS))
    if kind == "event":
        event = obj.get("event")
        if not isinstance(event, dict):
            raise ProtocolError(f"event.event: expected an object, got {type(event).__name__}")
        return EventMessage(event)
    raise ProtocolError(f"type: expected one of 'hello', 'ack', 'request_keyframe', 'event', got {_short(kind)}")


def _parse_hello(obj: dict[str, Any]) -> Hello:
    supported = obj.get("supported")
    if not isinstance(supported, list) or not all(isinstance(s, str) for s in supported):
        raise ProtocolError(f"hello.supported: expected a list of strings, got {_short(supported)}")
    if len(supported) > MAX_SUPPORTED:
        raise ProtocolError(f"hello.supported: expected at most {MAX_SUPPORTED} entries, got {len(supported)}")
    token = _optional_text(obj, "token", "hello", None)
    if token is not None and len(token) > MAX_TOKEN_CHARS:
        raise ProtocolError(f"hello.token: expected at most {MAX_TOKEN_CHARS} characters, got {len(token)}")
    client = _optional_text(obj, "client", "hello", MAX_NAME_CHARS)
    return Hello(tuple(s[:MAX_NAME_CHARS] for s in supported), token, client)


def choose_group(supported: Sequence[str], available: Collection[str]) -> str | None:
    """The fan-out group of the first entry of ``supported`` that the server offers.

    A viewer that lists only ``image/png`` joins the PNG group, never the JPEG one.
    """
    for name in supported:
        group = MEDIA_GROUPS.get(name)
        if group is not None and group in available:
            return group
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def bounded(value: int | float, limit: float) -> bool:
    """``value`` is finite and within ``±limit``, decided without converting it.

    JSON integers have no size limit, and ``float()`` of one past 1e308 raises
    OverflowError: comparing first keeps every numeric field's check a plain bool.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return -limit <= value <= limit


def _optional_number(obj: dict[str, Any], key: str, kind: str, limit: float) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not bounded(value, limit):
        raise ProtocolError(f"{kind}.{key}: expected a finite number within ±{limit:g}, got {_short(value)}")
    return float(value)


def _optional_text(obj: dict[str, Any], key: str, kind: str, limit: int | None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{kind}.{key}: expected a string, got {type(value).__name__}")
    return value if limit is None else value[:limit]


def _short(value: Any, limit: int = 60) -> str:
    """A bounded repr for error messages: never echo a whole hostile message back."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
