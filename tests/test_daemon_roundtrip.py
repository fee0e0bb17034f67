"""The round trip with an image editor through the daemon's API: a job awaits its edit, the
daemon exports the frame, opens the editor and takes each completed save in the job's folder.

Saves are simulated in the session folder the way editors write files (roundtrip_support); the
fake executor runs the jobs, each held at its first step until the test releases it.
"""

from __future__ import annotations

import stat
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from framerelay.errors import EditUnreadableError, FramerelayError, InvalidSpecError
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.media.video import read_frame
from framerelay.proto.v1 import daemon_pb2, events_pb2, jobs_pb2, specs_pb2
from framerelay.roundtrip.editor import EditorConfig
from framerelay.service.client import DaemonClient
from framerelay.service.editor_settings import EditorSettings
from tests.daemon_harness import (
    http_call,
    make_media,
    running_daemon,
    start_serve,
    stop_serve,
    wait_for,
)
from tests.roundtrip_support import (
    Recorder,
    edited,
    png_bytes,
    psd_bytes,
    read_rgb,
    save_atomic_replace,
    save_photoshop_like,
    save_two_writes,
)

TIMEOUT = 30.0  # generous: the suite shares two cores with other work
K = events_pb2  # event kinds and reasons
EXPORTED = K.EDIT_EVENT_KIND_EXPORTED
OPEN_SKIPPED = K.EDIT_EVENT_KIND_OPEN_SKIPPED
RECEIVED = K.EDIT_EVENT_KIND_EDIT_RECEIVED
PROBLEM = K.EDIT_EVENT_KIND_VALIDATION_PROBLEM
IGNORED = K.EDIT_EVENT_KIND_SAVE_IGNORED


class Holds:
    """The fake executor's per-job gate: each job waits at its first step until released."""

    def __init__(self) -> None:
        self._gates: dict[str, threading.Event] = defaultdict(threading.Event)
        self._lock = threading.Lock()
        self.closed = False

    def _gate(self, job_id: str) -> threading.Event:
        with self._lock:
            return self._gates[job_id]

    def __call__(self, run) -> None:
        gate = self._gate(run.job_id)
        while not gate.wait(0.05) and not self.closed:
            pass
        return None

    def release(self, job_id: str) -> None:
        self._gate(job_id).set()


class JobEvents:
    """Follows one job's events (WatchJob) from a thread."""

    def __init__(self, client: DaemonClient, job_id: str):
        self.recorder = Recorder()
        self._thread = threading.Thread(target=self._follow, args=(client, job_id), daemon=True)
        self._thread.start()

    def _follow(self, client: DaemonClient, job_id: str) -> None:
        try:
            for event in client.watch(job_id):
                self.recorder(event)
        except FramerelayError:
            pass

    def wait_edit(self, kind: int, count: int = 1) -> list[events_pb2.EditEvent]:
        found = self.recorder.wait_count(count, lambda e: _edit_kind(e) == kind, TIMEOUT)
        return [e.edit for e in found]

    def wait(self, kind: str, count: int = 1) -> list[events_pb2.JobEvent]:
        return self.recorder.wait_count(count, lambda e: e.WhichOneof("kind") == kind, TIMEOUT)

    def edits(self, kind: int, settle: float = 0.0) -> list[events_pb2.EditEvent]:
        """The edit events of `kind`; with `settle`, after that many seconds without a new one."""

        def match(event: events_pb2.JobEvent) -> bool:
            return _edit_kind(event) == kind

        if settle:
            count = sum(1 for e in self.all if match(e))
            return [e.edit for e in self.recorder.stays(count, match, seconds=settle)]
        return [e.edit for e in self.all if match(e)]

    @property
    def all(self) -> list[events_pb2.JobEvent]:
        return list(self.recorder.items)

    def join(self) -> None:
        self._thread.join(TIMEOUT)


def _edit_kind(event: events_pb2.JobEvent) -> int:
    return event.edit.kind if event.WhichOneof("kind") == "edit" else -1


def steps(events: list[events_pb2.JobEvent]) -> list[str]:
    """Kinds, with edit events by their edit kind: ["exported", "open_skipped", "queued", ...]."""
    return [
        K.EditEventKind.Name(e.edit.kind).removeprefix("EDIT_EVENT_KIND_").lower()
        if e.WhichOneof("kind") == "edit"
        else e.WhichOneof("kind")
        for e in events
    ]


