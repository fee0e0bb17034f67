"""FakeDaemon against the real thing, field for field.

The same scenarios run on a real daemon (in process, the fake executor, every progress step
reported: `progress_interval_s = 0`) through `Client`, and on `FakeDaemon`; their event logs and
Job dicts must be equal once ids, times and temp paths are replaced by placeholders. The fake's
copy of the request schema is checked against the .proto files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from PIL import Image

from framerelay import limits
from framerelay.cache import ArtifactCache
from framerelay.cli import serve
from framerelay.engine import presets
from framerelay.engine.params import EngineParams
from framerelay.errors import OutOfMemoryError
from framerelay.jobs import fake_executor, queue
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.jobs.store import SESSION_KEY, JobStore
from framerelay.proto.v1 import daemon_pb2, jobs_pb2, specs_pb2
from framerelay.roundtrip import export
from framerelay.service.app import DaemonThread
from framerelay.service.config import DaemonConfig
from framerelay_client import (
    Busy,
    Client,
    ClientError,
    DaemonApi,
    DiskFull,
    FakeDaemon,
    OutOfMemory,
    Script,
    Stalled,
    job_defaults,
    job_spec,
)
from framerelay_client import api as client_api
from framerelay_client import fake as fake_module
from framerelay_client.protojson import ENUMS, MESSAGES, OPTIONAL
from framerelay_client.spec import PARAMS
from tests.daemon_harness import make_config, make_media, running_daemon, wait_for
from tests.small_disk import fill, small_disk

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
    assert EngineParams().seed == fake_module.DEFAULT_SEED
    assert fake_module.LOCAL_AREA == presets.LOCAL_AREA
    assert fake_module.EXPORT_STEM == export.EXPORT_STEM


def test_every_rpc_has_a_method_and_a_fake_handler():
    service = daemon_pb2.DESCRIPTOR.services_by_name["Daemon"]
    rpcs = {m.name for m in service.methods}
    handled = set(FakeDaemon()._handlers()) | {"WatchJob", "WatchQueue"}
    assert handled == rpcs
    source = Path(client_api.__file__).read_text()
    assert all(f'"{rpc}"' in source for rpc in rpcs)
    assert {m.input_type.name for m in service.methods} <= set(MESSAGES)  # every request parses


def serve_executor(**changes: Any) -> FakeExecutor:
    """The executor `framerelay serve --fake` runs (its steps take no time here), changed."""
    executor = serve.make_executor(argparse.Namespace(fake=True, fake_step_seconds=0.0), None)
    for name, value in changes.items():
        assert hasattr(executor, name), name
        setattr(executor, name, value)
    return executor


def test_the_fakes_defaults_are_serve_fakes():
    executor, script = serve_executor(), Script()
    assert (script.phases, script.preview_phase) == (executor.phases, executor.preview_phase)
    assert executor.frame_size == fake_module.PREVIEW_SIZE
    assert fake_module.MAX_CRASHES == queue.MAX_CRASHES
    made = base64.b64encode(fake_executor.preview_png((5, 3))).decode()
    assert pixels(fake_module._preview_png((5, 3))) == pixels(made)  # the same picture


def pixels(png: str) -> str:
    image = Image.open(io.BytesIO(base64.b64decode(png)))
    digest = hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()[:12]
    return f"<png {image.width}x{image.height} {digest}>"


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
        if key == "phaseSeconds":
            return {phase: "<seconds>" for phase in value}
        if key == "png":
            return pixels(value)
        return self(value)

    def text(self, value: str) -> str:
        value = value.replace(self.root, "<root>")
        for match in re.findall(r"[0-9a-f]{32}", value):
            self.ids.setdefault(match, f"<job{len(self.ids) + 1}>")
        for job_id, name in self.ids.items():
            value = value.replace(job_id, name).replace(job_id[:8], f"{name}[:8]")
        return value


def assert_same(results: dict[str, Any]) -> None:
    """The fake's results equal the real daemon's; else the first place they differ."""
    assert results["fake"] == results["real"], first_difference(results["fake"], results["real"])


def first_difference(fake: Any, real: Any, where: str = "") -> str:
    if isinstance(fake, dict) and isinstance(real, dict):
        for key in [*real, *(k for k in fake if k not in real)]:
            if fake.get(key, "<absent>") != real.get(key, "<absent>"):
                return first_difference(
                    fake.get(key, "<absent>"), real.get(key, "<absent>"), f"{where}.{key}"
                )
    if isinstance(fake, list) and isinstance(real, list):
        for n, (one, other) in enumerate(zip(fake, real, strict=False)):
            if one != other:
                return first_difference(one, other, f"{where}[{n}]")
        if len(fake) != len(real):
            return f"{where}: the fake has {len(fake)} items, the daemon {len(real)}"
    return f"{where or 'the results'}: fake {fake!r} != daemon {real!r}"


@pytest.fixture
def media(tmp_path):
    return make_media(tmp_path / "media", frames=12)


def fake_for(root: Path, **options: Any) -> FakeDaemon:
    return FakeDaemon(root=root, **options)


def both(tmp_path: Path, executor: FakeExecutor, **config: Any) -> Iterator[tuple[str, DaemonApi]]:
    """A real daemon (in process) and a fake over the same kind of temp folder, each with its
    folder as an output root (tests.daemon_harness.make_config); the fake is told the clip's
    length, as a host test would."""
    with running_daemon(tmp_path / "real", executor, **config) as (daemon, _):
        found = daemon.discovery
        yield "real", Client(found.http_url, found.token)
    yield "fake", the_fake(tmp_path, no_open=config.get("no_open", False))


def the_fake(tmp_path: Path, **options: Any) -> FakeDaemon:
    fake = fake_for(tmp_path / "fake", output_roots=(tmp_path / "fake",), **options)
    fake.add_clip(tmp_path / "media" / "source.mp4", 12)
    return fake


def until(api: DaemonApi, ready: Callable[[], Any]) -> None:
    """Lets time pass until `ready()`: the real daemon's, or the fake's one step at a time."""
    if not isinstance(api, FakeDaemon):
        wait_for(ready)
        return
    while not ready():
        assert api.advance(), "the fake has nothing left to do"


def last_seq(api: DaemonApi, job_id: str) -> int:
    return int(api.get_job(job_id)["lastSeq"])


def refusal(call: Callable[[], Any], kind: type[ClientError] = ClientError) -> dict:
    with pytest.raises(kind) as refused:
        call()
    return refused.value.to_dict()


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
    for name, api in both(tmp_path, serve_executor()):
        events, jobs = run_jobs(api, specs)
        placeholders = Placeholders(tmp_path / name)
        results[name] = placeholders((events, jobs))
    assert_same(results)
    events, jobs = results["real"]
    assert "load" not in str(events[1])  # the second job finds the model loaded
    assert [e["preview"]["phase"] for e in events[0] if "preview" in e] == ["edit"]
    assert [job["result"]["preset"] for job in jobs] == ["style", "local"]  # auto chose local


def test_a_failing_job_fails_the_same(tmp_path, media):
    results = {}
    error = "the job ran out of memory."
    for name, api in both(tmp_path, serve_executor(fail=lambda run: OutOfMemoryError(error))):
        if isinstance(api, FakeDaemon):
            api.script(job_outcome="failed", error=OutOfMemory(error))
        results[name] = Placeholders(tmp_path / name)(run_jobs(api, [spec(media)]))
    assert_same(results)
    [[*_, failed]], _ = results["real"]
    assert failed["failed"]["error"]["code"] == "ERROR_CODE_OUT_OF_MEMORY"


def test_previews_come_the_same(tmp_path, media):
    results = {}
    for name, api in both(tmp_path, serve_executor(preview_phase="invert")):
        if isinstance(api, FakeDaemon):
            api.script(preview_phase="invert")
        results[name] = Placeholders(tmp_path / name)(run_jobs(api, [spec(media)]))
    assert_same(results)
    assert "<png 64x64 " in str(results["real"])


def test_round_trips_with_follow_saves_go_the_same(tmp_path, media):
    """Export, attach (queued), start, attach again: a follow job takes the second edit."""
    source, edited = media
    results = {}
    gate = threading.Event()
    for name, api in both(tmp_path, serve_executor(gate=gate), no_open=True):
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
    assert_same(results)
    submitted, first, second, events, jobs = results["real"]
    assert second["job"]["id"] != submitted["job"]["id"]
    assert "EDIT_EVENT_KIND_EDIT_RECEIVED" in str(events[1][1])
    assert "watching" not in jobs[0]["edit"]  # false: the round trip went on with the follow job


# --- queue control, the model, the cache and job defaults ---

RUNNING = "JOB_STATE_RUNNING"
QUEUED = "JOB_STATE_QUEUED"


def test_a_pause_lets_the_running_job_finish_and_holds_the_queue_the_same(tmp_path, media):
    """Pause while a job runs (unloading is refused then), it finishes, the next one waits for
    resume_queue."""
    results = {}
    gate = threading.Event()
    for name, api in both(tmp_path, serve_executor(gate=gate)):
        first = api.submit(spec(media))["job"]["id"]
        until(api, lambda api=api, first=first: last_seq(api, first) >= 3)  # loaded, at the gate
        second = api.submit(spec(media))["job"]
        busy = refusal(api.unload_model, Busy)
        paused = api.pause_queue()
        gate.set()
        ran = list(api.watch(first))
        held = (api.status(), api.get_job(second["id"]), api.list_jobs(states=["queued"]))
        resumed = (api.resume_queue(), api.resume_queue())
        waited = list(api.watch(second["id"]))
        after = api.status()
        results[name] = Placeholders(tmp_path / name)(
            (first, second, busy, paused, ran, held, resumed, waited, after)
        )
        gate.clear()
    assert_same(results)
    _, second, busy, paused, ran, held, resumed, waited, after = results["real"]
    assert "<job1> is running on the model" in busy["message"] and "Pause" in busy["hint"]
    assert paused == {"paused": True} and "finished" in ran[-1]
    status, job, listed = held
    assert status["queuePaused"] and status["queueLength"] == 1 and "runningJobId" not in status
    assert job["state"] == QUEUED and job["position"] == 1 and job["lastSeq"] == 1
    assert [j["id"] for j in listed["jobs"]] == [second["id"]]
    assert resumed == [{"wasPaused": True}, {}] and "finished" in waited[-1]
    assert "queuePaused" not in after


def test_a_pause_that_interrupts_queues_the_job_first_and_it_resumes_the_same(tmp_path, media):
    """Interrupted in its invert phase, the job goes back to the front of the queue; the model
    is unloaded meanwhile; on resume it loads again and reports decode and lora as cached."""
    reached, release = threading.Event(), threading.Event()

    def hold(run) -> None:  # step 1 of invert waits here (each run) until released
        reached.set()
        release.wait(10)

    results = {}
    for name, api in both(tmp_path, serve_executor(fail=hold, fail_phase="invert")):
        job = api.submit(spec(media))["job"]["id"]
        until(api, lambda api=api, job=job: api.get_job(job)["state"] == RUNNING)
        other = api.submit(spec(media))["job"]["id"]
        if isinstance(api, FakeDaemon):  # where the real job is held: invert 1/3 comes next
            until(api, lambda api=api, job=job: "invert" in str(api.events(job)[-1]))
        else:
            assert reached.wait(10)
        paused = api.pause_queue(interrupt_running=True)
        release.set()
        until(api, lambda api=api, job=job: api.get_job(job)["state"] == QUEUED)
        held = (api.list_jobs(states=["queued"]), api.status(), api.get_job(job))
        unloaded = (api.unload_model(), api.unload_model())
        api.resume_queue()
        events = [list(api.watch(job)), list(api.watch(other))]
        final = api.get_job(job)
        results[name] = Placeholders(tmp_path / name)((paused, held, unloaded, events, final))
    assert_same(results)
    paused, held, unloaded, events, final = results["real"]
    listed, status, queued = held
    assert paused == {"paused": True, "interruptedJobId": "<job1>"}
    assert [j["id"] for j in listed["jobs"]] == ["<job1>", "<job2>"]
    assert status["queuePaused"] and status["modelLoaded"] and "runningJobId" not in status
    assert "progress" not in queued and queued["attempt"] == 1
    assert unloaded == [{"wasLoaded": True}, {}]
    log = events[0]
    requeued = next(
        i for i, e in enumerate(log) if e.get("queued", {}).get("reason", "").endswith("PAUSED")
    )
    assert log[requeued - 1]["progress"]["phase"] == "invert"  # stopped at a step boundary
    assert log[requeued]["queued"] == {"position": 1, "reason": "QUEUED_REASON_PAUSED"}
    again = [e.get("progress", {}) for e in log[requeued + 2 : requeued + 5]]
    assert [(p["phase"], p.get("message")) for p in again] == [
        ("load", None),
        ("decode", "cached"),
        ("lora", "cached"),
    ]
    assert "cancelled" not in str(log) and final["attempt"] == 2 and "finished" in log[-1]


def test_unloading_while_a_job_runs_is_refused_the_same(tmp_path, media):
    results = {}
    gate = threading.Event()
    for name, api in both(tmp_path, serve_executor(gate=gate)):
        job = api.submit(spec(media))["job"]["id"]
        until(api, lambda api=api, job=job: last_seq(api, job) >= 3)  # loaded, at the gate
        busy = refusal(api.unload_model, Busy)
        api.cancel(job)
        ended = list(api.watch(job))[-1]
        results[name] = Placeholders(tmp_path / name)((busy, ended, api.unload_model()))
    assert_same(results)


def test_job_defaults_fill_what_a_job_leaves_unset_the_same(tmp_path, media):
    results = {}
    for name, api in both(tmp_path, serve_executor()):
        renders = tmp_path / name / "data" / "outputs" / "renders"
        built_in = api.get_defaults()
        refused = [
            refusal(lambda api=api, f=folder: api.set_defaults(job_defaults(output_folder=f)))
            for folder in ("/", "relative/renders", str(tmp_path / "media" / "edited.png"))
        ]
        chosen = api.set_defaults(job_defaults("style", "mp4", renders))
        read_back = api.get_defaults()
        plain = api.submit(spec(media, preset=None))["job"]
        events = [list(api.watch(plain["id"]))]
        explicit = api.submit(spec(media, preset="auto", output_format="png"))["job"]
        events.append(list(api.watch(explicit["id"])))
        reset = api.set_defaults({})
        results[name] = Placeholders(tmp_path / name)(
            (built_in, refused, chosen, read_back, plain, explicit, events, reset)
        )
    assert_same(results)
    built_in, refused, chosen, read_back, plain, explicit, events, reset = results["real"]
    assert built_in["defaults"] == {"preset": "PRESET_AUTO", "outputFormat": "OUTPUT_FORMAT_MOV"}
    assert built_in["configPath"] == "<root>/config/config.toml" and reset == built_in
    assert ["output roots" in r["message"] for r in refused] == [True, False, False]
    assert "absolute" in refused[1]["message"] and "is a file" in refused[2]["message"]
    assert chosen == read_back and chosen["defaults"]["outputFolder"].endswith("/renders")
    assert plain["spec"]["params"]["preset"] == "PRESET_STYLE"
    assert plain["outputPaths"][0].startswith("<root>/data/outputs/renders/")
    assert plain["outputPaths"][0].endswith(".mp4")
    assert explicit["spec"]["output"] == {
        "format": "OUTPUT_FORMAT_PNG",
        "folder": "<root>/data/outputs/renders",
    }
    assert [e[-1]["finished"]["preset"] for e in events] == ["style", "local"]


def test_cache_info_gc_and_clear_the_same(tmp_path, media):
    """Entries of two clips and LoRA checkpoints: gc trims the least recently used entries and
    keeps the checkpoints; neither gc nor clear runs under a job; clear empties everything."""
    entries = (("/clips/a.mov", 1000), ("/clips/b.mov", 3000), ("/clips/a.mov", 2500))
    results = {}
    gate = threading.Event()
    for name, api in both(tmp_path, serve_executor(gate=gate)):
        if isinstance(api, FakeDaemon):
            for clip, size in entries:
                api.add_cache_entry(clip, size)
            api.cache_unfinished_bytes = 700
        else:
            fill_cache(ArtifactCache(tmp_path / name / "cache"), entries, 700)
        before = api.cache_info()
        trimmed = (api.gc_cache(5600), api.gc_cache(5600))
        job = api.submit(spec(media))["job"]["id"]
        until(api, lambda api=api, job=job: api.get_job(job)["state"] == RUNNING)
        busy = [refusal(lambda api=api: api.gc_cache(0), Busy), refusal(api.clear_cache, Busy)]
        gate.set()
        list(api.watch(job))
        middle = api.cache_info()
        cleared = (api.clear_cache(), api.cache_info())
        results[name] = Placeholders(tmp_path / name)((before, trimmed, busy, middle, cleared))
        gate.clear()
    assert_same(results)
    before, trimmed, busy, middle, cleared = results["real"]
    assert before == {
        "entries": "3",
        "bytes": "7200",
        "root": "<root>/cache",
        "unfinishedBytes": "700",
        "clips": [
            {"sourcePath": "/clips/a.mov", "entries": "2", "bytes": "3500"},
            {"sourcePath": "/clips/b.mov", "entries": "1", "bytes": "3000"},
        ],
    }
    assert trimmed == [
        {"freedBytes": "1000", "entries": "2", "bytes": "6200"},
        {"entries": "2", "bytes": "6200"},
    ]
    assert all(b["code"] == "ERROR_CODE_BUSY" for b in busy)
    assert middle["unfinishedBytes"] == "700"
    assert cleared == [{"freedBytes": "6200"}, {"root": "<root>/cache"}]


def fill_cache(cache: ArtifactCache, entries: tuple[tuple[str, int], ...], unfinished: int) -> None:
    """Entries made in this order (the first is the least recently used) and a LoRA checkpoint
    of `unfinished` bytes, as the engine leaves them."""
    for n, (clip, size) in enumerate(entries):
        key = f"{n + 1:064x}"
        cache.put(
            key,
            lambda folder, size=size: (folder / "w.bin").write_bytes(b"w" * size),
            {"clip": clip},
        )
    checkpoint = cache.root / "checkpoints" / ("c" * 64) / "step-50"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter.safetensors").write_bytes(b"c" * unfinished)


def test_a_full_data_disk_goes_the_same(tmp_path, media):
    """The real daemon's data folder on a small tmpfs that the test fills (skipped where none
    can be mounted); the fake's fill_data_disk. Outputs go next to the source, off that disk."""
    source, edited = media
    folder = str(source.parent)

    def plain() -> dict:
        return job_spec(str(source), [str(edited)], in_frame=0, out_frame=6, fps=24)

    def scenario(api: DaemonApi, full: Callable[[], None], room: Callable[[], None]) -> Any:
        running = api.submit(plain())["job"]["id"]
        until(api, lambda: last_seq(api, running) >= 3)  # loaded, held before its first step
        waiting = api.submit(plain())["job"]["id"]
        trip = api.submit(job_spec(str(source), roundtrip={}))["job"]["id"]
        full()
        refused = [
            refusal(call, DiskFull)
            for call in (
                lambda: api.submit(plain()),
                lambda: api.submit(job_spec(str(source), roundtrip={})),
                lambda: api.move(waiting, 1),
                lambda: api.cancel(running),
                api.pause_queue,
                lambda: api.attach_edit(trip, edited),
            )
        ]
        answered = (api.resume_queue(), api.status(), api.get_job(running)["state"])
        gate.set()  # the job's next report meets the full disk
        until(api, lambda: api.get_job(running)["state"] == "JOB_STATE_FAILED")
        full()
        last = api.poll(running)["events"][-1:]
        held = (api.status(), api.get_job(waiting), api.get_job(running), last)
        room()
        ended = list(api.watch(waiting))[-1]
        after = api.status()
        api.cancel(trip)
        return refused, answered, held, ended, after

    gate = threading.Event()
    state = tmp_path / "real"
    with small_disk(tmp_path / "disk", 24) as disk:
        config = DaemonConfig(
            config_dir=state / "config",
            data_dir=disk / "data",
            log_dir=state / "log",
            cache_dir=state / "cache",
            progress_interval_s=0.0,
            output_roots=(state,),
            no_open=True,
        )
        fillers: list[Path] = []
        with DaemonThread(config, serve_executor(gate=gate)) as daemon:
            real = Client(daemon.discovery.http_url, daemon.discovery.token)
            outcome = scenario(
                real,
                lambda: fillers.append(fill(disk, f"filler-{len(fillers)}")),
                lambda: [path.unlink() for path in fillers],
            )
    results = {"real": Placeholders(tmp_path / "disk")(outcome)}
    gate.clear()
    fake = FakeDaemon(root=tmp_path / "fakedisk", no_open=True, output_roots=(folder,))
    fake.add_clip(source, 12)
    results["fake"] = Placeholders(tmp_path / "fakedisk")(
        scenario(fake, fake.fill_data_disk, fake.free_data_disk)
    )
    assert_same(results)
    refused, answered, held, ended, after = results["real"]
    assert all(r["code"] == "ERROR_CODE_DISK_FULL" for r in refused)
    assert "No space left on the disk to write <root>/data/edits/" in refused[1]["message"]
    assert answered[0] == {} and "waitingOn" not in answered[1]  # no failure met yet
    status, waiting, running, [last] = held
    assert status["waitingOn"]["message"] == (
        "the disk holding the daemon's data folder <root>/data is full."
    )
    assert status["queueLength"] == 1 and waiting["state"] == "JOB_STATE_QUEUED"
    assert running["error"] == last["failed"]["error"] and running["attempt"] == 1
    assert last["failed"]["error"]["message"].startswith("the job stopped: the disk holding")
    assert "finished" in ended and "waitingOn" not in after


