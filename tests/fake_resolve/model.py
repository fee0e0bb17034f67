"""A fake DaVinci Resolve that behaves as the real one was measured to (hosts.md §A).

What it encodes, each a measured behaviour unless marked as a modelling choice:

* `dir()` lists only the calls of the profile's version (`profiles.API`); any other name still
  answers (`hasattr` is always true) with a callable that does nothing and returns None. Such
  calls are recorded in `app.phantom_calls`.
* Studio-only calls and windows on free 19.1+ return False and raise the upsell modal; while it is
  up every call returns None (`app.modal`, `app.refused`).
* `MediaPool.ImportMedia` imports into the *current* folder only; missing files import nothing;
  an image sequence takes the project's frame rate at import.
* `AppendToTimeline` clipInfo: `endFrame` exclusive; `recordFrame` absolute and taken as given
  (before the timeline's start the clip is placed, reads back as sent, and never renders);
  `trackIndex` = count + 1 creates the track, beyond it lands on V1; a clip overlapping another
  on its track is dropped silently, the returned item having an empty unique id and no place on
  the timeline; a source range of another rate lasts floor(n * timeline_fps / media_fps) frames.
* `AddTrack("video", {"index": n})` inserts at n (tracks above shift up) from 19.0, appends when
  n is out of range; before 19.0 the options are ignored and the track is appended on top.
* `GetLeftOffset` is the exact source in-point at 100% speed, `position / speed` on a retimed
  clip; `GetSourceStartFrame` reads one frame off on a clip of another rate (modelling choice
  for "off by one on some items"); `GetSourceStart/EndTime` are timecode-absolute seconds of
  the true source span.
* Timecode: drop-frame for 29.97/59.94 DF timelines (";" before the frames).
* `GetCurrentVideoItem` is the topmost clip at the playhead, enabled track or not (modelling
  choice; not measured).
* `Fusion.SetPrefs`/`SavePrefs` write a real `Fusion.prefs` file in Fusion's Lua-table format.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from .profiles import PROFILES, Profile

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids):06d}"


# --- the fake's own timecode (independent of framerelay's) ---------------------------------


def tc_base(fps: Fraction) -> int:
    return round(fps)


def frames_to_tc(frame: int, fps: Fraction, drop: bool) -> str:
    base = tc_base(fps)
    if drop:
        dropped = 2 if base == 30 else 4
        per_min = base * 60 - dropped
        per_ten = per_min * 10 + dropped
        tens, rest = divmod(frame, per_ten)
        extra = dropped * 9 * tens
        if rest > dropped:
            extra += dropped * ((rest - dropped) // per_min)
        frame += extra
    ff = frame % base
    seconds = frame // base
    sep = ";" if drop else ":"
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{sep}{ff:02d}"


def tc_to_frames(tc: str, fps: Fraction, drop: bool) -> int:
    hh, mm, ss, ff = (int(x) for x in re.split(r"[:;]", tc))
    base = tc_base(fps)
    total_minutes = hh * 60 + mm
    frames = (total_minutes * 60 + ss) * base + ff
    if drop:
        dropped = 2 if base == 30 else 4
        frames -= dropped * (total_minutes - total_minutes // 10)
    return frames


def resolve_rate(fps: Fraction) -> float:
    """How Resolve writes a rate: 23.976, 24.0, 29.97."""
    return round(float(fps), 3)


def rate_setting(fps: Fraction) -> str:
    value = resolve_rate(fps)
    return str(int(value)) if value.is_integer() else f"{value:g}"


# --- the gate every call goes through -----------------------------------------------------------


class FakeObject:
    KIND = ""

    def __init__(self, app: FakeResolve) -> None:
        object.__setattr__(self, "app", app)

    def __getattribute__(self, name: str) -> Any:
        if not name[:1].isupper():
            return object.__getattribute__(self, name)
        app = object.__getattribute__(self, "app")
        return app.gate(self, type(self).KIND, name)

    def __dir__(self) -> list[str]:
        app = object.__getattribute__(self, "app")
        return sorted(app.profile.methods(type(self).KIND))


class FakeResolve(FakeObject):
    KIND = "Resolve"

    def __init__(self, profile: str | Profile, fusion_dir: Path | None = None) -> None:
        super().__init__(self)
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.modal = False
        self.refused: list[str] = []  # calls that raised the upsell modal
        self.phantom_calls: list[str] = []  # calls of names this build lacks
        self.calls: list[str] = []
        self.project = FakeProject(self, "Project 1")
        self.manager = FakeProjectManager(self)
        self.fusion = FakeFusion(self, fusion_dir)
        self.page = "edit"

    def gate(self, obj: FakeObject, kind: str, name: str) -> Any:
        self.calls.append(f"{kind}.{name}")
        if self.modal:
            return lambda *args, **kwargs: None
        if name not in self.profile.methods(kind):

            def phantom(*args: Any, **kwargs: Any) -> None:
                self.phantom_calls.append(f"{kind}.{name}")

            return phantom
        if self.profile.refuses(kind, name):

            def refused(*args: Any, **kwargs: Any) -> bool:
                self.refused.append(f"{kind}.{name}")
                self.modal = True
                return False

            return refused
        return object.__getattribute__(obj, name)

    def dismiss_modal(self) -> None:
        self.modal = False

    # the API
    def GetProductName(self) -> str:
        return self.profile.product

    def GetVersion(self) -> list:
        return list(self.profile.version)

    def GetVersionString(self) -> str:
        major, minor, patch, build, suffix = self.profile.version
        return f"{major}.{minor}.{patch}{suffix}.{build}"

    def GetProjectManager(self) -> FakeProjectManager:
        return self.manager

    def Fusion(self) -> FakeFusion:
        return self.fusion

    def OpenPage(self, page: str) -> bool:
        self.page = page
        return True

    def GetCurrentPage(self) -> str:
        return self.page


class FakeProjectManager(FakeObject):
    KIND = "ProjectManager"

    def GetCurrentProject(self) -> FakeProject | None:
        return self.app.project

    def SaveProject(self) -> bool:
        return True


class FakeProject(FakeObject):
    KIND = "Project"

    def __init__(self, app: FakeResolve, name: str) -> None:
        super().__init__(app)
        self.name = name
        self.uid = new_id("project")
        self.media_pool = FakeMediaPool(app, self)
        self.timelines: list[FakeTimeline] = []
        self.current: FakeTimeline | None = None
        self.fps = Fraction(24)

    def add_timeline(self, name: str = "Timeline 1", **options: Any) -> FakeTimeline:
        timeline = FakeTimeline(self.app, self, name, **options)
        self.timelines.append(timeline)
        self.current = self.current or timeline
        if len(self.timelines) == 1:
            self.fps = timeline.fps
        return timeline

    def GetName(self) -> str:
        return self.name

    def GetUniqueId(self) -> str:
        return self.uid

    def GetMediaPool(self) -> FakeMediaPool:
        return self.media_pool

    def GetCurrentTimeline(self) -> FakeTimeline | None:
        return self.current

    def GetTimelineCount(self) -> int:
        return len(self.timelines)

    def GetTimelineByIndex(self, index: int) -> FakeTimeline | None:
        return self.timelines[index - 1] if 1 <= index <= len(self.timelines) else None

    def SetCurrentTimeline(self, timeline: FakeTimeline) -> bool:
        if timeline not in self.timelines:
            return False
        self.current = timeline
        return True

    def GetSetting(self, name: str | None = None) -> Any:
        settings = {"timelineFrameRate": rate_setting(self.fps)}
        return settings if not name else settings.get(name, "")


class FakeFolder(FakeObject):
    KIND = "Folder"

    def __init__(self, app: FakeResolve, name: str) -> None:
        super().__init__(app)
        self.name = name
        self.uid = new_id("folder")
        self.clips: list[FakeMediaPoolItem] = []
        self.folders: list[FakeFolder] = []

    def GetName(self) -> str:
        return self.name

    def GetUniqueId(self) -> str:
        return self.uid

    def GetClipList(self) -> list:
        return list(self.clips)

    def GetSubFolderList(self) -> list:
        return list(self.folders)


class FakeMediaPoolItem(FakeObject):
    KIND = "MediaPoolItem"

    def __init__(
        self,
        app: FakeResolve,
        path: str,
        fps: Fraction,
        frames: int,
        kind: str = "Video",
        start_tc_frame: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(app)
        self.path = path
        self.fps = fps
        self.frames = frames
        self.kind = kind
        self.start_tc_frame = start_tc_frame
        self.name = name or os.path.basename(path.rstrip("/"))
        self.uid = new_id("clip")
        self.properties: dict[str, Any] = {}

    def GetName(self) -> str:
        return self.name

    def GetUniqueId(self) -> str:
        return self.uid

    def GetClipProperty(self, name: str | None = None) -> Any:
        props = {
            "File Path": self.path,
            "FPS": resolve_rate(self.fps),
            "Frames": str(self.frames),
            "Type": self.kind,
            "Clip Name": self.name,
            "Resolution": "64x64",
            "Start TC": frames_to_tc(self.start_tc_frame, self.fps, False),
            **self.properties,
        }
        return props if not name else props.get(name, "")

    def SetClipProperty(self, name: str, value: Any) -> bool:
        self.properties[name] = value
        return True

    def TranscribeAudio(self) -> bool:  # Studio only
        return True


class FakeTrack:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.items: list[FakeTimelineItem] = []
        self.enabled = True
        self.locked = False
        self.name = ""


class FakeTimelineItem(FakeObject):
    KIND = "TimelineItem"

    def __init__(
        self,
        app: FakeResolve,
        timeline: FakeTimeline,
        media: FakeMediaPoolItem | None,
        start: int,
        duration: int,
        source_in: int,
        kind: str = "video",
        speed: float = 1.0,
        name: str | None = None,
        ghost: bool = False,
    ) -> None:
        super().__init__(app)
        self.timeline = timeline
        self.media = media
        self.start = start
        self.duration = duration
        self.source_in = source_in  # true source frame at the head
        self.kind = kind
        self.speed = speed
        self.name = name or (media.name if media else "Title")
        self.uid = "" if ghost else new_id("item")

    @property
    def end(self) -> int:
        return self.start + self.duration

    def track(self) -> tuple[str, int] | None:
        for kind in ("video", "audio"):
            for index, track in enumerate(self.timeline.tracks[kind], 1):
                if self in track.items:
                    return kind, index
        return None

    def GetName(self) -> str:
        return self.name

    def GetUniqueId(self) -> str:
        return self.uid

    def GetStart(self) -> int:
        return self.start

    def GetEnd(self) -> int:
        return self.end

    def GetDuration(self) -> int:
        return self.duration

    def GetLeftOffset(self, subframe: bool = False) -> float | int:
        offset = self.source_in / self.speed
        return offset if subframe or offset != int(offset) else int(offset)

    def GetRightOffset(self, subframe: bool = False) -> int:
        if self.media is None:
            return 0
        return int(self.media.frames - self.source_in - self.source_frames())

    def source_frames(self) -> float:
        media_fps = self.media.fps if self.media else self.timeline.fps
        return float(Fraction(self.duration) * media_fps / self.timeline.fps) * self.speed

    def GetMediaPoolItem(self) -> FakeMediaPoolItem | None:
        return self.media

    def GetTrackTypeAndIndex(self) -> list:
        where = self.track()
        return list(where) if where else [None, None]

    def GetSourceStartFrame(self) -> int:
        off_by_one = self.media is not None and self.media.fps != self.timeline.fps
        return self.source_in + (1 if off_by_one else 0)

    def GetSourceEndFrame(self) -> int:
        return self.source_in + math.floor(self.source_frames())

    def GetSourceStartTime(self) -> float:
        fps = self.media.fps if self.media else self.timeline.fps
        origin = self.media.start_tc_frame if self.media else 0
        return float((origin + self.source_in) / fps)

    def GetSourceEndTime(self) -> float:
        fps = self.media.fps if self.media else self.timeline.fps
        return self.GetSourceStartTime() + self.source_frames() / float(fps)


class FakeTimeline(FakeObject):
    KIND = "Timeline"

    def __init__(
        self,
        app: FakeResolve,
        project: FakeProject,
        name: str,
        fps: Fraction | int = 24,
        drop_frame: bool = False,
        start_timecode: str = "01:00:00:00",
        video_tracks: int = 1,
        audio_tracks: int = 1,
    ) -> None:
        super().__init__(app)
        self.project = project
        self.name = name
        self.uid = new_id("timeline")
        self.fps = Fraction(fps)
        self.drop_frame = drop_frame
        self.start_frame = tc_to_frames(start_timecode, self.fps, drop_frame)
        self.tracks: dict[str, list[FakeTrack]] = {
            "video": [FakeTrack("video") for _ in range(video_tracks)],
            "audio": [FakeTrack("audio") for _ in range(audio_tracks)],
            "subtitle": [],
        }
        self.playhead = self.start_frame
        self.selection: list[FakeTimelineItem] = []

    # test helpers (not Resolve's API)
    def put(
        self,
        media: FakeMediaPoolItem,
        track: int,
        record: int,
        source_in: int,
        duration: int,
        speed: float = 1.0,
        with_audio: bool = True,
    ) -> FakeTimelineItem:
        """A clip as an editor put it there: V`track` at absolute `record`, its linked audio."""
        item = FakeTimelineItem(self.app, self, media, record, duration, source_in, speed=speed)
        self.tracks["video"][track - 1].items.append(item)
        if with_audio and self.tracks["audio"]:
            audio = FakeTimelineItem(
                self.app, self, media, record, duration, source_in, kind="audio"
            )
            self.tracks["audio"][0].items.append(audio)
            item.linked = audio
        return item

    def restart_at(self, timecode: str) -> None:
        """The editor changes the start timecode (Timeline Settings): every clip moves with it."""
        start = tc_to_frames(timecode, self.fps, self.drop_frame)
        for tracks in self.tracks.values():
            for track in tracks:
                for item in track.items:
                    item.start += start - self.start_frame
        self.playhead += start - self.start_frame
        self.start_frame = start

    def rendered_item_at(self, frame: int) -> FakeTimelineItem | None:
        """What the viewer shows at `frame`: the topmost enabled video clip there, if the frame
        lies in the timeline (a clip before the timeline's start never renders)."""
        if frame < self.start_frame:
            return None
        for track in reversed(self.tracks["video"]):
            if not track.enabled:
                continue
            for item in track.items:
                if item.start <= frame < item.end:
                    return item
        return None

    def video_layout(self) -> list[list[tuple[str, int, int, str]]]:
        """(name, start, end, media path) per video track, V1 first: for before/after checks."""
        return [
            [(i.name, i.start, i.end, i.media.path if i.media else "") for i in t.items]
            for t in self.tracks["video"]
        ]

    def place_clip_info(self, info: dict, media_pool: FakeMediaPool) -> FakeTimelineItem | None:
        media = info.get("mediaPoolItem")
        if not isinstance(media, FakeMediaPoolItem):
            return None
        start = int(info.get("startFrame", 0))
        end = int(info.get("endFrame", media.frames))  # exclusive
        if end <= start:
            return None
        count = end - start
        duration = count
        if media.fps != self.fps:
            duration = math.floor(Fraction(count) * self.fps / media.fps)
        video = self.tracks["video"]
        index = int(info.get("trackIndex", 1))
        if index == len(video) + 1:
            video.append(FakeTrack("video"))
        elif not 1 <= index <= len(video):
            index = 1  # measured: beyond count + 1 lands silently on V1
        track = video[index - 1]
        if "recordFrame" in info:
            record = int(info["recordFrame"])
        else:
            record = max([self.start_frame] + [item.end for item in track.items])
        item = FakeTimelineItem(self.app, self, media, record, duration, start)
        if track.locked or any(
            other.start < item.end and item.start < other.end for other in track.items
        ):
            return FakeTimelineItem(self.app, self, media, record, duration, start, ghost=True)
        track.items.append(item)
        track.items.sort(key=lambda i: i.start)
        return item

    # the API
    def GetName(self) -> str:
        return self.name

    def GetUniqueId(self) -> str:
        return self.uid

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        ends = [i.end for tracks in self.tracks.values() for t in tracks for i in t.items]
        return max([*ends, self.start_frame])

    def GetStartTimecode(self) -> str:
        return frames_to_tc(self.start_frame, self.fps, self.drop_frame)

    def GetSetting(self, name: str | None = None) -> Any:
        rate = rate_setting(self.fps) + (" DF" if self.drop_frame else "")
        settings = {
            "timelineFrameRate": rate,
            "timelineDropFrameTimecode": "1" if self.drop_frame else "0",
        }
        return settings if not name else settings.get(name, "")

    def GetTrackCount(self, kind: str) -> int:
        return len(self.tracks.get(kind, []))

    def _track(self, kind: str, index: int) -> FakeTrack | None:
        tracks = self.tracks.get(kind, [])
        return tracks[index - 1] if 1 <= int(index) <= len(tracks) else None

    def AddTrack(self, kind: str, options: Any = None) -> bool:
        tracks = self.tracks[kind]
        index = None
        if isinstance(options, dict) and self.app.profile.short >= (19, 0, 0):
            index = options.get("index")
        if index is not None and 1 <= int(index) <= len(tracks):
            tracks.insert(int(index) - 1, FakeTrack(kind))
        else:
            tracks.append(FakeTrack(kind))
        return True

    def DeleteTrack(self, kind: str, index: int) -> bool:
        if self._track(kind, index) is None:
            return False
        del self.tracks[kind][int(index) - 1]
        return True

    def GetTrackName(self, kind: str, index: int) -> str:
        track = self._track(kind, index)
        return (track.name or f"{kind[0].upper()}{index}") if track else ""

    def SetTrackName(self, kind: str, index: int, name: str) -> bool:
        track = self._track(kind, index)
        if track is None:
            return False
        track.name = name
        return True

    def GetIsTrackEnabled(self, kind: str, index: int) -> bool:
        track = self._track(kind, index)
        return bool(track and track.enabled)

    def SetTrackEnable(self, kind: str, index: int, enabled: bool) -> bool:
        track = self._track(kind, index)
        if track is None:
            return False
        track.enabled = bool(enabled)
        return True

    def GetIsTrackLocked(self, kind: str, index: int) -> bool:
        track = self._track(kind, index)
        return bool(track and track.locked)

    def SetTrackLock(self, kind: str, index: int, locked: bool) -> bool:
        track = self._track(kind, index)
        if track is None:
            return False
        track.locked = bool(locked)
        return True

    def GetItemListInTrack(self, kind: str, index: int) -> list:
        track = self._track(kind, index)
        return list(track.items) if track else []

    def GetCurrentTimecode(self) -> str:
        return frames_to_tc(self.playhead, self.fps, self.drop_frame)

    def SetCurrentTimecode(self, timecode: str) -> bool:
        self.playhead = tc_to_frames(timecode, self.fps, self.drop_frame)
        return True

    def GetCurrentVideoItem(self) -> FakeTimelineItem | None:
        for track in reversed(self.tracks["video"]):
            for item in track.items:
                if item.start <= self.playhead < item.end:
                    return item
        return None

    def GetSelectedClips(self) -> list:
        selected = []
        for item in self.selection:
            selected.append(item)
            linked = getattr(item, "linked", None)
            if linked is not None:
                selected.append(linked)
        return selected

    def DeleteClips(self, items: list, ripple: bool = False) -> bool:
        removed = False
        for tracks in self.tracks.values():
            for track in tracks:
                for item in list(items or []):
                    if item in track.items:
                        track.items.remove(item)
                        removed = True
        return removed

    def CreateSubtitlesFromAudio(self, settings: Any = None) -> bool:  # Studio only
        return True


class FakeMediaPool(FakeObject):
    KIND = "MediaPool"

    def __init__(self, app: FakeResolve, project: FakeProject) -> None:
        super().__init__(app)
        self.project = project
        self.root = FakeFolder(app, "Master")
        self.current = self.root

    # test helper
    def add_media(self, path: Path | str, folder: FakeFolder | None = None) -> FakeMediaPoolItem:
        item = media_item(self.app, str(path))
        (folder or self.root).clips.append(item)
        return item

    def folders(self) -> list[FakeFolder]:
        found, stack = [], [self.root]
        while stack:
            folder = stack.pop()
            found.append(folder)
            stack.extend(folder.folders)
        return found

    def GetRootFolder(self) -> FakeFolder:
        return self.root

    def AddSubFolder(self, parent: FakeFolder, name: str) -> FakeFolder | None:
        if not isinstance(parent, FakeFolder):
            return None
        folder = FakeFolder(self.app, name)
        parent.folders.append(folder)
        return folder

    def GetCurrentFolder(self) -> FakeFolder:
        return self.current

    def SetCurrentFolder(self, folder: FakeFolder) -> bool:
        if folder not in self.folders():
            return False
        self.current = folder
        return True

    def ImportMedia(self, items: list) -> list:
        imported = []
        for entry in items or []:
            if isinstance(entry, dict):
                item = sequence_item(self.app, entry, self.project.fps)
            elif os.path.isfile(str(entry)):
                item = media_item(self.app, str(entry))
            else:
                item = None
            if item is not None:
                self.current.clips.append(item)  # measured: always the current folder
                imported.append(item)
        return imported

    def AppendToTimeline(self, items: list) -> list:
        timeline = self.project.current
        if timeline is None:
            return []
        placed = []
        for entry in items or []:
            info = entry if isinstance(entry, dict) else {"mediaPoolItem": entry}
            item = timeline.place_clip_info(info, self)
            if item is not None:
                placed.append(item)
        return placed

    def DeleteClips(self, clips: list) -> bool:
        removed = False
        for folder in self.folders():
            for clip in list(clips or []):
                if clip in folder.clips:
                    folder.clips.remove(clip)
                    removed = True
        return removed

    def GetSelectedClips(self) -> list:
        return []


class FakeFusion(FakeObject):
    KIND = "Fusion"

    def __init__(self, app: FakeResolve, fusion_dir: Path | None) -> None:
        super().__init__(app)
        self.fusion_dir = fusion_dir
        self.prefs: dict[str, Any] = {
            "Global": {
                "Paths": {"Map": {"Scripts:": "UserPaths:Scripts;Fusion:Scripts"}},
                "Controls": {"AutoClose": False, "GridSize": 16},
                "Main": {"LastFile": 'C:\\Comps\\a "quoted" comp.comp'},
            },
            "Comp": {"Views": {"Left": {"Viewer": {"ScaleMode": 1, "Scale": 0.5}}}},
        }
        self.saves = 0
        self.requested_files: list[str | None] = []  # what RequestFile answers, in turn

    @property
    def prefs_path(self) -> Path | None:
        if self.fusion_dir is None:
            return None
        return self.fusion_dir / "Profiles" / "Default" / "Fusion.prefs"

    def GetResolve(self) -> FakeResolve:
        return self.app

    def MapPath(self, path: str) -> str:
        return path

    def GetPrefs(self, name: str | None = None) -> Any:
        value: Any = self.prefs
        for part in (name or "").split(".") if name else []:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def SetPrefs(self, name: Any, value: Any = None) -> bool:
        if isinstance(name, dict):
            return all(self.SetPrefs(key, item) for key, item in name.items())
        node = self.prefs
        parts = str(name).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        return True

    def SavePrefs(self, filename: str | None = None) -> bool:
        path = Path(filename) if filename else self.prefs_path
        if path is None:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(prefs_text(self.prefs), encoding="utf-8")  # rewritten in place
        self.saves += 1
        return True

    def RequestFile(self, *args: Any) -> str | None:
        return self.requested_files.pop(0) if self.requested_files else None


# --- media -----------------------------------------------------------------------------------


def probe(path: str) -> tuple[Fraction, int]:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = Fraction(stream.average_rate)
        frames = stream.frames or sum(1 for _ in container.decode(stream))
    return fps, frames


def media_item(app: FakeResolve, path: str) -> FakeMediaPoolItem | None:
    if not os.path.isfile(path):
        return None
    if path.lower().endswith((".png", ".jpg", ".tif", ".tiff")):
        return FakeMediaPoolItem(app, path, app.project.fps, 1, kind="Still")
    fps, frames = probe(path)
    return FakeMediaPoolItem(app, path, fps, frames, kind="Video + Audio")


def sequence_item(app: FakeResolve, info: dict, project_fps: Fraction) -> FakeMediaPoolItem | None:
    pattern = str(info.get("FilePath", ""))
    first, last = int(info.get("StartIndex", 0)), int(info.get("EndIndex", -1))
    match = re.search(r"%0(\d)d", pattern)
    if match is None or last < first:
        return None
    width = int(match.group(1))
    files = [pattern.replace(match.group(0), f"{n:0{width}d}") for n in range(first, last + 1)]
    if not all(os.path.isfile(f) for f in files):
        return None
    shown = pattern.replace(match.group(0), f"[{first:0{width}d}-{last:0{width}d}]")
    # An image sequence takes the project's frame rate at import.
    return FakeMediaPoolItem(app, shown, project_fps, len(files), kind="Video")


def prefs_text(prefs: dict[str, Any]) -> str:
    """Fusion's preferences file: one Lua table, tab-indented, a comma after every field."""

    def value(item: Any, depth: int) -> str:
        if isinstance(item, dict):
            pad = "\t" * (depth + 1)
            fields = [f"{pad}{key(k)} = {value(v, depth + 1)}," for k, v in item.items()]
            return "{\n" + "\n".join(fields) + "\n" + "\t" * depth + "}"
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, (int, float)):
            return repr(item)
        text = str(item).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{text}"'

    def key(k: Any) -> str:
        k = str(k)
        return k if re.fullmatch(r"[A-Za-z_]\w*", k) else f'["{k}"]'

    return value(prefs, 0) + "\n"
