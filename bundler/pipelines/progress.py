"""Progress on stderr while packing or verifying a large payload.

Shown only when the CLI enabled it (stderr is a terminal and ``--quiet`` was not given), and only once a task has
run for about a second: small bundles never print anything, and neither do scripts, pipes or ``--json`` runs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

_stream: TextIO | None = None
DELAY_SECONDS = 1.0
INTERVAL_SECONDS = 0.1


def enable(stream: TextIO | None) -> None:
    """Turn progress on (a stream) or off (None). The CLI calls this; the library default is off."""
    global _stream
    _stream = stream


@contextlib.contextmanager
def task(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A callback to report ``n`` more bytes done out of ``total`` (0: not known in advance); thread-safe, a no-op
    when progress is off."""
    stream = _stream
    if stream is None:
        yield _nothing
        return
    lock = threading.Lock()
    start = time.monotonic()
    state = {"done": 0, "last": 0.0, "shown": False, "width": 0}

    def show(text: str, end: str = "") -> None:
        # Pad over what the previous line left on the terminal.
        stream.write("\r" + text.ljust(int(state["width"])) + end)
        stream.flush()
        state["width"] = len(text)

    def advance(n: int) -> None:
        with lock:
            state["done"] += n
            now = time.monotonic()
            if now - start < DELAY_SECONDS or now - state["last"] < INTERVAL_SECONDS:
                return
            state["last"], state["shown"] = now, True
            done = int(state["done"])
            if total > 0:
                done = min(done, total)
                show(f"bundler: {label}: {100 * done // total:3d}% ({done >> 20}/{total >> 20} MiB)")
            else:
                show(f"bundler: {label}: {done >> 20} MiB")

    try:
        yield advance
    finally:
        if state["shown"]:
            size = total if total > 0 else int(state["done"])
            show(f"bundler: {label}: done ({size >> 20} MiB, {time.monotonic() - start:.1f} s)", "\n")


def _nothing(n: int) -> None:
    return None
