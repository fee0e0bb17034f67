"""Round trips with an image editor, driven by the daemon: one `EditSession` per round trip.

A round-trip job starts in `awaiting_edit`: the frame is exported to `<data>/edits/<job id>/`
(a folder only the round trip writes images into), the editor is opened and the folder watched.
The session reports from its own threads; its events wait in the round trip's `pending` queue
until the event loop records them in the job's log, so they keep their order and the store keeps
its one owner. What an accepted edit does depends on the job's state when it is recorded:

* not started: it becomes the job's edited frame (and an awaiting job is queued);
* started, with follow saves: a new job for the same clip takes it, and the round trip from then on
  feeds that job;
* started, without: it is reported as ignored.

The session closes when the job it feeds ends; after a restart, the sessions of jobs that have not
ended watch their folders again, without exporting again or opening the editor.

Nothing here imports media code until a round trip needs it: the session (decoders, encoders, the
folder watch) is imported by the first round trip, or at start when one is resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from framerelay.errors import EditUnreadableError, FramerelayError, InvalidSpecError
from framerelay.jobs.events import EditUpdate, JobEvent, Started
from framerelay.jobs.job import Job, JobState, takes_edit
from framerelay.jobs.queue import JobQueue
from framerelay.jobs.spec import FrameRange, JobSpec, check_readable_file
from framerelay.roundtrip.editor import EditorConfig, Launcher, open_in_editor
from framerelay.roundtrip.records import (
    EDITS_FOLDER,
    AcceptedEdit,
    EditEvent,
    EventKind,
    ExportedFrame,
    copy_version,
)

if TYPE_CHECKING:
    import numpy as np

    from framerelay.roundtrip.session import EditSession

log = logging.getLogger(__name__)


@dataclass
class RoundTrip:
    session: EditSession
    job_id: str  # the job the round trip feeds now
    follow_saves: bool
    jobs: list[str] = field(default_factory=list)  # every job it fed, oldest first
    pending: deque[EditEvent] = field(default_factory=deque)  # appended from the session's threads
    ready: bool = False  # the job is stored: pending events may be recorded
    received_by: dict[int, str] = field(default_factory=dict)  # version -> the job that took it


@dataclass(frozen=True)
class FrameToEdit:
    frame: np.ndarray  # H×W×3 uint8 or uint16
    source_frame: int  # index in the source file
    spec: JobSpec  # its frame range starts at the edited frame


class RoundTrips:
    """Must be created in the daemon's event loop; every method but the session callbacks runs
    there. `editor` gives the editor settings for a new round trip."""

    def __init__(
        self,
        queue: JobQueue,
        root: Path,
        editor: Callable[[], EditorConfig],
        *,
        no_open: bool = False,
        launch: Launcher = open_in_editor,
        quiet: float = 0.5,
        stable_check: float = 0.15,
    ):
        self.queue = queue
        self.root = root
        self._editor = editor
        self.no_open = no_open
        self._launch = launch
        self._quiet = quiet
        self._stable_check = stable_check
        self._loop = asyncio.get_running_loop()
        self._by_job: dict[str, RoundTrip] = {}
        self._closed = False
        queue.listeners.append(self._on_job_event)

    # --- the API ---

    async def submit(self, spec: JobSpec) -> Job:
        """Stores a job awaiting its edit: exports the frame, opens the editor, watches."""
        spec.validate()
        if spec.edit_session is None or spec.edited_frames:
            raise InvalidSpecError(
                "a round-trip job starts without an edited frame.",
                "Leave edited_frame_paths empty; the edit comes from the editor or AttachEdit.",
            )
        existing = self._by_request_id(spec)
        if existing is not None:
            return existing
        job_id = uuid.uuid4().hex
        target = await asyncio.to_thread(frame_to_edit, spec)
        options = target.spec.edit_session
        assert options is not None
        round_trip = self._new_round_trip(job_id, target.spec)
        try:
            session = round_trip.session
            await asyncio.to_thread(session.export, target.frame, sixteen_bit=options.sixteen_bit)
            existing = self._by_request_id(spec)  # a twin submitted while this one exported
            if existing is not None:
                _discard(round_trip)
                return existing
            exported = self._exported(round_trip, target.source_frame)
            job = self.queue.add_awaiting(job_id, target.spec, exported)
        except BaseException:
            _discard(round_trip)
            raise
        self._track(round_trip)
        await asyncio.to_thread(self._watch_and_open, round_trip.session)
        self._drain(round_trip)
        return self.queue.get(job.id)

    async def attach(self, job_id: str, path: Path) -> tuple[Job, AcceptedEdit]:
        """'Pick a file instead': `path` becomes the edit, checked like a save."""
        check_readable_file(path, "edited frame")
        job = self.queue.get(job_id)
        round_trip = self._round_trip_of(job)
        if not takes_edit(job) and not round_trip.follow_saves:
            raise InvalidSpecError(
                f"job {job_id} has started; it keeps its edited frame.",
                "Submit a new job with this frame, or ask for 'follow saves' in the round trip.",
            )
        try:
            accepted = await asyncio.to_thread(round_trip.session.attach, path)
        finally:
            self._drain(round_trip)
        return self.queue.get(round_trip.received_by.get(accepted.version, job_id)), accepted

    async def resume(self) -> None:
        """Watches again the folders of round trips whose jobs have not ended (at start)."""
        for job in self._current_jobs():
            try:
                round_trip = await asyncio.to_thread(self._resumed, job)
                if round_trip is None:
                    continue
                folder = round_trip.session.folder
                message = f"The daemon restarted; watching {folder} for saves again."
                self.queue.record(job.id, EditUpdate("watch_resumed", message))
                self._track(round_trip)
                await asyncio.to_thread(round_trip.session.watch)
            except Exception:
                log.exception("could not watch the round trip of job %s again", job.id)

    async def close(self) -> None:
        """Stops every watch (the daemon is stopping)."""
        self._closed = True
        sessions = [r.session for r in self._by_job.values()]
        self._by_job.clear()
        await asyncio.gather(*(asyncio.to_thread(s.close) for s in sessions))

    # --- sessions ---

    def _new_round_trip(self, job_id: str, spec: JobSpec) -> RoundTrip:
        options = spec.edit_session
        assert options is not None
        from framerelay.roundtrip.session import EditSession

        editor = self._editor()
        open_editor = editor.open_editor if options.open_editor is None else options.open_editor
        editor = replace(editor, open_editor=open_editor and not self.no_open)
        pending: deque[EditEvent] = deque()
        round_trip_ref: list[RoundTrip] = []

        def on_event(event: EditEvent) -> None:  # the session's threads, its lock held
            pending.append(event)
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._drain, round_trip_ref[0])

        session = EditSession(
            self.root / job_id,
            on_event,
            editor=editor,
            follow_saves=options.follow_saves,
            launch=self._launch,
            quiet=self._quiet,
            stable_check=self._stable_check,
        )
        round_trip = RoundTrip(session, job_id, options.follow_saves, [job_id], pending)
        round_trip_ref.append(round_trip)
        return round_trip

    def _exported(self, round_trip: RoundTrip, source_frame: int) -> EditUpdate:
        event = round_trip.pending.popleft()
        exported = round_trip.session.exported
        assert event.kind is EventKind.exported and exported is not None
        width, height = exported.size
        update = update_from(event)
        return replace(update, width=width, height=height, source_frame=source_frame)

    def _track(self, round_trip: RoundTrip) -> None:
        round_trip.ready = True
        self._by_job[round_trip.job_id] = round_trip

    @staticmethod
    def _watch_and_open(session: EditSession) -> None:
        session.watch()
        session.open_editor()

    def _round_trip_of(self, job: Job) -> RoundTrip:
        round_trip = self._by_job.get(job.id)
        if round_trip is not None:
            return round_trip
        if job.spec.edit_session is None:
            raise InvalidSpecError(
                f"job {job.id} is not a round trip with an image editor.",
                "Submit a new job with the edited frame, or one with edit_session.",
            )
        later = next((r.job_id for r in self._by_job.values() if job.id in r.jobs), None)
        if later is not None:
            raise InvalidSpecError(
                f"job {job.id} has handed its round trip to job {later}.",
                f"Attach the edit to job {later}.",
            )
        raise InvalidSpecError(
            f"job {job.id} is {job.state.value}; its round trip has ended.",
            "Submit a new round trip, or a new job with the edited frame.",
        )

    def _by_request_id(self, spec: JobSpec) -> Job | None:
        return self.queue.store.by_request_id(spec.request_id) if spec.request_id else None

    # --- events, in the event loop ---

    def _drain(self, round_trip: RoundTrip) -> None:
        while round_trip.ready and not self._closed and round_trip.pending:
            event = round_trip.pending.popleft()
            try:
                self._record(round_trip, event)
            except Exception:
                log.exception("could not record the round-trip event %s", event.kind.value)

    def _record(self, round_trip: RoundTrip, event: EditEvent) -> None:
        job = self.queue.store.get(round_trip.job_id)
        if job is None or job.state.ended:
            log.info("round trip of job %s: %s (after the job ended)", round_trip.job_id, event)
            return
        update = update_from(event)
        if event.kind is EventKind.edit_received:
            self._received(round_trip, job, update)
        else:
            self.queue.record(job.id, update)

    def _received(self, round_trip: RoundTrip, job: Job, update: EditUpdate) -> None:
        if takes_edit(job):
            self.queue.record(job.id, update)
            round_trip.received_by[update.version] = job.id
            if job.state is JobState.awaiting_edit:
                self.queue.enqueue(job.id, "edit_received")
            return
        if not round_trip.follow_saves:
            name = Path(update.source).name
            message = f"{name} was saved after the job started; the running job keeps its edit."
            hint = "Turn on 'follow saves' to start a new job for each save."
            self.queue.record(
                job.id, EditUpdate("save_ignored", message, hint, source=update.source)
            )
            return
        try:
            follow = self._submit_follow(job, update)
        except FramerelayError as error:  # e.g. the source was moved away meanwhile
            problem = EditUpdate(
                "validation_problem", error.message, error.hint, source=update.source
            )
            self.queue.record(job.id, problem)
            return
        self.queue.record(job.id, replace(update, follow_job_id=follow.id))
        round_trip.received_by[update.version] = follow.id
        del self._by_job[job.id]
        round_trip.job_id = follow.id
        round_trip.jobs.append(follow.id)
        self._by_job[follow.id] = round_trip
        log.info("job %s: a save after the start queued job %s", job.id, follow.id)

    def _submit_follow(self, job: Job, update: EditUpdate) -> Job:
        spec = replace(job.spec, edited_frames=(Path(update.path),), request_id="")
        edit = job.edit and replace(
            job.edit, version=update.version, edited_path=update.path, follow_job_id=""
        )
        follow = self.queue.submit(spec, reason="follow_save", edit=edit)
        return self.queue.record(follow.id, update)

    def _on_job_event(self, job: Job, event: JobEvent) -> None:
        round_trip = self._by_job.get(job.id)
        if round_trip is None:
            return
        if isinstance(event.payload, Started):
            self._loop.run_in_executor(None, _mark_started, round_trip.session)
        elif event.terminal:
            del self._by_job[job.id]
            self._loop.run_in_executor(None, round_trip.session.close)
            log.info("job %s ended; its round trip stops watching", job.id)

    # --- restart ---

    def _current_jobs(self) -> list[Job]:
        """Per round-trip folder, the newest job that has not ended."""
        current: dict[Path, Job] = {}
        for state in (JobState.awaiting_edit, JobState.queued, JobState.running):
            for job in self.queue.store.with_state(state):
                if job.edit is None or job.spec.edit_session is None or not job.edit.exported_path:
                    continue
                known = current.get(job.edit.folder)
                if known is None or job.created_at > known.created_at:
                    current[job.edit.folder] = job
        return list(current.values())

    def _resumed(self, job: Job) -> RoundTrip | None:
        """The round trip of `job` over its existing export, not watching yet; None when the export
        is gone."""
        assert job.edit is not None
        exported_path = Path(job.edit.exported_path)
        background = exported_frame(exported_path)
        if background is None:
            log.warning(
                "job %s: the exported frame %s is gone; not watching", job.id, exported_path
            )
            return None
        round_trip = self._new_round_trip(job.id, job.spec)
        session = round_trip.session
        exported = ExportedFrame(
            exported_path,
            (job.edit.width, job.edit.height),
            newest_mtime_ns(exported_path),
            exported_path.suffix.lower() in (".tif", ".tiff"),
        )
        current = None
        if job.edit.version:
            version = max(job.edit.version, highest_version(session.folder / EDITS_FOLDER))
            current = AcceptedEdit(version, Path(job.edit.edited_path), Path(job.edit.edited_path))
        session.resume(exported, background=background, current=current)
        if job.started_at is not None and current is not None:
            session.mark_started()
        return round_trip


def _discard(round_trip: RoundTrip) -> None:
    """A round trip whose job was never stored: no watch, no folder."""
    round_trip.session.close()
    shutil.rmtree(round_trip.session.folder, ignore_errors=True)


def frame_to_edit(spec: JobSpec) -> FrameToEdit:
    """Reads the frame to edit; a frame after the first moves the range to start at it."""
    from framerelay.media import colour, footage, image

    options = spec.edit_session
    assert options is not None
    found = footage.probe(spec.source, spec.sequence_fps or spec.source_fps)
    frame_range = spec.frame_range
    selection = footage.select_range(
        found,
        frame_range.in_frame if frame_range else None,
        frame_range.out_frame if frame_range else None,
        spec.source_fps,
    )
    if options.frame_index > selection.frame_count - 2:
        raise InvalidSpecError(
            f"frame {options.frame_index} leaves fewer than two of the clip's "
            f"{selection.frame_count} frames to propagate the edit into.",
            f"Pick a frame from 0 to {selection.frame_count - 2}.",
        )
    source_frame = selection.frames.start + options.frame_index
    lut = colour.load_cube(spec.input_lut) if spec.input_lut else None
    shown = footage.display_frame_at(found, source_frame, lut)  # as the NLE shows it
    frame = image.to_uint16(shown) if options.sixteen_bit else image.to_uint8(shown)
    if options.frame_index:  # the range now starts at the edited frame: its frame 0
        first = spec.frame_range.in_frame if spec.frame_range else 0
        end = spec.frame_range.out_frame if spec.frame_range else found.frame_count
        spec = replace(
            spec,
            frame_range=FrameRange(first + options.frame_index, end),
            source_fps=spec.source_fps or found.fps,
            edit_session=replace(options, frame_index=0),
        )
    return FrameToEdit(frame, source_frame, spec)


def update_from(event: EditEvent) -> EditUpdate:
    return EditUpdate(
        kind=event.kind.value,
        message=event.message,
        hint=event.hint,
        path=str(event.path) if event.path else "",
        source=str(event.source) if event.source else "",
        version=event.version,
        warnings=tuple(event.warnings),
    )


def exported_frame(path: Path) -> np.ndarray | None:
    """The frame a round trip exported (float32 H×W×3), what transparent areas of an edit show;
    None when it is gone."""
    from framerelay.media import image

    try:
        return image.load_image(path)
    except EditUnreadableError:
        return None


def newest_mtime_ns(exported: Path) -> int:
    """Saves older than this were handled before the restart: the export or the newest copy."""
    stamps = [exported.stat().st_mtime_ns]
    edits = exported.parent / EDITS_FOLDER
    if edits.is_dir():
        stamps += [p.stat().st_mtime_ns for p in edits.iterdir() if copy_version(p.name)]
    return max(stamps)


def highest_version(edits: Path) -> int:
    if not edits.is_dir():
        return 0
    return max((copy_version(p.name) or 0 for p in edits.iterdir()), default=0)


def _mark_started(session: EditSession) -> None:
    try:
        session.mark_started()
    except InvalidSpecError:
        log.warning("a round-trip job started without an edit in %s", session.folder)
