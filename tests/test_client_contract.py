"""The client contract, run against both implementations a host can hold:

* "daemon": `framerelay_client.Client` over HTTP to a real `framerelay serve --fake --no-open`
  subprocess on loopback (its folders in the test's temp dir; each fake step takes 0.1 s);
* "fake": `framerelay_client.FakeDaemon` in memory, on the same real files.

Every test is written once, against `DaemonApi`; nothing here knows which one it talks to except
the backend's two verbs that only a test needs (stop it; a client with a wrong token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    job_spec,
    reduce,
)
from framerelay_client.events import describe
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
    progress = [e["progress"] for e in events[2:-1]]
    assert {p["phase"] for p in progress} == set(PHASES)  # the daemon's first job loads
    assert sorted(progress, key=lambda p: PHASES.index(p["phase"])) == progress
    for phase in PHASES:
        reports = [p for p in progress if p["phase"] == phase]
        assert "etaSeconds" not in reports[0]  # no estimate on a phase's first step
        assert reports[-1]["step"] == reports[-1]["total"]
        assert all((p["clip"], p["clips"]) == (1, 1) for p in reports)
        if reports[-1]["total"] > 1:
            assert reports[-1]["etaSeconds"] == 0.0
    assert events[-1]["finished"] == {
        "outputPaths": job["outputPaths"],
        "frameCount": 6,
        "fps": {"num": 24, "den": 1},
        "width": 64,
        "height": 64,
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
    assert view.output_paths == tuple(job["outputPaths"]) and view.preset == "auto"
    assert view.last_seq == len(events) and view.frame_count == 6


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
    assert info["root"] and int(info.get("entries", 0)) >= 0
    assert int(api.clear_cache().get("freedBytes", 0)) >= 0
    job_id = api.submit(backend.spec())["job"]["id"]
    for event in api.watch(job_id):
        if "progress" in event and event["seq"] == 3:
            with pytest.raises(Busy) as caught:
                api.clear_cache()
            api.cancel(job_id)
    assert caught.value.hint.startswith("Wait until the running job ends")
    assert int(api.clear_cache().get("freedBytes", 0)) >= 0  # free again once it has ended


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
