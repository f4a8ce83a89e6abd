"""People, history and the trail on the command line: ``keys list/revoke``, ``verify-log``,
``list``, ``show``, ``diff``. They read ``BIASAUDIT_DATABASE_URL`` (default: the embedded
SQLite store), migrating it first (idempotent)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EXIT_OK, EXIT_TAMPERED, EXIT_INVALID = 0, 1, 2


def cli_actor() -> str:
    """Who acts from the command line: ``cli <os user>`` (imported lazily: ``--help`` stays
    fast)."""
    from audit.storage.events import local_actor

    return local_actor()


def _err(message: str) -> None:
    print(f"biasaudit: error: {message}", file=sys.stderr)


def _with_session(work: Callable[[Session], int]) -> int:
    """Run ``work`` in a session of the configured database; exit 2 on bad input, and when
    the database cannot be reached (never 1, which ``verify-log`` keeps for tampering)."""
    from sqlalchemy.exc import SQLAlchemyError

    from audit.settings import get_settings
    from audit.storage.db import session_scope, upgrade

    try:
        url = get_settings().db_url
        upgrade(url)
        with session_scope(url) as session:
            return work(session)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_INVALID
    except SQLAlchemyError as exc:
        _err(f"BIASAUDIT_DATABASE_URL: the database could not be read: {exc}")
        return EXIT_INVALID


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def keys_list(args: argparse.Namespace) -> int:
    from audit.storage.repo import list_tokens

    def work(session: Session) -> int:
        print("id\tname\trole\tproject\tcreated\tlast used\trevoked")
        for t in list_tokens(session=session, project=args.project):
            row = (t.id, t.name or "-", t.role, t.project, _when(t.created_at),
                   _when(t.last_used_at), _when(t.revoked_at))  # fmt: skip
            print("\t".join(str(c) for c in row))
        return EXIT_OK

    return _with_session(work)


def keys_revoke(args: argparse.Namespace) -> int:
    from audit.storage.repo import revoke_token

    def work(session: Session) -> int:
        if not revoke_token(session=session, project=None, token_id=args.id, actor=cli_actor()):
            _err(f"ID: no live token with id {args.id} (unknown or already revoked)")
            return EXIT_INVALID
        print(f"revoked token {args.id}")
        return EXIT_OK

    return _with_session(work)


def verify_log(args: argparse.Namespace) -> int:
    """Exit 0 when the chain and every stored result's hash are intact, else 1 naming each."""
    from audit.storage.events import verify_log as verify

    def work(session: Session) -> int:
        report = verify(session=session)
        if report.intact:
            print(f"event log intact: {report.entries} entries, {report.results} results checked")
            return EXIT_OK
        for broken in report.breaks:
            print(f"TAMPERED {broken}")
        print(f"{len(report.breaks)} problem(s) in {report.entries} entries, "
              f"{report.results} results", file=sys.stderr)  # fmt: skip
        return EXIT_TAMPERED

    return _with_session(work)


