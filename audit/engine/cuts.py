"""CSV cuts for a file read by ranges: a record start near each target, no full pass.

:func:`audit.engine.reader.record_starts` finds record starts exactly with one
quote-aware pass from the file's first byte, which for a file in an object store
means fetching nearly all of it on the planning machine. :func:`near_record_starts`
reads a small window at each target instead and takes the first line break outside
quotes *assuming the target is outside quotes*. A line break inside a quoted field
near a cut can fool it: the shards check it (:class:`audit.storage.ranged.QuoteWatch`:
each shard's range must hold an even number of quotes) and the audit fails with
:data:`MSG_QUOTED_CUT` rather than count rows cut in two.
"""

from __future__ import annotations

from pathlib import Path

from audit.engine import reader

WINDOW = 16 << 10  # the first window at a cut; doubled while no line break is found
MSG_CUTS_HINT = (
    "A CSV read by ranges from the object store is split at line breaks, so a line break "
    "inside a quoted field near a cut breaks it: convert the file to Parquet, or set "
    "BIASAUDIT_SHARD_THRESHOLD_BYTES above its size to audit it in one process"
)
MSG_QUOTED_CUT = (
    "dataset.id: {name} has a line break inside a quoted field near byte {start}, where "
    "a shard begins or ends. " + MSG_CUTS_HINT
)


def near_record_starts(path: Path, targets: list[int], *, window: int = WINDOW) -> list[int]:
    """For each byte offset in ``targets``: the first record start after it, from
    windows read at the target (the file's size when there is none)."""
    size = path.stat().st_size
    out: list[int] = []
    with path.open("rb") as f:
        for target in sorted(targets):
            if out and target < out[-1]:
                out.append(out[-1])
                continue
            pos, odd, found, want = target, False, size, window
            while pos < size:
                f.seek(pos)
                block = f.read(want)
                want *= 2
                if not block:
                    break
                hit, odd = reader._scan(block, 0, odd)
                if hit != -1:
                    found = pos + hit
                    break
                pos += len(block)
            out.append(found)
    return out
