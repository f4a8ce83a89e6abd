"""Progress of ``biasaudit run`` / ``demo`` on stderr: a bar on a terminal, lines in a pipe.

The engine announces each long step (``step``: loading the model, the dataset, each
probe, the report) and the fraction of the audit done (``fraction``); model
inference reports the inputs scored (``items``, via
:data:`probes.inference.ITEMS_PROGRESS`), from which the texts/s rate and the ETA
come. On a terminal a tqdm bar shows them; piped, a plain line is printed for each
step and at least every ``interval`` seconds while a step runs (a heartbeat thread
prints one even while a single batch or a model load takes long), so a log never
goes quiet for long. ``--quiet`` turns all of it off.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

INTERVAL_S = 2.0  # piped: a line at least this often while a step runs


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{seconds:.0f}s"


class ConsoleProgress:
    """Step lines, an items bar with rate and ETA, and a heartbeat; thread-safe."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        tty: bool | None = None,
        interval: float = INTERVAL_S,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._step = "starting"
        self._step_start = self._start
        self._fraction: float | None = None  # None until the engine reports one
        self._items: tuple[int, int] | None = None
        self._items_start = self._start
        self._last_line = 0.0
        self._bar: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: Any = None

    # --------------------------------------------------------------- engine hooks
    def step(self, label: str) -> None:
        """A new step begins: close the bar, print the step."""
        self._watch_items()
        with self._lock:
            self._close_bar()
            self._step, self._step_start, self._items = label, time.monotonic(), None
            self._emit(f"{label} ...")

    def fraction(self, value: float) -> None:
        """The fraction of the whole audit done (the engine's progress callback)."""
        with self._lock:
            self._fraction = min(max(float(value), 0.0), 1.0)
            if not self.tty and time.monotonic() - self._last_line >= self.interval:
                self._emit(self._status())

    def items(self, done: int, total: int) -> None:
        """Inputs scored so far in the current inference call."""
        with self._lock:
            now = time.monotonic()
            if self._items is None or done < self._items[0]:
                self._items_start = now - 1e-9
            self._items = (done, total)
            if self.tty:
                self._update_bar(done, total)
            elif done >= total or now - self._last_line >= self.interval:
                self._emit(self._status())

    # ------------------------------------------------------------------ display
    def _rate(self) -> tuple[float, float | None]:
        assert self._items is not None
        done, total = self._items
        elapsed = max(time.monotonic() - self._items_start, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else None
        return rate, eta

    def _status(self) -> str:
        elapsed = time.monotonic() - self._step_start
        share = "" if self._fraction is None else f"{self._fraction:.0%} of the audit, "
        parts = [f"{self._step}: {share}{_clock(elapsed)} in step"]
        if self._items is not None:
            done, total = self._items
            rate, eta = self._rate()
            eta_text = _clock(eta) if eta is not None else "?"
            parts.append(f"{done}/{total} texts, {rate:.1f} texts/s, ETA {eta_text}")
        return "; ".join(parts)

    def _emit(self, text: str) -> None:
        line = f"[{_clock(time.monotonic() - self._start):>5}] {text}"
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            with contextlib.suppress(BrokenPipeError, ValueError):
                print(line, file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def _update_bar(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=self._step,
                unit="text",
                file=self.stream,
                dynamic_ncols=True,
                leave=False,
                mininterval=0.2,
            )
        if self._bar.total != total:
            self._bar.reset(total=total)
        self._bar.n = done
        now = time.monotonic()
        if done >= total or now - self._last_line >= 0.2:  # a redraw costs ~0.1 ms
            self._bar.refresh()
            self._last_line = now

    def _close_bar(self) -> None:
        if self._bar is not None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                self._bar.close()
            self._bar = None

    # ---------------------------------------------------------------- heartbeat
    def _beat(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0) / 2):
            with self._lock:
                if self._bar is not None:
                    self._bar.refresh()  # tqdm redraws elapsed time and rate
                elif time.monotonic() - self._last_line >= self.interval:
                    self._emit(self._status())

    def _watch_items(self) -> None:
        """Watch inference batches once the engine is imported (not before: a cold import
        of the probes takes seconds, and the first line should not wait for it)."""
        if self._token is None and "probes.inference" in sys.modules:
            from probes.inference import ITEMS_PROGRESS

            self._token = ITEMS_PROGRESS.set(self.items)

    def __enter__(self) -> ConsoleProgress:
        self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._token is not None:
            from probes.inference import ITEMS_PROGRESS

            ITEMS_PROGRESS.reset(self._token)
        with self._lock:
            self._close_bar()
            if exc[0] is None:
                self._emit(f"done in {_clock(time.monotonic() - self._start)}")


@contextlib.contextmanager
def console_progress(*, quiet: bool) -> Iterator[ConsoleProgress | None]:
    """A :class:`ConsoleProgress` on stderr for the duration, or None with ``quiet``."""
    if quiet:
        yield None
        return
    with ConsoleProgress() as progress:
        yield progress
