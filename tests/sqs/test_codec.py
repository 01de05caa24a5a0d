"""Records survive the trip through SQS message bodies and attributes unchanged."""

from __future__ import annotations

import pytest

from agentstream.event import OutgoingRecord
from agentstream.failures import OversizedPayload
from agentstream.transports.sqs_codec import (
    BODY_ATTRIBUTE,
    DROPPED_HEADER,
    HEADERS_ATTRIBUTE,
    KEY_ATTRIBUTE,
    decode_message,
    encode_record,
    fifo_id,
)
from tests.sqs.conftest import drain, make_queue

AWKWARD = [
    OutgoingRecord("t", b"k1", b'{"text": "plain json"}', (("id", b"e-1"),)),
    OutgoingRecord("t", b"\xff\x00key", b"\x00\x01\xfe binary", (("bin", b"\x00\xff"),)),
    OutgoingRecord("t", "ключ".encode(), b"line one\r\nline two", ()),
    OutgoingRecord("t", None, b"no key", (("dup", b"1"), ("dup", b"2"), ("empty", b""))),
    OutgoingRecord("t", b"many", b"{}", tuple((f"h{i:02d}", str(i).encode()) for i in range(15))),
    OutgoingRecord("t", b"odd names", b"x", (("__connect.errors.topic", b"src"), ("a b", b"v"))),
]


def _attributes(enc):
    return {
        name: (
            {"DataType": a.data_type, "BinaryValue": a.value}
            if isinstance(a.value, bytes)
            else {"DataType": a.data_type, "StringValue": a.value}
        )
        for name, a in enc.attributes.items()
    }


def _through_codec(record: OutgoingRecord, *, fifo: bool):
    enc = encode_record(record, fifo=fifo)
    return enc, decode_message(enc.body, _attributes(enc), enc.group_id)


@pytest.mark.parametrize("fifo", [False, True])
@pytest.mark.parametrize("record", AWKWARD, ids=range(len(AWKWARD)))
def test_key_value_and_headers_come_back_byte_for_byte(record, fifo):
    enc, dec = _through_codec(record, fifo=fifo)
    assert dec.value == record.value
    assert dec.headers == record.headers
    if record.key is not None:
        assert dec.key == record.key
    if fifo:
        assert enc.group_id and 1 <= len(enc.group_id) <= 128


def test_binary_bodies_travel_as_base64_and_text_bodies_as_themselves():
    text = encode_record(AWKWARD[0], fifo=False)
    binary = encode_record(AWKWARD[1], fifo=False)
    assert text.body == '{"text": "plain json"}' and BODY_ATTRIBUTE not in text.attributes
    assert binary.attributes[BODY_ATTRIBUTE].value == "base64"


def test_a_tombstone_travels_as_a_flagged_null_body_and_a_bare_null_body_stays_bytes():
    tombstone = OutgoingRecord("t", b"k", None, (("id", b"e-1"),))
    enc, dec = _through_codec(tombstone, fifo=False)
    assert (enc.body, enc.attributes[BODY_ATTRIBUTE].value) == ("null", "null")  # never empty
    assert (dec.key, dec.value, dec.headers) == (b"k", None, (("id", b"e-1"),))
    assert decode_message("null", {}, None).value == b"null"


def test_headers_that_do_not_fit_as_attributes_are_packed_in_order():
    few = encode_record(AWKWARD[0], fifo=False)
    assert set(few.attributes) == {KEY_ATTRIBUTE, "id"}
    for record in AWKWARD[3:]:
        assert HEADERS_ATTRIBUTE in encode_record(record, fifo=False).attributes


def test_fifo_ids_are_valid_and_deterministic():
    assert fifo_id("dlq:agent:e-1:3") == "dlq:agent:e-1:3"
    long = fifo_id("x" * 300)
    spaced = fifo_id("has spaces and ü")
    assert long == fifo_id("x" * 300) and len(long) <= 128 and long.startswith("h-")
    assert spaced.startswith("h-") and " " not in spaced
    rec = OutgoingRecord("t.fifo", b"customer 7", b"v", dedupe_id="agent:e 1:0")
    a, b = encode_record(rec, fifo=True), encode_record(rec, fifo=True)
    assert (a.group_id, a.dedupe_id) == (b.group_id, b.dedupe_id)
    keyless = encode_record(OutgoingRecord("t.fifo", None, b"v"), fifo=True)
    assert keyless.group_id == "default" and keyless.dedupe_id  # random, not content-based
    assert (
        encode_record(
            OutgoingRecord("t.fifo", None, b"v"), fifo=True, content_dedupe=True
        ).dedupe_id
        is None
    )


def test_an_oversized_record_loses_its_largest_headers_first():
    rec = OutgoingRecord(
        "t",
        b"k",
        b"v" * 1000,
        (("small", b"s"), ("stacktrace", b"x" * 5000), ("medium", b"m" * 800)),
    )
    enc = encode_record(rec, fifo=False, max_size=3000)
    assert enc.size <= 3000
    kept = dict(decode_message(enc.body, _attributes(enc), None).headers)
    assert kept[DROPPED_HEADER] == b"stacktrace"
    assert kept["small"] == b"s" and kept["medium"] == b"m" * 800
    with pytest.raises(OversizedPayload):
        encode_record(OutgoingRecord("t", None, b"v" * 5000), fifo=False, max_size=3000)


@pytest.mark.parametrize("fifo", [False, True])
async def test_awkward_records_round_trip_through_a_real_queue(sqs_url, qname, fifo):
    name = f"{qname}.fifo" if fifo else qname
    await make_queue(sqs_url, name)
    from agentstream.transports.sqs import SQSTransport
    from agentstream.transports.sqs_config import parse_sqs_url

    t = SQSTransport(parse_sqs_url(sqs_url))
    try:
        await t.produce([OutgoingRecord(name, r.key, r.value, r.headers) for r in AWKWARD])
    finally:
        await t.close()
    got = await drain(sqs_url, name)
    assert sorted((m.value, m.headers) for m in got) == sorted(
        (r.value, r.headers) for r in AWKWARD
    )
    keyed = {m.value: m.key for m in got}
    for r in AWKWARD:
        if r.key is not None:
            assert keyed[r.value] == r.key
