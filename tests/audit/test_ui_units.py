"""Dashboard helpers without services: redirects, CSRF tokens, filters, sentences, escaping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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
