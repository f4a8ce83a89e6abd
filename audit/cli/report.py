"""``biasaudit report ID --format html|pdf|csv [--out FILE]``: a stored audit's report.

``ID`` is an audit id in the configured database (``BIASAUDIT_DATABASE_URL``; the
embedded SQLite store by default, where ``biasaudit run`` records its audits), or
an output directory of ``biasaudit run --out`` (one holding ``results.json``), or
that ``results.json`` itself. From the database the report carries the audit's
reviews (its sign-off). Without ``--out`` the report goes to standard output.
Exit codes: 0 written; 2 the audit or file was not found, has not succeeded, or
the output could not be written (the message names which).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INVALID = 0, 2
FORMATS = ("html", "pdf", "csv")
MSG_NOT_FOUND = (
    "report: {id!r} is neither an audit id in the database ({url}) nor a directory "
    "holding results.json"
)
MSG_NOT_SUCCEEDED = "report: audit {id} is {status}; a report exists once it has succeeded"
MSG_BAD_RESULTS = "report: {path}: not a results.json document ({reason})"
MSG_PDF_TTY = "report: a PDF is binary; give --out FILE (or redirect standard output)"


class ReportSourceError(Exception):
    """The audit or results file named on the command line cannot give a report."""


def _from_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportSourceError(MSG_BAD_RESULTS.format(path=path, reason=exc)) from None
    if not isinstance(document, dict) or "findings" not in document:
        reason = "no findings"
        raise ReportSourceError(MSG_BAD_RESULTS.format(path=path, reason=reason))
    return document


def _from_database(audit_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The results and reviews of a succeeded audit in the configured database, or None."""
    from sqlalchemy.exc import SQLAlchemyError

    from audit.settings import get_settings
    from audit.storage.audits import get_results, load_audit
    from audit.storage.db import session_scope
    from audit.storage.models import plausible_id
    from audit.storage.reports import report_reviews

    if not plausible_id(audit_id):
        return None
    try:
        with session_scope(get_settings().db_url) as session:
            audit = load_audit(session=session, audit_id=audit_id)
            if audit is None:
                return None
            if audit.status != "succeeded":
                raise ReportSourceError(MSG_NOT_SUCCEEDED.format(id=audit_id, status=audit.status))
            project = audit.project
            results = get_results(session=session, project=project, audit_id=audit_id)
            if results is None:
                status = "missing its results"
                raise ReportSourceError(MSG_NOT_SUCCEEDED.format(id=audit_id, status=status))
            return results, report_reviews(session=session, project=project, audit_id=audit_id)
    except SQLAlchemyError:  # no such database or tables: the id is not there
        return None


def load_report_source(ident: str) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """(results, reviews) for ``ident``: an out directory, a results.json, or an audit id.
    Reviews are ``None`` from a file (not known there)."""
    path = Path(ident)
    if path.is_dir() and (path / "results.json").is_file():
        return _from_file(path / "results.json"), None
    if path.is_file() and path.suffix == ".json":
        return _from_file(path), None
    found = _from_database(ident)
    if found is None:
        from audit.settings import get_settings

        url = get_settings().db_url
        shown = url.split("@")[-1] if "@" in url else url  # never print a password
        raise ReportSourceError(MSG_NOT_FOUND.format(id=ident, url=shown))
    return found


def render(results: dict[str, Any], reviews: list[dict[str, Any]] | None, fmt: str) -> bytes:
    """The report in ``fmt`` as bytes."""
    if fmt == "pdf":
        from audit.reports.pdf import render_pdf

        return render_pdf(results, reviews=reviews)
    if fmt == "csv":
        from audit.reports.csv_report import render_csv

        return render_csv(results).encode("utf-8")
    from audit.reports.html import render_html

    return render_html(results, reviews=reviews).encode("utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of ``args.id`` in ``args.format`` to ``args.out`` (or stdout)."""
    try:
        results, reviews = load_report_source(args.id)
    except ReportSourceError as exc:
        print(f"biasaudit: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.out is None and args.format == "pdf" and sys.stdout.isatty():
        print(f"biasaudit: error: {MSG_PDF_TTY}", file=sys.stderr)
        return EXIT_INVALID
    content = render(results, reviews, args.format)
    if args.out is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return EXIT_OK
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)
    except OSError as exc:
        print(f"biasaudit: error: report: --out {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.format} report of {results.get('audit', {}).get('id', args.id)}: {out}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``report`` on the ``biasaudit`` subcommands."""
    r = sub.add_parser(
        "report",
        help="write a stored audit's report (HTML, PDF or CSV)",
        description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None,
    )
    r.add_argument("id", help="audit id in the database, or a 'run --out' directory")
    r.add_argument("--format", choices=FORMATS, default="html", help="default: html")
    r.add_argument("--out", default=None, help="file to write (default: standard output)")
    r.set_defaults(func=cmd_report)