def test_restarts_keep_the_pause_and_a_job_at_two_crashes_is_failed_the_same(tmp_path, media):
    """A paused daemon is killed while a job runs: it restarts paused with the job first in the
    queue; resumed, the job runs and the daemon is killed again: the job is failed."""
    results = {}
    root = tmp_path / "real"
    gate = threading.Event()  # never set: the job stays at its first step

    def crashed() -> None:  # what a killed daemon leaves behind: a session that never ended
        JobStore(make_config(root).database).set_setting(SESSION_KEY, "running")

    with running_daemon(root, serve_executor(gate=gate)) as (daemon, _):
        api = Client(daemon.discovery.http_url, daemon.discovery.token)
        job = api.submit(spec(media))["job"]["id"]
        wait_for(lambda: last_seq(api, job) >= 3)
        steps = [api.pause_queue()]
    crashed()
    with running_daemon(root, serve_executor(gate=gate)) as (daemon, _):
        api = Client(daemon.discovery.http_url, daemon.discovery.token)
        wait_for(lambda: api.get_job(job)["state"] == QUEUED)
        steps += [api.status(), api.resume_queue()]
        wait_for(lambda: last_seq(api, job) >= 6)
    crashed()
    with running_daemon(root, serve_executor(gate=gate)) as (daemon, _):
        api = Client(daemon.discovery.http_url, daemon.discovery.token)
        steps += [list(api.watch(job)), api.get_job(job), api.status()]
    results["real"] = Placeholders(root)(steps)

    fake = the_fake(tmp_path)
    job = fake.submit(spec(media))["job"]["id"]
    until(fake, lambda: last_seq(fake, job) >= 3)
    steps = [fake.pause_queue()]
    fake.restart(crashed=True)
    steps += [fake.status(), fake.resume_queue()]
    until(fake, lambda: last_seq(fake, job) >= 6)
    fake.restart(crashed=True)
    steps += [list(fake.watch(job)), fake.get_job(job), fake.status()]
    results["fake"] = Placeholders(tmp_path / "fake")(steps)

    assert_same(results)
    _, status, _, events, final, after = results["real"]
    assert status["queuePaused"] and status["queueLength"] == 1 and "modelLoaded" not in status
    assert [e["queued"]["reason"] for e in events if "queued" in e] == [
        "QUEUED_REASON_SUBMITTED",
        "QUEUED_REASON_RECOVERED",
    ]
    assert final["state"] == "JOB_STATE_FAILED" and final["attempt"] == 2
    assert "2 times" in final["error"]["message"] and "retry" in final["error"]["hint"]
    assert "queuePaused" not in after