def roundtrip_spec(source: Path, frames: int = 6, first: int = 0, **session) -> specs_pb2.JobSpec:
    return specs_pb2.JobSpec(
        source_path=str(source),
        frame_range=specs_pb2.FrameRange(in_frame=first, out_frame=first + frames),
        source_fps=specs_pb2.Rational(num=24, den=1),
        edit_session=specs_pb2.EditSessionSpec(**session),
    )


@pytest.fixture
def media(tmp_path):
    source, _ = make_media(tmp_path / "media")
    return source


@pytest.fixture
def holds():
    holds = Holds()
    yield holds
    holds.closed = True


@pytest.fixture
def fake(holds):
    return FakeExecutor(fail=holds, fail_phase="decode")


@pytest.fixture
def daemon(tmp_path, fake, holds):
    with running_daemon(tmp_path / "state", fake, no_open=True) as (thread, client):
        yield thread, client
        holds.closed = True  # a held job stops at once


def start(client: DaemonClient, spec: specs_pb2.JobSpec) -> tuple[jobs_pb2.Job, Path, JobEvents]:
    job = client.submit(spec)
    return job, Path(job.edit.exported_path), JobEvents(client, job.id)


def test_a_round_trip_job_awaits_its_edit_then_runs_with_the_saved_frame(
    daemon, fake, holds, media
):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media))

    assert job.state == jobs_pb2.JOB_STATE_AWAITING_EDIT and job.position == 0
    assert target.name == "frame_edit.png" and job.edit.watching
    assert (job.edit.width, job.edit.height, job.edit.source_frame) == (64, 64, 0)
    exported = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert exported.dtype == np.uint8 and exported.shape == (64, 64, 3)
    # framerelay's own Y'CbCr conversion (full precision) vs swscale's: within one code
    assert np.abs(exported[:, :, ::-1].astype(int) - read_frame(media, 0)).max() <= 1
    assert len(job.output_paths) == 1
    events.wait_edit(OPEN_SKIPPED)
    assert client.get(job.id).state == jobs_pb2.JOB_STATE_AWAITING_EDIT

    edit = edited(read_rgb(target), 200)
    save_atomic_replace(target, png_bytes(edit))
    [received] = events.wait_edit(RECEIVED)
    queued = client.get(job.id)
    assert received.version == 1 and received.source == str(target)
    assert queued.spec.edited_frame_paths == [received.path]
    assert queued.edit.version == 1 and queued.edit.edited_path == received.path
    np.testing.assert_array_equal(read_rgb(Path(received.path)), edit)

    holds.release(job.id)
    events.join()
    assert steps(events.all)[:5] == [
        "exported",
        "open_skipped",
        "edit_received",
        "queued",
        "started",
    ]
    assert steps(events.all)[-1] == "finished"
    assert steps(events.all).count("edit_received") == 1
    assert events.all[3].queued.reason == K.QUEUED_REASON_EDIT_RECEIVED
    assert [e.seq for e in events.all] == list(range(1, len(events.all) + 1))
    assert sum(r.job_id == job.id for r in fake.runs) == 1
    final = client.get(job.id)
    assert final.state == jobs_pb2.JOB_STATE_FINISHED and not final.edit.watching


@pytest.mark.parametrize(
    "save", [save_two_writes, save_photoshop_like], ids=["two_writes", "photoshop_like"]
)
@pytest.mark.slow
def test_each_way_of_saving_gives_exactly_one_edit(daemon, holds, media, save):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media))
    edit = edited(read_rgb(target), 90)
    save(target, png_bytes(edit))
    events.wait_edit(RECEIVED)
    [received] = events.edits(RECEIVED, settle=1.5)
    np.testing.assert_array_equal(read_rgb(Path(received.path)), edit)
    assert events.edits(PROBLEM) == []
    holds.release(job.id)


