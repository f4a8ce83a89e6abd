"""Recognise a pickle stream among uploaded bytes, without unpickling anything.

A protocol-0 pickle is printable text, and ``cos\\nsystem\\n(S'...'\\ntR.``
is also a CSV file (a header and three rows): sniffing "is it CSV?" is not
enough. :func:`pickle_reason` parses the stream with
:func:`pickletools.genops`, which decodes opcodes and never executes them,
and calls the bytes a pickle when a prefix of them is a pickle that imports
something (``GLOBAL``/``INST`` naming a dotted Python identifier, or
``STACK_GLOBAL``: importing is how a pickle runs code) or that is complete
(reaches ``STOP``). A CSV file fails to parse within its first line or two
(a comma-separated header cannot be an import), so the check costs nothing
for real data; it reads at most what the pickle prefix covers.

Protocol 2+ streams start with ``\\x80`` and are refused by magic number
before this runs.
"""

from __future__ import annotations

import pickletools
import re
from collections.abc import Callable
from typing import Any

MAX_LINE = 64 * 1024 * 1024  # a pickle text argument longer than this is refused as suspicious
CHECK_EVERY = 4096  # opcodes between two calls of ``tick``
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z", re.ASCII)


class _Reader:
    """What genops reads through: lines capped at :data:`MAX_LINE` (``capped`` says it hit)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.capped = False

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._inner.read(n if 0 <= n <= MAX_LINE else MAX_LINE)
        return data

    def readline(self, size: int = -1) -> bytes:
        limit = size if 0 <= size <= MAX_LINE else MAX_LINE
        line: bytes = self._inner.readline(limit)
        if len(line) >= MAX_LINE and not line.endswith(b"\n"):
            self.capped = True
        return line


def _imports(name: str, arg: Any) -> str | None:
    if name == "STACK_GLOBAL":
        return "an object named on the stack"
    if name in ("GLOBAL", "INST") and isinstance(arg, str):
        module, _, attr = arg.partition(" ")
        if _IDENTIFIER.match(module) and _IDENTIFIER.match(attr):
            return f"{module}.{attr}"
    return None


def pickle_reason(stream: Any, *, tick: Callable[[], None] | None = None) -> str | None:
    """Why the bytes of ``stream`` are a pickle (a short phrase), or None when they are not.

    ``tick`` is called every few thousand opcodes (a deadline or cancellation check).
    """
    reader = _Reader(stream)
    count = 0
    try:
        for op, arg, _pos in pickletools.genops(reader):  # type: ignore[arg-type]
            count += 1
            imported = _imports(op.name, arg)
            if imported is not None:
                return f"a pickle stream that imports {imported}"
            if op.name == "STOP":
                return "a pickle stream" if count > 1 else None
            if tick is not None and count % CHECK_EVERY == 0:
                tick()
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError, EOFError):
        # Not (or no longer) a pickle: a CSV gets here within a line or two. A text
        # argument longer than MAX_LINE is where a long pickle prefix could hide an
        # import: refuse it rather than read further.
        return "a pickle stream with an over-long argument" if reader.capped else None
    return None
