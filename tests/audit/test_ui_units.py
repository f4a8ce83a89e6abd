"""Dashboard helpers without services: redirects, CSRF tokens, filters, sentences, escaping."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from audit.ui import trail
from audit.ui.charts import Point, Series, trend_chart
from audit.ui.render import _env, safe_next
from audit.ui.security import UiError, csrf_for, same_token
from audit.ui.views import parse_filters, summary_sentence


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/ui/"),
        ("", "/ui/"),
        ("/ui/audits/1?x=2", "/ui/audits/1?x=2"),
        ("//evil.example/", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("/ui/..\\evil", "/ui/"),
        ("/ui/../v1/audits", "/ui/"),
        ("/v1/audits", "/ui/"),
    ],
)
def test_after_sign_in_only_dashboard_paths(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_csrf_token_is_bound_to_the_session() -> None:
    assert csrf_for("a") == csrf_for("a") != csrf_for("b")
    assert len(csrf_for("a")) == 64
    assert same_token(csrf_for("a"), csrf_for("a"))
    assert not same_token(csrf_for("a"), csrf_for("b"))
    assert not same_token(None, "x") and not same_token("x", None) and not same_token("x", "")


def test_filters_parse_and_name_the_bad_field() -> None:
    filters, page = parse_filters(
        {
            "status": "succeeded",
            "review": "awaiting",
            "model": "ABCD12",
            "from": "2026-01-02",
            "to": "2026-01-31",
            "page": "3",
        }
    )
    assert (filters.status, filters.review, filters.model, page) == (
        "succeeded",
        "awaiting",
        "abcd12",
        3,
    )
    assert filters.created_after == datetime(2026, 1, 2, tzinfo=UTC)
    assert filters.created_before == datetime(2026, 2, 1, tzinfo=UTC)  # "to" is inclusive
    for params, field in [
        ({"verdict": "maybe"}, "verdict:"),
        ({"review": "pending"}, "review:"),
        ({"to": "31/01/2026"}, "to:"),
        ({"model": "xyz"}, "model:"),
        ({"page": "-1"}, "page:"),
        ({"schedule": "x" * 40}, "schedule:"),
    ]:
        with pytest.raises(UiError) as caught:
            parse_filters(params)
        assert caught.value.status == 422 and caught.value.message.startswith(field)


def test_summary_sentence_names_the_first_failed_check() -> None:
    failing = [
        {
            "status_class": "fail",
            "metric": "Impact ratio",
            "attribute": "sex",
            "group": "female",
            "value": "0.555",
            "threshold": "≥ 0.800",
        },
        {"status_class": "pass"},
    ]
    header = {"n_findings": 2, "n_fail": 1, "n_insufficient": 0}
    sentence = summary_sentence(header, failing)
    assert sentence.startswith("This audit fails the policy: 1 of 2 checks failed")
    assert "impact ratio for sex = female: 0.555 against a threshold of ≥ 0.800" in sentence
    passing = summary_sentence({"n_findings": 3, "n_fail": 0, "n_insufficient": 1}, [])
    assert passing.startswith("This audit passes") and "1 could not be decided" in passing
    assert "no policy checks" in summary_sentence({"n_findings": 0}, []).lower()


def test_names_from_results_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    svg = trend_chart([Series(evil, [Point(0.5, 0.4, 0.6)])], [evil], title=evil)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    html = _env.get_template("audits.html.j2").render(
        path="/ui/",
        viewer=None,
        rows=[
            {
                "id": "1",
                "name": evil,
                "domain": "hiring",
                "status": "queued",
                "verdict": "",
                "review": "",
                "review_label": "",
                "model": "",
                "schedule_id": "",
                "created": "",
                "finished": "",
            }
        ],
        total=1,
        page=1,
        pages=1,
        prev=None,
        next=None,
        f={},
        statuses=(),
        verdicts=(),
        reviews=(),
        filtered=False,
    )
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_trail_seams_use_the_trail_modules_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"seq": 2, "at": datetime(2026, 1, 2, tzinfo=UTC), "actor": "Rita", "action": "x"}
    calls: list[dict[str, Any]] = []

    def list_events(**kw: Any) -> tuple[list[str], int]:
        calls.append(kw)
        return ["row"], 7

    log = SimpleNamespace(list_events=list_events, event_dict=lambda row: dict(entry))
    monkeypatch.setitem(sys.modules, trail.EVENTS_MODULE, log)
    page = trail.list_events(session=None, project="acme", audit_id=None, limit=5, offset=10)  # type: ignore[arg-type]
    assert page is not None and page.total == 7 and page.entries == [entry]
    assert calls == [
        {"session": None, "project": "acme", "audit_id": None, "limit": 5, "offset": 10}
    ]
    compare = SimpleNamespace(compare_results=lambda a, b: {"metrics": [], "n": (a, b)})
    monkeypatch.setitem(sys.modules, trail.COMPARE_MODULE, compare)
    assert trail.compare_significance({"a": 1}, {"b": 2}) == {
        "metrics": [],
        "n": ({"a": 1}, {"b": 2}),
    }
    monkeypatch.setitem(sys.modules, trail.COMPARE_MODULE, SimpleNamespace())  # lacks the function
    assert trail.compare_significance({}, {}) is None


def test_a_late_rows_alert_says_how_many_rows_came_late() -> None:
    from audit.ui.schedule_views import alert_row

    alert = SimpleNamespace(
        schedule_id="s1", audit_id="a" * 36, kind="late_rows", delivery=None, attempts=0,
        created_at=datetime(2026, 11, 30, 3, tzinfo=UTC),
        details={"against": "previous", "against_audit_id": "b" * 36, "late": 250},
    )  # fmt: skip
    row = alert_row(alert, {"s1": "weekly"})
    assert (row["kind"], row["late"], row["verdict"]) == ("late rows", 250, "")
    html = _env.get_template("_alerts.html.j2").render(alerts=[row])
    assert "late rows" in html and "250 rows arrived after the window ran" in html