def test_a_saved_psd_becomes_the_edit(daemon, holds, media):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media))
    background = read_rgb(target)
    overlay = np.zeros((16, 24, 4), np.uint8)
    overlay[:] = (0, 255, 0, 255)
    save_atomic_replace(target.with_suffix(".psd"), psd_bytes(background, overlay, 8, 16))
    [received] = events.wait_edit(RECEIVED)
    expected = background.copy()
    expected[8:24, 16:40] = (0, 255, 0)
    np.testing.assert_array_equal(read_rgb(Path(received.path)), expected)
    assert received.source.endswith("frame_edit.psd") and list(received.warnings) == []
    assert events.edits(RECEIVED, settle=1.0) == [received]
    holds.release(job.id)


@pytest.mark.slow
def test_bad_saves_are_reported_and_the_watch_goes_on(daemon, holds, media):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media))
    edit = edited(read_rgb(target), 30)
    data = png_bytes(edit)

    save_atomic_replace(target, data[: len(data) // 2])
    [truncated] = events.wait_edit(PROBLEM)
    assert "incomplete or damaged" in truncated.message and truncated.hint
    assert truncated.source == str(target)

    save_atomic_replace(target, png_bytes(np.zeros((64, 96, 3), np.uint8)))
    wrong_aspect = events.wait_edit(PROBLEM, 2)[1]
    assert "different aspect ratio" in wrong_aspect.message and "64×64" in wrong_aspect.hint
    assert client.get(job.id).state == jobs_pb2.JOB_STATE_AWAITING_EDIT

    save_atomic_replace(target, png_bytes(cv2.resize(edit, (32, 32), interpolation=cv2.INTER_AREA)))
    [received] = events.wait_edit(RECEIVED)
    assert list(received.warnings) == [
        "frame_edit.png is 32×32; it was resized to the exported 64×64."
    ]
    assert read_rgb(Path(received.path)).shape == (64, 64, 3)
    assert client.get(job.id).state in (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)
    assert len(events.edits(RECEIVED, settle=1.0)) == 1 and len(events.edits(PROBLEM)) == 2
    holds.release(job.id)


@pytest.mark.slow
def test_two_quick_saves_end_with_the_last_edit(daemon, holds, media):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media))
    first, last = edited(read_rgb(target), 10), edited(read_rgb(target), 240)
    save_atomic_replace(target, png_bytes(first))
    save_atomic_replace(target, png_bytes(last))
    events.wait_edit(RECEIVED)
    accepted = events.edits(RECEIVED, settle=1.5)
    assert 1 <= len(accepted) <= 2  # one per save the debounce saw completed
    assert [e.version for e in accepted] == list(range(1, len(accepted) + 1))
    current = client.get(job.id)
    assert current.edit.version == len(accepted)
    np.testing.assert_array_equal(read_rgb(Path(current.spec.edited_frame_paths[0])), last)
    holds.release(job.id)


@pytest.mark.slow
def test_saves_before_the_start_replace_the_edit_and_later_ones_are_ignored(
    daemon, fake, holds, media, tmp_path
):
    _, client = daemon
    _, other = make_media(tmp_path / "other")
    blocker = client.submit(
        specs_pb2.JobSpec(source_path=str(media), edited_frame_paths=[str(other)])
    )
    wait_for(lambda: client.status().running_job_id == blocker.id, TIMEOUT)
    job, target, events = start(client, roundtrip_spec(media))
    frame = read_rgb(target)

    save_atomic_replace(target, png_bytes(edited(frame, 50)))
    events.wait_edit(RECEIVED)
    assert client.get(job.id).position == 1
    save_atomic_replace(target.with_name("second try.png"), png_bytes(edited(frame, 150)))
    second = events.wait_edit(RECEIVED, 2)[1]
    queued = client.get(job.id)
    assert queued.state == jobs_pb2.JOB_STATE_QUEUED
    assert second.version == 2 and queued.spec.edited_frame_paths == [second.path]

    holds.release(blocker.id)
    wait_for(lambda: client.status().running_job_id == job.id, TIMEOUT)
    save_atomic_replace(target, png_bytes(edited(frame, 250)))
    [ignored] = events.wait_edit(IGNORED)
    assert "after the job started" in ignored.message and "follow saves" in ignored.hint
    holds.release(job.id)
    events.join()

    assert steps(events.all).count("edit_received") == 2
    assert steps(events.all).count("queued") == 1
    assert sum(r.job_id == job.id for r in fake.runs) == 1
    final = client.get(job.id)
    assert final.state == jobs_pb2.JOB_STATE_FINISHED
    assert final.spec.edited_frame_paths == [second.path]
    np.testing.assert_array_equal(read_rgb(Path(second.path)), edited(frame, 150))


