"""The run watcher's failures are counted, escalated and bounded: a warning for the first failed
polls, errors from ESCALATE_AFTER on, and after MAX_FAILURES in a row it stops and says why.
(What a flow run shows of it: tests/integration/test_train_watcher.py.)"""

from __future__ import annotations

import logging

import pytest

from biggan.runs import RunStore


class UnreachableStore(RunStore):
    """A run store whose checkpoint listing fails, as an unreachable object store's does."""

    def checkpoints(self):
        raise OSError("the store does not answer")


@pytest.fixture
def watcher(tmp_path):
    from biggan_flows.watch import RunWatcher

    store = RunStore(str(tmp_path / "r1"))
    store.write_options({"name": "r1"})
    watcher = RunWatcher(store.uri, "r1", total=4, logger=logging.getLogger("test-watch"), poll_s=0.0)
    watcher.store = UnreachableStore(store.uri)
    return watcher


def _levels(caplog) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == "test-watch"]


def test_failed_polls_escalate_and_the_watcher_gives_up_after_a_bound(watcher, caplog):
    from biggan_flows.watch import ESCALATE_AFTER, MAX_FAILURES

    caplog.set_level(logging.INFO, logger="test-watch")
    assert [watcher.guarded_poll() for _ in range(MAX_FAILURES - 1)] == [True] * (MAX_FAILURES - 1)
    assert watcher.failure is None and watcher.failures == MAX_FAILURES - 1
    assert _levels(caplog) == ["WARNING"] * (ESCALATE_AFTER - 1) + ["ERROR"] * (MAX_FAILURES - ESCALATE_AFTER)
    assert "OSError: the store does not answer" in caplog.records[0].getMessage()
    assert watcher.guarded_poll() is False  # the bound
    assert f"gave up after {MAX_FAILURES} failed polls in a row" in watcher.failure
    assert "checkpoint events" in watcher.failure and caplog.records[-1].getMessage() == watcher.failure


def test_a_poll_that_works_again_resets_the_count(watcher, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="test-watch")
    assert watcher.guarded_poll() and watcher.guarded_poll() and watcher.failures == 2
    watcher.store = RunStore(str(tmp_path / "r1"))  # reachable again (a file caught mid-write, say)
    assert watcher.guarded_poll() and watcher.failures == 0 and watcher.failure is None
    assert "works again after 2 failed polls" in caplog.records[-1].getMessage()


@pytest.mark.timeout(120)  # a watcher that never gives up would poll forever: fail instead of hanging
def test_the_polling_thread_stops_by_itself_and_the_last_poll_reports(watcher):
    from biggan_flows.watch import MAX_FAILURES

    watcher._loop()  # returns: it gave up
    assert watcher.failures == MAX_FAILURES and watcher.failure is not None
    # A run whose watcher never failed in the thread still reports a failing last poll: it is
    # the one that would publish the final checkpoint's event.
    watcher.failures, watcher.failure = 0, None
    assert watcher.guarded_poll(last=True) is False and "gave up after 1 failed poll in a row" in watcher.failure
