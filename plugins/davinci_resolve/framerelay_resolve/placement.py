"""The rules, in one place for all three tiers: which clip to send, what to send, where its take
goes, and whether Resolve put it there.

Everything here works on plain facts (the dicts a host returns: `live.LiveHost` from Python
objects, the Lua bridge from its own) and never calls Resolve, so the Python scripts, external
scripting and the Lua bridge place takes by the same rules. The measured pitfalls it plans around:

* `AppendToTimeline`'s `endFrame` is exclusive; `recordFrame` is an absolute timeline frame (a
  timeline starting at 01:00:00:00 starts at frame 86400 at 24 fps). A record frame counted from
  the timeline's start places the take before the timeline, where it never renders, while every
  read-back looks right: record frames come from `GetStart()` and are checked against the start.
* A `trackIndex` beyond the track count + 1 silently lands on V1, and a take that overlaps a
  clip is silently dropped: every take goes on a new, empty track added just before, above the
  source (inserted from 19.0, appended on top before), so nothing is ever overwritten.
* Failures are silent, so the placement is read back and each difference reported.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping

from . import BIN_NAME, __version__, rates
from .capabilities import Capabilities
from .errors import ClipRefused, NoClip, PlacementFailed

HOST = "resolve"


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return int(number) if number.is_integer() else default


# --- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Media:
    path: str
    fps: Fraction | None
    frames: int | None
    kind: str
    name: str

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any] | None) -> Media | None:
        if not facts:
            return None
        fps = facts.get("fps")
        try:
            rate = rates.parse_rate(fps) if fps not in (None, "") else None
        except ClipRefused:
            rate = None
        return cls(
            path=str(facts.get("path") or ""),
            fps=rate,
            frames=_int(facts.get("frames")),
            kind=str(facts.get("type") or ""),
            name=str(facts.get("name") or ""),
        )


@dataclass(frozen=True)
class Item:
    """A clip on the timeline: record frames are absolute, `end` exclusive."""

    id: str
    name: str
    start: int
    end: int
    duration: int
    left_offset: float
    track: int | None
    track_enabled: bool
    media: Media | None
    source_start_time: float | None = None
    source_end_time: float | None = None

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> Item:
        start = _int(facts.get("start"), 0) or 0
        end = _int(facts.get("end"), start) or start
        times = facts.get("source_start_time"), facts.get("source_end_time")
        return cls(
            id=str(facts.get("id") or ""),
            name=str(facts.get("name") or ""),
            start=start,
            end=end,
            duration=_int(facts.get("duration"), end - start) or 0,
            left_offset=float(facts.get("left_offset") or 0),
            track=_int(facts.get("track")),
            track_enabled=bool(facts.get("track_enabled")),
            media=Media.from_facts(facts.get("media")),
            source_start_time=None if times[0] is None else float(times[0]),
            source_end_time=None if times[1] is None else float(times[1]),
        )


@dataclass(frozen=True)
class Timeline:
    """The open project and timeline, as `describe` reports them."""

    capabilities: Capabilities
    project: str
    project_id: str
    name: str
    id: str
    start_frame: int
    start_timecode: str
    current_timecode: str
    fps: Fraction
    drop_frame: bool
    tracks: tuple[tuple[int, bool, bool], ...]  # (index, enabled, locked), V1 first

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> Timeline:
        timeline = facts.get("timeline") or {}
        project = facts.get("project") or {}
        rate_setting = timeline.get("frame_rate")
        tracks = tuple(
            (int(t["index"]), bool(t.get("enabled", True)), bool(t.get("locked", False)))
            for t in timeline.get("video_tracks") or []
        )
        return cls(
            capabilities=Capabilities.from_version(facts.get("product"), facts.get("version")),
            project=str(project.get("name") or ""),
            project_id=str(project.get("id") or ""),
            name=str(timeline.get("name") or ""),
            id=str(timeline.get("id") or ""),
            start_frame=_int(timeline.get("start_frame"), 0) or 0,
            start_timecode=str(timeline.get("start_timecode") or ""),
            current_timecode=str(timeline.get("current_timecode") or ""),
            fps=rates.parse_rate(rate_setting),
            drop_frame=rates.is_drop_frame(rate_setting, timeline.get("drop_frame")),
            tracks=tracks,
        )

    @property
    def track_count(self) -> int:
        return len(self.tracks)

    def playhead(self) -> int:
        if not self.current_timecode:
            raise NoClip(
                "Resolve did not report the playhead's position.",
                "Open the Edit or Cut page, then try again.",
            )
        return rates.timeline_frame(self.current_timecode, self.fps, self.drop_frame)

    def timecode(self, frame: int) -> str:
        return rates.timeline_timecode(frame, self.fps, self.drop_frame)


# --- what a take needs, carried by the job ------------------------------------------------------


@dataclass(frozen=True)
class SendRecord:
    """Where the source clip was when it was sent; the daemon returns it with the job, so a later
    run (or another program) can place the take. Stored as strings in `host_context`."""

    project: str
    project_id: str
    timeline: str
    timeline_id: str
    item_id: str
    clip: str
    record_frame: int  # absolute, the clip's GetStart()
    record_duration: int
    track: int
    timeline_fps: Fraction
    drop_frame: bool
    media_fps: Fraction
    source_in: int
    source_frames: int
    record_timecode: str
    timeline_start: int | None = None  # the timeline's start frame when it was sent

    def to_context(self) -> dict[str, str]:
        return {
            "host": HOST,
            "plugin": "framerelay_resolve " + __version__,
            "project": self.project,
            "project_id": self.project_id,
            "timeline": self.timeline,
            "timeline_id": self.timeline_id,
            "item_id": self.item_id,
            "clip": self.clip,
            "record_frame": str(self.record_frame),
            "record_duration": str(self.record_duration),
            "record_timecode": self.record_timecode,
            "timeline_start": "" if self.timeline_start is None else str(self.timeline_start),
            "track": str(self.track),
            "timeline_fps": rates.rate_text(self.timeline_fps),
            "drop_frame": "1" if self.drop_frame else "0",
            "media_fps": rates.rate_text(self.media_fps),
            "source_in": str(self.source_in),
            "source_frames": str(self.source_frames),
        }

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> SendRecord | None:
        """The record of a job sent from Resolve, or None (another host's, or incomplete)."""
        if not context or context.get("host") != HOST:
            return None
        try:
            return cls(
                project=str(context.get("project", "")),
                project_id=str(context.get("project_id", "")),
                timeline=str(context.get("timeline", "")),
                timeline_id=str(context.get("timeline_id", "")),
                item_id=str(context.get("item_id", "")),
                clip=str(context.get("clip", "")),
                record_frame=int(context["record_frame"]),
                record_duration=int(context["record_duration"]),
                track=int(context["track"]),
                timeline_fps=Fraction(context["timeline_fps"]),
                drop_frame=context.get("drop_frame") == "1",
                media_fps=Fraction(context["media_fps"]),
                source_in=int(context["source_in"]),
                source_frames=int(context["source_frames"]),
                record_timecode=str(context.get("record_timecode", "")),
                timeline_start=_int(context.get("timeline_start")),
            )
        except (KeyError, ValueError, ZeroDivisionError):
            return None

    def belongs_to(self, timeline: Timeline) -> bool:
        if self.project_id and timeline.project_id:
            same_project = self.project_id == timeline.project_id
        else:
            same_project = self.project == timeline.project
        if self.timeline_id and timeline.id:
            return same_project and self.timeline_id == timeline.id
        return same_project and self.timeline == timeline.name

    def same_project(self, timeline: Timeline) -> bool:
        if self.project_id and timeline.project_id:
            return self.project_id == timeline.project_id
        return self.project == timeline.project


# --- choosing and sending the clip ------------------------------------------------------------


def choose_source(
    timeline: Timeline, selected: list[Item] | None, at_playhead: list[Item]
) -> tuple[Item, str]:
    """The clip to send, and how it was found ("selection" or "playhead").

    The timeline selection when this Resolve reports it (21.0.4+) and one video clip is
    selected; otherwise the clip under the playhead on the topmost enabled video track.
    """
    if selected:
        video = [item for item in selected if item.track is not None]
        if len(video) > 1:
            raise NoClip(
                f"{len(video)} video clips are selected on the timeline.",
                "Select the one clip to send (or none: then the clip under the playhead goes).",
            )
        if video:
            return video[0], "selection"
    under = sorted(
        (item for item in at_playhead if item.track_enabled and item.track is not None),
        key=lambda item: -(item.track or 0),
    )
    if not under:
        how = "Select the clip, or move" if timeline.capabilities.selection else "Move"
        raise NoClip(
            f"no clip under the playhead ({timeline.current_timecode}) on an enabled video "
            f"track of '{timeline.name}'.",
            f"{how} the playhead over the clip to send.",
        )
    return under[0], "playhead"


@dataclass(frozen=True)
class SendPlan:
    source: str
    in_frame: int
    out_frame: int  # exclusive
    fps: Fraction
    record: SendRecord
    label: str

    def index_at(self, playhead: int) -> int:
        """ "Edit current frame": the range index of the source frame shown at record frame
        `playhead`, clamped to the range (the edit then propagates both ways from it)."""
        last = self.out_frame - self.in_frame - 1
        offset = playhead - self.record.record_frame
        if offset <= 0:
            return 0
        if self.record.media_fps != self.record.timeline_fps:
            offset = rates.source_frame_at(offset, self.record.timeline_fps, self.record.media_fps)
        return min(offset, last)


def plan_send(timeline: Timeline, item: Item) -> SendPlan:
    """What to submit for `item`: the source file's frame range at its own rate, and the record."""
    media = item.media
    if media is None or not media.path:
        raise ClipRefused(
            f"'{item.name}' has no media file (a title, generator, compound or Fusion clip).",
            "Send a clip of a video file.",
        )
    kind = media.kind.lower()
    if "still" in kind or kind == "audio" or kind.startswith("audio"):
        raise ClipRefused(
            f"'{item.name}' is {media.kind} ({media.path}), not a video clip.",
            "Send a clip of a video file.",
        )
    if media.fps is None:
        raise ClipRefused(
            f"Resolve did not report the frame rate of '{media.path}'.",
            "Check the clip's frame rate in Clip Attributes, then send it again.",
        )
    if item.start < timeline.start_frame:
        raise ClipRefused(
            f"'{item.name}' starts at frame {item.start}, before the timeline's start "
            f"({timeline.start_frame})."
        )
    source_in = round(item.left_offset)
    if abs(item.left_offset - source_in) > 1e-6:
        raise ClipRefused(
            f"'{item.name}' starts between two source frames (offset {item.left_offset}).",
            "Set the clip's speed to 100%, then send it again.",
        )
    count = rates.source_frames_for(item.duration, media.fps, timeline.fps)
    check_speed(item, media.fps, count)
    if media.frames is not None and source_in + count > media.frames:
        raise ClipRefused(
            f"'{item.name}' uses frames {source_in} to {source_in + count - 1} of "
            f"{media.path}, which has {media.frames}.",
            "Trim the clip's tail in Resolve, then send it again.",
        )
    record = SendRecord(
        project=timeline.project,
        project_id=timeline.project_id,
        timeline=timeline.name,
        timeline_id=timeline.id,
        item_id=item.id,
        clip=item.name or media.name,
        record_frame=item.start,
        record_duration=item.duration,
        track=item.track or 1,
        timeline_fps=timeline.fps,
        drop_frame=timeline.drop_frame,
        media_fps=media.fps,
        source_in=source_in,
        source_frames=count,
        record_timecode=timeline.timecode(item.start),
        timeline_start=timeline.start_frame,
    )
    label = f"{record.clip} @ {record.record_timecode} V{record.track}"
    return SendPlan(media.path, source_in, source_in + count, media.fps, record, label)


def check_speed(item: Item, media_fps: Fraction, count: int) -> None:
    """A retimed clip (speed other than 100%) cannot be sent: its take would not line up.

    Resolve has no call for a clip's speed; where it reports the source times (19.0+), their
    span in source frames is compared with the record span.
    """
    if item.source_start_time is None or item.source_end_time is None:
        return
    span = (item.source_end_time - item.source_start_time) * float(media_fps)
    if abs(span - count) > 1.5:
        raise ClipRefused(
            f"'{item.name}' plays {span:.0f} source frames over {item.duration} timeline "
            "frames: its speed is not "
            "100%.",
            "Set the clip's speed to 100% (Change Clip Speed), or render the retimed clip "
            "and send that.",
        )


# --- placing a take ------------------------------------------------------------------------


@dataclass(frozen=True)
class TakePlan:
    job_id: str
    label: str
    path: str  # the output: a movie file, or a folder of PNG frames
    key: dict[str, Any]  # how the take's media pool item is recognised by its File Path
    sequence: dict[str, Any] | None  # ImportMedia's image-sequence clipInfo, for PNG output
    record_frame: int  # absolute
    source_frames: int  # the take's frames: AppendToTimeline's [0, source_frames)
    duration: int  # record frames it must cover
    media_fps: Fraction
    track_mode: str  # "insert" (19.0+) or "append"
    track: int  # the new track's index
    track_name: str
    bin: str = BIN_NAME
    notes: tuple[str, ...] = ()

    def place_args(self) -> dict[str, Any]:
        return {
            "bin": self.bin,
            "key": self.key,
            "record_frame": self.record_frame,
            "start_frame": 0,
            "end_frame": self.source_frames,
            "track_mode": self.track_mode,
            "insert_index": self.track,
            "track_name": self.track_name,
        }

    def import_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"bin": self.bin, "key": self.key, "path": self.path}
        if self.sequence:
            args["sequence"] = self.sequence
        return args


