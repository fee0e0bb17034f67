"""Load: 200 jobs and 50 concurrent watchers (plus a queue watcher) on one daemon."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from bench.daemon_load import TERMINAL, run_load

JOBS, WATCHERS = 200, 50


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_every_job_ends_once_in_queue_order_and_every_watcher_sees_every_event(tmp_path):
    result = run_load(tmp_path, jobs=JOBS, watchers=WATCHERS)
    assert result.errors == []

    by_job = defaultdict(list)
    for event in result.stream:
        by_job[event.job_id].append(event)
    kinds = [(e.job_id, e.WhichOneof("kind")) for e in result.stream]

    terminal = Counter(job for job, kind in kinds if kind in TERMINAL)
    assert set(terminal) == set(result.job_ids) and set(terminal.values()) == {1}
    assert all(by_job[j][-1].WhichOneof("kind") == "finished" for j in result.job_ids)

    started = [job for job, kind in kinds if kind == "started"]
    assert started == result.job_ids
    ends = [job for job, kind in kinds if kind in ("started", "finished")]
    assert ends == [job for job in result.job_ids for _ in (0, 1)]  # one job at a time

    assert [e.cursor for e in result.stream] == list(range(1, len(result.stream) + 1))
    assert set(result.watched) == set(result.job_ids)
    for job_id in result.job_ids:
        watched = result.watched[job_id]
        assert [e.seq for e in watched] == list(range(1, len(watched) + 1))
        assert [e.SerializeToString() for e in watched] == [
            e.SerializeToString() for e in by_job[job_id]
        ]
    assert len(result.submit_latency) == JOBS
