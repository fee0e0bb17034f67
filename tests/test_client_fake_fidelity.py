"""FakeDaemon against the real thing, field for field.

The same scenarios run on a real daemon (in process, the fake executor, every progress step
reported: `progress_interval_s = 0`) through `Client`, and on `FakeDaemon`; their event logs and
Job dicts must be equal once ids, times and temp paths are replaced by placeholders. The fake's
copy of the request schema is checked against the .proto files.
"""

from __future__ import annotations

import base64
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

from framerelay import limits
from framerelay.errors import OutOfMemoryError
from framerelay.jobs import fake_executor
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import daemon_pb2, jobs_pb2, specs_pb2
from framerelay.roundtrip import export
from framerelay_client import Client, DaemonApi, FakeDaemon, OutOfMemory, Stalled, job_spec
from framerelay_client import api as client_api
from framerelay_client import fake as fake_module
from framerelay_client.protojson import ENUMS, MESSAGES, OPTIONAL
from framerelay_client.spec import PARAMS
from tests.daemon_harness import make_media, running_daemon, wait_for

SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_BOOL: "bool",
}


def proto_type(field: FieldDescriptor) -> str:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return "map"
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        base = f"message:{field.message_type.name}"
    elif field.type == FieldDescriptor.TYPE_ENUM:
        base = f"enum:{field.enum_type.name}"
    else:
        base = SCALARS[field.type]
    return f"[]{base}" if field.is_repeated else base


def descriptor(name: str):
    for module in (daemon_pb2, specs_pb2):
        if name in module.DESCRIPTOR.message_types_by_name:
            return module.DESCRIPTOR.message_types_by_name[name]
    raise KeyError(name)


def test_the_fakes_request_schema_is_the_protos():
    for name, fields in MESSAGES.items():
        message = descriptor(name)
        assert fields == {f.json_name: proto_type(f) for f in message.fields}, name
        optional = {
            (name, f.json_name)
            for f in message.fields
            if f.has_presence and f.type != FieldDescriptor.TYPE_MESSAGE
        }
        assert optional == {entry for entry in OPTIONAL if entry[0] == name}, name
    for enum, values in ENUMS.items():
        found = next(
            m.DESCRIPTOR.enum_types_by_name[enum]
            for m in (daemon_pb2, specs_pb2, jobs_pb2)
            if enum in m.DESCRIPTOR.enum_types_by_name
        )
        assert values == tuple(v.name for v in found.values), enum


def test_job_spec_knows_every_engine_parameter_of_the_proto():
    fields = {f.name for f in specs_pb2.EditParams.DESCRIPTOR.fields} - {"preset"}
    assert set(PARAMS) == fields
    for field in specs_pb2.EditParams.DESCRIPTOR.fields:
        if field.name in PARAMS:
            expected = {"bool": bool, "double": float}.get(proto_type(field), int)
            assert PARAMS[field.name] is expected, field.name


def test_the_fakes_limits_and_phases_are_the_daemons():
    for name in (
        "MAX_EDITED_FRAMES",
        "MAX_PATH_LENGTH",
        "MAX_FRAMES",
        "MAX_LABEL_LENGTH",
        "MAX_REQUEST_ID_LENGTH",
        "MAX_HOST_CONTEXT_ENTRIES",
        "MAX_HOST_CONTEXT_TEXT",
    ):
        assert getattr(fake_module, name) == getattr(limits, name), name
    assert fake_module.DEFAULT_PHASES == fake_executor.DEFAULT_PHASES
    assert fake_module.EXPORT_STEM == export.EXPORT_STEM


def test_every_rpc_has_a_method_and_a_fake_handler():
    service = daemon_pb2.DESCRIPTOR.services_by_name["Daemon"]
    rpcs = {m.name for m in service.methods}
    handled = set(FakeDaemon()._handlers()) | {"WatchJob", "WatchQueue"}
    assert handled == rpcs
    source = Path(client_api.__file__).read_text()
    assert all(f'"{rpc}"' in source for rpc in rpcs)


# --- the same scenarios on both ---


