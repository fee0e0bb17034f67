import dataclasses
import functools
import json
import time

import cv2
import numpy as np
import pytest

from framerelay.errors import EditUnreadableError, InvalidSpecError
from framerelay.roundtrip.editor import EditorConfig, open_in_editor
from framerelay.roundtrip.session import AcceptedEdit, EditSession, EventKind, SessionState
from tests.roundtrip_support import (
    Recorder,
    edited,
    make_frame,
    png_bytes,
    psd_bytes,
    read_rgb,
    save_atomic_replace,
    save_photoshop_like,
    save_two_writes,
)


def _is(kind: EventKind):
    return lambda event: event.kind is kind


received = _is(EventKind.edit_received)
problem = _is(EventKind.validation_problem)


class FakeSpawner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv, on_exit):
        self.calls.append(list(argv))
        return 1


@pytest.fixture
def spawner() -> FakeSpawner:
    return FakeSpawner()


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def session(tmp_path, events, spawner):
    launch = functools.partial(open_in_editor, platform="linux", spawn=spawner)
    with EditSession(tmp_path / "job", events, launch=launch) as session:
        yield session


def _begin(session: EditSession) -> tuple[np.ndarray, object]:
    frame = make_frame()
    target = session.begin(frame)
    return frame, target


@pytest.mark.parametrize(
    "save", [save_atomic_replace, save_photoshop_like, save_two_writes], ids=lambda f: f.__name__
)
@pytest.mark.slow
def test_a_completed_save_gives_exactly_one_edit(session, events, spawner, save):
    frame, target = _begin(session)
    assert spawner.calls == [["xdg-open", str(target)]]
    assert session.state is SessionState.awaiting_edit
    edit = edited(frame, 200)
    save(target, png_bytes(edit))
    [event] = events.wait_count(1, received)
    events.stays(1, received)
    assert [e.kind for e in events.items] == [
        EventKind.exported,
        EventKind.editor_opened,
        EventKind.edit_received,
    ]
    assert event.version == 1 and event.follow is False and event.source == target.resolve()
    assert event.path == session.folder / "edits" / "edit_v001.png"
    np.testing.assert_array_equal(read_rgb(event.path), edit)
    assert session.state is SessionState.edit_ready
    assert session.current.path == event.path


@pytest.mark.slow
def test_a_saved_psd_is_composited(session, events):
    frame, target = _begin(session)
    overlay = np.zeros((16, 32, 4), np.uint8)
    overlay[:] = (0, 255, 0, 255)
    save_atomic_replace(target.with_suffix(".psd"), psd_bytes(frame, overlay, top=8, left=16))
    [event] = events.wait_count(1, received)
    events.stays(1, received)
    expected = frame.copy()
    expected[8:24, 16:48] = (0, 255, 0)
    np.testing.assert_array_equal(read_rgb(event.path), expected)
    assert event.source.name == "frame_edit.psd"