def take_key(path: str, png: bool) -> dict[str, Any]:
    """A movie by its path; a PNG sequence by its folder (Resolve names it frame_[…].png)."""
    if png:
        separator = "\\" if "\\" in path and "/" not in path else "/"
        return {"path": path.rstrip("/\\") + separator, "prefix": True}
    return {"path": path, "prefix": False}


def plan_take(
    job: Mapping[str, Any],
    output_index: int,
    record: SendRecord,
    timeline: Timeline,
    source_now: Item | None,
) -> TakePlan:
    """Where take `output_index` of a finished `job` goes on `timeline`.

    At the source's record frame (absolute) for its record duration, on a new track directly
    above the source clip where it is now (`source_now`, found again by its id), or where it was.
    """
    spec = job.get("spec") or {}
    path = str((job.get("outputPaths") or [])[output_index])
    frame_range = spec.get("frameRange") or {}
    in_frame = int(frame_range.get("inFrame", 0))
    out_frame = int(frame_range.get("outFrame", record.source_in + record.source_frames))
    frames = out_frame - in_frame
    record_frame = record.record_frame
    notes = []
    if record.timeline_start is not None and record.timeline_start != timeline.start_frame:
        # The timeline's start timecode changed: every clip moved with it, and so does the take.
        record_frame += timeline.start_frame - record.timeline_start
        notes.append(
            f"the timeline now starts at {timeline.start_timecode}: the take moved with its clip"
        )
    if source_now is not None and source_now.start != record_frame:
        notes.append(
            f"'{record.clip}' is now at {timeline.timecode(source_now.start)}; the take is where "
            f"the clip was when it was sent ({timeline.timecode(record_frame)})"
        )
    shift = in_frame - record.source_in
    if shift:
        # The round trip edited a later frame: the take starts there.
        if record.media_fps != record.timeline_fps:
            raise PlacementFailed(
                f"the take of '{record.clip}' starts {shift} frames into the clip, which "
                "framerelay cannot "
                "place exactly on a timeline of another frame rate.",
                f"Import it from the 'framerelay' bin and place it by hand: {path}",
            )
        record_frame += shift
    duration = rates.placed_duration(frames, record.media_fps, timeline.fps)
    result_frames = _int((job.get("result") or {}).get("frameCount"))
    if result_frames is not None and result_frames != frames:
        raise PlacementFailed(
            f"the take of '{record.clip}' has {result_frames} frames; {frames} were sent.",
            "Send the clip again.",
        )
    if record_frame < timeline.start_frame:
        raise PlacementFailed(
            f"the take of '{record.clip}' belongs at frame {record_frame}, before the "
            f"timeline's start ({timeline.start_frame}).",
            "Check the timeline's start timecode: it changed since the clip was sent.",
        )
    source_track = source_now.track if source_now and source_now.track else record.track
    source_track = max(1, min(source_track, timeline.track_count))
    if timeline.capabilities.insert_track and source_track + 1 <= timeline.track_count:
        mode, track = "insert", source_track + 1
    else:
        mode, track = "append", timeline.track_count + 1
    png = (spec.get("output") or {}).get("format") == "OUTPUT_FORMAT_PNG"
    sequence = None
    if png:
        sequence = {"pattern": posixpath.join(path, "frame_%06d.png"), "first": 1, "last": frames}
        if "\\" in path and "/" not in path:
            sequence["pattern"] = path.rstrip("\\") + "\\frame_%06d.png"
    job_id = str(job.get("id", ""))
    return TakePlan(
        job_id=job_id,
        label=str(spec.get("label") or record.clip),
        path=path,
        key=take_key(path, png),
        sequence=sequence,
        record_frame=record_frame,
        source_frames=frames,
        duration=duration,
        media_fps=record.media_fps,
        track_mode=mode,
        track=track,
        track_name=f"framerelay {job_id[:8]}",
        notes=tuple(notes),
    )