@pytest.mark.slow
def test_follow_saves_queue_a_new_job_for_the_same_clip(daemon, fake, holds, media):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media, follow_saves=True, frame_index=3))
    frame = read_rgb(target)
    save_atomic_replace(target, png_bytes(edited(frame, 60)))
    events.wait_edit(RECEIVED)
    wait_for(lambda: client.status().running_job_id == job.id, TIMEOUT)

    save_atomic_replace(target, png_bytes(edited(frame, 120)))
    handed = events.wait_edit(RECEIVED, 2)[1]
    assert handed.version == 2 and handed.follow_job_id
    follow = client.get(handed.follow_job_id)
    follow_events = JobEvents(client, follow.id)
    assert follow.state == jobs_pb2.JOB_STATE_QUEUED
    assert follow.spec.edited_frame_paths == [handed.path]
    original = client.get(job.id)
    assert original.spec.edited_frame_paths != follow.spec.edited_frame_paths
    assert not original.edit.watching and follow.edit.watching
    for field in ("source_path", "frame_range", "source_fps", "params", "output"):
        assert getattr(follow.spec, field) == getattr(original.spec, field)
    assert follow.output_paths != original.output_paths

    save_atomic_replace(target, png_bytes(edited(frame, 180)))  # before the new job starts
    replaced = follow_events.wait_edit(RECEIVED, 2)[1]
    assert replaced.version == 3 and not replaced.follow_job_id
    assert client.get(follow.id).spec.edited_frame_paths == [replaced.path]

    holds.release(job.id)
    holds.release(follow.id)
    events.join()
    follow_events.join()
    assert steps(follow_events.all)[:2] == ["queued", "edit_received"]
    assert follow_events.all[0].queued.reason == K.QUEUED_REASON_FOLLOW_SAVE
    assert steps(follow_events.all)[-1] == "finished"
    assert client.get(job.id).state == jobs_pb2.JOB_STATE_FINISHED
    assert client.get(follow.id).spec.edited_frame_paths == [replaced.path]
    np.testing.assert_array_equal(read_rgb(Path(replaced.path)), edited(frame, 180))


def test_a_later_frame_and_a_16_bit_tiff(daemon, holds, media):
    _, client = daemon
    job, target, _ = start(
        client, roundtrip_spec(media, frames=8, first=2, frame_index=3, sixteen_bit=True)
    )
    assert target.name == "frame_edit.tiff"
    exported = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert exported.dtype == np.uint16 and exported.shape == (64, 64, 3)
    source_frame = read_frame(media, 5).astype(np.float64) * 257  # 8-bit swscale reference
    assert np.abs(exported[:, :, ::-1] - source_frame).max() <= 1.5 * 257  # kept beyond 8 bits
    assert job.edit.source_frame == 5
    assert (job.spec.frame_range.in_frame, job.spec.frame_range.out_frame) == (5, 10)
    assert job.spec.edit_session.frame_index == 0  # frame 0 of the new range is the edited one

    with pytest.raises(InvalidSpecError, match="fewer than two"):
        client.submit(roundtrip_spec(media, frames=8, first=2, frame_index=7))
    whole_clip = specs_pb2.JobSpec(
        source_path=str(media), edit_session=specs_pb2.EditSessionSpec(frame_index=4)
    )
    later = client.submit(whole_clip)
    assert later.edit.source_frame == 4
    assert (later.spec.frame_range.in_frame, later.spec.frame_range.out_frame) == (4, 12)
    assert later.spec.source_fps.num / later.spec.source_fps.den == 24


def test_resubmitting_a_request_id_returns_the_same_round_trip(daemon, media, tmp_path):
    _, client = daemon
    spec = roundtrip_spec(media)
    spec.request_id = "resolve-42"
    first = client.submit(spec)
    again = client._call(client._stub.SubmitJob, daemon_pb2.SubmitJobRequest(spec=spec))
    assert again.job.id == first.id and again.exported_path == first.edit.exported_path
    assert len(list((tmp_path / "state" / "data" / "edits").iterdir())) == 1


