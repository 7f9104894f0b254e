"""Progress on stderr for the long steps of pack, verify and load: a tqdm bar with percent, rate and time left.

Off unless the CLI turned it on (stderr is a terminal, no ``--quiet``/``--json``): the library never prints. Even
when on, a step that finishes within :data:`DELAY_SECONDS` prints nothing, and tqdm is imported only when a bar is
actually shown, so ``bundler verify`` of a small bundle never pays for importing it (a test checks that).

Steps report bytes: ``with task(label, total) as advance: ... advance(n)``; ``advance`` is thread-safe (hashing runs
on worker threads) and a no-op when progress is off. ``total`` may be an estimate, or 0 when unknown (the bar then
shows bytes and rate only); a bar that runs past its estimate grows its total instead of showing more than 100 %.
``reading(stream, advance)`` and ``writing(stream, advance)`` count what flows through a stream (a serializer
writing a payload, a reader taking one).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, TextIO

__all__ = ["DELAY_SECONDS", "INTERVAL_SECONDS", "enable", "enabled", "reading", "task", "writing"]

_stream: TextIO | None = None
#: A step shows a bar only once it has run this long.
DELAY_SECONDS = 1.0
#: Fewest seconds between two redraws of a bar.
INTERVAL_SECONDS = 0.1


def enable(stream: TextIO | None) -> None:
    """Turn progress on (a stream) or off (None). The CLI calls this; the library default is off."""
    global _stream
    _stream = stream


def enabled() -> bool:
    return _stream is not None


class _Task:
    """Counts bytes; creates the tqdm bar the first time it is worth showing."""

    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self.label = label
        self.total = max(int(total), 0)
        self.stream = stream
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.done = 0
        self.bar: Any = None
        self.detached = False
        self.closed = False

    def advance(self, n: int) -> None:
        with self.lock:
            if self.closed:
                return
            self.done += n
            if self.bar is None:
                if time.monotonic() - self.start < DELAY_SECONDS:
                    return
                self.bar = self._make_bar()
            else:
                if self.bar.total and self.done > self.bar.total:
                    self.bar.total = self.done
                self.bar.update(n)
            if self.detached and self.total and self.done >= self.total:
                self._close(ok=True)

    def _make_bar(self) -> Any:
        try:
            from tqdm import tqdm
        except ImportError:  # progress is a nicety: never fail a pack or a load for it
            return _NoBar()

        tqdm.monitor_interval = 0  # no monitor thread: bars are short-lived and updated from our own threads
        total = max(self.total, self.done) if self.total else None
        return tqdm(total=total, initial=self.done, desc=f"bundler: {self.label}", unit="B", unit_scale=True,
                    unit_divisor=1024, file=self.stream, mininterval=INTERVAL_SECONDS, leave=True,
                    dynamic_ncols=True, ascii=None)

    def close(self, ok: bool, background: bool = False) -> None:
        """End the step. A background step whose work is still running (``done < total``) stays open until its
        last byte is reported; a failed or finished one ends now."""
        with self.lock:
            if background and ok and self.total and self.done < self.total:
                self.detached = True
                return
            self._close(ok)

    def _close(self, ok: bool) -> None:
        self.closed = True
        if self.bar is None:
            return
        if ok and self.bar.total and self.bar.n < self.bar.total:
            self.bar.total = self.bar.n  # an over-estimate: end at 100 % of what was really done
        self.bar.refresh()
        self.bar.close()


class _NoBar:
    total = 0
    n = 0

    def update(self, n: int) -> None:  # noqa: ARG002 - tqdm's update(n), which this stands in for
        return None

    def refresh(self) -> None:
        return None

    def close(self) -> None:
        return None


@contextlib.contextmanager
def task(label: str, total: int, *, background: bool = False) -> Iterator[Callable[[int], None]]:
    """A callback to report ``n`` more bytes done out of ``total`` (an estimate is fine; 0: not known).

    ``background``: the block only starts the work (a reader thread reports the bytes), so the bar ends when all
    ``total`` bytes were reported, not when the block ends."""
    stream = _stream
    if stream is None:
        yield _nothing
        return
    state = _Task(label, total, stream)
    ok = False
    try:
        yield state.advance
        ok = True
    finally:
        state.close(ok, background=background)


class _Counting:
    """A read-only stream that reports every byte read from ``raw`` (read, readinto, readline)."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self._raw = raw
        self._advance = advance

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._advance(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            got = int(readinto(buffer) or 0)
        else:
            view = memoryview(buffer).cast("B")
            data = self._raw.read(len(view))
            got = len(data)
            view[:got] = data
        self._advance(got)
        return got

    def readline(self, limit: int = -1) -> bytes:
        data = self._raw.readline(limit)
        self._advance(len(data))
        return data


class _CountingWriter:
    """A writable stream that reports every byte written to ``raw``; everything else (``tell``, ``flush``...) is
    ``raw``'s own (joblib asks the position to align arrays)."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self._raw = raw
        self._advance = advance

    def write(self, data: Any) -> int:
        n = self._raw.write(data)
        self._advance(memoryview(data).nbytes)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def writing(stream: IO[bytes], advance: Callable[[int], None]) -> IO[bytes]:
    """``stream`` as it is, when progress is off; otherwise a wrapper that reports what is written to it."""
    if advance is _nothing:
        return stream
    return _CountingWriter(stream, advance)  # type: ignore[return-value]


def reading(stream: IO[bytes], advance: Callable[[int], None]) -> IO[bytes]:
    """``stream`` as it is, when progress is off; otherwise a wrapper that reports what is read from it."""
    if advance is _nothing:
        return stream
    return _Counting(stream, advance)  # type: ignore[return-value]


def _nothing(n: int) -> None:  # noqa: ARG001 - the progress callback's signature
    return None
