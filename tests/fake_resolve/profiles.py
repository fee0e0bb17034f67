"""Which Resolve has which calls: versions, editions, and the calls' first versions.

One table (`API`) lists every call the fake implements with the version whose scripting README
first documents it (bisected by hosts.md §A.5 over the published READMEs); a profile's `dir()` is
derived from it. `STUDIO_ONLY` calls and `WINDOW` calls (UIManager windows, file dialogs) on a free
build from 19.1 raise Resolve's modal upsell ("You have reached a limitation"), after which
unrelated calls fail until a person dismisses it (measured on free 21.0.3.7).
"""

from __future__ import annotations

from dataclasses import dataclass

V16 = (16, 2, 0)
V18 = (18, 0, 0)
V18_5 = (18, 5, 0)
V19 = (19, 0, 0)
V21_0_4 = (21, 0, 4)

API: dict[str, dict[str, tuple[int, int, int]]] = {
    "Resolve": {
        name: V16
        for name in (
            "GetProductName",
            "GetVersion",
            "GetVersionString",
            "GetProjectManager",
            "Fusion",
            "OpenPage",
            "GetCurrentPage",
        )
    },
    "ProjectManager": {"GetCurrentProject": V16, "SaveProject": V16},
    "Project": {
        "GetName": V16,
        "GetMediaPool": V16,
        "GetCurrentTimeline": V16,
        "GetTimelineCount": V16,
        "GetTimelineByIndex": V16,
        "SetCurrentTimeline": V16,
        "GetSetting": V16,
        "GetUniqueId": V18,
    },
    "MediaPool": {
        "GetRootFolder": V16,
        "AddSubFolder": V16,
        "GetCurrentFolder": V16,
        "SetCurrentFolder": V16,
        "ImportMedia": V16,
        "AppendToTimeline": V16,
        "DeleteClips": V16,
        "GetSelectedClips": V19,
    },
    "Folder": {"GetName": V16, "GetClipList": V16, "GetSubFolderList": V16, "GetUniqueId": V18},
    "MediaPoolItem": {
        "GetName": V16,
        "GetClipProperty": V16,
        "SetClipProperty": V16,
        "GetUniqueId": V18,
        "TranscribeAudio": V18,
    },
    "Timeline": {
        **{
            name: V16
            for name in (
                "GetName",
                "GetStartFrame",
                "GetEndFrame",
                "GetStartTimecode",
                "GetTrackCount",
                "GetTrackName",
                "SetTrackName",
                "GetItemListInTrack",
                "GetCurrentTimecode",
                "SetCurrentTimecode",
                "GetCurrentVideoItem",
                "GetSetting",
                "DeleteClips",
                "GetIsTrackEnabled",
                "SetTrackEnable",
            )
        },
        "GetUniqueId": V18,
        "AddTrack": V18_5,
        "DeleteTrack": V18_5,
        "GetIsTrackLocked": V18_5,
        "SetTrackLock": V18_5,
        "CreateSubtitlesFromAudio": V18_5,
        "GetSelectedClips": V21_0_4,
    },
    "TimelineItem": {
        **{
            name: V16
            for name in (
                "GetName",
                "GetDuration",
                "GetStart",
                "GetEnd",
                "GetLeftOffset",
                "GetRightOffset",
                "GetMediaPoolItem",
            )
        },
        "GetUniqueId": V18,
        "GetTrackTypeAndIndex": V19,
        "GetSourceStartFrame": V19,
        "GetSourceEndFrame": V19,
        "GetSourceStartTime": V19,
        "GetSourceEndTime": V19,
    },
    "Fusion": {
        name: V16
        for name in ("GetResolve", "GetPrefs", "SetPrefs", "SavePrefs", "RequestFile", "MapPath")
    },
}
STUDIO_ONLY = {("Timeline", "CreateSubtitlesFromAudio"), ("MediaPoolItem", "TranscribeAudio")}
WINDOW = {("Fusion", "RequestFile")}
FREE_WINDOWS_END = (19, 1, 0)
FREE_PYTHON_END = (21, 1, 0)


@dataclass(frozen=True)
class Profile:
    name: str
    version: tuple[int, int, int, int, str]
    studio: bool

    @property
    def product(self) -> str:
        return "DaVinci Resolve Studio" if self.studio else "DaVinci Resolve"

    @property
    def short(self) -> tuple[int, int, int]:
        return self.version[:3]

    def methods(self, kind: str) -> set[str]:
        return {name for name, since in API[kind].items() if self.short >= since}

    def refuses(self, kind: str, name: str) -> bool:
        """Calls that raise the upsell modal on this build."""
        if self.studio:
            return False
        if (kind, name) in STUDIO_ONLY:
            return True
        return (kind, name) in WINDOW and self.short >= FREE_WINDOWS_END

    @property
    def python_menu(self) -> bool:
        return self.studio or self.short < FREE_PYTHON_END

    @property
    def external_scripting(self) -> bool:
        return self.studio


PROFILES = {
    profile.name: profile
    for profile in (
        Profile("18.5-studio", (18, 5, 1, 6, ""), True),
        Profile("18.5-free", (18, 5, 1, 6, ""), False),
        Profile("19.1-free", (19, 1, 3, 7, ""), False),
        Profile("19.1-studio", (19, 1, 3, 7, ""), True),
        Profile("20.3-studio", (20, 3, 2, 9, ""), True),
        Profile("21.0.4-studio", (21, 0, 4, 5, ""), True),
        Profile("21.1-free", (21, 1, 0, 14, ""), False),
    )
}
PYTHON_PROFILES = [name for name, p in PROFILES.items() if p.python_menu]
