"""Injected time. Nothing in kefu calls ``datetime.now()`` directly: it asks its clock."""

from __future__ import annotations

import datetime as dt
import threading


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class TestClock:
    """A clock scenarios and tests move by hand (never patched globally)."""

    __test__ = False  # not a pytest test class

    def __init__(self, start: dt.datetime | None = None) -> None:
        start = start or dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
        if start.tzinfo is None:
            raise ValueError("TestClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def set(self, moment: dt.datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("TestClock needs an aware datetime")
        with self._lock:
            self._now = moment.astimezone(dt.UTC)

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self._now += delta
