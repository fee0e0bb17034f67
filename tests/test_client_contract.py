"""The client contract, run against both implementations a host can hold:

* "daemon": `framerelay_client.Client` over HTTP to a real `framerelay serve --fake --no-open`
  subprocess on loopback (its folders in the test's temp dir; each fake step takes 0.1 s);
* "fake": `framerelay_client.FakeDaemon` in memory, on the same real files.

Every test is written once, against `DaemonApi`; nothing here knows which one it talks to except
the backend's two verbs that only a test needs (stop it; a client with a wrong token).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from framerelay_client import (
    Busy,
    Client,
    DaemonApi,
    DaemonNotRunning,
    DaemonUnreachable,
    EditUnreadable,
    FakeDaemon,
    Forbidden,
    InvalidSpec,
    JobView,
    NotFound,
    SourceUnreadable,
    Unauthenticated,
    job_defaults,
    job_spec,
    reduce,
)
from framerelay_client.events import describe, reduce_all
from tests.daemon_harness import make_media, start_serve, stop_serve

PHASES = ["load", "decode", "lora", "invert", "edit", "encode"]
CONTEXT = {"record_frame": "86520", "track": "3"}


@dataclass
class Backend:
    name: str
    api: DaemonApi
    source: Path
    edited: Path
    stop: Callable[[], None]  # the daemon goes away
    with_token: Callable[[str], DaemonApi]
    rediscover: Callable[[], DaemonApi]  # what a host does to connect anew

    def spec(self, frames: int = 6, **fields) -> dict:
        fields.setdefault("host_context", CONTEXT)
        return job_spec(
            str(self.source), [str(self.edited)], in_frame=0, out_frame=frames, fps=24, **fields
        )


@pytest.fixture(params=["daemon", "fake"])
def backend(request, tmp_path) -> Iterator[Backend]:
    source, edited = make_media(tmp_path / "media", frames=12)
    if request.param == "fake":
        yield fake_backend(tmp_path, source, edited)
        return
    process, found = start_serve(tmp_path, "--fake", "--no-open", "--fake-step-seconds", "0.1")
    path = tmp_path / "config" / "daemon.json"
    try:
        yield Backend(
            "daemon",
            Client.discover(path),
            source,
            edited,
            stop=lambda: stop_serve(process),
            with_token=lambda token: Client(found.http_url, token),
            rediscover=lambda: Client.discover(path),
        )
    finally:
        if process.poll() is None:
            stop_serve(process)


def fake_backend(root: Path, source: Path, edited: Path) -> Backend:
    fake = FakeDaemon(root=root, no_open=True)

    def stop() -> None:
        fake.down = True

    def with_token(token: str) -> FakeDaemon:
        fake.token_ok = False
        return fake

    def rediscover() -> FakeDaemon:
        fake.down_reason = "not_running"
        return fake

    return Backend("fake", fake, source, edited, stop, with_token, rediscover)


def payload(event: dict) -> tuple[str, dict]:
    kind = next(k for k in event if k not in ("jobId", "seq", "cursor", "time"))
    return kind, event[kind]


def kinds(events: list[dict]) -> list[str]:
    return [payload(e)[0] for e in events]


def watch_to_end(api: DaemonApi, job_id: str, after_seq: int = 0) -> list[dict]:
    return list(api.watch(job_id, after_seq))


# --- status, submit, get, list ---


def test_status(backend):
    status = backend.api.status()
    assert status["version"] == "0.1.0"
    assert status["device"] in ("auto", "cpu")
    assert status["model"] == "fake"
    assert isinstance(status["pid"], int) and status["uptimeSeconds"] >= 0
    assert (
        "queuePaused" not in status and "waitingOn" not in status and "runningJobId" not in status
    )


def test_submit_get_and_list_give_the_job_as_the_api_does(backend):
    api = backend.api
    spec = backend.spec(preset="local", params={"steps": 10}, output_format="mp4")
    submitted = api.submit(spec)
    job = submitted["job"]
    assert set(submitted) == {"job"}  # exportedPath is for round trips only
    assert len(job["id"]) == 32 and job["lastSeq"] >= 1
    assert job["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")
    assert job["spec"] == {
        "sourcePath": str(backend.source),
        "frameRange": {"outFrame": 6},  # proto3 JSON leaves the zero in-frame out
        "sourceFps": {"num": 24, "den": 1},
        "editedFramePaths": [str(backend.edited)],
        "params": {"preset": "PRESET_LOCAL", "steps": 10},
        "output": {"format": "OUTPUT_FORMAT_MP4"},
        "hostContext": CONTEXT,
    }
    [output] = job["outputPaths"]
    assert output.endswith(f"/outputs/{job['id']}/source_{job['id'][:8]}.mp4")

    events = watch_to_end(api, job["id"])
    got = api.get_job(job["id"])
    listed = api.list_jobs(states=["finished"])
    assert got["id"] == job["id"] and got["state"] == "JOB_STATE_FINISHED"
    assert got["spec"] == job["spec"] and got["lastSeq"] == len(events)
    assert got["result"]["outputPaths"] == [output]
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    assert int(listed["cursor"]) >= len(events)
    assert "jobs" not in api.list_jobs(states=["JOB_STATE_QUEUED", "awaiting_edit"])


def test_footage_options_travel_with_the_spec(backend, tmp_path):
    api = backend.api
    lut = tmp_path / "log_to_video.cube"
    lut.write_text("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n")
    spec = backend.spec(input_lut=lut, keep_unedited=False, copy_audio=False)
    job = api.submit(spec)["job"]
    assert job["spec"]["inputLutPath"] == str(lut)
    assert job["spec"]["keepUnedited"] is False and job["spec"]["copyAudio"] is False
    assert api.get_job(job["id"])["spec"] == job["spec"]
    with pytest.raises(EditUnreadable, match="input LUT"):
        api.submit(backend.spec(input_lut=tmp_path / "missing.cube"))


def test_jobs_are_listed_running_queued_awaiting_then_ended_latest_first(backend):
    api = backend.api
    ended = [api.submit(backend.spec(frames=2))["job"]["id"] for _ in range(3)]
    for job_id in ended:
        watch_to_end(api, job_id)
    waiting = api.submit(job_spec(str(backend.source), roundtrip={}))["job"]["id"]
    running, queued = (api.submit(backend.spec())["job"]["id"] for _ in range(2))
    next(e for e in api.watch(running) if "started" in e)
    listed = [j["id"] for j in api.list_jobs()["jobs"]]
    assert listed == [running, queued, waiting, *reversed(ended)]
    assert [j["id"] for j in api.list_jobs(limit=2)["jobs"]] == [running, queued]
    for job_id in (running, queued, waiting):
        api.cancel(job_id)


def test_a_request_id_submitted_twice_is_one_job(backend):
    first = backend.api.submit(backend.spec(request_id="resolve-7f3c"))["job"]
    second = backend.api.submit(backend.spec(request_id="resolve-7f3c"))["job"]
    assert second["id"] == first["id"]
    watch_to_end(backend.api, first["id"])


# --- the event sequence, watch and poll ---


def test_a_job_walks_the_phases_to_finished(backend):
    api = backend.api
    job = api.submit(backend.spec(frames=6))["job"]
    events = watch_to_end(api, job["id"])

    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["jobId"] == job["id"] for e in events)
    assert [int(e["cursor"]) for e in events] == sorted({int(e["cursor"]) for e in events})
    assert kinds(events)[:2] == ["queued", "started"] and kinds(events)[-1] == "finished"
    assert events[0]["queued"] == {"position": 1, "reason": "QUEUED_REASON_SUBMITTED"}
    assert events[1]["started"] == {"attempt": 1}
    assert set(kinds(events[2:-1])) == {"progress", "preview"}
    [preview] = [e["preview"] for e in events if "preview" in e]  # serve --fake: after edit
    assert (preview["width"], preview["height"], preview["phase"]) == (64, 64, "edit")
    assert base64.b64decode(preview["png"]).startswith(b"\x89PNG")
    at = kinds(events).index("preview")
    before, after = events[at - 1]["progress"], events[at + 1]["progress"]
    assert (before["phase"], before["step"], after["phase"]) == ("edit", before["total"], "encode")
    progress = [e["progress"] for e in events[2:-1] if "progress" in e]
    assert {p["phase"] for p in progress} == set(PHASES)  # the daemon's first job loads
    assert sorted(progress, key=lambda p: PHASES.index(p["phase"])) == progress
    for phase in PHASES:
        reports = [p for p in progress if p["phase"] == phase]
        assert "etaSeconds" not in reports[0]  # no estimate on a phase's first step
        assert reports[-1]["step"] == reports[-1]["total"]
        assert all((p["clip"], p["clips"]) == (1, 1) for p in reports)
        if reports[-1]["total"] > 1:
            assert reports[-1]["etaSeconds"] == 0.0
    finished = dict(events[-1]["finished"])
    seconds = finished.pop("phaseSeconds")
    assert set(seconds) == set(PHASES) and all(s >= 0 for s in seconds.values())
    assert finished == {
        "outputPaths": job["outputPaths"],
        "frameCount": 6,
        "fps": {"num": 24, "den": 1},
        "width": 64,
        "height": 64,
        "preset": "local",  # what auto chose (serve --fake always chooses local), and why:
        "presetChoices": [
            {
                "preset": "local",
                "chosenByAuto": True,
                "structureCorrelation": 1.0,
                "reason": "local: the edit changed 0% of the frame (under 35%)",
            }
        ],
        "seed": 23,
        "windows": 1,
        "loraStepsRun": 4,
    }

    view = JobView.from_job(job)
    for event in events:
        view = reduce(view, event)
    assert (view.state, view.progress, view.ended, describe(view)) == (
        "JOB_STATE_FINISHED",
        1.0,
        True,
        "Finished",
    )
    assert view.output_paths == tuple(job["outputPaths"]) and view.preset == "local"
    assert view.last_seq == len(events) and view.frame_count == 6
    assert (view.fps, view.seed, view.windows, view.lora_steps_run) == (Fraction(24), 23, 1, 4)
    assert [c.reason for c in view.preset_choices] == [finished["presetChoices"][0]["reason"]]
    assert view.phase_seconds == seconds and view.cache_hits == 0 and view.warnings == ()
    stored = JobView.from_job(api.get_job(job["id"]))  # the Job's result says the same
    fields = ("fps", "preset_choices", "seed", "phase_seconds", "windows", "lora_steps_run")
    assert [getattr(stored, f) for f in fields] == [getattr(view, f) for f in fields]


def test_watch_and_poll_resume_after_a_seq(backend):
    api = backend.api
    job_id = api.submit(backend.spec())["job"]["id"]
    events = watch_to_end(api, job_id)

    assert watch_to_end(api, job_id, after_seq=3) == events[3:]
    assert watch_to_end(api, job_id, after_seq=len(events)) == []  # ended: returns at once
    polled = api.poll(job_id, after_seq=2, max_events=3)
    assert polled["events"] == events[2:5] and "ended" not in polled
    tail = api.poll(job_id, after_seq=len(events) - 1, wait_seconds=5)
    assert tail == {"events": events[-1:], "ended": True}
    assert api.poll(job_id, after_seq=len(events), wait_seconds=5) == {"ended": True}


def test_the_queue_stream_resumes_after_a_cursor(backend):
    api = backend.api
    cursor = int(api.list_jobs().get("cursor", 0))
    job_id = api.submit(backend.spec())["job"]["id"]
    seen = []
    for event in api.watch_queue(after_cursor=cursor):
        seen.append(event)
        if "finished" in event:
            break
    assert {e["jobId"] for e in seen} == {job_id}
    assert [int(e["cursor"]) for e in seen] == list(range(cursor + 1, cursor + len(seen) + 1))
    resumed = next(iter(api.watch_queue(after_cursor=int(seen[2]["cursor"]))))
    assert resumed == seen[3]
    assert watch_to_end(api, job_id) == seen


# --- cancel and move ---


def test_cancelling_a_queued_job_dequeues_it(backend):
    api = backend.api
    first = api.submit(backend.spec())["job"]["id"]
    second = api.submit(backend.spec())["job"]
    assert second["state"] == "JOB_STATE_QUEUED" and second["position"] >= 1

    cancelled = api.cancel(second["id"])
    assert cancelled["outcome"] == "CANCEL_OUTCOME_DEQUEUED"
    assert cancelled["job"]["state"] == "JOB_STATE_CANCELLED"
    assert cancelled["job"]["error"]["code"] == "ERROR_CODE_CANCELLED"
    events = watch_to_end(api, second["id"])
    assert kinds(events) == ["queued", "cancelled"]
    assert events[-1]["cancelled"] == {
        "reason": "CANCEL_REASON_DEQUEUED",
        "error": {
            "code": "ERROR_CODE_CANCELLED",
            "message": "The job was cancelled before it ran.",
            "hint": "The job was cancelled; submit it again.",
        },
    }
    assert api.cancel(second["id"])["outcome"] == "CANCEL_OUTCOME_ALREADY_ENDED"
    assert kinds(watch_to_end(api, first))[-1] == "finished"  # the other job runs on


def test_cancelling_a_running_job_interrupts_it_at_a_step(backend):
    api = backend.api
    job_id = api.submit(backend.spec())["job"]["id"]
    events, outcome = [], None
    for event in api.watch(job_id):
        events.append(event)
        if "progress" in event and outcome is None:
            outcome = api.cancel(job_id)
    assert outcome["outcome"] == "CANCEL_OUTCOME_INTERRUPT_REQUESTED"
    assert outcome["job"]["state"] == "JOB_STATE_RUNNING"
    assert outcome["job"]["cancelRequested"] is True
    kind, last = payload(events[-1])
    assert kind == "cancelled" and last["reason"] == "CANCEL_REASON_INTERRUPTED"
    assert last["phase"] in PHASES
    assert last["error"]["message"] == "The job was cancelled while it ran."
    job = api.get_job(job_id)
    assert job["state"] == "JOB_STATE_CANCELLED" and "result" not in job
    view = JobView.from_job(job)
    assert view.ended and view.error_code == "ERROR_CODE_CANCELLED"


def test_moving_a_queued_job_reorders_the_queue(backend):
    api = backend.api
    ids = [api.submit(backend.spec())["job"]["id"] for _ in range(3)]
    moved = api.move(ids[2], 1)
    assert moved["queue"][0] == ids[2] and set(moved["queue"]) <= set(ids)
    assert moved["job"]["position"] == 1
    assert api.get_job(ids[2])["position"] == 1
    listed = [j["id"] for j in api.list_jobs(states=["queued"])["jobs"]]
    assert listed == moved["queue"]
    assert api.poll(ids[2], after_seq=1)["events"][0]["queued"] == {
        "position": 1,
        "reason": "QUEUED_REASON_MOVED",
    }
    with pytest.raises(InvalidSpec) as caught:
        api.move(ids[2], 0)
    assert caught.value.hint == "1 runs next."
    api.cancel(ids[1])
    with pytest.raises(InvalidSpec, match="only queued jobs move"):
        api.move(ids[1], 1)
    for job_id in ids:
        api.cancel(job_id)


# --- round trips ---


def test_a_round_trip_exports_takes_the_attached_edit_and_runs(backend):
    api = backend.api
    spec = job_spec(
        str(backend.source), in_frame=2, out_frame=8, fps=24, roundtrip={"frame_index": 1}
    )
    submitted = api.submit(spec)
    job = submitted["job"]
    exported = submitted["exportedPath"]
    assert exported.endswith(f"/edits/{job['id']}/frame_edit.png")
    assert job["state"] == "JOB_STATE_AWAITING_EDIT" and "position" not in job
    assert job["spec"]["frameRange"] == {"inFrame": 3, "outFrame": 8}  # starts at the edit
    assert job["edit"] == {
        "exportedPath": exported,
        "width": 64,
        "height": 64,
        "sourceFrame": 3,
        "watching": True,
    }
    first = api.poll(job["id"])["events"]
    assert [e["edit"]["kind"] for e in first] == [
        "EDIT_EVENT_KIND_EXPORTED",
        "EDIT_EVENT_KIND_OPEN_SKIPPED",
    ]
    assert first[0]["edit"]["message"] == "Exported the frame (64×64) to frame_edit.png."
    view = JobView.from_job(job)
    assert view.awaiting_edit and view.exported_path == exported

    with pytest.raises(EditUnreadable):
        api.attach_edit(job["id"], backend.edited.with_name("missing.png"))
    attached = api.attach_edit(job["id"], backend.edited)
    assert attached["version"] == 1
    copy = attached["job"]["spec"]["editedFramePaths"]
    assert copy == [str(Path(exported).parent / "edits" / "edit_v001.png")]

    events = watch_to_end(api, job["id"], after_seq=2)
    received, queued = events[0]["edit"], events[1]["queued"]
    assert received["kind"] == "EDIT_EVENT_KIND_EDIT_RECEIVED" and received["version"] == 1
    assert received["source"] == str(backend.edited) and [received["path"]] == copy
    assert queued == {"position": 1, "reason": "QUEUED_REASON_EDIT_RECEIVED"}
    assert events[-1]["finished"]["frameCount"] == 5
    for event in events:
        view = reduce(view, event)
    assert view.state == "JOB_STATE_FINISHED" and view.edit_version == 1
    with pytest.raises(InvalidSpec, match="round trip has ended"):
        api.attach_edit(job["id"], backend.edited)


def test_attaching_to_a_job_without_a_round_trip_is_refused(backend):
    job_id = backend.api.submit(backend.spec())["job"]["id"]
    with pytest.raises(InvalidSpec, match="not a round trip"):
        backend.api.attach_edit(job_id, backend.edited)
    backend.api.cancel(job_id)


def test_cancelling_a_round_trip_that_awaits_its_edit(backend):
    api = backend.api
    job_id = api.submit(job_spec(str(backend.source), roundtrip={}))["job"]["id"]
    outcome = api.cancel(job_id)
    assert outcome["outcome"] == "CANCEL_OUTCOME_DEQUEUED"
    assert kinds(watch_to_end(api, job_id)) == ["edit", "edit", "cancelled"]


# --- settings and cache ---


def test_editor_settings_round_trip(backend):
    api = backend.api
    current = api.get_editor_config()
    assert current["config"] == {"openEditor": True}
    assert current["configPath"].endswith("config.toml") and current["noOpen"] is True
    wanted = {"openEditor": False, "pollSaves": True}
    assert api.set_editor_config(wanted)["config"] == wanted
    assert api.get_editor_config()["config"] == wanted
    assert api.set_editor_config({})["config"] == {"openEditor": True}


def test_editor_settings_refuse_a_program_or_arguments_of_the_callers_choice(backend):
    api = backend.api
    with pytest.raises(Forbidden) as refused:
        api.set_editor_config({"application": "/bin/sh", "arguments": ["-c", "touch pwned"]})
    assert "not an image editor the daemon detected" in refused.value.message
    assert "[editor]" in refused.value.hint
    with pytest.raises(Forbidden, match="arguments cannot be changed"):
        api.set_editor_config({"arguments": ["--batch"]})
    assert api.get_editor_config()["config"] == {"openEditor": True}


def test_cache_info_and_clear(backend):
    api = backend.api
    info = api.cache_info()
    assert info == {"root": info["root"]}  # serve --fake's jobs leave nothing in the cache
    assert int(api.clear_cache().get("freedBytes", 0)) >= 0
    job_id = api.submit(backend.spec())["job"]["id"]
    for event in api.watch(job_id):
        if "progress" in event and event["seq"] == 3:
            with pytest.raises(Busy) as caught:
                api.clear_cache()
            api.cancel(job_id)
    assert caught.value.hint.startswith("Wait until the running job ends")
    assert int(api.clear_cache().get("freedBytes", 0)) >= 0  # free again once it has ended


# --- queue control, the model and job defaults ---


def events_until(api: DaemonApi, job_id: str, done, after_seq: int = 0) -> list[dict]:
    """The job's events after `after_seq` until `done(event)`; long polls, so the job may stop
    in between (a watch would wait for its end)."""
    events: list[dict] = []
    for _ in range(200):
        polled = api.poll(job_id, after_seq, wait_seconds=5).get("events", [])
        events += polled
        after_seq = polled[-1]["seq"] if polled else after_seq
        if any(done(e) for e in polled):
            return events
    raise AssertionError(f"no such event for job {job_id}: {events[-3:]}")


def test_a_pause_holds_the_queue_until_resumed_and_the_running_job_finishes(backend):
    api = backend.api
    first = api.submit(backend.spec())["job"]["id"]
    events_until(api, first, lambda e: "started" in e)
    assert api.pause_queue() == {"paused": True}
    second = api.submit(backend.spec())["job"]
    assert second["state"] == "JOB_STATE_QUEUED"
    assert kinds(watch_to_end(api, first))[-1] == "finished"  # the running job finishes
    status = api.status()
    assert status["queuePaused"] is True and status["queueLength"] == 1
    assert "runningJobId" not in status
    assert "events" not in api.poll(second["id"], after_seq=1, wait_seconds=0.3)  # it waits
    assert api.pause_queue() == {"paused": True}  # pausing again changes nothing
    assert api.resume_queue() == {"wasPaused": True}
    assert api.resume_queue() == {}
    assert kinds(watch_to_end(api, second["id"]))[-1] == "finished"
    assert "queuePaused" not in api.status()


def test_a_pause_that_interrupts_queues_the_running_job_first_to_resume_from_its_cache(backend):
    api = backend.api
    job = api.submit(backend.spec())["job"]["id"]
    other = api.submit(backend.spec())["job"]["id"]
    seen = events_until(api, job, lambda e: e.get("progress", {}).get("phase") == "lora")
    paused = api.pause_queue(interrupt_running=True)
    assert paused == {"paused": True, "interruptedJobId": job}
    seen += events_until(api, job, lambda e: "queued" in e, seen[-1]["seq"])
    assert seen[-1]["queued"] == {"position": 1, "reason": "QUEUED_REASON_PAUSED"}
    assert "cancelled" not in kinds(seen) and seen[-2]["progress"]["phase"] in PHASES
    assert [j["id"] for j in api.list_jobs(states=["queued"])["jobs"]] == [job, other]
    queued = api.get_job(job)
    assert (queued["state"], queued["position"], queued["attempt"]) == ("JOB_STATE_QUEUED", 1, 1)
    view = reduce_all(JobView.empty(job), seen)
    assert view.queued_reason == "QUEUED_REASON_PAUSED"
    assert describe(view) == "Queued (1) · stopped by a pause"

    assert api.unload_model() == {"wasLoaded": True}  # nothing runs: the model may go
    assert "modelLoaded" not in api.status() and api.unload_model() == {}
    assert api.resume_queue() == {"wasPaused": True}
    rest = watch_to_end(api, job, after_seq=seen[-1]["seq"])
    assert rest[0]["started"] == {"attempt": 2} and rest[1]["progress"]["phase"] == "load"
    cached = [
        e["progress"]["phase"] for e in rest if e.get("progress", {}).get("message") == "cached"
    ]
    finished_before = [
        e["progress"]["phase"]
        for e in seen
        if "progress" in e and e["progress"]["step"] == e["progress"]["total"]
    ]
    assert cached == [p for p in finished_before if p != "load"]  # not run again
    assert cached[0] == "decode"
    assert kinds(rest)[-1] == "finished" and api.get_job(job)["attempt"] == 2
    view = reduce_all(view, rest)
    assert view.state == "JOB_STATE_FINISHED" and view.preset == "local" and view.attempt == 2
    assert kinds(watch_to_end(api, other))[-1] == "finished"


def test_a_cancel_wins_over_a_pause_that_interrupted_the_job(backend):
    api = backend.api
    job = api.submit(backend.spec())["job"]["id"]
    events_until(api, job, lambda e: "progress" in e)
    api.pause_queue(interrupt_running=True)
    api.cancel(job)
    events = watch_to_end(api, job)
    api.resume_queue()
    assert kinds(events)[-1] == "cancelled" and kinds(events).count("started") == 1
    assert api.get_job(job)["state"] == "JOB_STATE_CANCELLED"


def test_unloading_the_model_is_refused_while_a_job_runs(backend):
    api = backend.api
    job = api.submit(backend.spec())["job"]["id"]
    events_until(api, job, lambda e: e.get("progress", {}).get("phase") == "decode")
    with pytest.raises(Busy) as busy:
        api.unload_model()
    assert job in busy.value.message and "Pause the queue" in busy.value.hint
    with pytest.raises(Busy):
        api.gc_cache(0)
    assert kinds(watch_to_end(api, job))[-1] == "finished"
    assert api.status()["modelLoaded"] is True
    assert api.unload_model() == {"wasLoaded": True}
    status = api.status()
    assert "modelLoaded" not in status and status["device"] == "auto"
    assert kinds(watch_to_end(api, api.submit(backend.spec())["job"]["id"]))[:3] == [
        "queued",
        "started",
        "progress",  # load: the next job loads the model again
    ]


def test_gc_trims_an_empty_cache_to_nothing(backend):
    api = backend.api
    assert api.gc_cache(0) == {}
    assert api.gc_cache(20 * 2**30) == {}
    with pytest.raises(InvalidSpec, match="malformed"):
        api.gc_cache(-1)


def test_job_defaults_are_read_back_and_fill_what_a_job_leaves_unset(backend, tmp_path):
    api = backend.api
    built_in = api.get_defaults()
    assert built_in["defaults"] == {"preset": "PRESET_AUTO", "outputFormat": "OUTPUT_FORMAT_MOV"}
    assert built_in["configPath"] == str(tmp_path / "config" / "config.toml")
    renders = tmp_path / "data" / "outputs" / "renders"  # under the daemon's own outputs folder
    chosen = api.set_defaults(job_defaults("shape", "png", renders))
    assert chosen["defaults"] == {
        "preset": "PRESET_SHAPE",
        "outputFormat": "OUTPUT_FORMAT_PNG",
        "outputFolder": str(renders),
    }
    assert api.get_defaults() == chosen
    with pytest.raises(InvalidSpec, match="outside the daemon's output roots"):
        api.set_defaults(job_defaults(output_folder=backend.source.parent))  # not per clip
    with pytest.raises(InvalidSpec, match="absolute"):
        api.set_defaults({"outputFolder": "renders"})
    assert api.get_defaults() == chosen  # a refused change changes nothing

    job = api.submit(backend.spec(preset=None))["job"]
    assert job["spec"]["params"] == {"preset": "PRESET_SHAPE"}
    assert job["spec"]["output"] == {"format": "OUTPUT_FORMAT_PNG", "folder": str(renders)}
    [output] = job["outputPaths"]
    assert output == str(renders / f"source_{job['id'][:8]}")  # a folder of PNG frames
    finished = watch_to_end(api, job["id"])[-1]["finished"]
    assert finished["preset"] == "shape" and finished["outputPaths"] == [output]
    own = api.submit(backend.spec(preset="style", output_format="mp4"))["job"]
    assert own["spec"]["params"]["preset"] == "PRESET_STYLE"
    assert own["outputPaths"][0].startswith(str(renders)) and own["outputPaths"][0].endswith(".mp4")
    api.cancel(own["id"])
    assert api.set_defaults({}) == built_in


# --- errors ---


def test_a_wrong_token_is_unauthenticated(backend):
    with pytest.raises(Unauthenticated) as caught:
        backend.with_token("not-the-token").status()
    assert caught.value.code == "ERROR_CODE_UNAUTHENTICATED" and "token" in caught.value.hint


def test_an_invalid_spec_is_refused_with_a_hint(backend):
    api = backend.api
    with pytest.raises(InvalidSpec) as caught:
        api.submit(job_spec("clips/a.mov", [str(backend.edited)]))
    assert "absolute" in caught.value.message and "absolute" in caught.value.hint
    assert caught.value.http_status in (0, 400)
    with pytest.raises(InvalidSpec, match="at least two frames"):
        api.submit(backend.spec(frames=1))
    with pytest.raises(InvalidSpec, match="no edited frame"):
        api.submit(job_spec(str(backend.source)))
    with pytest.raises(InvalidSpec, match="outside the daemon's output roots"):
        api.submit(backend.spec(output_folder="/"))
    with pytest.raises(SourceUnreadable) as missing:
        api.submit(job_spec(str(backend.source.with_name("gone.mov")), [str(backend.edited)]))
    assert "gone.mov" in missing.value.message and missing.value.hint
    with pytest.raises(InvalidSpec, match="malformed"):
        api.call("SubmitJob", {"spec": {"sourcePath": str(backend.source), "bogus": 1}})
    with pytest.raises(NotFound):
        api.get_job("0" * 32)
    with pytest.raises(NotFound, match="32 hexadecimal digits"):
        api.cancel("not-an-id")
    assert "jobs" not in api.list_jobs()  # nothing refused was queued


def test_a_daemon_that_is_gone(backend):
    api = backend.api
    api.status()
    backend.stop()
    with pytest.raises(DaemonUnreachable) as caught:
        api.status()
    assert "framerelay serve" in caught.value.hint
    with pytest.raises(DaemonNotRunning) as not_running:
        backend.rediscover().status()
    assert "framerelay serve" in not_running.value.hint