def test_cancelling_an_awaiting_job_stops_its_watch(daemon, media):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media))
    events.wait_edit(OPEN_SKIPPED)
    response = client.cancel(job.id)
    assert response.outcome == daemon_pb2.CANCEL_OUTCOME_DEQUEUED
    events.join()
    assert steps(events.all) == ["exported", "open_skipped", "cancelled"]
    assert not client.get(job.id).edit.watching
    save_atomic_replace(target, png_bytes(edited(read_rgb(target), 77)))
    time.sleep(1.5)
    assert client.get(job.id).last_seq == 3
    with pytest.raises(InvalidSpecError, match="round trip has ended"):
        client.attach(job.id, target)


def test_an_awaiting_job_keeps_watching_across_a_restart(tmp_path, media):
    state = tmp_path / "state"
    with running_daemon(state, no_open=True) as (_, client):
        job, target, events = start(client, roundtrip_spec(media))
        events.wait_edit(OPEN_SKIPPED)
    exported_at = target.stat().st_mtime_ns

    with running_daemon(state, no_open=True) as (_, client):
        after = JobEvents(client, job.id)
        after.wait_edit(K.EDIT_EVENT_KIND_WATCH_RESUMED)
        assert client.get(job.id).edit.watching
        assert target.stat().st_mtime_ns == exported_at  # not exported again
        edit = edited(read_rgb(target), 140)
        save_atomic_replace(target, png_bytes(edit))
        after.join()
        final = client.get(job.id)

    assert steps(after.all)[:5] == [
        "exported",
        "open_skipped",
        "watch_resumed",
        "edit_received",
        "queued",
    ]
    assert steps(after.all).count("exported") == 1 and steps(after.all)[-1] == "finished"
    assert final.state == jobs_pb2.JOB_STATE_FINISHED and final.edit.version == 1
    np.testing.assert_array_equal(read_rgb(Path(final.spec.edited_frame_paths[0])), edit)


@pytest.mark.slow
def test_a_restart_does_not_take_an_accepted_save_again(tmp_path, media, holds):
    state = tmp_path / "state"
    _, other = make_media(tmp_path / "other")
    fake = FakeExecutor(fail=holds, fail_phase="decode")
    with running_daemon(state, fake, no_open=True) as (_, client):
        blocker = client.submit(
            specs_pb2.JobSpec(source_path=str(media), edited_frame_paths=[str(other)])
        )
        job, target, events = start(client, roundtrip_spec(media))
        save_atomic_replace(target, png_bytes(edited(read_rgb(target), 33)))
        events.wait_edit(RECEIVED)
    holds.release(blocker.id)
    holds.release(job.id)

    with running_daemon(state, no_open=True) as (_, client):
        after = JobEvents(client, job.id)
        after.join()
    assert steps(after.all).count("watch_resumed") == 1
    assert steps(after.all).count("edit_received") == 1
    assert steps(after.all)[-1] == "finished"