@pytest.mark.slow
def test_a_truncated_png_is_a_problem_and_the_watch_continues(session, events):
    frame, target = _begin(session)
    data = png_bytes(edited(frame, 30))
    save_atomic_replace(target, data[: len(data) // 2])
    [bad] = events.wait_count(1, problem)
    assert "incomplete or damaged" in bad.message and bad.hint
    save_atomic_replace(target, data)
    events.wait_count(1, received)
    events.stays(1, received)
    events.stays(1, problem, seconds=0)
    np.testing.assert_array_equal(read_rgb(session.current.path), edited(frame, 30))


@pytest.mark.slow
def test_wrong_sizes(session, events):
    frame, target = _begin(session)
    save_atomic_replace(target, png_bytes(make_frame(64, 64)))
    [bad] = events.wait_count(1, problem)
    assert "different aspect ratio" in bad.message
    assert "96×64" in bad.hint
    half = cv2.resize(edited(frame, 90), (48, 32), interpolation=cv2.INTER_AREA)
    save_atomic_replace(target, png_bytes(half))
    [event] = events.wait_count(1, received)
    events.stays(1, received)
    assert event.warnings == ("frame_edit.png is 48×32; it was resized to the exported 96×64.",)
    assert read_rgb(event.path).shape == (64, 96, 3)


@pytest.mark.slow
def test_two_quick_saves_keep_the_last_without_duplicates(session, events):
    frame, target = _begin(session)
    first, last = edited(frame, 10), edited(frame, 240)
    save_atomic_replace(target, png_bytes(first))
    save_atomic_replace(target, png_bytes(last))
    events.wait_count(1, received)
    time.sleep(1.0)  # a second acceptance, if any, comes within the quiet time of the first
    accepted = events.stays(len(events.wait_count(1, received)), received)
    assert 1 <= len(accepted) <= 2
    assert [e.version for e in accepted] == list(range(1, len(accepted) + 1))
    np.testing.assert_array_equal(read_rgb(session.current.path), last)


@pytest.mark.slow
def test_saves_before_the_start_replace_the_edit_and_later_ones_follow_the_setting(session, events):
    frame, target = _begin(session)
    save_atomic_replace(target, png_bytes(edited(frame, 1)))
    events.wait_count(1, received)
    save_atomic_replace(target, png_bytes(edited(frame, 2)))
    events.wait_count(2, received)
    assert session.current.version == 2
    running = session.mark_started()
    assert running.version == 2 and session.state is SessionState.started
    running_input = running.path.read_bytes()

    save_atomic_replace(target, png_bytes(edited(frame, 3)))
    [ignored] = events.wait_count(1, _is(EventKind.save_ignored))
    assert "follow saves" in ignored.hint
    assert session.current.version == 2

    session.follow_saves = True
    save_atomic_replace(target, png_bytes(edited(frame, 4)))
    follow = events.wait_count(3, received)[-1]
    events.stays(3, received)
    assert follow.version == 3 and follow.follow is True
    np.testing.assert_array_equal(read_rgb(follow.path), edited(frame, 4))
    assert running.path.read_bytes() == running_input  # the running job's input never changes


def test_attach_a_picked_file(session, events, tmp_path):
    frame, _ = _begin(session)
    picked = tmp_path / "elsewhere.png"
    picked.write_bytes(png_bytes(edited(frame, 77)))
    accepted = session.attach(picked)
    assert accepted.version == 1 and accepted.source == picked
    np.testing.assert_array_equal(read_rgb(accepted.path), edited(frame, 77))
    assert events.items[-1].kind is EventKind.edit_received

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(EditUnreadableError):
        session.attach(broken)
    assert events.items[-1].kind is EventKind.validation_problem
    assert session.current == accepted


def test_attach_without_export_needs_the_frame_size(tmp_path, events):
    picked = tmp_path / "picked.png"
    picked.write_bytes(png_bytes(make_frame()))
    session = EditSession(tmp_path / "a", events)
    with pytest.raises(InvalidSpecError, match="size"):
        session.attach(picked)
    with EditSession(tmp_path / "b", events, frame_size=(96, 64)) as session:
        assert session.attach(picked).version == 1
        assert session.state is SessionState.edit_ready


def test_sixteen_bit_round_trip_stays_16bit(session, events):
    frame = make_frame()
    target = session.export(frame, sixteen_bit=True)
    session.watch()
    deep = np.random.default_rng(5).integers(0, 65536, (64, 96, 3), dtype=np.uint16)
    _, data = cv2.imencode(".tiff", deep[:, :, ::-1].copy())
    save_atomic_replace(target, data.tobytes())
    [event] = events.wait_count(1, received)
    copy = cv2.imread(str(event.path), cv2.IMREAD_UNCHANGED)
    assert copy.dtype == np.uint16
    np.testing.assert_array_equal(copy[:, :, ::-1], deep)


def test_no_open_only_reports_the_path(tmp_path, events, spawner):
    launch = functools.partial(open_in_editor, platform="linux", spawn=spawner)
    config = EditorConfig(open_editor=False)
    with EditSession(tmp_path, events, editor=config, launch=launch) as session:
        target = session.begin(make_frame())
    assert spawner.calls == []
    skipped = events.items[-1]
    assert skipped.kind is EventKind.open_skipped
    assert skipped.path == target and str(target) in skipped.message


def test_editor_failures_are_events_and_the_watch_continues(tmp_path, events):
    config = EditorConfig(application="no-such-editor-xyz")
    with EditSession(tmp_path, events, editor=config) as session:
        frame = make_frame()
        target = session.begin(frame)
        failed = [e for e in events.items if e.kind is EventKind.editor_failed]
        assert len(failed) == 1 and "no-such-editor-xyz" in failed[0].message and failed[0].hint
        save_atomic_replace(target, png_bytes(edited(frame, 5)))
        events.wait_count(1, received)


def test_an_editor_exiting_with_an_error_is_reported(tmp_path, events):
    def launch(path, config, on_exit):
        on_exit(3)
        return open_in_editor(path, config, platform="linux", spawn=FakeSpawner())

    with EditSession(tmp_path, events, launch=launch) as session:
        session.export(make_frame())
        session.open_editor()
    [failed] = [e for e in events.items if e.kind is EventKind.editor_failed]
    assert "status 3" in failed.message


def test_start_needs_an_edit(session):
    _begin(session)
    with pytest.raises(InvalidSpecError, match="no edited frame"):
        session.mark_started()


def test_events_serialise_to_json(session, events):
    frame, target = _begin(session)
    save_atomic_replace(target, png_bytes(edited(frame, 50)))
    events.wait_count(1, received)
    decoded = [json.loads(json.dumps(e.to_dict())) for e in events.items]
    assert [d["kind"] for d in decoded] == ["exported", "editor_opened", "edit_received"]
    assert decoded[-1]["version"] == 1 and decoded[-1]["path"].endswith("edit_v001.png")


def test_closing_stops_accepting_saves(tmp_path, events):
    with EditSession(tmp_path, events, editor=EditorConfig(open_editor=False)) as session:
        frame = make_frame()
        target = session.begin(frame)
    assert session.state is SessionState.closed
    save_atomic_replace(target, png_bytes(edited(frame, 9)))
    events.stays(0, received)


@pytest.mark.slow
def test_resume_watches_an_earlier_export_without_exporting_or_opening(tmp_path, spawner):
    launch = functools.partial(open_in_editor, platform="linux", spawn=spawner)
    frame = make_frame()
    first_events = Recorder()
    with EditSession(tmp_path / "job", first_events, launch=launch) as first:
        target = first.begin(frame)
        save_atomic_replace(target, png_bytes(edited(frame, 20)))
        [accepted] = first_events.wait_count(1, received)
        exported = first.exported
    copy_time = accepted.path.stat().st_mtime_ns

    events = Recorder()
    with EditSession(tmp_path / "job", events, launch=launch) as again:
        current = AcceptedEdit(accepted.version, accepted.path, accepted.source)
        again.resume(
            dataclasses.replace(exported, mtime_ns=copy_time), background=frame, current=current
        )
        assert again.state is SessionState.edit_ready and again.current == current
        again.watch()
        events.stays(0, received, seconds=1.0)  # the save taken before is not taken again
        save_atomic_replace(target, png_bytes(edited(frame, 220)))
        [event] = events.wait_count(1, received)
        with pytest.raises(InvalidSpecError, match="already begun"):
            again.resume(exported)
    assert event.version == 2 and event.path.name == "edit_v002.png"
    np.testing.assert_array_equal(read_rgb(event.path), edited(frame, 220))
    assert [e.kind for e in events.items] == [EventKind.edit_received]
    assert spawner.calls == [["xdg-open", str(target)]]  # opened once, by the first session
