"""The HTTP/JSON facade: the same API and token, proto3 JSON, resumable event streams."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

from framerelay.jobs.fake_executor import FakeExecutor
from tests.daemon_harness import http_call, http_stream, make_media, running_daemon, wait_for


def spec_json(source, edited, **extra) -> dict:
    return {
        "spec": {
            "sourcePath": str(source),
            "editedFramePaths": [str(edited)],
            "frameRange": {"inFrame": 0, "outFrame": 6},
            "sourceFps": {"num": 25, "den": 1},
            "output": {"format": "OUTPUT_FORMAT_MP4"},
            "hostContext": {"scene": "Scene", "channel": "4"},
            **extra,
        }
    }


def test_submit_get_list_and_stream_a_job_over_json(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path) as (daemon, client):
        found = daemon.discovery
        status, submitted = http_call(found, "SubmitJob", spec_json(source, edited))
        job_id = submitted["job"]["id"]
        lines = list(http_stream(found, "WatchJob", {"jobId": job_id}))
        resumed = list(http_stream(found, "WatchJob", {"jobId": job_id, "afterSeq": 3}))
        _, got = http_call(found, "GetJob", {"jobId": job_id})
        _, listed = http_call(found, "ListJobs", {"states": ["JOB_STATE_FINISHED"]})
        grpc_events = list(client.watch(job_id))

    assert status == 200
    assert submitted["job"]["state"] == "JOB_STATE_QUEUED" and submitted["job"]["position"] == 1
    events = [line["event"] for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["seq"] for e in events] == [e.seq for e in grpc_events]
    assert "queued" in events[0] and "started" in events[1] and "finished" in events[-1]
    assert [line["event"] for line in resumed] == events[3:]
    assert events[-1]["finished"]["frameCount"] == 6
    assert got["job"]["state"] == "JOB_STATE_FINISHED"
    assert got["job"]["spec"]["hostContext"] == {"scene": "Scene", "channel": "4"}
    assert [j["id"] for j in listed["jobs"]] == [job_id]
    assert int(listed["cursor"]) >= len(events)


def test_cancel_and_long_poll_over_json(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (daemon, client):
        found = daemon.discovery
        first = http_call(found, "SubmitJob", spec_json(source, edited))[1]["job"]["id"]
        second = http_call(found, "SubmitJob", spec_json(source, edited))[1]["job"]["id"]
        wait_for(lambda: client.get(first).last_seq == 3)  # queued, started, load
        _, cancelled = http_call(found, "CancelJob", {"jobId": second})
        _, first_poll = http_call(found, "PollJob", {"jobId": first, "waitSeconds": 1})
        after = first_poll["events"][-1]["seq"]
        threading.Timer(0.2, gate.set).start()
        polled, ended = [], False
        while not ended:
            _, reply = http_call(
                found, "PollJob", {"jobId": first, "afterSeq": after, "waitSeconds": 5}
            )
            polled += reply.get("events", [])
            after = polled[-1]["seq"] if polled else after
            ended = reply.get("ended", False)
        _, second_poll = http_call(found, "PollJob", {"jobId": second})

    assert cancelled["outcome"] == "CANCEL_OUTCOME_DEQUEUED"
    assert cancelled["job"]["state"] == "JOB_STATE_CANCELLED"
    assert [e["seq"] for e in first_poll["events"]] == [1, 2, 3]
    assert [e["seq"] for e in polled] == list(range(4, 4 + len(polled)))
    assert "finished" in polled[-1]
    assert second_poll["ended"] is True
    assert second_poll["events"][-1]["cancelled"]["reason"] == "CANCEL_REASON_DEQUEUED"


def test_queue_stream_over_json_sees_new_jobs(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path) as (daemon, _):
        found = daemon.discovery
        stream = http_stream(found, "WatchQueue", {})
        submitted = []
        threading.Timer(
            0.2,
            lambda: submitted.append(http_call(found, "SubmitJob", spec_json(source, edited))),
        ).start()
        seen = []
        for line in stream:
            seen.append(line["event"])
            if "finished" in line["event"]:
                break
        stream.close()
    job_id = submitted[0][1]["job"]["id"]
    assert {e["jobId"] for e in seen} == {job_id}
    assert [int(e["cursor"]) for e in seen] == sorted(int(e["cursor"]) for e in seen)


def test_unknown_paths_and_verbs_get_json_errors(tmp_path):
    with running_daemon(tmp_path) as (daemon, _):
        found = daemon.discovery
        status, body = http_call(found, "Nope", {})
        get = urllib.request.Request(f"{found.http_url}/v1/GetStatus", method="GET")
        try:
            urllib.request.urlopen(get, timeout=10)
        except urllib.error.HTTPError as error:
            get_status = error.code
    assert status == 404 and "GetStatus" in body["error"]["hint"]
    assert get_status == 405


def test_an_empty_body_is_an_empty_request(tmp_path):
    with running_daemon(tmp_path) as (daemon, _):
        status, body = http_call(daemon.discovery, "GetStatus", b"")
    assert status == 200 and body["version"]