def check_imported(plan: TakePlan, facts: Mapping[str, Any]) -> None:
    """The imported take must have the source's rate and enough frames, or it cannot line up.

    Resolve gives an image sequence the project's frame rate, so a PNG take of a clip whose rate
    differs from the project's is refused (MOV takes carry their rate)."""
    media = Media.from_facts(facts)
    if media is None or media.fps is None:
        return
    if media.fps != plan.media_fps:
        raise PlacementFailed(
            "Resolve imported the take {} at {} fps; its source is {} fps.".format(
                os.path.basename(plan.path.rstrip("/\\")),
                rates.display_rate(media.fps),
                rates.display_rate(plan.media_fps),
            ),
            "Use MOV or MP4 output for clips whose frame rate is not the project's.",
        )
    if media.frames is not None and media.frames < plan.source_frames:
        raise PlacementFailed(
            f"the take {plan.path} has {media.frames} frames in Resolve; "
            f"{plan.source_frames} are needed."
        )


@dataclass(frozen=True)
class Placed:
    plan: TakePlan
    track: int
    mismatches: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.mismatches


def verify(plan: TakePlan, result: Mapping[str, Any]) -> Placed:
    """Compare what Resolve read back after placing with the plan; raise when nothing landed."""
    readback = result.get("readback") or {}
    track = _int(result.get("track"), plan.track) or plan.track
    where = f"V{track} at {plan.record_frame} ({plan.duration} frames)"
    if not result.get("placed"):
        raise PlacementFailed(
            "Resolve did not place the take of '{}' on {}{}.".format(
                plan.label,
                where,
                ": it landed elsewhere and was taken back" if result.get("removed_stray") else "",
            ),
            "Check that the timeline is not locked, then run Place Takes again; the take is "
            f"in the '{plan.bin}' bin: {plan.path}",
        )
    mismatches = []
    start = _int(readback.get("start"))
    if start != plan.record_frame:
        mismatches.append(f"starts at frame {start}, not {plan.record_frame}")
    duration = _int(readback.get("duration"))
    if duration != plan.duration:
        mismatches.append(f"lasts {duration} frames, not {plan.duration}")
    read_track = _int(readback.get("track"))
    if read_track is not None and read_track != track:
        mismatches.append(f"is on V{read_track}, not V{track}")
    if track != plan.track:
        mismatches.append(f"went on a new V{track}, not V{plan.track}")
    if _int(readback.get("items_on_track")) != 1:
        mismatches.append("shares its track with {} clips".format(readback.get("items_on_track")))
    left = readback.get("left_offset")
    if left is not None and abs(float(left)) > 1e-6:
        mismatches.append(f"starts {left} frames into the take")
    return Placed(plan, track, mismatches)
