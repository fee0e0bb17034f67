"""The free 21.1+ tier: the installed Lua bridge runs in real lua5.1 in the sandbox of free 21.1
(no io, ffi, require, package, os.execute, bmd.readdir) against the fake Resolve, and framerelay's
side (`resolve_bridge`) talks to it through real files: the mailbox it writes and the
Fusion.prefs the bridge's fusion:SavePrefs() writes."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from framerelay.cli import main
from framerelay_resolve import external, install
from framerelay_resolve.bridged import BridgeHost
from framerelay_resolve.vendor.framerelay_client import resolve_bridge as rb
from tests.fake_resolve import FakeResolve
from tests.fake_resolve.lua_host import LuaScript
from tests.resolve_support import resolve_scene

START = 86400


def installed_bridge(fusion_dir: Path) -> Path:
    install.install(install.targets([fusion_dir]), log=lambda line: None)
    return fusion_dir / "Scripts" / "Utility" / install.BRIDGE_SCRIPT


def connect(fusion_dir: Path, lua: LuaScript, timeout: float = 20) -> rb.BridgeClient:
    """framerelay finds the bridge the user started (once its Fusion.prefs says it runs)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rb.BridgeClient.find([fusion_dir], timeout=10)
        except rb.BridgeNotRunning:
            if lua.exit is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def bridge_scene(root: Path, profile: str, fusion_dir: Path | None = None, **timeline):
    fusion_dir = fusion_dir or root / "Fusion"
    with resolve_scene(root, profile, fusion_dir=fusion_dir, **timeline) as scene:
        script = installed_bridge(fusion_dir)
        with LuaScript(scene.resolve, script) as lua:
            client = connect(fusion_dir, lua)
            yield scene, lua, client
            if lua.exit is None:
                client.call("quit")
            assert lua.wait()["ok"], lua.exit
            assert lua.errors == []


def takes(scene) -> list[tuple[int, object]]:
    return [
        (index, item)
        for index, track in enumerate(scene.timeline.tracks["video"], 1)
        for item in track.items
        if not item.media.path.startswith(str(scene.media))
    ]


def test_free_21_1_sends_and_places_through_the_bridge(tmp_path):
    with bridge_scene(tmp_path, "21.1-free", video_tracks=2) as (scene, lua, client):
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START + 10, source_in=6, duration=20)
        scene.timeline.put(scene.clip("b.mp4", 48), 2, START + 25, 0, 20)  # where the take goes
        scene.timeline.playhead = START + 12
        flow = scene.flow(BridgeHost(client))
        sent = flow.send()
        assert sent.how == "playhead" and sent.plan.in_frame == 6
        job = scene.finish_round_trip(sent.job_id)
        assert job["spec"]["hostContext"]["record_frame"] == str(START + 10)
        report = flow.place_finished()
        assert report.placed[0].exact and report.placed[0].track == 2
        ((track, take),) = takes(scene)
        assert (track, take.GetStart(), take.GetDuration()) == (2, START + 10, 20)
        assert scene.timeline.rendered_item_at(START + 10) is take
        assert not (client.mailbox / rb.REQUEST_FILE).exists()  # each answered request is removed
        assert client.status()["State"] == "running"
        assert flow.place_finished().placed == []  # placed once
        client.call("quit")
        assert lua.wait()["ok"]
        assert client.status()["State"] == "stopped"
        assert any("Bridge 0.1.0 running" in line for line in lua.printed)


@pytest.mark.parametrize(("profile", "track"), [("19.1-free", 2), ("18.5-free", 3)])
def test_the_bridge_keeps_to_what_older_builds_have(tmp_path, profile, track):
    with bridge_scene(tmp_path, profile, video_tracks=2) as (scene, _, client):
        media = scene.clip("a.mp4", 48)
        scene.timeline.put(media, 1, START, 0, 24)
        scene.timeline.selection = [scene.timeline.put(media, 2, START + 40, 0, 8)]  # unreported
        flow = scene.flow(BridgeHost(client))
        sent = flow.send()
        assert sent.how == "playhead" and sent.plan.record.track == 1
        scene.finish_round_trip(sent.job_id)
        flow.place_finished()
        ((where, take),) = takes(scene)
        assert where == track and take.GetStart() == START  # inserted from 19.0, on top before


def test_the_selection_through_the_bridge(tmp_path):
    with bridge_scene(tmp_path, "21.1-free") as (scene, _, client):
        media = scene.clip("a.mp4", 48)
        scene.timeline.put(media, 1, START, 0, 12)
        chosen = scene.timeline.put(media, 1, START + 20, 30, 10)
        scene.timeline.selection = [chosen]
        sent = scene.flow(BridgeHost(client)).send()
        assert sent.how == "selection"
        assert (sent.plan.in_frame, sent.plan.record.record_frame) == (30, START + 20)


