"""A Resolve scene for tests: a real daemon (fake executor) on loopback, real source clips, the
fake Resolve with a timeline, and the vendored client the plugin uses."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from framerelay.jobs.fake_executor import FakeExecutor, write_test_video
from framerelay_resolve.flow import Flow
from framerelay_resolve.live import LiveHost
from framerelay_resolve.vendor.framerelay_client.http import Client
from tests.daemon_harness import running_daemon, wait_for
from tests.fake_resolve import FakeResolve, FakeTimeline

NTSC_24 = Fraction(24000, 1001)


def source_clip(folder: Path, name: str, frames: int, fps: Fraction | int = 24) -> Path:
    path = folder / name
    if not path.exists():
        write_test_video(path, "mp4", frames, Fraction(fps), (64, 64))
    return path


def edited_frame(folder: Path, name: str = "edited.png") -> Path:
    from PIL import Image

    path = folder / name
    Image.new("RGB", (64, 64), (200, 30, 30)).save(path)
    return path


@dataclass
class Scene:
    root: Path
    daemon: Any
    client: Client
    resolve: FakeResolve
    timeline: FakeTimeline
    logs: list[str] = field(default_factory=list)

    @property
    def media(self) -> Path:
        return self.root / "media"

    def flow(self, host: Any = None) -> Flow:
        return Flow(host or LiveHost(self.resolve), self.client, self.logs.append)

    def clip(self, name: str, frames: int, fps: Fraction | int = 24):
        return self.resolve.project.media_pool.add_media(source_clip(self.media, name, frames, fps))

    def finish_round_trip(self, job_id: str, image: Path | None = None) -> dict:
        """The user saves the edit (AttachEdit, as the tray's Pick edited file does); the job
        runs on the fake executor; returns the finished job."""
        self.client.attach_edit(job_id, image or edited_frame(self.root))
        return self.wait_ended(job_id)

    def wait_ended(self, job_id: str) -> dict:
        ended = ("JOB_STATE_FINISHED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
        return wait_for(
            lambda: (job := self.client.get_job(job_id))["state"] in ended and job, timeout=60
        )


@contextmanager
def resolve_scene(
    root: Path,
    profile: str,
    executor: FakeExecutor | None = None,
    fusion_dir: Path | None = None,
    **timeline: Any,
):
    (root / "media").mkdir(parents=True, exist_ok=True)
    with running_daemon(root, executor or FakeExecutor(), no_open=True) as (daemon, _):
        client = Client(daemon.discovery.http_url, daemon.discovery.token)
        resolve = FakeResolve(profile, fusion_dir)
        options = {"video_tracks": 1, **timeline}
        tl = resolve.project.add_timeline("Edit 1", **options)
        yield Scene(root, daemon, client, resolve, tl)
        # Never a call this build lacks, never a Studio-only call or a window on free.
        assert resolve.phantom_calls == [], resolve.phantom_calls
        assert resolve.refused == [], resolve.refused
