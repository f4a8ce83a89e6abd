"""PDF report render time (WeasyPrint) against the HTML render of the same results (the peer).

Runs real audits (the engine on synthetic hiring tables with growing numbers of
intersectional groups), then renders each report as HTML and as PDF, best of
``--repeat`` (CPU time), and prints the sizes, the page count and the PDF/HTML time ratio.
The PDF is laid out from the same HTML, so the ratio is what print layout costs.

    python benchmarks/bench_pdf.py [--rows 20000] [--levels 2 4 ...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def make_results(rows: int, levels: list[int], folder: Path) -> dict[str, Any]:
    """A hiring audit of sex x race-like columns with ``levels`` categories each."""
    from audit.engine.run import compute_results

    rng = np.random.default_rng(0)
    names = ["sex", "race"][: len(levels)]
    frame = pd.DataFrame({n: rng.integers(0, k, rows).astype(str) for n, k in zip(names, levels)})
    frame["label"] = rng.integers(0, 2, rows)
    frame["pred"] = (rng.random(rows) < 0.4).astype(int)
    path = folder / f"pool_{'x'.join(map(str, levels))}.csv"
    frame.to_csv(path, index=False)
    spec = {
        "name": "bench-pdf",
        "domain": "hiring",
        "dataset": {"path": str(path), "label": "label", "prediction": "pred", "protected": names},
        "probes": [{"kind": "demographic", "intersectional": True}],
    }
    return compute_results(spec)


def page_count(pdf: bytes, folder: Path) -> str:
    """Pages, as poppler's ``pdfinfo`` reads them ("?" without poppler-utils)."""
    path = folder / "report.pdf"
    path.write_bytes(pdf)
    try:
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "?"
    match = re.search(r"^Pages:\s+(\d+)", info.stdout, re.M)
    return match.group(1) if match else "?"


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Best CPU time of ``repeat`` calls (process time: steadier than wall time on a shared
    machine; both renderers are single-threaded), and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        times.append(time.process_time() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--levels", type=str, nargs="+", default=["2x4", "2x12", "2x40"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BIASAUDIT_ARTIFACT_DIR"] = tmp
        from audit.reports.html import render_html
        from audit.reports.pdf import render_pdf

        render_pdf({"verdict": "pass"})  # import and font set-up once, outside the timings
        print("groups  html KiB  pages  pdf KiB   html s   pdf s  pdf/html")
        for spec in args.levels:
            levels = [int(x) for x in spec.split("x")]
            results = make_results(args.rows, levels, Path(tmp))
            groups = sum(len(e["groups"]) for e in results["probes"])
            html_s, html = best(args.repeat, partial(render_html, results))
            pdf_s, pdf = best(args.repeat, partial(render_pdf, results, reviews=[]))
            pages = page_count(pdf, Path(tmp))
            print(
                f"{groups:6d} {len(html) / 1024:9.0f} {pages:>6} {len(pdf) / 1024:8.0f} "
                f"{html_s:8.3f} {pdf_s:7.2f} {pdf_s / html_s:9.0f}x"
            )


if __name__ == "__main__":
    main()
