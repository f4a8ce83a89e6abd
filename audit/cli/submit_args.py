"""The arguments of ``biasaudit submit`` (:mod:`audit.cli.submit` does the work).

Apart from it so that building the ``biasaudit`` parser (``--help``, every other
command) imports neither httpx nor yaml: the command imports them when it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_TIMEOUT = 3600.0


def add_parser(sub: Any) -> None:
    """Register ``submit`` on the ``biasaudit`` subcommand parser."""
    s = sub.add_parser("submit", help="run an audit on a biasaudit service (upload, follow)")
    s.add_argument("spec", help="audit spec (YAML or JSON); local paths are uploaded")
    s.add_argument("--api", default=None, help="the service's URL (default: $BIASAUDIT_API)")
    s.add_argument("--out", default=None, help="directory for results.json and report.html")
    s.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the audit to its end and download the results (default); --no-wait "
        "prints the audit id and exits 0",
    )
    s.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for the audit (default {DEFAULT_TIMEOUT:.0f})",
    )
    s.set_defaults(func=_cmd_submit)


def _cmd_submit(args: argparse.Namespace) -> int:
    from audit.cli.submit import cmd_submit

    return cmd_submit(args)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value