def test_paths_with_quotes_and_other_scripts_cross_the_mailbox(tmp_path):
    root = tmp_path / 'Film "été" 日本 [1]'
    with bridge_scene(root, "21.1-free") as (scene, _, client):
        scene.timeline.put(scene.clip("plan séquence.mp4", 24), 1, START, 0, 12)
        flow = scene.flow(BridgeHost(client))
        sent = flow.send()
        assert sent.plan.source == str(scene.media / "plan séquence.mp4")
        scene.finish_round_trip(sent.job_id)
        assert flow.place_finished().placed[0].exact
        ((_, take),) = takes(scene)
        assert take.media.path.startswith(str(root))


def test_a_resolve_problem_comes_back_as_a_bridge_error(tmp_path):
    with bridge_scene(tmp_path, "21.1-free") as (scene, _, client):
        scene.resolve.project.current = None
        with pytest.raises(rb.BridgeError, match="no timeline is open") as error:
            BridgeHost(client).describe()
        assert "Open the timeline" in error.value.hint
        with pytest.raises(rb.BridgeError, match="unknown request"):
            client.call("format_disk")


def test_an_expired_request_is_not_performed(tmp_path, monkeypatch):
    with bridge_scene(tmp_path, "21.1-free") as (scene, _, client):
        now = time.time()
        monkeypatch.setattr(rb.time, "time", lambda: now - 600)
        with pytest.raises(rb.BridgeError, match="expired"):
            client.call("place_take", {"bin": "framerelay", "key": {"path": "/x.mov"}})
        monkeypatch.undo()
        assert scene.timeline.GetTrackCount("video") == 1


def test_no_bridge_answers(tmp_path):
    fusion_dir = tmp_path / "Fusion"
    with pytest.raises(rb.BridgeNotRunning, match="not installed") as error:
        rb.BridgeClient.find([fusion_dir])
    assert "framerelay install-resolve" in error.value.hint
    installed_bridge(fusion_dir)
    with pytest.raises(rb.BridgeNotRunning, match="not running") as error:
        rb.BridgeClient.find([fusion_dir])
    assert "Workspace > Scripts > framerelay Bridge" in error.value.hint
    client = rb.BridgeClient(rb.mailbox_dir(fusion_dir), rb.prefs_paths(fusion_dir), timeout=0.3)
    with pytest.raises(rb.BridgeNotRunning, match="did not answer"):
        client.call("ping")
    # Given up: a bridge started later must not perform it.
    assert not (client.mailbox / rb.REQUEST_FILE).exists()
    assert not (client.mailbox / rb.LOCK_FILE).exists()


def test_the_newest_bridge_takes_over(tmp_path):
    with bridge_scene(tmp_path, "21.1-free") as (scene, first, _):
        script = tmp_path / "Fusion" / "Scripts" / "Utility" / install.BRIDGE_SCRIPT
        with LuaScript(scene.resolve, script) as second:
            assert first.wait()["ok"]
            assert any("took over" in line for line in first.printed)
            client = connect(tmp_path / "Fusion", second)
            assert client.call("ping")["product"] == "DaVinci Resolve"
            client.call("quit")
            assert second.wait()["ok"]


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("io.open('/etc/hostname')", "io"),
        ("require('socket')", "require"),
        ("os.execute('true')", "execute"),
        ("bmd.readdir('/')", "readdir"),
        ("ffi.cdef('int x;')", "ffi"),
        ("package.loadlib('x', 'y')", "package"),
    ],
)
def test_the_sandbox_has_none_of_what_free_21_1_removes(tmp_path, snippet, message):
    script = tmp_path / "escape.lua"
    script.write_text(snippet + "\n")
    with LuaScript(FakeResolve("21.1-free"), script) as lua:
        exit = lua.wait()
    assert not exit["ok"] and message in exit["error"]


def test_the_command_line_and_the_tray_api_reach_the_bridge(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    fusion_dir = home / ".local" / "share" / "DaVinciResolve" / "Fusion"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    with bridge_scene(tmp_path, "21.1-free", fusion_dir=fusion_dir) as (scene, lua, _):
        monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(scene.daemon.daemon.config.config_dir))
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 0, 12)
        assert main(["resolve", "bridge"]) == 0
        assert "running in DaVinci Resolve 21.1.0.14" in capsys.readouterr().out
        sent = external.send_current_clip(log=scene.logs.append)  # auto: no Studio, the bridge
        scene.finish_round_trip(sent.job_id)
        assert main(["resolve", "place", "--via", "bridge"]) == 0
        assert "Placed the take" in capsys.readouterr().out and len(takes(scene)) == 1
        assert main(["resolve", "bridge", "--stop"]) == 0
        assert lua.wait()["ok"]
    assert main(["resolve", "place", "--via", "bridge"]) == 2
    assert "not running" in capsys.readouterr().err
