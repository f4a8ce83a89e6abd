"""``biasaudit demo``: generate the bundled examples and audit them in-process.

The hiring example is synthetic and always available; the lending example
needs the German credit data (``biasaudit data fetch`` once, or
``run_demo(fetch_data=True)``). Each audit writes ``results.json`` and
``report.html`` next to its generated data.

>>> from pathlib import Path
>>> from audit.examples.demo import run_demo
>>> [s["verdict"] for s in run_demo(out_dir=Path("out/demo"))]  # doctest: +SKIP
['fail', 'pass']
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.errors import AuditInputError
from audit.examples import EXAMPLES, generate

__all__ = ["DEMO_EXAMPLES", "format_summary", "run_demo"]

DEMO_EXAMPLES = ("hiring", "lending", "lending-proxy")


def run_demo(
    *,
    out_dir: Path,
    examples: tuple[str, ...] = DEMO_EXAMPLES,
    fetch_data: bool = False,
    seed: int = 0,
    store: bool = True,
    step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Generate and audit each example under ``out_dir/<name>``; one summary per audit.

    Parameters
    ----------
    out_dir
        Folder for everything: ``out_dir/hiring`` and ``out_dir/lending`` each get
        the example's data, ``spec.yaml``, ``results.json`` and ``report.html``.
    examples
        Which examples to run (default: all of :data:`DEMO_EXAMPLES`).
    fetch_data
        Download the public data first if it is missing (needs network); otherwise
        missing German credit data raises :class:`~audit.errors.AuditInputError`
        (before anything runs) saying how to fetch it.
    store
        Record the audits in the embedded database, as ``biasaudit run`` does.
    step
        Told each long step as it starts (the CLI prints them on stderr).

    Returns
    -------
    list of dict
        ``{"name", "spec", "verdict", "results", "results_path", "report"}`` per
        example: ``results`` is the results.json document, ``results_path`` and
        ``report`` the paths of results.json and report.html (as strings).
    """
    from audit.engine.run import run_audit

    unknown = [e for e in examples if e not in EXAMPLES]
    if unknown:
        raise ValueError(f"examples: {unknown} are not among {sorted(EXAMPLES)}")
    if "lending" in examples:
        from audit.sources.public import available, fetch, missing_message

        if fetch_data:
            fetch()
        elif not available():
            # fail before any audit runs; the CLI turns this into exit 2 with the message
            raise AuditInputError(missing_message(), field="dataset.path")
    if "lending-proxy" in examples:
        from audit.sources import census

        if fetch_data:
            census.fetch()
        elif not census.available():
            root = census.census_dir()
            message = census.MSG_MISSING.format(path=root / "MANIFEST.json", root=root)
            raise AuditInputError(message, field="dataset.proxy")
    out_dir = Path(out_dir)
    summaries: list[dict[str, Any]] = []
    for name in examples:
        folder = out_dir / name
        if step is not None:
            step(f"{name}: generating the example data in {folder}")
        spec = generate(name, out_dir=folder, seed=seed)
        results = run_audit(spec, out_dir=folder, store=store, step=step)
        summaries.append(
            {
                "name": name,
                "spec": str(spec),
                "verdict": results["verdict"],
                "results": results,
                "results_path": str(folder / "results.json"),
                "report": str(folder / "report.html"),
            }
        )
    return summaries


def format_summary(summaries: list[dict[str, Any]]) -> str:
    """Human-readable lines: verdict, failing findings and the report path of each audit."""
    lines = []
    for s in summaries:
        failed = [f for f in s["results"].get("findings", []) if f.get("status") == "fail"]
        lines.append(f"{s['name']}: {s['verdict'].upper()} ({len(failed)} failing finding(s))")
        for f in failed[:5]:
            lines.append(
                f"  - {f.get('attribute')}={f.get('group')}: {f.get('metric')} "
                f"{f.get('value'):.3g} (threshold {f.get('threshold')})"
            )
        lines.append(f"  report: {s['report']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="run the bundled example audits")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--fetch", action="store_true", help="download public data if missing")
    args = parser.parse_args(argv)
    print(format_summary(run_demo(out_dir=args.out, fetch_data=args.fetch)))


if __name__ == "__main__":
    main()
