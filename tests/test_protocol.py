"""The wire protocol as bytes: pinned framing fixtures, strict parsing, and fuzzing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfb import protocol
from rfb.encoders.base import EncodedPayload
from rfb.protocol import Ack, EventMessage, Hello, ProtocolError, RequestKeyframe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"

IMAGE_HEADER = {"type": "image_frame", "seq": 1, "timestamp_us": 1000, "width": 64, "height": 48, "mime": "image/jpeg"}
IMAGE_MESSAGE = (
    b"\x5d\x00\x00\x00"
    b'{"type":"image_frame","seq":1,"timestamp_us":1000,"width":64,"height":48,"mime":"image/jpeg"}'
    b"\xff\xd8\xff\xd9"
)
VIDEO_MESSAGE = (
    b"\x71\x00\x00\x00"
    b'{"type":"video_chunk","seq":7,"timestamp_us":123456,"width":64,"height":48,'
    b'"codec":"avc1.42001f","keyframe":true}'
    b"\x00\x00\x00\x01\x65"
)


# ---------------------------------------------------------------- framing fixtures


def test_image_frame_bytes_are_pinned() -> None:
    assert protocol.pack_payload(IMAGE_HEADER, b"\xff\xd8\xff\xd9") == IMAGE_MESSAGE


def test_video_chunk_bytes_are_pinned_through_payload_header() -> None:
    payload = EncodedPayload(b"\x00\x00\x00\x01\x65", True, 64, 48, "webcodecs", codec="avc1.42001f")
    header = protocol.payload_header(payload, seq=7, timestamp_us=123456)
    assert protocol.pack_payload(header, payload.data) == VIDEO_MESSAGE


def test_image_payload_header_carries_the_mime() -> None:
    payload = EncodedPayload(b"\xff\xd8\xff\xd9", True, 64, 48, "image", mime="image/jpeg")
    assert protocol.payload_header(payload, seq=1, timestamp_us=1000) == IMAGE_HEADER


def test_the_documented_example_matches_the_fixture() -> None:
    text = DOCS.read_text()
    header_json = json.dumps(IMAGE_HEADER, separators=(",", ":"))
    assert f"`{header_json}`" in text
    assert f"is {len(header_json)} bytes" in text
    assert f"`{IMAGE_MESSAGE[:4].hex(' ')}`" in text


def test_unpack_inverts_pack() -> None:
    assert protocol.unpack_payload(IMAGE_MESSAGE) == (IMAGE_HEADER, b"\xff\xd8\xff\xd9")
    header, payload = protocol.unpack_payload(protocol.pack_payload({"type": "x", "s": "é"}, b""))
    assert header == {"type": "x", "s": "é"} and payload == b""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "at least 4 bytes, got 0"),
        (b"\x05\x00\x00\x00{}", "header length 5 runs past the message end (6 bytes)"),
        (b"\x02\x00\x00\x00\xff\xfe", "UTF-8 JSON header"),
        (b"\x02\x00\x00\x00[]", "object with a string 'type'"),
        (b'\x0c\x00\x00\x00{"type":123}', "object with a string 'type'"),
    ],
)
def test_unpack_rejects_malformed_messages(data: bytes, expected: str) -> None:
    with pytest.raises(ProtocolError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        protocol.unpack_payload(data)


def test_pack_rejects_a_header_without_type_and_nan() -> None:
    with pytest.raises(ProtocolError, match="string 'type'"):
        protocol.pack_payload({"seq": 1}, b"")
    with pytest.raises(ValueError):
        protocol.pack_payload({"type": "x", "t": math.nan}, b"")


def test_server_text_messages_are_exact() -> None:
    assert protocol.config_message(transport="webcodecs", codec="avc1.42001f", width=64, height=48, client_id=3) == (
        '{"type":"config","transport":"webcodecs","codec":"avc1.42001f","width":64,"height":48,"client_id":3}'
    )
    assert protocol.config_message(transport="image", codec=None, width=2, height=2, client_id=1) == (
        '{"type":"config","transport":"image","codec":null,"width":2,"height":2,"client_id":1}'
    )
    assert protocol.error_message("nope") == '{"type":"error","message":"nope"}'


def test_stats_messages_are_exact_and_rounded() -> None:
    assert protocol.stats_message(median_ms=12.345, p95_ms=20.06, fps=29.96, window_s=1.0) == (
        '{"type":"stats","latency_ms":{"median":12.3,"p95":20.1},"fps":30.0,"window_s":1.0}'
    )
    assert protocol.stats_message(median_ms=None, p95_ms=None, fps=0.0, window_s=0.5) == (
        '{"type":"stats","latency_ms":null,"fps":0.0,"window_s":0.5}'
    )


# ---------------------------------------------------------------- client messages


def test_parses_each_client_message() -> None:
    parse = protocol.parse_client_message
    assert parse('{"type":"hello","supported":["webcodecs/h264-annexb","image/jpeg"],"token":"t","client":"c"}') == (
        Hello(("webcodecs/h264-annexb", "image/jpeg"), "t", "c")
    )
    assert parse('{"type":"hello","supported":[]}') == Hello((), None, None)
    assert parse('{"type":"ack","seq":5,"decode_ms":1.5}') == Ack(5, 1.5)
    assert parse('{"type":"ack","seq":5,"extra":"ignored"}') == Ack(5, None)
    assert parse('{"type":"request_keyframe"}') == RequestKeyframe(None)
    assert parse('{"type":"request_keyframe","reason":"decoder error"}') == RequestKeyframe("decoder error")
    assert parse('{"type":"event","event":{"type":"wheel"}}') == EventMessage({"type": "wheel"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "malformed JSON"),
        ("{", "malformed JSON"),
        ("[1]", "expected a JSON object, got list"),
        ('{"type":"bogus"}', "type: expected one of 'hello', 'ack', 'request_keyframe', 'event', got 'bogus'"),
        ('{"seq":1}', "got None"),
        ('{"type":"hello"}', "hello.supported: expected a list of strings, got None"),
        ('{"type":"hello","supported":[1]}', "hello.supported: expected a list of strings"),
        ('{"type":"hello","supported":[],"token":5}', "hello.token: expected a string, got int"),
        (
            '{"type":"hello","supported":["a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a"]}',
            "at most 16 entries, got 17",
        ),
        ('{"type":"ack"}', "ack.seq: expected a positive integer, got None"),
        ('{"type":"ack","seq":0}', "ack.seq: expected a positive integer, got 0"),
        ('{"type":"ack","seq":true}', "ack.seq: expected a positive integer, got True"),
        ('{"type":"ack","seq":1.0}', "ack.seq: expected a positive integer, got 1.0"),
        ('{"type":"ack","seq":99999999999999999999999}', "ack.seq: expected a positive integer"),
        ('{"type":"ack","seq":1,"decode_ms":NaN}', "malformed JSON"),
        ('{"type":"ack","seq":1,"decode_ms":Infinity}', "malformed JSON"),
        ('{"type":"ack","seq":1,"decode_ms":"1"}', "ack.decode_ms: expected a finite number"),
        ('{"type":"request_keyframe","reason":[]}', "request_keyframe.reason: expected a string, got list"),
        ('{"type":"event","event":[]}', "event.event: expected an object, got list"),
        ("[" * 100_000 + "]" * 100_000, "malformed JSON"),
        ('{"type":"ack","seq":' + "9" * 5000 + "}", "malformed JSON"),
    ],
)
def test_rejects_malformed_client_messages(text: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_client_message(text)
    assert expected in str(info.value)
    assert len(str(info.value)) < 200, "an error message must not echo a whole hostile message"


def test_long_strings_are_bounded() -> None:
    hello = protocol.parse_client_message(
        json.dumps({"type": "hello", "supported": ["x" * 1000], "client": "c" * 1000})
    )
    assert isinstance(hello, Hello)
    assert len(hello.supported[0]) == protocol.MAX_NAME_CHARS and len(hello.client or "") == protocol.MAX_NAME_CHARS
    with pytest.raises(ProtocolError, match="hello.token: expected at most 512 characters, got 513"):
        protocol.parse_client_message(json.dumps({"type": "hello", "supported": [], "token": "t" * 513}))


def test_choose_group_follows_the_clients_preference() -> None:
    choose = protocol.choose_group
    assert choose(["webcodecs/h264-annexb", "image/jpeg"], ("webcodecs", "image", "png")) == "webcodecs"
    assert choose(["image/jpeg", "webcodecs/h264-annexb"], ("webcodecs", "image", "png")) == "image"
    assert choose(["webcodecs/h264-annexb", "image/png"], ("image", "png")) == "png"
    assert choose(["image/png", "image/jpeg"], ("image", "png")) == "png"
    assert choose(["webcodecs/h264-annexb"], ("image", "png")) is None
    assert choose(["video/av1", "nonsense"], ("webcodecs", "image")) is None
    assert choose([], ("webcodecs",)) is None


def test_a_png_only_client_never_gets_the_jpeg_group() -> None:
    assert protocol.choose_group(["image/png"], ("webcodecs", "image")) is None
    assert protocol.choose_group(["image/jpeg"], ("png",)) is None
    assert {protocol.GROUP_TRANSPORTS[g] for g in protocol.MEDIA_GROUPS.values()} == {"webcodecs", "image"}


# ---------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "ack", "request_keyframe", "event", "config", ""])},
    optional={
        "supported": json_values,
        "token": json_values,
        "seq": json_values,
        "decode_ms": json_values,
        "reason": json_values,
        "event": json_values,
        "client": json_values,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, message_like))
def test_random_json_values_only_ever_raise_protocol_error(value: object) -> None:
    try:
        message = protocol.parse_client_message(json.dumps(value))
    except ProtocolError:
        return
    assert isinstance(message, (Hello, Ack, RequestKeyframe, EventMessage))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_only_ever_raises_protocol_error(text: str) -> None:
    try:
        protocol.parse_client_message(text)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_protocol_error_when_unpacked(data: bytes) -> None:
    try:
        header, payload = protocol.unpack_payload(data)
    except ProtocolError:
        return
    assert isinstance(header["type"], str) and isinstance(payload, bytes)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.binary(max_size=64), st.text(max_size=10))
def test_pack_unpack_round_trips(extra: dict[str, object], payload: bytes, kind: str) -> None:
    header = {"type": kind, **{k: v for k, v in extra.items() if k != "type"}}
    assert protocol.unpack_payload(protocol.pack_payload(header, payload)) == (header, payload)


@pytest.mark.parametrize("number", ["1" + "0" * 400, "-1" + "0" * 400, "1e309", "-1e400", "1e8", "NaN", "-Infinity"])
def test_ack_decode_ms_outside_its_range_is_a_protocol_error(number: str) -> None:
    with pytest.raises(ProtocolError, match=r"(ack\.decode_ms: expected a finite number|malformed JSON)"):
        protocol.parse_client_message('{"type":"ack","seq":1,"decode_ms":' + number + "}")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["seq", "decode_ms"]),
    st.one_of(
        st.integers(min_value=-(10**500), max_value=10**500).map(str),
        st.floats().map(json.dumps),
        st.sampled_from(["-0", "-0.0", "1e308", "1e309", "2.5e-400", "NaN", "Infinity", "9" * 5000]),
    ),
)
def test_any_json_number_in_an_ack_is_valid_or_a_protocol_error(field: str, number: str) -> None:
    fields = {"seq": "1", "decode_ms": "2.5", field: number}
    try:
        ack = protocol.parse_client_message('{"type":"ack",' + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}")
    except ProtocolError:
        return
    assert isinstance(ack, Ack) and 1 <= ack.seq <= protocol.MAX_SEQ
    assert ack.decode_ms is not None and math.isfinite(ack.decode_ms) and abs(ack.decode_ms) <= protocol.MAX_DECODE_MS
