"""The in-process queue for SQLite's write lock (models.database._WriteTurnstile)."""

from __future__ import annotations

import threading
import time

from models.database import _WriteTurnstile


def test_waiting_writers_get_their_turn_in_arrival_order() -> None:
    turnstile = _WriteTurnstile()
    first = object()
    turnstile.enter(first)
    order: list[str] = []

    def writer(name: str) -> None:
        connection = object()
        turnstile.enter(connection)
        order.append(name)
        turnstile.leave(connection)

    threads = []
    for name in ("second", "third", "fourth"):
        thread = threading.Thread(target=writer, args=(name,))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # queue them one after the other
    assert order == []
    turnstile.leave(first)
    for thread in threads:
        thread.join(timeout=5)
    assert order == ["second", "third", "fourth"]


def test_leaving_without_the_turn_changes_nothing() -> None:
    turnstile = _WriteTurnstile(patience=5.0)
    holder, stranger = object(), object()
    turnstile.enter(holder)
    turnstile.leave(stranger)
    entered = threading.Event()

    def writer() -> None:
        turnstile.enter(object())
        entered.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert not entered.wait(0.2)
    turnstile.leave(holder)
    assert entered.wait(5)
    thread.join()


def test_a_turn_never_handed_back_costs_time_not_a_deadlock() -> None:
    turnstile = _WriteTurnstile(patience=0.2)
    turnstile.enter(object())  # a holder that never leaves
    started = time.monotonic()
    turnstile.enter(object())
    assert 0.15 <= time.monotonic() - started < 3
