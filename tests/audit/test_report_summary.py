"""The HTML report's summary sentence, Clarify legend, collapsed passes, sign-off and layout."""

from __future__ import annotations

import copy
import re

from audit.reports.html import render_html
from audit.reports.legend import CLARIFY_TERMS, clarify_legend
from audit.reports.summary import summary_sentence, worst_finding
from tests.audit.test_report import XSS, _section, hiring_results, lending_no_label

CLARIFY = {"DPPL": 0.05, "DI": 0.83, "DCA": 0.01, "DCR": -0.02, "RD": 0.1, "SD": 0.0}
CLARIFY |= {"DAR": 0.03, "DRR": 0.01, "AD": 0.02, "TE": 0.5}


def test_summary_sentence_comes_first_and_names_the_worst_finding() -> None:
    results = hiring_results()
    html = render_html(results)
    sentence = re.search(r'<p class="summary" id="summary">(.*?)</p>', html).group(1)  # type: ignore[union-attr]
    assert html.index('id="summary"') < html.index('id="findings"')
    failed = [f for f in results["findings"] if f["status"] == "fail"]
    lowest = min((f for f in failed if f["metric"] == "impact_ratio"), key=lambda f: f["value"])
    assert sentence == (
        f"FAIL: {len(failed)} of {len(results['findings'])} checks failed "
        "(1 with insufficient data to decide); the lowest impact ratio is "
        f"{lowest['value']:.3g} for {lowest['attribute']}={lowest['group']} (threshold 0.8)."
    )


def test_summary_picks_the_worst_impact_ratio_then_other_metrics() -> None:
    findings = [
        {
            "status": "fail",
            "metric": "impact_ratio",
            "value": 0.7,
            "threshold": 0.8,
            "attribute": "sex",
            "group": "Female",
        },
        {
            "status": "fail",
            "metric": "impact_ratio",
            "value": 0.61,
            "threshold": 0.8,
            "attribute": "race",
            "group": "Black",
        },
        {
            "status": "fail",
            "metric": "score_gap",
            "value": -0.3,
            "threshold": 0.02,
            "direction": "max",
            "attribute": "gender",
            "group": "female",
        },
    ] + [{"status": "pass", "metric": "impact_ratio", "value": 0.9, "threshold": 0.8}] * 6
    assert summary_sentence("fail", findings) == (
        "FAIL: 3 of 9 checks failed; the lowest impact ratio is 0.61 for race=Black "
        "(threshold 0.8)."
    )
    gaps = [f for f in findings if f["metric"] != "impact_ratio"]
    gaps.append(
        {
            "status": "fail",
            "metric": "score_gap",
            "value": 0.05,
            "threshold": 0.02,
            "direction": "max",
            "attribute": "race",
            "group": "black",
        }
    )
    assert worst_finding(gaps) is gaps[0]  # |-0.3| is further over 0.02 than 0.05
    passing = [
        {
            "status": "pass",
            "metric": "impact_ratio",
            "value": v,
            "threshold": 0.8,
            "attribute": "sex",
            "group": g,
        }
        for v, g in ((0.95, "Male"), (0.91, "Female"))
    ]
    assert summary_sentence("pass", passing) == (
        "PASS: all 2 checks passed; the lowest impact ratio is 0.91 for sex=Female (threshold 0.8)."
    )
    assert summary_sentence("pass", []) == "PASS: no policy checks were recorded."


def test_passing_checks_are_collapsed_after_the_failing_ones() -> None:
    findings = _section(render_html(hiring_results()), "findings")
    head, collapsed = findings.split('<details class="passed">')
    assert re.findall(r'<tr class="row-(\w+)">', head) == ["fail"] * 3 + ["insufficient_data"]
    assert "<summary>1 passed check</summary>" in collapsed
    assert re.findall(r'<tr class="row-(\w+)">', collapsed) == ["pass"]
    assert '<details class="passed" open>' in render_html(hiring_results(), for_print=True)


def test_clarify_legend_explains_each_abbreviation_shown() -> None:
    results = hiring_results()
    for g in results["probes"][0]["groups"]:
        g["clarify"] = dict(CLARIFY)
    section = _section(render_html(results), "probe-1")
    legend = section[section.index('<dl class="legend"') :]
    for abbr in CLARIFY:
        name, _, good = CLARIFY_TERMS[abbr]
        assert f'<abbr title="{name}">{abbr}</abbr>' in legend
        assert f"Good value: {good}." in legend
    assert "Disparate Impact" in legend and "DPL<" not in legend  # only what is shown
    all_terms = {"CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL", "CDDPL", "GE"} | set(CLARIFY)
    assert set(CLARIFY_TERMS) == all_terms
    keys = ["max_abs_DPL", "KL", "clarify.DI", "selection_rate_ci", "generalized_entropy_index"]
    assert [e["abbr"] for e in clarify_legend(keys)] == ["DPL", "KL", "DI", "GE"]


def test_no_empty_ll144_section_in_model_only_audits() -> None:
    results = hiring_results()
    results["probes"] = [e for e in results["probes"] if e["kind"] != "demographic"]
    html = render_html(results)
    assert 'id="ll144"' not in html and "LL144 summary" not in html
    assert 'id="ll144"' in render_html(hiring_results())


def test_scoring_rate_sentence_is_separated() -> None:
    results = hiring_results()
    for g in results["probes"][0]["groups"]:
        g["scoring_rate"], g["scoring_impact_ratio"] = 0.5, 0.9
    ll = " ".join(_section(render_html(results), "ll144").split())
    assert "favorable decision). Scoring rate: the rate" in ll


def test_contents_bar_links_are_separate_and_wrap() -> None:
    results = hiring_results()
    results["probes"] = [copy.deepcopy(results["probes"][0]) for _ in range(30)]
    html = render_html(results)
    nav = html[html.index('<nav class="toc"') : html.index("</nav>")]
    assert len(re.findall(r"</a>\s+<a ", nav)) >= 30  # a break opportunity between links
    assert re.search(r"nav\.toc \{[^}]*flex-wrap: wrap", html)


def test_sign_off_section() -> None:
    assert 'id="signoff"' not in render_html(hiring_results())  # reviews unknown: left out
    awaiting = render_html(hiring_results(), reviews=[])
    assert "status-awaiting" in awaiting and ">awaiting review<" in awaiting
    reviews = [
        {
            "decision": "approve",
            "reviewer": "Ann <ann@example.com>",
            "comment": XSS,
            "created_at": "2026-11-01T12:00:00+00:00",
        },
        {
            "decision": "reject",
            "reviewer": "Bo",
            "comment": "no",
            "created_at": "2026-11-02T08:00:00",
        },
    ]
    html = render_html(hiring_results(), reviews=reviews)
    signoff = _section(html, "signoff")
    assert 'Review state: <span class="status status-rejected">rejected</span>' in signoff
    assert "Ann &lt;ann@example.com&gt;" in signoff and "2026-11-01 12:00 UTC" in signoff
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in signoff and "<script" not in html
    assert signoff.index("approved") < signoff.index("rejected</span></td>")
    head = html[: html.index('id="findings"')]
    assert 'Sign-off: <span class="status status-rejected">rejected</span>' in head
    assert "by Bo, 2026-11-02 08:00" in head


def test_lending_report_without_findings_still_has_a_sentence() -> None:
    html = render_html(lending_no_label())
    assert '<p class="summary" id="summary">PASS: no policy checks were recorded.</p>' in html