def test_pick_a_file_instead_over_http(daemon, holds, media, tmp_path):
    thread, _ = daemon
    found = thread.discovery
    spec = {
        "sourcePath": str(media),
        "frameRange": {"inFrame": 0, "outFrame": 6},
        "sourceFps": {"num": 24, "den": 1},
        "editSession": {"sixteenBit": True, "openEditor": False},
    }
    status, submitted = http_call(found, "SubmitJob", {"spec": spec})
    assert status == 200, submitted
    job = submitted["job"]
    assert job["state"] == "JOB_STATE_AWAITING_EDIT"
    assert submitted["exportedPath"] == job["edit"]["exportedPath"]
    assert submitted["exportedPath"].endswith("frame_edit.tiff")

    wrong = tmp_path / "wrong.png"
    wrong.write_bytes(png_bytes(np.zeros((10, 40, 3), np.uint8)))
    status, refused = http_call(found, "AttachEdit", {"jobId": job["id"], "path": str(wrong)})
    assert status == 422 and refused["error"]["code"] == "ERROR_CODE_EDIT_UNREADABLE"
    assert "different aspect ratio" in refused["error"]["message"]

    picked = tmp_path / "picked.png"
    deep = np.random.default_rng(1).integers(0, 65536, (64, 64, 3), dtype=np.uint16)
    assert cv2.imwrite(str(picked), deep[:, :, ::-1])
    status, attached = http_call(found, "AttachEdit", {"jobId": job["id"], "path": str(picked)})
    assert status == 200, attached
    assert attached["version"] == 1 and attached["job"]["id"] == job["id"]
    assert attached["job"]["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")
    copy = Path(attached["job"]["spec"]["editedFramePaths"][0])
    np.testing.assert_array_equal(cv2.imread(str(copy), cv2.IMREAD_UNCHANGED)[:, :, ::-1], deep)

    holds.release(job["id"])
    events, after = [], 0
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        _, polled = http_call(
            found, "PollJob", {"jobId": job["id"], "afterSeq": after, "waitSeconds": 5}
        )
        events += polled.get("events", [])
        after = events[-1]["seq"] if events else after
        if polled.get("ended"):
            break
    kinds = [e["edit"]["kind"] if "edit" in e else next(k for k in e if k in KINDS) for e in events]
    assert kinds[:5] == [
        "EDIT_EVENT_KIND_EXPORTED",
        "EDIT_EVENT_KIND_OPEN_SKIPPED",
        "EDIT_EVENT_KIND_VALIDATION_PROBLEM",
        "EDIT_EVENT_KIND_EDIT_RECEIVED",
        "queued",
    ]
    assert events[4]["queued"]["reason"] == "QUEUED_REASON_EDIT_RECEIVED"
    assert kinds[-1] == "finished"
    assert events[3]["edit"]["source"] == str(picked)

    status, not_a_round_trip = http_call(
        found, "SubmitJob", {"spec": {"sourcePath": str(media), "editedFramePaths": [str(picked)]}}
    )
    status, refused = http_call(
        found, "AttachEdit", {"jobId": not_a_round_trip["job"]["id"], "path": str(picked)}
    )
    assert status == 400 and "not a round trip" in refused["error"]["message"]


KINDS = ("queued", "started", "progress", "preview", "finished", "failed", "cancelled")


