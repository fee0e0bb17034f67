"""Where jobs may write: output roots, `..` and symlink escapes, overwrite refusal, config.toml."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from framerelay.errors import InvalidSpecError
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import specs_pb2
from framerelay.service.config import DaemonConfig, read_config_file
from tests.daemon_harness import clip_spec, http_call, make_media, running_daemon

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")


@pytest.fixture
def layout(tmp_path) -> dict[str, Path]:
    """media/ (the clip), renders/ (the one configured root), elsewhere/ (neither)."""
    source, edited = make_media(tmp_path / "media")
    for name in ("renders", "elsewhere"):
        (tmp_path / name).mkdir()
    return {
        "tmp": tmp_path,
        "source": source,
        "edited": edited,
        "renders": tmp_path / "renders",
        "elsewhere": tmp_path / "elsewhere",
    }


def daemon_for(layout: dict[str, Path], executor=None, **config):
    config = {"output_roots": (layout["renders"],), **config}
    return running_daemon(layout["tmp"] / "state", executor, **config)


def spec_into(layout: dict[str, Path], folder: Path | str, **output) -> specs_pb2.JobSpec:
    spec = clip_spec(layout["source"], layout["edited"], frames=4)
    spec.output.folder = str(folder)
    for name, value in output.items():
        setattr(spec.output, name, value)
    return spec


def refused(client, spec) -> InvalidSpecError:
    with pytest.raises(InvalidSpecError) as caught:
        client.submit(spec)
    return caught.value


def test_outputs_go_under_a_root_next_to_the_source_or_the_data_folder(layout):
    with daemon_for(layout) as (_, client):
        jobs = [
            client.submit(spec_into(layout, layout["renders"] / "shot 1")),
            client.submit(spec_into(layout, layout["source"].parent)),
            client.submit(spec_into(layout, layout["source"].parent / "framerelay")),
            client.submit(clip_spec(layout["source"], layout["edited"], frames=4)),
        ]
        results = [list(client.watch(job.id))[-1] for job in jobs]
    assert [r.WhichOneof("kind") for r in results] == ["finished"] * 4
    assert Path(results[0].finished.output_paths[0]).parent == layout["renders"] / "shot 1"
    assert Path(results[3].finished.output_paths[0]).is_relative_to(
        layout["tmp"] / "state" / "data" / "outputs"
    )


@pytest.mark.parametrize(
    "folder",
    [
        "{elsewhere}",
        "/",
        "{renders}/../elsewhere",
        "{renders}/new/../../elsewhere",
        "{media}/../elsewhere",
        "{renders}-sibling",
    ],
)
def test_outputs_outside_the_roots_are_refused(layout, folder):
    folder = folder.format(
        elsewhere=layout["elsewhere"], renders=layout["renders"], media=layout["source"].parent
    )
    with daemon_for(layout) as (daemon, client):
        error = refused(client, spec_into(layout, folder))
        status, body = http_call(
            daemon.discovery,
            "SubmitJob",
            {"spec": {**spec_json(layout), "output": {"folder": folder}}},
        )
        jobs = client.list().jobs
    assert "outside the daemon's output roots" in error.message
    assert "output_roots" in error.hint and "config.toml" in error.hint
    assert status == 400 and "outside" in body["error"]["message"]
    assert list(jobs) == []
    assert list(layout["elsewhere"].iterdir()) == []


def spec_json(layout: dict[str, Path]) -> dict:
    return {
        "sourcePath": str(layout["source"]),
        "editedFramePaths": [str(layout["edited"])],
        "frameRange": {"inFrame": 0, "outFrame": 4},
        "sourceFps": {"num": 24, "den": 1},
    }


@posix_only
def test_a_symlink_out_of_a_root_is_refused(layout):
    (layout["renders"] / "escape").symlink_to(layout["elsewhere"], target_is_directory=True)
    (layout["renders"] / "inside").symlink_to(layout["renders"] / "real", target_is_directory=True)
    (layout["renders"] / "real").mkdir()
    with daemon_for(layout) as (_, client):
        error = refused(client, spec_into(layout, layout["renders"] / "escape"))
        deeper = refused(client, spec_into(layout, layout["renders"] / "escape" / "new"))
        job = client.submit(spec_into(layout, layout["renders"] / "inside"))
        result = list(client.watch(job.id))[-1]
    assert str(layout["elsewhere"]) in error.message and "outside" in deeper.message
    assert result.WhichOneof("kind") == "finished"
    assert list(layout["elsewhere"].iterdir()) == []


@posix_only
def test_a_folder_swapped_for_a_symlink_after_submit_fails_the_job(layout):
    target = layout["renders"] / "shot"
    target.mkdir()
    gate = threading.Event()
    with daemon_for(layout, FakeExecutor(gate=gate)) as (_, client):
        blocker = client.submit(spec_into(layout, layout["renders"]))
        job = client.submit(spec_into(layout, target))
        target.rmdir()
        target.symlink_to(layout["elsewhere"], target_is_directory=True)
        gate.set()
        list(client.watch(blocker.id))
        last = list(client.watch(job.id))[-1]
    assert last.WhichOneof("kind") == "failed"
    assert last.failed.error.code == 1  # ERROR_CODE_INVALID_SPEC
    assert "outside the daemon's output roots" in last.failed.error.message
    assert list(layout["elsewhere"].iterdir()) == []


def test_next_to_the_source_can_be_turned_off(layout):
    with daemon_for(layout, outputs_next_to_source=False) as (_, client):
        error = refused(client, spec_into(layout, layout["source"].parent))
    assert "outside" in error.message


FIXED_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def fixed_job_id(monkeypatch):
    """The last job's id, known in advance, so that a test can put a file where its output
    goes; jobs before it get random ids."""
    import framerelay.jobs.queue as queue_module

    real = queue_module.new_job_id
    ids = {"before": 0}

    def next_id() -> str:
        if ids["before"] > 0:
            ids["before"] -= 1
            return real()
        return FIXED_ID

    monkeypatch.setattr(queue_module, "new_job_id", next_id)
    return ids


def test_an_existing_output_is_not_overwritten_unless_asked(layout, fixed_job_id):
    existing = layout["renders"] / f"source_{FIXED_ID[:8]}.mp4"
    existing.write_bytes(b"precious")
    spec = spec_into(layout, layout["renders"], format=specs_pb2.OUTPUT_FORMAT_MP4)
    with daemon_for(layout) as (_, client):
        error = refused(client, spec)
        assert existing.read_bytes() == b"precious"
        spec.output.overwrite = True
        job = client.submit(spec)
        last = list(client.watch(job.id))[-1]
    assert "already exists" in error.message and "overwrite" in error.hint
    assert str(existing) in error.message
    assert last.WhichOneof("kind") == "finished"
    assert existing.read_bytes() != b"precious" and existing.stat().st_size > 0


def test_an_output_that_appears_while_the_job_waits_is_not_overwritten(layout, fixed_job_id):
    fixed_job_id["before"] = 1  # the blocker
    gate = threading.Event()
    spec = spec_into(layout, layout["renders"], format=specs_pb2.OUTPUT_FORMAT_MP4)
    output = layout["renders"] / f"source_{FIXED_ID[:8]}.mp4"
    with daemon_for(layout, FakeExecutor(gate=gate)) as (_, client):
        blocker = client.submit(spec_into(layout, layout["source"].parent))
        job = client.submit(spec)
        assert job.id == FIXED_ID and blocker.id != FIXED_ID
        output.write_bytes(b"theirs")
        gate.set()
        list(client.watch(blocker.id))
        last = list(client.watch(job.id))[-1]
    assert last.WhichOneof("kind") == "failed"
    assert "already exists" in last.failed.error.message
    assert output.read_bytes() == b"theirs"


def test_config_file_settings(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "config.toml").write_text(
        'output_roots = ["~/renders", "/srv/projects"]\n'
        "outputs_next_to_source = false\n"
        'allowed_origins = ["http://localhost:5173/"]\n'
        'allowed_hosts = ["Studio.local"]\n'
    )
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(folder))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = DaemonConfig.from_env(port=5)
    policy = config.output_policy()
    assert config.output_roots == (tmp_path / "home" / "renders", Path("/srv/projects"))
    assert not config.outputs_next_to_source and not policy.next_to_source
    assert config.allowed_origins == ("http://localhost:5173",)
    assert config.allowed_hosts == ("studio.local",)
    assert config.port == 5


def test_the_default_roots_are_the_video_folder(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path))
    policy = DaemonConfig.from_env().output_policy()
    assert policy.roots == (platformdirs.user_videos_path(),) and policy.next_to_source


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("output_roots = 3", "list of strings"),
        ('output_roots = ["relative/dir"]', "not absolute"),
        ('allowed_origins = ["*"]', "not an origin"),
        ('allowed_origins = ["null"]', "not an origin"),
        ('allowed_origins = ["http://a.example/path"]', "not an origin"),
        ('outputs_next_to_source = "yes"', "true or false"),
        ("typo_setting = 1", "unknown settings: typo_setting"),
        ("output_roots = [", "cannot read"),
    ],
)
def test_a_bad_config_file_is_a_clear_error(tmp_path, text, words):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(InvalidSpecError) as caught:
        read_config_file(tmp_path)
    assert words in caught.value.message and caught.value.hint


def test_submit_on_the_command_line_asks_for_overwrite_and_names_the_roots(
    layout, monkeypatch, capsys, fixed_job_id
):
    from framerelay.cli import main

    existing = layout["renders"] / f"source_{FIXED_ID[:8]}.mp4"
    existing.write_bytes(b"old")
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(layout["tmp"] / "state" / "config"))
    args = ["submit", str(layout["source"]), str(layout["edited"]), "--format", "mp4"]
    with daemon_for(layout) as (_, client):
        outside = main([*args, "--output-dir", str(layout["elsewhere"])])
        refused_text = capsys.readouterr().err
        exists = main([*args, "--output-dir", str(layout["renders"])])
        exists_text = capsys.readouterr().err
        replaced = main([*args, "--output-dir", str(layout["renders"]), "--overwrite", "--watch"])
        job = client.get(FIXED_ID)
    assert outside == 2 and "outside the daemon's output roots" in refused_text
    assert exists == 2 and "already exists" in exists_text
    assert replaced == 0 and job.spec.output.overwrite
    assert existing.read_bytes() != b"old"
