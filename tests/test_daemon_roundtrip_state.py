"""Round-trip jobs without a server: the spec, the awaiting state, the edit events in the store,
and the `[editor]` section of the config file."""

from __future__ import annotations

import asyncio
import tomllib
from fractions import Fraction
from pathlib import Path

import pytest

from framerelay.errors import InvalidSpecError
from framerelay.jobs.events import EditUpdate, Started
from framerelay.jobs.job import JobState, takes_edit
from framerelay.jobs.queue import CancelOutcome, JobQueue
from framerelay.jobs.spec import EditSessionSpec, FrameRange, JobSpec, plan_outputs
from framerelay.jobs.store import JobStore
from framerelay.proto.v1 import specs_pb2
from framerelay.roundtrip.editor import EditorConfig
from framerelay.service.convert import spec_from_proto, spec_to_proto
from framerelay.service.editor_settings import EditorSettings, dump_toml
from tests.daemon_harness import make_media


@pytest.fixture
def media(tmp_path) -> tuple[Path, Path]:
    return make_media(tmp_path / "media")


def roundtrip(source: Path, **session) -> JobSpec:
    return JobSpec(
        source=source,
        edited_frames=(),
        frame_range=FrameRange(10, 20),
        source_fps=Fraction(24),
        edit_session=EditSessionSpec(**session),
    )


def exported(path: str = "/data/edits/j/frame_edit.png") -> EditUpdate:
    return EditUpdate("exported", "Exported", path=path, width=64, height=48, source_frame=12)


def received(path: str, version: int, follow_job_id: str = "") -> EditUpdate:
    return EditUpdate(
        "edit_received", "Received", path=path, version=version, follow_job_id=follow_job_id
    )


def test_a_round_trip_spec_needs_no_edited_frame_and_survives_json_and_proto(media):
    source, _ = media
    spec = roundtrip(source, frame_index=2, sixteen_bit=True, open_editor=False, follow_saves=True)
    assert spec.validate() is spec and spec.awaits_edit
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert spec_from_proto(spec_to_proto(spec)) == spec
    unset = roundtrip(source)
    assert spec_from_proto(spec_to_proto(unset)).edit_session.open_editor is None
    message = specs_pb2.JobSpec(source_path=str(source))
    assert spec_from_proto(message).edit_session is None
    with pytest.raises(InvalidSpecError, match="no edited frame"):
        spec_from_proto(message).validate()
    assert len(plan_outputs(spec, "f" * 32, Path("/out"))) == 1


def test_a_round_trip_spec_is_checked(media):
    source, edited = media
    with pytest.raises(InvalidSpecError, match="fewer than two"):
        roundtrip(source, frame_index=9).validate()
    roundtrip(source, frame_index=8).validate()
    with pytest.raises(InvalidSpecError, match="0 or more"):
        roundtrip(source, frame_index=-1).validate()
    two = JobSpec(source, (edited, edited), edit_session=EditSessionSpec())
    with pytest.raises(InvalidSpecError, match="one edited frame"):
        two.validate()


def test_edit_events_fold_into_the_awaiting_job(tmp_path, media):
    async def scenario():
        source, edited = media
        queue = JobQueue(JobStore(tmp_path / "jobs.sqlite3"), tmp_path / "out")
        seen = []
        queue.listeners.append(lambda job, event: seen.append((job.state, event.kind)))
        with pytest.raises(InvalidSpecError, match="no edited frame to queue"):
            queue.submit(roundtrip(source))

        job = queue.add_awaiting("a" * 32, roundtrip(source), exported())
        assert job.state is JobState.awaiting_edit and queue.position(job) == 0
        assert job.edit.exported_path.endswith("frame_edit.png") and job.edit.source_frame == 12
        assert job.edit.folder == Path("/data/edits/j") and takes_edit(job)
        job = queue.record(job.id, received(str(edited), 1))
        assert job.spec.edited_frames == (edited,) and job.edit.version == 1
        assert job.state is JobState.awaiting_edit
        job = queue.enqueue(job.id, "edit_received")
        assert job.state is JobState.queued and queue.position(job) == 1
        second = edited.with_name("v2.png")
        job = queue.record(job.id, received(str(second), 2))
        assert job.spec.edited_frames == (second,) and job.edit.edited_path == str(second)

        job = queue.record(job.id, Started(1))
        job = queue.record(job.id, received("/elsewhere/v3.png", 3, follow_job_id="b" * 32))
        assert job.spec.edited_frames == (second,) and job.edit.version == 2
        assert job.edit.follow_job_id == "b" * 32 and not takes_edit(job)
        stored = queue.store.get(job.id)
        assert stored == job
        assert seen[0] == (JobState.awaiting_edit, "edit")
        assert ("queued" in [kind for _, kind in seen]) and len(seen) == 6

        waiting = queue.add_awaiting("c" * 32, roundtrip(source), exported())
        listed = [j.id for j in queue.list_jobs()[0]]
        assert listed == [job.id, waiting.id]  # running, then awaiting
        cancelled, outcome = queue.cancel(waiting.id)
        assert outcome is CancelOutcome.dequeued and cancelled.state is JobState.cancelled

    asyncio.run(scenario())


def test_editor_settings_default_without_a_file_and_are_written_beside_other_sections(tmp_path):
    path = tmp_path / "config" / "config.toml"
    settings = EditorSettings(path)
    assert settings.current() == EditorConfig()
    path.parent.mkdir()
    path.write_text('# mine\ntheme = "dark"\n\n[tray]\nstart_minimized = true\nsize = [3, 4]\n')
    chosen = EditorConfig("Affinity Photo 2", ("--a", 'say "hi"\\'), False, True)
    assert settings.update(chosen) == chosen
    document = tomllib.loads(path.read_text())
    assert document["theme"] == "dark" and document["tray"] == {
        "start_minimized": True,
        "size": [3, 4],
    }
    assert EditorConfig.from_dict(document["editor"]) == chosen
    assert EditorSettings(path).current() == chosen


def test_a_hand_edit_applies_and_a_broken_one_keeps_the_last_good_settings(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[editor]\napplication = "gimp"\n')
    settings = EditorSettings(path)
    assert settings.current().application == "gimp"
    path.write_text('[editor]\napplication = "krita"\narguments = ["--nosplash"]\n')
    assert settings.current() == EditorConfig("krita", ("--nosplash",))
    path.write_text("[editor]\nopen_editor = 'yes please'\n")
    assert settings.current().application == "krita"
    with pytest.raises(InvalidSpecError, match="open_editor must be true or false") as error:
        EditorSettings(path)
    assert str(path) in error.value.message
    path.write_text("[editor\n")
    with pytest.raises(InvalidSpecError, match="not valid TOML"):
        EditorSettings(path)
    path.write_text("[editor]\ncolour = 'blue'\n")
    with pytest.raises(InvalidSpecError, match="Unknown editor settings: colour"):
        EditorSettings(path)


def test_dump_toml_writes_what_tomllib_reads():
    document = {
        "top": 1.5,
        "odd key": "tab\there\x7f",
        "a": {"b": {"c": [True, 2, "x"]}, "d": "é"},
        "empty": {},
    }
    assert tomllib.loads(dump_toml(document)) == document
    with pytest.raises(InvalidSpecError, match="cannot write"):
        dump_toml({"when": [{"nested": 1}]})