STAND_IN = """#!{python}
import json, sys
from pathlib import Path
Path({record!r}).write_text(json.dumps(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a shebang script stands in for the editor")
def test_the_daemon_opens_the_editor_set_in_its_config_file(tmp_path, media):
    record = tmp_path / "editor-args.json"
    stand_in = tmp_path / "bin" / "fake editor"
    stand_in.parent.mkdir()
    stand_in.write_text(STAND_IN.format(python=sys.executable, record=str(record)))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)

    with running_daemon(tmp_path / "state") as (_, client):
        before = client.editor_config()
        assert before.config.application == "" and before.config.open_editor
        assert not before.no_open
        local = EditorSettings(Path(before.config_path))  # as `framerelay editor` writes it
        local.update(EditorConfig(str(stand_in), ("--new-window", "two words")))
        saved = client.editor_config()  # read again: the file changed
        assert saved.config.application == str(stand_in) and saved.config.open_editor
        assert list(saved.config.arguments) == ["--new-window", "two words"]
        text = Path(saved.config_path).read_text()
        assert "[editor]" in text and '"--new-window"' in text

        _, target, events = start(client, roundtrip_spec(media))
        [opened] = events.wait_edit(K.EDIT_EVENT_KIND_EDITOR_OPENED)
        assert "fake editor" in opened.message
        args = wait_for(lambda: record.exists() and record.read_text(), TIMEOUT)
        assert args == f'["--new-window", "two words", "{target}"]'

        local.update(EditorConfig(str(tmp_path / "missing")))
        second, _, second_events = start(client, roundtrip_spec(media))
        [failed] = second_events.wait_edit(K.EDIT_EVENT_KIND_EDITOR_FAILED)
        assert "was not found" in failed.message and failed.hint
        assert client.get(second.id).edit.watching

        client.set_editor_config(daemon_pb2.EditorConfig(open_editor=False))
        _, _, third_events = start(client, roundtrip_spec(media))
        third_events.wait_edit(OPEN_SKIPPED)
        assert steps(third_events.all).count("editor_opened") == 0


def test_the_editor_settings_survive_a_restart_and_no_open_wins(tmp_path, media):
    state = tmp_path / "state"
    with running_daemon(state) as (_, client):
        EditorSettings(Path(client.editor_config().config_path)).update(EditorConfig("gimp"))
        client.set_editor_config(daemon_pb2.EditorConfig(application="gimp", poll_saves=True))
    with running_daemon(state, no_open=True) as (_, client):
        current = client.editor_config()
        assert current.config.application == "gimp" and current.config.poll_saves
        assert current.no_open
        _, target, events = start(client, roundtrip_spec(media, open_editor=True))
        [skipped] = events.wait_edit(OPEN_SKIPPED)
        assert str(target) in skipped.message
        save_atomic_replace(target, png_bytes(edited(read_rgb(target), 9)))  # polled
        events.wait_edit(RECEIVED)


def test_round_trip_specs_are_checked(daemon, media, tmp_path):
    _, client = daemon
    _, other = make_media(tmp_path / "other")
    both = roundtrip_spec(media)
    both.edited_frame_paths.append(str(other))
    with pytest.raises(InvalidSpecError, match="starts without an edited frame"):
        client.submit(both)
    with pytest.raises(InvalidSpecError, match="leaves fewer than two"):
        client.submit(roundtrip_spec(media, frames=4, frame_index=3))
    missing = roundtrip_spec(media)
    missing.source_path = str(tmp_path / "nope.mp4")
    with pytest.raises(FramerelayError, match="does not exist"):
        client.submit(missing)
    assert list(client.list().jobs) == []
    assert not any((tmp_path / "state" / "data" / "edits").iterdir())


def test_attach_checks_the_file_and_the_job(daemon, holds, media, tmp_path):
    _, client = daemon
    job, target, events = start(client, roundtrip_spec(media))
    with pytest.raises(EditUnreadableError, match="does not exist"):
        client.attach(job.id, tmp_path / "nothing.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EditUnreadableError, match="empty"):
        client.attach(job.id, empty)
    [problem] = events.wait_edit(PROBLEM)
    assert problem.source == str(empty) and problem.hint
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(edited(read_rgb(target), 5)))
    attached = client.attach(job.id, good)
    assert attached.version == 1 and attached.job.id == job.id
    wait_for(lambda: client.status().running_job_id == job.id, TIMEOUT)
    with pytest.raises(InvalidSpecError, match="has started"):
        client.attach(job.id, good)
    holds.release(job.id)


def test_the_cli_submits_a_round_trip_and_attaches_a_file(
    daemon, holds, media, tmp_path, monkeypatch, capsys
):
    from framerelay.cli import main

    _, client = daemon
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path / "state" / "config"))
    code = main(
        ["submit", str(media), "--in", "0", "--out", "6", "--fps", "24", "--roundtrip",
         "--frame", "1", "--no-open", "--follow-saves"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "awaits your edit of" in out
    job = client.list().jobs[0]
    assert job.state == jobs_pb2.JOB_STATE_AWAITING_EDIT
    assert job.spec.edit_session.follow_saves and job.edit.source_frame == 1
    assert job.spec.frame_range.in_frame == 1 and job.spec.edit_session.frame_index == 0
    assert job.edit.exported_path in out

    assert main(["jobs"]) == 0
    assert "awaiting_edit" in capsys.readouterr().out
    picked = tmp_path / "picked.png"
    picked.write_bytes(png_bytes(edited(read_rgb(Path(job.edit.exported_path)), 77)))
    assert main(["attach", job.id[:8], str(picked)]) == 0
    assert "edit version 1 attached" in capsys.readouterr().out
    assert main(["submit", str(media), str(picked), "--roundtrip"]) == 2
    assert "--roundtrip takes no edited frame" in capsys.readouterr().err
    assert main(["editor", "--application", "krita", "--argument=--nosplash"]) == 0
    shown = capsys.readouterr().out
    assert "application: krita" in shown and "--nosplash" in shown and "config.toml" in shown
    assert client.editor_config().config.arguments == ["--nosplash"]
    holds.release(job.id)


def test_serve_no_open_reports_it_to_clients(tmp_path):
    process, found = start_serve(tmp_path / "state", "--fake", "--no-open")
    try:
        with DaemonClient.from_discovery(found) as client:
            current = client.editor_config()
    finally:
        stop_serve(process)
    assert current.no_open and current.config.open_editor
    assert current.config_path == str(tmp_path / "state" / "config" / "config.toml")