class Placeholders:
    """Replaces what differs between two runs: ids, times, cursors, temp paths, ETA values."""

    def __init__(self, root: Path):
        self.root = str(root)
        self.ids: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.field(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def field(self, key: str, value: Any) -> Any:
        if key in ("time", "createdAt", "startedAt", "endedAt"):
            return "<time>"
        if key == "cursor":
            return "<cursor>"
        if key == "etaSeconds":
            return "<eta>"
        if key == "uptimeSeconds":
            return "<uptime>"
        if key == "png":
            width, height = struct.unpack(">II", base64.b64decode(value)[16:24])
            return f"<png {width}x{height}>"
        return self(value)

    def text(self, value: str) -> str:
        value = value.replace(self.root, "<root>")
        for match in re.findall(r"[0-9a-f]{32}", value):
            self.ids.setdefault(match, f"<job{len(self.ids) + 1}>")
        for job_id, name in self.ids.items():
            value = value.replace(job_id, name).replace(job_id[:8], f"{name}[:8]")
        return value


@pytest.fixture
def media(tmp_path):
    return make_media(tmp_path / "media", frames=12)


def fake_for(root: Path, **options: Any) -> FakeDaemon:
    return FakeDaemon(root=root, **options)


def both(tmp_path: Path, executor: FakeExecutor, **config: Any) -> Iterator[tuple[str, DaemonApi]]:
    """A real daemon (in process) and a fake over the same kind of temp folder; the fake is told
    the clip's length, as a host test would."""
    with running_daemon(tmp_path / "real", executor, **config) as (daemon, _):
        found = daemon.discovery
        yield "real", Client(found.http_url, found.token)
    fake = fake_for(tmp_path / "fake", no_open=config.get("no_open", False))
    fake.add_clip(tmp_path / "media" / "source.mp4", 12)
    yield "fake", fake


def run_jobs(api: DaemonApi, specs: list[dict]) -> tuple[list[list[dict]], list[dict]]:
    ids = []
    for spec in specs:  # one at a time: the order of two queued jobs' events is the queue's
        ids.append(api.submit(spec)["job"]["id"])
        list(api.watch(ids[-1]))
    return [list(api.watch(i)) for i in ids], [api.get_job(i) for i in ids]


def spec(media, **fields) -> dict:
    source, edited = media
    return job_spec(str(source), [str(edited)], in_frame=1, out_frame=7, fps="24000/1001", **fields)


def test_jobs_emit_the_same_events_and_end_the_same(tmp_path, media):
    specs = [
        spec(media, preset="style", params={"seed": 7, "beta1": 0.5}, host_context={"a": "1"}),
        spec(media, output_format="png", label="second: the model is warm"),
    ]
    results = {}
    for name, api in both(tmp_path, FakeExecutor()):
        events, jobs = run_jobs(api, specs)
        placeholders = Placeholders(tmp_path / name)
        results[name] = placeholders((events, jobs))
    assert results["fake"] == results["real"]
    events = results["real"][0]
    assert "load" not in str(events[1])  # the second job finds the model loaded


def test_a_failing_job_fails_the_same(tmp_path, media):
    results = {}
    error = "the job ran out of memory."
    for name, api in both(tmp_path, FakeExecutor(fail=lambda run: OutOfMemoryError(error))):
        if isinstance(api, FakeDaemon):
            api.script(job_outcome="failed", error=OutOfMemory(error))
        results[name] = Placeholders(tmp_path / name)(run_jobs(api, [spec(media)]))
    assert results["fake"] == results["real"]
    [[*_, failed]], _ = results["real"]
    assert failed["failed"]["error"]["code"] == "ERROR_CODE_OUT_OF_MEMORY"


def test_previews_come_the_same(tmp_path, media):
    results = {}
    for name, api in both(tmp_path, FakeExecutor(preview_phase="invert")):
        if isinstance(api, FakeDaemon):
            api.script(preview_phase="invert")
        results[name] = Placeholders(tmp_path / name)(run_jobs(api, [spec(media)]))
    assert results["fake"] == results["real"]
    assert "<png 64x64>" in str(results["real"])


def test_round_trips_with_follow_saves_go_the_same(tmp_path, media):
    """Export, attach (queued), start, attach again: a follow job takes the second edit."""
    source, edited = media
    results = {}
    gate = threading.Event()
    for name, api in both(tmp_path, FakeExecutor(gate=gate), no_open=True):
        submitted = api.submit(
            job_spec(str(source), roundtrip={"follow_saves": True, "frame_index": 2})
        )
        job_id = submitted["job"]["id"]
        first = api.attach_edit(job_id, edited)
        if isinstance(api, FakeDaemon):
            while api.get_job(job_id)["lastSeq"] < 6:  # started, and the model loaded
                api.advance()
        else:
            wait_for(lambda api=api, job_id=job_id: api.get_job(job_id)["lastSeq"] >= 6)
        second = api.attach_edit(job_id, edited)
        gate.set()
        follow_id = second["job"]["id"]
        events = [list(api.watch(job_id)), list(api.watch(follow_id))]
        jobs = [api.get_job(job_id), api.get_job(follow_id)]
        # The attach answer may show the job queued or already started (the worker is quick).
        taken = (first["version"], first["job"]["id"], first["job"]["spec"])
        results[name] = Placeholders(tmp_path / name)((submitted, taken, second, events, jobs))
    assert results["fake"] == results["real"]
    submitted, first, second, events, jobs = results["real"]
    assert second["job"]["id"] != submitted["job"]["id"]
    assert "EDIT_EVENT_KIND_EDIT_RECEIVED" in str(events[1][1])
    assert "watching" not in jobs[0]["edit"]  # false: the round trip went on with the follow job


# --- what only the fake offers ---


def test_scripted_windows_and_outputs(tmp_path, media):
    written = []
    fake = fake_for(tmp_path)
    fake.script(windows=3, output_writer=lambda path, job: written.append((path, job["id"])))
    job_id = fake.submit(spec(media))["job"]["id"]
    job = fake.run_until_ended(job_id)
    clips = [(e["progress"]["phase"], e["progress"]["clip"]) for e in fake.events(job_id)[2:-1]]
    assert sorted({c for c in clips if c[0] == "lora"}) == [("lora", 1), ("lora", 2), ("lora", 3)]
    assert {p for p, _ in clips if p in ("load", "decode")} == {"load", "decode"}
    assert written == [(job["outputPaths"][0], job_id)]


def test_a_watch_that_would_wait_forever_says_so(tmp_path, media):
    fake = fake_for(tmp_path, stall_timeout=0.05)
    job_id = fake.submit(job_spec(str(media[0]), roundtrip={}))["job"]["id"]
    with pytest.raises(Stalled, match="awaiting_edit"):
        list(fake.watch(job_id))
    with pytest.raises(Stalled):
        fake.run_until_ended(job_id)


def test_another_thread_can_move_a_watched_job_on(tmp_path, media):
    source, edited = media
    fake = fake_for(tmp_path, stall_timeout=10.0)
    job_id = fake.submit(job_spec(str(source), roundtrip={}))["job"]["id"]
    threading.Timer(0.1, fake.attach_edit, (job_id, edited)).start()
    events = list(fake.watch(job_id))
    assert "finished" in events[-1]


def test_a_restart_requeues_the_running_job_which_skips_finished_phases(tmp_path, media):
    fake = fake_for(tmp_path)
    job_id = fake.submit(spec(media))["job"]["id"]
    while "lora" not in str(fake.events(job_id)[-1]):
        fake.advance()
    fake.restart()
    assert fake.get_job(job_id)["state"] == "JOB_STATE_QUEUED"
    job = fake.run_until_ended(job_id)
    events = fake.events(job_id)
    recovered = next(i for i, e in enumerate(events) if "queued" in e and e["seq"] > 1)
    assert events[recovered]["queued"] == {"position": 1, "reason": "QUEUED_REASON_RECOVERED"}
    assert events[recovered + 1]["started"] == {"attempt": 2}
    assert events[recovered + 2]["progress"]["phase"] == "load"  # the model loads again
    assert events[recovered + 3]["progress"] == {
        "phase": "decode",
        "clip": 1,
        "clips": 1,
        "step": 2,
        "total": 2,
        "message": "cached",
    }
    assert job["state"] == "JOB_STATE_FINISHED" and job["attempt"] == 2


def test_saves_after_the_start_are_ignored_without_follow_saves(tmp_path, media):
    source, edited = media
    fake = fake_for(tmp_path)
    job_id = fake.submit(job_spec(str(source), roundtrip={}))["job"]["id"]
    fake.save_edit(job_id, edited)
    fake.advance()  # started
    fake.save_edit(job_id, edited)
    kinds = [e["edit"]["kind"] for e in fake.events(job_id) if "edit" in e]
    assert kinds[-1] == "EDIT_EVENT_KIND_SAVE_IGNORED"
    assert fake.run_until_ended(job_id)["edit"]["version"] == 1


def test_failures_can_be_scripted_per_call(tmp_path, media):
    fake = fake_for(tmp_path)
    fake.fail_next("SubmitJob", OutOfMemory("no memory left."))
    with pytest.raises(OutOfMemory):
        fake.submit(spec(media))
    assert fake.submit(spec(media))["job"]["state"] == "JOB_STATE_QUEUED"


def test_scripted_outcomes_by_code_and_cancellation(tmp_path, media):
    fake = fake_for(tmp_path)
    fake.script(job_outcome="failed", error="disk_full", fail_phase="encode")
    failed = fake.run_until_ended(fake.submit(spec(media))["job"]["id"])
    assert failed["error"] == {
        "code": "ERROR_CODE_DISK_FULL",
        "message": "the disk is full.",
        "hint": "Free disk space or run `framerelay cache gc --max-size 20GB`.",
    }
    assert failed["progress"]["phase"] == "edit"  # it failed before encoding began
    fake.script(job_outcome="cancelled", fail_phase="lora")
    job_id = fake.submit(spec(media))["job"]["id"]
    *_, last = fake.watch(job_id)
    assert last["cancelled"]["reason"] == "CANCEL_REASON_INTERRUPTED"
    assert last["cancelled"]["phase"] == "decode"  # the last phase it reported
