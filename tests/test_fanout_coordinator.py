"""Where a running job's windows are analysed (jobs/fanout.py): the anchor by the job's own
worker first, later windows by helpers once it is stored, the chain analysing a later window
rather than waiting, a failed helper's window left to the chain, and a lost cluster failing the
job."""

from __future__ import annotations

from pathlib import Path

from framerelay.engine.window_tasks import WindowTask
from framerelay.errors import InternalError, UnavailableError
from framerelay.jobs.fanout import LOCAL, READY, Coordinator


def tasks(count: int, skip_interval: bool = True) -> list[WindowTask]:
    keys = [f"{i:064x}" for i in range(count)]
    anchor = keys[0] if skip_interval else None
    return [
        WindowTask("job", i, count, key, anchor if i else None, Path(f"{i}.npy"), None, "fp32")
        for i, key in enumerate(keys)
    ]


class Replies(list):
    def __call__(self, outcome) -> None:
        self.append(outcome)


def test_later_windows_go_to_helpers_only_once_the_anchor_is_stored():
    plan = tasks(4)
    coordinator = Coordinator("job", plan)
    replies = Replies()
    assert coordinator.demand() == 3 and coordinator.take() is None  # the anchor comes first
    coordinator.claim(0, plan[0].key, replies)
    assert replies == [LOCAL]
    coordinator.analysed(0)
    assert [coordinator.take().index for _ in range(2)] == [1, 2]
    assert coordinator.demand() == 1


def test_without_skip_interval_every_later_window_is_free_at_once():
    coordinator = Coordinator("job", tasks(3, skip_interval=False))
    assert [coordinator.take().index, coordinator.take().index] == [1, 2]


def test_the_chain_finds_stored_windows_and_analyses_a_later_one_rather_than_wait():
    plan = tasks(4)
    coordinator = Coordinator("job", plan)
    coordinator.analysed(0)
    assert coordinator.take().index == 1  # a helper's
    replies = Replies()
    coordinator.claim(1, plan[1].key, replies)
    assert replies == [plan[2]]  # window 3 for the chain meanwhile
    coordinator.finished(2, None)
    coordinator.take()  # window 4: another helper
    coordinator.claim(1, plan[1].key, replies)
    assert coordinator.waiting_on == 1  # nothing left to do: it waits
    coordinator.finished(1, None)
    assert replies[-1] == READY and coordinator.waiting_on is None
    coordinator.claim(2, plan[2].key, replies)
    assert replies[-1] == READY


def test_a_window_a_helper_failed_on_is_left_to_the_chain():
    plan = tasks(3)
    coordinator = Coordinator("job", plan)
    coordinator.analysed(0)
    coordinator.take()
    coordinator.take()
    replies = Replies()
    coordinator.claim(1, plan[1].key, replies)
    coordinator.finished(1, InternalError("a helper died"))
    assert replies == [LOCAL]
    coordinator.finished(2, InternalError("out of memory"))
    assert coordinator.take() is None  # not handed out again
    coordinator.claim(2, plan[2].key, replies)
    assert replies[-1] == LOCAL


def test_a_lost_cluster_fails_the_job_when_the_chain_gets_there():
    plan = tasks(3)
    coordinator = Coordinator("job", plan)
    coordinator.analysed(0)
    coordinator.take()
    coordinator.take()
    lost = UnavailableError("the Ray cluster went away")
    coordinator.finished(2, lost)
    assert coordinator.take() is None and coordinator.demand() == 0
    replies = Replies()
    coordinator.claim(1, plan[1].key, replies)
    assert replies == [lost]


def test_a_key_that_differs_from_the_plan_is_computed_by_the_chain():
    plan = tasks(2)
    coordinator = Coordinator("job", plan)
    replies = Replies()
    coordinator.claim(1, "f" * 64, replies)
    assert replies == [LOCAL]


def test_a_stopped_job_hands_nothing_out_and_names_its_running_helpers():
    coordinator = Coordinator("job", tasks(4))
    coordinator.analysed(0)
    running = coordinator.take()
    assert coordinator.stop() == [running]
    assert coordinator.take() is None and coordinator.demand() == 0
