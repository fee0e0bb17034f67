"""Random JSON bodies and random protobuf bytes to every method, on a real daemon.

Every request gets an answer: success, a 4xx or a gRPC error that is not INTERNAL/UNKNOWN; never a
5xx, a dropped connection or an internal error in the log; the daemon still serves at the end.
Bounded and deterministic: a fixed number of derandomized examples.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framerelay.service.api import Method, methods
from framerelay.service.client import DaemonClient
from framerelay.service.discovery import Discovery
from tests.daemon_harness import clip_spec, make_media, running_daemon

METHODS = methods()
SERVICE = "/framerelay.proto.v1.Daemon/"
SERVER_FAULTS = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
}
FUZZ = settings(
    max_examples=20,  # per method and transport: 440 requests in all
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Target:
    discovery: Discovery
    client: DaemonClient
    channel: grpc.Channel
    errors: ErrorRecords
    strings: list[str]  # real paths and a real job id, so that some requests get far
    spec: dict  # a valid JobSpec in JSON, which the fuzzer varies


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz")
    source, edited = make_media(root / "media")
    errors = ErrorRecords()
    logging.getLogger("framerelay").addHandler(errors)
    try:
        with running_daemon(root) as (daemon, client):
            job = client.submit(clip_spec(source, edited, frames=3))
            list(client.watch(job.id))
            strings = [str(source), str(edited), str(root), str(root / "out"), job.id, "..", ""]
            spec = json_format.MessageToDict(clip_spec(source, edited, frames=3))
            with grpc.insecure_channel(daemon.discovery.grpc_target) as channel:
                yield Target(daemon.discovery, client, channel, errors, strings, spec)
            assert client.status().version, "the daemon still serves gRPC"
            status, _ = post(daemon.discovery, METHODS["GetStatus"], b"{}")
            assert status == 200, "the daemon still serves HTTP"
    finally:
        logging.getLogger("framerelay").removeHandler(errors)
    internal = [r.getMessage() for r in errors.records]
    assert internal == [], internal


def json_values(strings: list[str]) -> st.SearchStrategy:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats()
        | st.text(max_size=20)
        | st.sampled_from(strings)
        | st.sampled_from(["NaN", "Infinity", "-1", "1e400", "18446744073709551616"])
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=12,
    )


def field_values(field: FieldDescriptor, strings: list[str], depth: int) -> st.SearchStrategy:
    """Values of the field's type (mostly), or anything."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            typed = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
        elif depth < 4:
            typed = message_json(field.message_type, strings, depth + 1)
        else:
            typed = st.just({})
    elif field.type == FieldDescriptor.TYPE_ENUM:
        typed = st.sampled_from([v.name for v in field.enum_type.values]) | st.integers(-3, 99)
    elif field.type == FieldDescriptor.TYPE_STRING:
        typed = st.sampled_from(strings) | st.text(max_size=30)
    elif field.type == FieldDescriptor.TYPE_BOOL:
        typed = st.booleans()
    elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        typed = st.floats() | st.sampled_from(["NaN", "Infinity", "-Infinity"])
    else:
        typed = st.integers(min_value=-(2**64), max_value=2**64) | st.integers(0, 70)
    if field.is_repeated and not (
        field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
    ):
        typed = st.lists(typed, max_size=20)
    return st.integers(0, 9).flatmap(lambda n: json_values(strings) if n == 0 else typed)


def message_json(descriptor: Descriptor, strings: list[str], depth: int = 0) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {},
        optional={f.json_name: field_values(f, strings, depth) for f in descriptor.fields},
    )


@st.composite
def varied_spec(draw, target: Target) -> dict:
    """The valid spec with up to three of its fields replaced."""
    from framerelay.proto.v1 import specs_pb2

    fields = {f.json_name: f for f in specs_pb2.JobSpec.DESCRIPTOR.fields}
    names = draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True))
    changes = {name: draw(field_values(fields[name], target.strings, 1)) for name in names}
    return {**target.spec, **changes}


@st.composite
def request_json(draw, method: Method, target: Target) -> dict:
    """A request message in JSON; for SubmitJob, mostly a varied valid spec."""
    if method.name == "SubmitJob" and draw(st.integers(0, 3)) > 0:
        return {"spec": draw(varied_spec(target))}
    return draw(message_json(method.request_type.DESCRIPTOR, target.strings))


@st.composite
def http_body(draw, method: Method, target: Target) -> bytes:
    shape = draw(st.sampled_from(["message", "message", "json", "bytes"]))
    if shape == "bytes":
        return draw(st.binary(max_size=300))
    if shape == "json":
        return json.dumps(draw(json_values(target.strings))).encode()
    return json.dumps(draw(request_json(method, target))).encode()


@st.composite
def grpc_payload(draw, method: Method, target: Target) -> bytes:
    shape = draw(st.sampled_from(["message", "message", "mutated", "bytes"]))
    if shape == "bytes":
        return draw(st.binary(max_size=300))
    body = draw(request_json(method, target))
    message = method.request_type()
    try:
        json_format.ParseDict(body, message)
    except (json_format.ParseError, ValueError, TypeError, OverflowError):
        # not representable in protobuf: send what could be (for SubmitJob, the valid spec)
        message = method.request_type()
        if method.name == "SubmitJob":
            json_format.ParseDict({"spec": target.spec}, message)
    data = message.SerializeToString()
    if shape == "mutated" and data:
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1 :]
    return data


def post(discovery: Discovery, method: Method, body: bytes) -> tuple[int, bytes]:
    """Status and body; a stream is read up to its first line (WatchQueue never ends)."""
    connection = http.client.HTTPConnection("127.0.0.1", discovery.http_port, timeout=30)
    try:
        connection.request(
            "POST",
            f"/v1/{method.name}",
            body,
            {"Authorization": f"Bearer {discovery.token}", "Content-Type": "application/json"},
        )
        reply = connection.getresponse()
        if reply.status == 200 and method.streaming:
            return reply.status, b""
        return reply.status, reply.read()
    finally:
        connection.close()


@pytest.mark.parametrize("name", sorted(METHODS))
@FUZZ
@given(data=st.data())
def test_random_json_to_every_http_method(target, name, data):
    method = METHODS[name]
    body = data.draw(http_body(method, target))
    status, reply = post(target.discovery, method, body)
    assert 200 <= status < 500, (method.name, body[:300], status, reply[:300])
    if status >= 400:
        error = json.loads(reply)["error"]
        assert error["code"].startswith("ERROR_CODE_") and error["message"] and error["hint"]


@pytest.mark.parametrize("name", sorted(METHODS))
@FUZZ
@given(data=st.data())
def test_random_protobuf_bytes_to_every_grpc_method(target, name, data):
    method = METHODS[name]
    payload = data.draw(grpc_payload(method, target))
    path = SERVICE + method.name
    metadata = target.client._metadata
    try:
        if method.streaming:
            call = target.channel.unary_stream(path)
            for _ in call(payload, metadata=metadata, timeout=0.3):
                pass
        else:
            target.channel.unary_unary(path)(payload, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and method.streaming:
            return  # a live stream (WatchQueue, or WatchJob on a running job)
        assert code not in SERVER_FAULTS, (method.name, payload[:200], code, error.details())