def list_audits(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from audit.storage.models import Audit
    from audit.storage.reviews import review_states

    def work(session: Session) -> int:
        query = select(Audit).order_by(Audit.created_at.desc(), Audit.id.desc()).limit(args.limit)
        if args.project:
            query = query.where(Audit.project == args.project)
        rows = list(session.scalars(query))
        states = review_states(session, [a.id for a in rows])
        print("id\tcreated\tproject\tname\tstatus\tverdict\treview\tsubmitted by")
        for a in rows:
            row = (a.id, _when(a.created_at), a.project, a.name, a.status, a.verdict or "-",
                   states[a.id], a.submitted_by or "-")  # fmt: skip
            print("\t".join(str(c) for c in row))
        return EXIT_OK

    return _with_session(work)


def _find(session: Session, audit_id: str, project: str | None) -> Any:
    from audit.storage.models import Audit

    audit = session.get(Audit, audit_id)
    if audit is None or (project is not None and audit.project != project):
        raise ValueError(f"ID: no audit {audit_id!r} in the configured database")
    return audit


def show(args: argparse.Namespace) -> int:
    from audit.storage.history import audit_summary
    from audit.storage.repo import list_findings
    from audit.storage.reviews import list_reviews, review_state

    def work(session: Session) -> int:
        audit = _find(session, args.id, args.project)
        reviews = list_reviews(session, audit.id)
        view = {**audit_summary(audit), "project": audit.project,
                "submitted_by": audit.submitted_by, "error": audit.error,
                "review_state": review_state(reviews), "reviews": reviews}  # fmt: skip
        if args.json:
            print(json.dumps(view, default=str, indent=2))
            return EXIT_OK
        for key, value in view.items():
            if key != "reviews":
                print(f"{key:15s} {value if value is not None else '-'}")
        for r in reviews:
            print(f"review          {r['decision']} by {r['reviewer']} at "
                  f"{_when(r['created_at'])}: {r['comment'] or ''}")  # fmt: skip
        for f in list_findings(session=session, audit_id=audit.id):
            if f.status != "pass":
                print(f"finding         {f.status}: {f.probe} {f.attribute} {f.group} "
                      f"{f.metric}={f.value} (threshold {f.threshold})")  # fmt: skip
        return EXIT_OK

    return _with_session(work)


def diff(args: argparse.Namespace) -> int:
    from audit.storage.history import NotComparable, compare_audits

    def work(session: Session) -> int:
        a, b = _find(session, args.a, args.project), _find(session, args.b, args.project)
        if a.project != b.project:
            raise ValueError(f"ID_B: audit {b.id} is in another project than {a.id}")
        try:
            result = compare_audits(session, a, b)
        except NotComparable as exc:
            raise ValueError(str(exc)) from None
        if args.json:
            print(json.dumps(result, default=str, indent=2))
            return EXIT_OK
        v = result["verdict"]
        print(f"verdict: {v['a']} -> {v['b']}{' (changed)' if v['changed'] else ''}")
        print(f"{result['significant']} significant change(s) of {len(result['metrics'])} "
              f"shared metrics (alpha {result['alpha']})")  # fmt: skip
        for m in result["metrics"]:
            if m["significant"] or args.all:
                mark = "*" if m["significant"] else " "
                p = f" p={m['p_value']:.3g}" if m["p_value"] is not None else ""
                print(f"{mark} {m['probe']} {m['attribute']} {m['group'] or '(all)'} "
                      f"{m['metric']}: {m['a']:.4g} -> {m['b']:.4g} "
                      f"({m['change']:+.4g}; {m['test'] or 'no test'}{p})")  # fmt: skip
        return EXIT_OK

    return _with_session(work)


def add_commands(sub: Any) -> None:
    """Register ``verify-log``, ``list``, ``show``, ``diff`` on the ``biasaudit`` parser."""
    v = sub.add_parser("verify-log", help="check the event chain and every stored result's hash")
    v.set_defaults(func=verify_log)
    ls = sub.add_parser("list", help="audits in the configured database, newest first")
    ls.add_argument("--project", default=None)
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=list_audits)
    sh = sub.add_parser("show", help="one audit: status, verdict, reviews, failing checks")
    sh.add_argument("id", metavar="ID")
    sh.add_argument("--project", default=None)
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=show)
    d = sub.add_parser("diff", help="compare two audits metric by metric, with significance")
    d.add_argument("a", metavar="ID_A")
    d.add_argument("b", metavar="ID_B")
    d.add_argument("--project", default=None)
    d.add_argument("--json", action="store_true", help="the JSON of GET /v1/audits/{a}/compare/{b}")
    d.add_argument("--all", action="store_true", help="print every shared metric, not only changes")
    d.set_defaults(func=diff)


def add_key_commands(ks: Any) -> None:
    """Register ``keys list`` and ``keys revoke``."""
    kl = ks.add_parser("list", help="id, name, role, project, created, last used, revoked")
    kl.add_argument("--project", default=None)
    kl.set_defaults(func=keys_list)
    kr = ks.add_parser("revoke", help="revoke a token by id (see keys list)")
    kr.add_argument("id", metavar="ID", type=int)
    kr.set_defaults(func=keys_revoke)
