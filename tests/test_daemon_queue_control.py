"""Queue control: pause and resume (finish or interrupt the running job), unload the model now,
trim the cache, job defaults kept in config.toml, and the crash-loop guard."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from framerelay.cli import main
from framerelay.errors import BusyError, InvalidSpecError
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import daemon_pb2, events_pb2, jobs_pb2, specs_pb2
from framerelay.service.cache import DirectoryCache
from framerelay.service.client import DaemonClient
from tests.daemon_harness import (
    clip_spec,
    http_call,
    kinds,
    make_media,
    running_daemon,
    start_serve,
    stop_serve,
    wait_for,
)


def state_of(client: DaemonClient, job_id: str) -> int:
    return client.get(job_id).state


def test_a_pause_lets_the_running_job_finish_and_holds_the_queue_until_resume(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (_, client):
        running = client.submit(clip_spec(source, edited))
        waiting = client.submit(clip_spec(source, edited))
        wait_for(lambda: state_of(client, running.id) == jobs_pb2.JOB_STATE_RUNNING)
        paused = client.pause()
        gate.set()
        finished = list(client.watch(running.id))
        status = client.status()
        held = client.get(waiting.id)
        resumed = client.resume()
        waited = list(client.watch(waiting.id))
        after = client.status()
    assert paused.paused and paused.interrupted_job_id == ""
    assert kinds(finished)[-1] == "finished"
    assert status.queue_paused and status.queue_length == 1 and not status.running_job_id
    assert held.state == jobs_pb2.JOB_STATE_QUEUED and held.position == 1
    assert resumed.was_paused and not after.queue_paused
    assert kinds(waited)[-1] == "finished"


def test_a_pause_that_interrupts_queues_the_running_job_first_and_resume_reruns_it(tmp_path):
    source, edited = make_media(tmp_path / "media")
    fake = FakeExecutor(step_seconds=0.02)
    with running_daemon(tmp_path, fake) as (_, client):
        job = client.submit(clip_spec(source, edited))
        other = client.submit(clip_spec(source, edited))
        seen = []
        for event in client.watch(job.id):
            seen.append(event)
            if event.progress.phase == "invert":
                break
        paused = client.pause(interrupt_running=True)
        requeued = wait_for(lambda: client.get(job.id).state == jobs_pb2.JOB_STATE_QUEUED)
        held = client.list().jobs
        client.resume()
        events = list(client.watch(job.id))
        final = client.get(job.id)
        list(client.watch(other.id))
    assert requeued and paused.interrupted_job_id == job.id
    assert [j.id for j in held if j.state == jobs_pb2.JOB_STATE_QUEUED] == [job.id, other.id]
    queued = [e.queued for e in events if e.WhichOneof("kind") == "queued"]
    assert queued[-1].reason == events_pb2.QUEUED_REASON_PAUSED and queued[-1].position == 1
    assert "cancelled" not in kinds(events) and kinds(events)[-1] == "finished"
    assert final.attempt == 2
    # The second attempt resumed from the work folder: finished phases were not run again.
    assert fake.runs[-2].job_id == job.id and "decode" in fake.runs[-2].skipped_phases


def test_a_cancel_wins_over_the_pause_that_interrupted_the_job(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (_, client):
        job = client.submit(clip_spec(source, edited))
        wait_for(lambda: state_of(client, job.id) == jobs_pb2.JOB_STATE_RUNNING)
        client.pause(interrupt_running=True)
        client.cancel(job.id)
        events = list(client.watch(job.id))
        client.resume()
        final = client.get(job.id)
    # The cancel reaches the job while it stops (interrupted) or once it is queued again
    # (dequeued): either way it ends cancelled and never runs again.
    assert kinds(events)[-1] == "cancelled" and kinds(events).count("started") == 1
    assert final.state == jobs_pb2.JOB_STATE_CANCELLED


def test_the_pause_outlives_a_restart(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path) as (_, client):
        client.pause()
        job = client.submit(clip_spec(source, edited))
    with running_daemon(tmp_path) as (_, client):
        status = client.status()
        still_queued = wait_for(lambda: client.get(job.id)).state
        client.resume()
        last = list(client.watch(job.id))[-1]
    with running_daemon(tmp_path) as (_, client):
        resumed_status = client.status()
    assert status.queue_paused and still_queued == jobs_pb2.JOB_STATE_QUEUED
    assert last.WhichOneof("kind") == "finished"
    assert not resumed_status.queue_paused


def test_unload_frees_the_model_now_and_is_refused_under_a_running_job(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    fake = FakeExecutor(gate=gate)
    with running_daemon(tmp_path, fake, idle_unload_s=3600) as (_, client):
        job = client.submit(clip_spec(source, edited))
        wait_for(lambda: client.status().model_loaded)
        with pytest.raises(BusyError) as busy:
            client.unload()
        gate.set()
        list(client.watch(job.id))
        loaded = client.status().model_loaded
        first = client.unload()
        second = client.unload()
        after = client.status()
    assert job.id in busy.value.message and "Pause" in busy.value.hint
    assert loaded and first.was_loaded and not second.was_loaded
    assert not after.model_loaded and fake.unloads == 1


def test_cache_info_groups_entries_by_clip_and_gc_trims_to_a_size(tmp_path):
    root = tmp_path / "artifacts"
    for name, size in (("old", 1000), ("mid", 2000), ("new", 3000)):
        (root / name).mkdir(parents=True)
        (root / name / "data.bin").write_bytes(b"x" * size)
        os.utime(root / name, (1_000_000 + size, 1_000_000 + size))
    with running_daemon(tmp_path, cache=DirectoryCache(root)) as (_, client):
        before = client.cache_info()
        trimmed = client.gc_cache(3500)
    assert [(c.source_path, c.entries, c.bytes) for c in before.clips] == [
        ("new", 1, 3000),
        ("mid", 1, 2000),
        ("old", 1, 1000),
    ]
    assert trimmed.freed_bytes == 3000 and (trimmed.entries, trimmed.bytes) == (1, 3000)
    assert sorted(p.name for p in root.iterdir()) == ["new"]


def test_the_artifact_cache_names_the_clip_of_each_entry(tmp_path):
    from framerelay.cache import ArtifactCache
    from framerelay.service.cache import ArtifactCacheStore

    cache = ArtifactCache(tmp_path / "artifacts")
    for n, clip in enumerate(("/clips/a.mov", "/clips/a.mov", "/clips/b.mov")):
        key = f"{n:064x}"
        cache.put(key, lambda folder: (folder / "x.bin").write_bytes(b"x" * 100), {"clip": clip})
    info = ArtifactCacheStore(cache).info()
    assert [(c.source, c.entries) for c in info.clips] == [("/clips/a.mov", 2), ("/clips/b.mov", 1)]
    assert ArtifactCacheStore(cache).gc(0) > 0 and ArtifactCacheStore(cache).info().entries == 0


def test_job_defaults_fill_what_a_job_leaves_unset(tmp_path):
    source, edited = make_media(tmp_path / "media")
    renders = tmp_path / "renders"
    renders.mkdir()
    with running_daemon(tmp_path) as (_, client):
        built_in = client.defaults().defaults
        wanted = daemon_pb2.JobDefaults(
            preset=specs_pb2.PRESET_STYLE,
            output_format=specs_pb2.OUTPUT_FORMAT_MP4,
            output_folder=str(renders),
        )
        client.set_defaults(wanted)
        plain = client.submit(clip_spec(source, edited))
        explicit = client.submit(
            clip_spec(
                source,
                edited,
                params=specs_pb2.EditParams(preset=specs_pb2.PRESET_LOCAL),
                output=specs_pb2.OutputSpec(format=specs_pb2.OUTPUT_FORMAT_MOV),
            )
        )
        last = list(client.watch(plain.id))[-1]
    assert (
        built_in.preset == specs_pb2.PRESET_AUTO
        and built_in.output_format == specs_pb2.OUTPUT_FORMAT_MOV
    )
    assert built_in.output_folder == ""
    assert plain.spec.params.preset == specs_pb2.PRESET_STYLE
    assert plain.output_paths[0].startswith(str(renders)) and plain.output_paths[0].endswith(".mp4")
    assert last.finished.preset == "style"
    assert explicit.spec.params.preset == specs_pb2.PRESET_LOCAL
    assert explicit.output_paths[0].endswith(".mov")


def test_a_default_folder_outside_the_output_roots_is_refused(tmp_path):
    with running_daemon(tmp_path, output_roots=(tmp_path / "media",)) as (_, client):
        with pytest.raises(InvalidSpecError) as refused:
            client.set_defaults(daemon_pb2.JobDefaults(output_folder=str(tmp_path / "elsewhere")))
        with pytest.raises(InvalidSpecError):
            client.set_defaults(daemon_pb2.JobDefaults(output_folder="relative/folder"))
        kept = client.defaults().defaults
    assert "output roots" in refused.value.message and kept.output_folder == ""


def test_defaults_and_editor_settings_the_daemon_writes_are_read_back_at_its_next_start(tmp_path):
    state = tmp_path / "state"
    renders = tmp_path / "renders"
    renders.mkdir()
    (state / "config").mkdir(parents=True)
    (state / "config" / "config.toml").write_text(f'output_roots = ["{tmp_path}"]\n')
    process, found = start_serve(state, "--fake")
    try:
        with DaemonClient.from_discovery(found) as client:
            editor = daemon_pb2.EditorConfig(open_editor=False, poll_saves=True)
            client.set_editor_config(editor)
            wanted = daemon_pb2.JobDefaults(
                preset=specs_pb2.PRESET_SHAPE,
                output_format=specs_pb2.OUTPUT_FORMAT_PNG,
                output_folder=str(renders),
            )
            client.set_defaults(wanted)
            client.pause()
    finally:
        stop_serve(process)
    process, found = start_serve(state, "--fake")
    try:
        with DaemonClient.from_discovery(found) as client:
            defaults = client.defaults().defaults
            editor_back = client.editor_config().config
            paused = client.status().queue_paused
    finally:
        _, err = stop_serve(process)
    assert process.returncode == 0, err
    assert defaults == wanted
    assert editor_back.poll_saves and not editor_back.open_editor
    assert paused


def test_queue_control_over_http(tmp_path):
    with running_daemon(tmp_path) as (daemon, _):
        found = daemon.discovery
        paused = http_call(found, "PauseQueue", {"interruptRunning": True})
        status = http_call(found, "GetStatus", {})
        resumed = http_call(found, "ResumeQueue", {})
        unloaded = http_call(found, "UnloadModel", {})
        defaults = http_call(found, "GetDefaults", {})
        gc = http_call(found, "GcCache", {"maxBytes": "0"})
    assert paused == (200, {"paused": True})
    assert status[0] == 200 and status[1]["queuePaused"] is True
    assert resumed == (200, {"wasPaused": True})
    assert unloaded == (200, {})
    assert defaults[0] == 200 and defaults[1]["defaults"]["preset"] == "PRESET_AUTO"
    assert gc[0] == 200


def test_queue_control_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path / "config"))
    renders = tmp_path / "renders"
    renders.mkdir()
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with running_daemon(tmp_path, FakeExecutor(gate=gate), idle_unload_s=3600) as (_, client):
        job = client.submit(clip_spec(source, edited))
        wait_for(lambda: state_of(client, job.id) == jobs_pb2.JOB_STATE_RUNNING)
        assert main(["pause", "--interrupt"]) == 0
        paused_out = capsys.readouterr().out
        wait_for(lambda: state_of(client, job.id) == jobs_pb2.JOB_STATE_QUEUED)
        assert main(["unload"]) == 0
        unload_out = capsys.readouterr().out
        assert main(["defaults", "--preset", "style", "--output-dir", str(renders)]) == 0
        defaults_out = capsys.readouterr().out
        gate.set()
        assert main(["resume"]) == 0
        resume_out = capsys.readouterr().out
        last = list(client.watch(job.id))[-1]
        assert main(["unload"]) == 0
        busy = main(["defaults", "--output-dir", str(tmp_path.parent)])
        refused = capsys.readouterr()
    assert f"job {job.id[:8]} stops" in paused_out
    assert unload_out.strip() == "model unloaded"
    assert "preset         style" in defaults_out and str(renders) in defaults_out
    assert resume_out.strip() == "queue resumed"
    assert last.WhichOneof("kind") == "finished"
    assert busy == 2 and "output roots" in refused.err and "hint:" in refused.err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_job_that_killed_the_daemon_twice_is_parked_as_failed_instead_of_run_again(tmp_path):
    source, edited = make_media(tmp_path / "media")
    state = tmp_path / "state"

    def kill_while_running(job_id: str, attempt: int) -> str:
        process, found = start_serve(state, "--fake", "--fake-step-seconds", "0.1")
        try:
            with DaemonClient.from_discovery(found) as client:
                if attempt == 1:
                    job_id = client.submit(clip_spec(source, edited)).id
                    client.submit(clip_spec(source, edited, label="next"))
                current = 0
                for event in client.watch(job_id):
                    current = event.started.attempt or current
                    if current == attempt and event.progress.phase == "invert":
                        break
            os.kill(process.pid, signal.SIGKILL)  # as the kernel's OOM killer would
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
        return job_id

    job_id = kill_while_running("", 1)
    kill_while_running(job_id, 2)

    process, found = start_serve(state, "--fake", "--fake-step-seconds", "0.01")
    try:
        with DaemonClient.from_discovery(found) as client:
            events = list(client.watch(job_id))
            parked = client.get(job_id)
            others = [j for j in client.list().jobs if j.spec.label == "next"]
            next_events = list(client.watch(others[0].id))
    finally:
        _, err = stop_serve(process)
    assert process.returncode == 0, err
    assert parked.state == jobs_pb2.JOB_STATE_FAILED and parked.attempt == 2
    assert "2 times" in parked.error.message and "retry" in parked.error.hint
    assert kinds(events)[-1] == "failed" and kinds(events).count("started") == 2
    assert kinds(next_events)[-1] == "finished"
    assert not (state / "data" / "work" / job_id).exists()


def test_a_clean_stop_is_not_counted_as_a_crash(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    for _ in range(3):
        with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (_, client):
            listed = list(client.list().jobs)
            job = listed[0] if listed else client.submit(clip_spec(source, edited))
            running = job.id
            wait_for(lambda: state_of(client, running) == jobs_pb2.JOB_STATE_RUNNING)  # noqa: B023
    gate.set()
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (_, client):
        last = list(client.watch(job.id))[-1]
        attempts = client.get(job.id).attempt
    assert last.WhichOneof("kind") == "finished" and attempts == 4


def test_the_defaults_section_is_read_checked_and_written_beside_the_others(tmp_path):
    from framerelay.jobs.output_policy import OutputPolicy
    from framerelay.service.job_defaults import DefaultsSettings, JobDefaults

    path = tmp_path / "config.toml"
    policy = OutputPolicy(tmp_path / "outputs", (tmp_path,))
    path.write_text('output_roots = ["/x"]\n\n[defaults]\npreset = "bogus"\n')
    with pytest.raises(InvalidSpecError) as broken:
        DefaultsSettings(path, policy)
    assert str(path) in broken.value.message and "unknown default preset" in broken.value.message

    path.write_text('output_roots = ["/x"]\n\n[editor]\napplication = "gimp"\n')
    settings = DefaultsSettings(path, policy)
    assert settings.current() == JobDefaults()
    settings.update(JobDefaults(preset="shape", output_format="png"))
    text = path.read_text()
    assert 'application = "gimp"' in text and 'output_roots = ["/x"]' in text
    assert DefaultsSettings(path, policy).current() == JobDefaults("shape", "png")

    time.sleep(0.01)  # a hand edit applies from then on
    path.write_text(text.replace('preset = "shape"', 'preset = "local"'))
    assert settings.current().preset == "local"
