"""The sign-off section of a stored HTML report: the audit's reviews (who, what, when, why).

Reviews arrive after the report was first rendered, so the API renders the
report again when one is stored (``audit.storage.reviews.mark_reports_stale``)
and adds this section. The renderer may also show reviews itself; this keeps
them visible whatever its layout.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from audit.storage.reviews import review_state

_STYLE = "margin:1.5rem 0;padding:1rem;border:1px solid #888;border-radius:4px"


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def signoff_html(reviews: list[dict[str, Any]]) -> str:
    """A ``<section id="sign-off">`` listing ``reviews`` (oldest first) and the review state."""
    state = review_state(reviews)
    rows = "".join(
        "<tr><td>{d}</td><td>{r}</td><td>{w}</td><td>{c}</td></tr>".format(
            d="approved" if r["decision"] == "approve" else "rejected",
            r=escape(r.get("reviewer") or "unknown"),
            w=escape(_when(r.get("created_at"))),
            c=escape(r.get("comment") or ""),
        )
        for r in reviews
    )
    table = (
        "<table><thead><tr><th>decision</th><th>reviewer</th><th>time (UTC)</th>"
        f"<th>comment</th></tr></thead><tbody>{rows}</tbody></table>"
        if reviews
        else "<p>No review yet.</p>"
    )
    return (
        f'<section id="sign-off" style="{_STYLE}"><h2>Sign-off</h2>'
        f"<p>Review state: <strong>{escape(state)}</strong></p>{table}</section>"
    )


def with_reviews(html: str, reviews: list[dict[str, Any]]) -> str:
    """``html`` with the sign-off section before ``</body>`` (appended when there is none)."""
    if not reviews:
        return html
    section = signoff_html(reviews)
    index = html.rfind("</body>")
    return html + section if index < 0 else html[:index] + section + html[index:]
