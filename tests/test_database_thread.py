"""The crawl run's database thread: urgent calls first, each priority in order, errors to
the caller, and what is queued runs before it stops."""

from __future__ import annotations

import threading

import pytest

from crawler.database_thread import DatabaseThread

WAIT = 10.0


@pytest.fixture
def database() -> DatabaseThread:
    return DatabaseThread(name="test-db")


def test_urgent_calls_overtake_queued_ones(database: DatabaseThread) -> None:
    busy = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def block() -> None:
        busy.set()
        assert release.wait(WAIT)

    first = database.submit(block)
    assert busy.wait(WAIT)
    later = [database.submit(lambda n=n: order.append(f"batch {n}")) for n in range(3)]
    urgent = [
        database.submit(lambda n=n: order.append(f"listing {n}"), urgent=True) for n in range(2)
    ]
    release.set()
    for future in [first, *later, *urgent]:
        future.result(timeout=WAIT)
    database.shutdown()
    assert order == ["listing 0", "listing 1", "batch 0", "batch 1", "batch 2"]


def test_results_and_errors_reach_the_caller(database: DatabaseThread) -> None:
    assert database.submit(lambda: 6 * 7).result(timeout=WAIT) == 42

    def fail() -> None:
        raise LookupError("no such topic")

    with pytest.raises(LookupError, match="no such topic"):
        database.submit(fail).result(timeout=WAIT)
    assert database.submit(lambda: "still working", urgent=True).result(timeout=WAIT) == (
        "still working"
    )
    database.shutdown()


def test_shutdown_runs_what_is_queued_then_refuses_more(database: DatabaseThread) -> None:
    release = threading.Event()
    done: list[int] = []
    database.submit(lambda: release.wait(WAIT))
    futures = [database.submit(lambda n=n: done.append(n)) for n in range(5)]
    release.set()
    database.shutdown()
    assert done == [0, 1, 2, 3, 4]
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError, match="shut down"):
        database.submit(lambda: None)
    database.shutdown()  # a second shutdown is harmless
