"""`LiveHost`: the Resolve calls of every tier but the Lua bridge, on Resolve's Python objects.

Its operations and their answers (plain dicts) are the Lua bridge's (`lua/framerelay_bridge.lua`)
one for one, so `flow` drives either without knowing which. It makes the calls; `placement`
decides what to call them with. Every capability is checked with `dir()` (never `hasattr()`,
which is always true on Resolve's objects) or the version, and no Studio-only call is made.
"""

from __future__ import annotations

from typing import Any, Mapping

from .capabilities import Capabilities
from .errors import NoClip, PlacementFailed


def _list(value: Any) -> list[Any]:
    """Resolve's lists (None when empty on some builds; dicts keyed 1..n from older ones)."""
    if not value:
        return []
    if isinstance(value, dict):
        return [value[key] for key in sorted(value)]
    return list(value)


def matches(path: Any, key: Mapping[str, Any]) -> bool:
    if not isinstance(path, str):
        return False
    if key.get("prefix"):
        return path.startswith(key["path"])
    return path == key["path"]


class LiveHost:
    """Resolve through its scripting objects (a menu script's, or external scripting's)."""

    def __init__(self, resolve: Any) -> None:
        self.resolve = resolve
        self._capabilities: Capabilities | None = None

    # --- where we are ---

    def current(self):
        manager = self.resolve.GetProjectManager()
        project = manager.GetCurrentProject() if manager else None
        if not project:
            raise NoClip("no project is open in Resolve.", "Open your project, then try again.")
        timeline = project.GetCurrentTimeline()
        if not timeline:
            raise NoClip(
                "no timeline is open in Resolve.",
                "Open the timeline with your clip, then try again.",
            )
        return project, timeline, project.GetMediaPool()

    def capabilities(self, item: Any = None) -> Capabilities:
        if item is not None:
            return Capabilities.probe(self.resolve, self.current()[1], item)
        if self._capabilities is None:
            self._capabilities = Capabilities.probe(self.resolve, self.current()[1])
        return self._capabilities

    # --- facts ---

    def media_facts(self, media_pool_item: Any) -> dict[str, Any] | None:
        if not media_pool_item:
            return None
        props = media_pool_item.GetClipProperty() or {}
        return {
            "path": props.get("File Path"),
            "fps": props.get("FPS"),
            "frames": props.get("Frames"),
            "type": props.get("Type"),
            "name": props.get("Clip Name") or media_pool_item.GetName(),
            "resolution": props.get("Resolution"),
            "start_tc": props.get("Start TC"),
        }

    def track_of(self, timeline: Any, item: Any) -> int | None:
        if "GetTrackTypeAndIndex" in dir(item):
            kind, index = ([*list(item.GetTrackTypeAndIndex() or []), None, None])[:2]
            return int(index) if kind == "video" and index else None
        wanted = item.GetUniqueId()
        for index in range(1, timeline.GetTrackCount("video") + 1):
            for other in _list(timeline.GetItemListInTrack("video", index)):
                if other.GetUniqueId() == wanted:
                    return index
        return None

    def item_facts(self, timeline: Any, item: Any, track: int | None = None) -> dict[str, Any]:
        if track is None:
            track = self.track_of(timeline, item)
        names = dir(item)
        facts: dict[str, Any] = {
            "id": item.GetUniqueId(),
            "name": item.GetName(),
            "start": item.GetStart(),
            "end": item.GetEnd(),
            "duration": item.GetDuration(),
            "left_offset": item.GetLeftOffset(),
            "track": track,
            "track_enabled": bool(track and timeline.GetIsTrackEnabled("video", track)),
            "media": self.media_facts(item.GetMediaPoolItem()),
        }
        if "GetSourceStartTime" in names and "GetSourceEndTime" in names:
            facts["source_start_time"] = item.GetSourceStartTime()
            facts["source_end_time"] = item.GetSourceEndTime()
        return facts

    def video_items(self, timeline: Any):
        for index in range(1, timeline.GetTrackCount("video") + 1):
            for item in _list(timeline.GetItemListInTrack("video", index)):
                yield index, item

    # --- the operations (the Lua bridge has the same) ---

    def describe(self) -> dict[str, Any]:
        project, timeline, _ = self.current()
        tracks = [
            {
                "index": index,
                "enabled": bool(timeline.GetIsTrackEnabled("video", index)),
                "locked": bool(timeline.GetIsTrackLocked("video", index)),
            }
            for index in range(1, timeline.GetTrackCount("video") + 1)
        ]
        return {
            "product": self.resolve.GetProductName(),
            "version": list(self.resolve.GetVersion() or []),
            "project": {
                "name": project.GetName(),
                "id": project.GetUniqueId() if "GetUniqueId" in dir(project) else None,
            },
            "timeline": {
                "name": timeline.GetName(),
                "id": timeline.GetUniqueId(),
                "start_frame": timeline.GetStartFrame(),
                "start_timecode": timeline.GetStartTimecode(),
                "current_timecode": timeline.GetCurrentTimecode(),
                "frame_rate": timeline.GetSetting("timelineFrameRate"),
                "drop_frame": timeline.GetSetting("timelineDropFrameTimecode"),
                "video_tracks": tracks,
            },
        }

    def items_at(self, frame: int) -> dict[str, Any]:
        _, timeline, _ = self.current()
        found = [
            self.item_facts(timeline, item, index)
            for index, item in self.video_items(timeline)
            if item.GetStart() <= frame < item.GetEnd()
        ]
        found.sort(key=lambda facts: -facts["track"])
        return {"items": found}

    def selected(self) -> dict[str, Any]:
        _, timeline, _ = self.current()
        if "GetSelectedClips" not in dir(timeline):
            return {"supported": False, "items": []}
        found = []
        for item in _list(timeline.GetSelectedClips()):
            track = self.track_of(timeline, item)
            if track:
                found.append(self.item_facts(timeline, item, track))
        return {"supported": True, "items": found}

    def current_item(self) -> dict[str, Any]:
        _, timeline, _ = self.current()
        item = timeline.GetCurrentVideoItem()
        return {"item": self.item_facts(timeline, item) if item else None}

    def find_item(self, id: str) -> dict[str, Any]:
        _, timeline, _ = self.current()
        for index, item in self.video_items(timeline):
            if item.GetUniqueId() == id:
                return {"item": self.item_facts(timeline, item, index)}
        return {"item": None}

    def find_bin(self, media_pool: Any, name: str, create: bool) -> Any:
        root = media_pool.GetRootFolder()
        for folder in _list(root.GetSubFolderList()):
            if folder.GetName() == name:
                return folder
        if not create:
            return None
        folder = media_pool.AddSubFolder(root, name)
        if not folder:
            raise PlacementFailed(f"Resolve could not create the bin '{name}'.")
        return folder

    def find_take(self, folder: Any, key: Mapping[str, Any]) -> Any:
        if not folder:
            return None
        for clip in _list(folder.GetClipList()):
            if matches(clip.GetClipProperty("File Path"), key):
                return clip
        return None

    def takes_status(self, keys: list[Mapping[str, Any]], bin: str) -> dict[str, Any]:
        _, timeline, media_pool = self.current()
        folder = self.find_bin(media_pool, bin, create=False)
        placed = []
        for _, item in self.video_items(timeline):
            media_pool_item = item.GetMediaPoolItem()
            if media_pool_item:
                placed.append(media_pool_item.GetClipProperty("File Path"))
        return {
            "in_bin": [key["path"] for key in keys if self.find_take(folder, key)],
            "on_timeline": [
                key["path"] for key in keys if any(matches(path, key) for path in placed)
            ],
        }

    def import_take(
        self,
        bin: str,
        key: Mapping[str, Any],
        path: str,
        sequence: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        _, _, media_pool = self.current()
        folder = self.find_bin(media_pool, bin, create=True)
        clip = self.find_take(folder, key)
        existing = clip is not None
        if clip is None:
            # ImportMedia has no destination: it always imports into the current folder.
            previous = media_pool.GetCurrentFolder()
            media_pool.SetCurrentFolder(folder)
            if sequence:
                request: list[Any] = [
                    {
                        "FilePath": sequence["pattern"],
                        "StartIndex": sequence["first"],
                        "EndIndex": sequence["last"],
                    }
                ]
            else:
                request = [path]
            imported = _list(media_pool.ImportMedia(request))
            if previous:
                media_pool.SetCurrentFolder(previous)
            if not imported:
                raise PlacementFailed(
                    f"Resolve could not import {path}.",
                    "Check that the file exists and that Resolve can read its format.",
                )
            clip = imported[0]
        facts = self.media_facts(clip) or {}
        facts["existing"] = existing
        return facts

    def discard_take(self, bin: str, key: Mapping[str, Any]) -> dict[str, Any]:
        _, _, media_pool = self.current()
        clip = self.find_take(self.find_bin(media_pool, bin, create=False), key)
        if clip is None:
            return {"removed": False}
        return {"removed": bool(media_pool.DeleteClips([clip]))}

    def place_take(
        self,
        bin: str,
        key: Mapping[str, Any],
        record_frame: int,
        start_frame: int,
        end_frame: int,
        track_mode: str,
        insert_index: int,
        track_name: str | None = None,
    ) -> dict[str, Any]:
        _, timeline, media_pool = self.current()
        clip = self.find_take(self.find_bin(media_pool, bin, create=False), key)
        if clip is None:
            raise PlacementFailed(f"the take is not in the '{bin}' bin.")
        before = timeline.GetTrackCount("video")
        if track_mode == "insert":
            if not self.capabilities().insert_track:
                raise PlacementFailed("this Resolve cannot insert a track (19.0 or newer can).")
            timeline.AddTrack("video", {"index": insert_index})
            index = insert_index
        else:
            timeline.AddTrack("video")
            index = before + 1
        if timeline.GetTrackCount("video") != before + 1:
            raise PlacementFailed(
                "Resolve did not add a video track.", "Check that the timeline is not locked."
            )
        if track_name and "SetTrackName" in dir(timeline):
            timeline.SetTrackName("video", index, track_name)
        placed = _list(
            media_pool.AppendToTimeline(
                [
                    {
                        "mediaPoolItem": clip,
                        "startFrame": start_frame,
                        "endFrame": end_frame,  # exclusive
                        "trackIndex": index,
                        "recordFrame": record_frame,  # absolute
                        "mediaType": 1,
                    }
                ]
            )
        )
        item = placed[0] if placed else None
        on_track = _list(timeline.GetItemListInTrack("video", index))
        readback: dict[str, Any] = {"items_on_track": len(on_track), "on_track": False}
        if item is not None:
            readback.update(
                id=item.GetUniqueId(),
                start=item.GetStart(),
                end=item.GetEnd(),
                duration=item.GetDuration(),
                left_offset=item.GetLeftOffset(),
            )
            track_index = "GetTrackTypeAndIndex" in dir(item)
            if track_index:
                readback["track"] = ([*list(item.GetTrackTypeAndIndex() or []), None, None])[1]
            if readback["id"]:
                for other in on_track:
                    if other.GetUniqueId() == readback["id"]:
                        readback["on_track"] = True
                        readback.setdefault("track", index)
        removed_stray = False
        if item is not None and readback.get("id") and not readback["on_track"]:
            # It landed somewhere else (a track index beyond the count lands on V1): take it back.
            removed_stray = bool(timeline.DeleteClips([item], False))
        removed_track = False
        if not on_track:
            removed_track = bool(timeline.DeleteTrack("video", index))
        return {
            "placed": readback["on_track"],
            "track": index,
            "readback": readback,
            "removed_track": removed_track,
            "removed_stray": removed_stray,
        }

    def quit(self) -> dict[str, Any]:
        return {}