def test_a_clean_restart_is_no_crash(tmp_path, media):
    fake = the_fake(tmp_path)
    job = fake.submit(spec(media))["job"]["id"]
    for _ in range(3):
        until(fake, lambda: fake.get_job(job)["state"] == RUNNING)
        fake.restart()
    assert fake.run_until_ended(job)["attempt"] == 4


def test_a_paused_queue_stalls_a_watch_until_it_is_resumed(tmp_path, media):
    fake = fake_for(tmp_path, stall_timeout=0.05)
    fake.pause_queue()
    job = fake.submit(spec(media))["job"]["id"]
    with pytest.raises(Stalled, match="resume_queue"):
        fake.run_until_ended(job)
    fake.resume_queue()
    assert fake.run_until_ended(job)["state"] == "JOB_STATE_FINISHED"


def test_scripted_cache_hits_report_cached_phases(tmp_path, media):
    fake = fake_for(tmp_path)
    fake.script(cached_phases=("lora", "invert"), windows=2)
    job = fake.submit(spec(media))["job"]["id"]
    fake.run_until_ended(job)
    cached = [
        (e["progress"]["phase"], e["progress"]["clip"])
        for e in fake.events(job)
        if e.get("progress", {}).get("message") == "cached"
    ]
    assert cached == [("lora", 1), ("invert", 1), ("lora", 2), ("invert", 2)]


# --- what only the fake offers ---


def test_scripted_windows_and_outputs(tmp_path, media):
    written = []
    fake = fake_for(tmp_path)
    fake.script(windows=3, output_writer=lambda path, job: written.append((path, job["id"])))
    job_id = fake.submit(spec(media))["job"]["id"]
    job = fake.run_until_ended(job_id)
    events = fake.events(job_id)
    clips = [(e["progress"]["phase"], e["progress"]["clip"]) for e in events if "progress" in e]
    assert [e["preview"]["phase"] for e in events if "preview" in e] == ["edit"] * 3  # per window
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
