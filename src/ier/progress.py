"""Console output of the CLI: progress bars, log lines and error lines never share a line.

On a terminal, tqdm redraws its bar in place, and log lines are written through ``tqdm.write``,
which clears the bars first and redraws them after. Anywhere else (a log file, a pipe, CI), a
redraw would append to the line a log or error line then continues, so ``LineStream`` holds the
redraws back and writes the bar as a whole line: when it finishes, and at most every
``interval`` seconds while it runs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

PROGRESS_INTERVAL_SECONDS = 30.0


class LineStream:
    """A text stream for output that is not a terminal: carriage-return redraws (progress bars)
    are held back and written as complete lines, so every other write starts on a new line.

    Args:
        stream: The stream to write to.
        interval: Write the running bar as a line at most this often (seconds).
    """

    def __init__(self, stream: IO[str], interval: float = PROGRESS_INTERVAL_SECONDS) -> None:
        self.stream, self.interval = stream, interval
        self.encoding = getattr(stream, "encoding", "utf-8")
        self._status = ""  # the latest redraw, not written yet
        self._shown = ""  # the last status written as a line
        self._last = time.monotonic()
        self._at_line_start = True

    def write(self, text: str) -> int:
        """Write ``text``; a segment after a carriage return replaces the held bar line."""
        if not text:
            return 0
        parts = text.split("\r")
        self._plain(parts[0])
        for part in parts[1:]:
            self._redraw(part)
        return len(text)

    def _plain(self, text: str) -> None:
        if not text:
            return
        if text == "\n" and self._status.strip():  # tqdm ends a bar it leaves on screen
            self._emit(self._status)
            self._status = ""
            return
        self.stream.write(text)  # redraws are never written inline: this continues plain text
        self._at_line_start = text.endswith("\n")

    def _redraw(self, text: str) -> None:
        if "\n" in text:  # a redraw followed by more text: the bar line ends here
            status, _, rest = text.partition("\n")
            self._emit(status if status.strip() else self._status)
            self._status = ""
            self._plain(rest)
            return
        if not text.strip():  # tqdm clears a bar it does not leave: show its last state once
            self._emit(self._status)
            self._status = ""
            return
        self._status = text
        if time.monotonic() - self._last >= self.interval:
            self._emit(text)

    def _emit(self, status: str) -> None:
        line = status.strip()
        if line and line != self._shown:
            if not self._at_line_start:
                self.stream.write("\n")
            self.stream.write(line + "\n")
            self._shown, self._at_line_start = line, True
        self._last = time.monotonic()

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _ConsoleHandler(logging.Handler):
    """Log records as lines that never land on a progress bar's line."""

    def __init__(self, stream: Any, terminal: bool) -> None:
        super().__init__()
        self.stream, self.terminal = stream, terminal
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console_line(self.format(record), self.stream, terminal=self.terminal)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def console_line(text: str, stream: Any = None, *, terminal: bool | None = None) -> None:
    """Write one line to ``stream`` (default: ``sys.stderr``) without sharing a progress bar's
    line: through ``tqdm.write`` on a terminal (clears the bars, redraws them after)."""
    stream = sys.stderr if stream is None else stream
    if terminal is None:
        terminal = _isatty(stream)
    if terminal:
        from tqdm import tqdm

        tqdm.write(text, file=stream)
    else:
        stream.write(text + "\n")
        stream.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def console(*, verbose: bool = False) -> Iterator[None]:
    """For the duration of a CLI command: log to stderr (INFO, DEBUG with ``verbose``) with
    lines that never share a progress bar's line; off a terminal, stderr is a ``LineStream``."""
    original = sys.stderr
    terminal = _isatty(original)
    stream: Any = original if terminal else LineStream(original)
    sys.stderr = stream
    root = logging.getLogger()
    handler = _ConsoleHandler(stream, terminal)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        sys.stderr = original
