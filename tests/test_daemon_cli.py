"""`framerelay serve` starts without torch; `submit`, `jobs`, `watch` and `cancel` talk to it."""

from __future__ import annotations

import threading

import pytest

from framerelay.cli import main
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.service.client import DaemonClient
from framerelay.service.discovery import discovery_path
from tests.daemon_harness import (
    clip_spec,
    make_media,
    running_daemon,
    start_serve,
    stop_serve,
    wait_for,
)

POISON = """\
from pathlib import Path
Path({marker!r}).write_text("imported")
raise ImportError("torch must not be imported by framerelay serve")
"""


def test_serve_starts_and_answers_without_importing_torch(tmp_path):
    poison = tmp_path / "poison"
    (poison / "torch").mkdir(parents=True)
    marker = tmp_path / "torch-was-imported"
    (poison / "torch" / "__init__.py").write_text(POISON.format(marker=str(marker)))

    process, found = start_serve(tmp_path / "state", extra_path=poison)
    try:
        with DaemonClient.from_discovery(found) as client:
            status = client.status()
            listed = client.list()
    finally:
        out, err = stop_serve(process)

    assert process.returncode == 0, err
    assert not marker.exists(), "framerelay serve imported torch"
    assert status.pid == process.pid and not status.model_loaded and status.device == "auto"
    assert list(listed.jobs) == []
    assert "framerelay daemon ready" in out
    assert not discovery_path(tmp_path / "state" / "config").exists()


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path / "config"))
    gate = threading.Event()
    gate.set()
    fake = FakeExecutor(
        gate=gate,
        fail=lambda run: RuntimeError("broken") if run.spec.label == "broken" else None,
    )
    with running_daemon(tmp_path, fake) as (thread, client):
        yield thread, client, gate


def test_submit_with_watch_prints_the_outputs(daemon, tmp_path, capsys):
    source, edited = make_media(tmp_path / "media")
    code = main(
        [
            "submit", str(source), str(edited), "--in", "2", "--out", "8", "--fps", "24000/1001",
            "--format", "mp4", "--context", "record_frame=86400", "--label", "shot 10", "--watch",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "finished: 6 frames at 24000/1001 fps" in out
    assert "  seed 23, 1 window(s), 4 LoRA steps, 0 cache hit(s); load " in out
    assert "  preset local: the edit changed 0% of the frame (under 35%)" in out
    output = out.strip().splitlines()[-1]
    assert output.endswith(".mp4") and (tmp_path / "data" / "outputs").as_posix() in output
    _, client, _ = daemon
    job = client.list().jobs[0]
    assert dict(job.spec.host_context) == {"record_frame": "86400"}
    assert job.spec.label == "shot 10"


def test_jobs_lists_running_and_queued_then_all(daemon, tmp_path, capsys):
    _, client, gate = daemon
    source, edited = make_media(tmp_path / "media")
    gate.clear()
    running = client.submit(clip_spec(source, edited, label="first"))
    queued = client.submit(clip_spec(source, edited, label="second"))
    wait_for(lambda: client.status().running_job_id == running.id)
    assert main(["jobs"]) == 0
    active = capsys.readouterr().out
    gate.set()
    list(client.watch(queued.id))
    assert main(["jobs", "--all"]) == 0
    everything = capsys.readouterr().out
    assert running.id[:8] in active and "running" in active
    assert queued.id[:8] in active and "#1" in active and "second" in active
    assert everything.count("finished") == 2


def test_watch_accepts_an_id_prefix_and_cancel_reports_the_outcome(daemon, tmp_path, capsys):
    _, client, gate = daemon
    source, edited = make_media(tmp_path / "media")
    gate.clear()
    running = client.submit(clip_spec(source, edited))
    queued = client.submit(clip_spec(source, edited))
    assert main(["cancel", queued.id[:6]]) == 0
    assert "removed from the queue" in capsys.readouterr().out
    wait_for(lambda: client.status().running_job_id == running.id)
    assert main(["cancel", running.id]) == 0
    assert "stops at its next step" in capsys.readouterr().out
    assert main(["watch", running.id[:8]]) == 2
    err = capsys.readouterr().err
    assert "cancelled while it ran" in err and "hint: " in err
    assert main(["cancel", running.id]) == 0
    assert "had already ended" in capsys.readouterr().out


def test_watch_of_a_failed_job_prints_the_message_and_hint(daemon, tmp_path, capsys):
    _, client, _ = daemon
    source, edited = make_media(tmp_path / "media")
    job = client.submit(clip_spec(source, edited, label="broken"))
    assert main(["watch", job.id]) == 2
    err = capsys.readouterr().err
    assert "internal error (RuntimeError)" in err and "hint: This is a bug" in err


def test_finished_watch_prints_outputs(daemon, tmp_path, capsys):
    _, client, _ = daemon
    source, edited = make_media(tmp_path / "media")
    job = client.submit(clip_spec(source, edited))
    list(client.watch(job.id))
    assert main(["watch", job.id]) == 0
    assert job.output_paths[0] in capsys.readouterr().out


def test_clients_without_a_daemon_say_how_to_start_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path / "nothing"))
    assert main(["jobs"]) == 2
    err = capsys.readouterr().err
    assert "not running" in err and "framerelay serve" in err


def test_submit_rejects_a_range_without_its_other_end(daemon, tmp_path, capsys):
    source, edited = make_media(tmp_path / "media")
    assert main(["submit", str(source), str(edited), "--in", "3"]) == 2
    assert "--in and --out go together" in capsys.readouterr().err


def test_jobs_shows_control_characters_of_a_label_as_question_marks():
    # Any token holder chooses the label: it must not send escapes or line breaks to the terminal.
    from framerelay.cli.jobs import row
    from framerelay.proto.v1 import jobs_pb2

    job = jobs_pb2.Job(id="0123456789", state=jobs_pb2.JOB_STATE_QUEUED, position=1)
    job.spec.label = "\x1b[2J\x1b]0;title\x07évil\nline"
    line = row(job)
    assert "\x1b" not in line and "\x07" not in line and "\n" not in line
    assert line.endswith("?[2J?]0;title?évil?line")


def test_watch_follows_a_job_across_a_clean_restart(tmp_path, monkeypatch):
    # docs/daemon.md: `framerelay watch` reconnects and resumes if the daemon restarts. A clean
    # stop removes the discovery file until the new daemon writes one; watch used to give up
    # there with "the daemon is not running".
    from framerelay.cli.progress_view import follow

    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path / "config"))
    source, edited = make_media(tmp_path / "media")
    process, found = start_serve(tmp_path, "--fake")
    try:
        with DaemonClient.from_discovery(found) as client:
            client.pause(False)
            job = client.submit(clip_spec(source, edited))
        result: dict = {}

        def watch() -> None:
            try:
                result["finished"] = follow(DaemonClient.from_discovery(found), job.id)
            except Exception as error:  # reported below
                result["error"] = error

        tries = []
        connect = DaemonClient.connect.__func__
        monkeypatch.setattr(
            DaemonClient, "connect", classmethod(lambda cls: tries.append(1) or connect(cls))
        )
        watcher = threading.Thread(target=watch)
        watcher.start()
        stop_serve(process)
        assert not discovery_path(tmp_path / "config").exists()
        wait_for(lambda: tries or not watcher.is_alive(), timeout=30)  # it tried while down
        process, found = start_serve(tmp_path, "--fake")
        with DaemonClient.from_discovery(found) as client:
            client.resume()
        watcher.join(timeout=60)
    finally:
        stop_serve(process)
    assert "error" not in result, result.get("error")
    assert result["finished"].frame_count > 0
