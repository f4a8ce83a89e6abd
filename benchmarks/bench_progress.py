"""Cost of the CLI progress display per inference batch, vs tqdm's own update as the peer.

``biasaudit run`` reports every batch a model scores (``ConsoleProgress.items``); this
measures what one report costs on a terminal (a tqdm bar, redrawn at most every 0.2 s)
and in a pipe (a line at most every 2 s), against ``tqdm.update(1)`` with its default
``mininterval`` (0.1 s). Output: microseconds per batch and the ratio to the peer.

    python benchmarks/bench_progress.py
"""

from __future__ import annotations

import os
import time

from tqdm import tqdm

from audit.cli.progress import ConsoleProgress

N = 20_000
ROUNDS = 5


def _per_call(fn: object, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i + 1, n)  # type: ignore[operator]
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    with open(os.devnull, "w", encoding="utf-8") as sink:
        best: dict[str, float] = {}
        for _ in range(ROUNDS):  # interleaved rounds, best of each
            bar = tqdm(total=N, file=sink)
            peer_cost = _per_call(lambda i, n, bar=bar: bar.update(1), N)
            best["tqdm.update (peer)"] = min(best.get("tqdm.update (peer)", 1e9), peer_cost)
            bar.close()
            for name, tty in (("terminal bar", True), ("pipe lines", False)):
                shown = ConsoleProgress(sink, tty=tty)
                shown.step("scoring")
                best[name] = min(best.get(name, 1e9), _per_call(shown.items, N))
                shown._close_bar()
    peer = best["tqdm.update (peer)"]
    for name, us in best.items():
        print(f"{name:20s} {us:7.2f} us per batch   ratio to peer {us / peer:5.2f}")


if __name__ == "__main__":
    main()
