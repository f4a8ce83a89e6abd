"""``biasaudit datasets|models list|delete --api URL``: a project's stored uploads.

Talks to the service like ``biasaudit submit`` (token from ``BIASAUDIT_TOKEN``, URL
from ``--api`` or ``BIASAUDIT_API``). ``list`` prints one line per item, newest first
(``--json``: the API's page as it is); ``delete`` erases one item (its bytes
everywhere; the sha256 stays in past results). A refusal (the item is in use: the
audits and schedules are named; another project's id; a reviewer token) prints the
server's message and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

from audit.cli.api_client import ApiClient, ApiRequestError

EXIT_OK, EXIT_INVALID = 0, 2
MSG_NO_TOKEN = (
    "BIASAUDIT_TOKEN: not set; ask the service's admin for a token "
    "('biasaudit keys create --role submitter --project NAME' on the server) and export it"
)


def add_parsers(sub: Any) -> None:
    """Register ``datasets`` and ``models`` (each with ``list`` and ``delete``)."""
    for kind in ("datasets", "models"):
        group = sub.add_parser(kind, help=f"the project's stored {kind} on a service")
        commands = group.add_subparsers(dest=f"{kind}_command", required=True)
        listing = commands.add_parser("list", help=f"{kind}, newest first, with their use")
        listing.add_argument("--limit", type=int, default=50, help="items per page (1-1000)")
        listing.add_argument("--offset", type=int, default=0, help="items to skip")
        listing.add_argument("--deleted", action="store_true", help="only the deleted ones")
        listing.add_argument("--json", action="store_true", help="the API's JSON page")
        delete = commands.add_parser("delete", help=f"delete {kind} (bytes everywhere)")
        delete.add_argument("ids", nargs="+", metavar="ID")
        for parser in (listing, delete):
            parser.add_argument("--api", default=None, help="service URL (default: $BIASAUDIT_API)")
            parser.set_defaults(func=cmd_stored, kind=kind, action=parser is delete)


def _line(kind: str, item: dict[str, Any]) -> str:
    shape = f"{item['rows']} rows" if kind == "datasets" else item["kind"]
    usage = item.get("usage") or {}
    last = usage.get("last_used_at") or "never"
    when = item.get("deleted_at") or item["created_at"]
    name = item.get("filename") or ""
    return (
        f"{item['id']}  {when[:19]}  {shape}  {item.get('size_bytes') or 0} B  "
        f"{usage.get('audits', 0)} audits (last {last[:19]})  {item['sha256'][:12]}  {name}"
    ).rstrip()


def run_stored(args: argparse.Namespace, client: ApiClient | None = None) -> int:
    """List or delete; ``client`` may be given (tests), else built from the arguments."""
    from audit.cli.submit import _api_url

    if client is None:
        url = _api_url(args)
        token = os.environ.get("BIASAUDIT_TOKEN", "").strip()
        if not token:
            raise ApiRequestError(MSG_NO_TOKEN)
        client = ApiClient(url, token)
    with client:
        if args.action:
            for item_id in args.ids:
                client.request("DELETE", f"/v1/{args.kind}/{quote(item_id, safe='')}")
                print(f"deleted {args.kind[:-1]} {item_id}")
            return EXIT_OK
        query = f"limit={args.limit}&offset={args.offset}&deleted={str(args.deleted).lower()}"
        page = client.get_json(f"/v1/{args.kind}?{query}")
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    for item in page["data"]:
        print(_line(args.kind, item))
    shown = len(page["data"])
    print(f"{shown} of {page['count']} {args.kind} (offset {page['offset']})", file=sys.stderr)
    return EXIT_OK


def cmd_stored(args: argparse.Namespace) -> int:
    try:
        return run_stored(args)
    except ApiRequestError as exc:
        print(f"biasaudit: error: {exc}", file=sys.stderr)
    return EXIT_INVALID
