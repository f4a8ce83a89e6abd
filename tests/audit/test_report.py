"""The HTML audit report: verdict first, charts, LL144 summary, escaping, self-containment."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from audit.reports.html import render_html, write_report
from audit.reports.svg import PLOT_LEFT, fmt_ci, fmt_int, fmt_p, fmt_rate, fmt_value

XSS = "<script>alert(1)</script>"
DASH = "—"


def _group(name: str, n: int, selected: int, top: float, **extra: Any) -> dict[str, Any]:
    rate = selected / n
    return {
        "group": name,
        "levels": extra.pop("levels", {}),
        "n": n,
        "share": extra.pop("share", None),
        "selected": selected,
        "selection_rate": rate,
        "selection_rate_ci": [max(0.0, rate - 0.04), min(1.0, rate + 0.04)],
        "impact_ratio": rate / top,
        "impact_ratio_ci": [rate / top - 0.08, rate / top + 0.08],
        "p_value": extra.pop("p_value", 0.2),
        "p_value_adjusted": extra.pop("p_value_adjusted", 0.4),
        "insufficient_data": n < 30,
        "tpr": 0.7,
        "tpr_ci": [0.6, 0.8],
        "fpr": 0.1,
        "fpr_ci": [0.05, 0.15],
        **extra,
    }


def _finding(attribute: str, group: str, value: float, status: str, **kw: Any) -> dict[str, Any]:
    return {
        "probe": kw.pop("probe", "demographic"),
        "attribute": attribute,
        "group": group,
        "metric": kw.pop("metric", "impact_ratio"),
        "value": value,
        "threshold": kw.pop("threshold", 0.8),
        "status": status,
        "p_value": kw.pop("p_value", 0.01),
        "ci": kw.pop("ci", [value - 0.05, value + 0.05]),
        "direction": kw.pop("direction", "min"),
    }


def hiring_results() -> dict[str, Any]:
    """A realistic hiring audit: sex, race (with an injected group name), sex&race, a name swap."""
    sex = [
        _group("Female", 400, 120, 0.4, p_value=2e-4, p_value_adjusted=4e-4),
        _group("Male", 600, 240, 0.4),
    ]
    race = [
        _group("White", 500, 200, 0.4),
        _group("Black", 300, 90, 0.4, p_value_adjusted=3.2e-6),
        _group("Asian", 185, 70, 0.4),
        _group(XSS, 15, 3, 0.4, share=0.015),
    ]
    inter = [
        _group(f"{s}&{r}", n, k, 0.45, levels={"sex": s, "race": r})
        for s, r, n, k in [
            ("Female", "White", 200, 70),
            ("Female", "Black", 150, 40),
            ("Male", "White", 300, 135),
            ("Male", "Black", 150, 50),
        ]
    ]
    return {
        "schema_version": 1,
        "audit": {
            "id": "6f1c0f52-9d5e-4a63-9a70-5b1a2b8e1f01",
            "name": "resume-screener-q2",
            "spec_sha256": "e" * 64,
            "started_at": "2024-05-02T09:14:03+00:00",
            "finished_at": "2024-05-02T09:15:41+00:00",
            "domain": "hiring",
        },
        "model": {"kind": "sklearn", "sha256": "a" * 64},
        "dataset": {"sha256": "b" * 64, "rows": 1000, "path": "data/applicants_2023.csv"},
        "probes": [
            {
                "kind": "demographic",
                "attribute": "sex",
                "attributes": ["sex"],
                "reference_group": "Male",
                "groups": sex,
                "summary": {
                    "demographic_parity_difference": 0.1,
                    "demographic_parity_ratio": 0.75,
                    "equalized_odds_difference": 0.05,
                    "privileged": {"disparate_impact": 0.75},
                },
            },
            {
                "kind": "demographic",
                "attribute": "race",
                "attributes": ["race"],
                "reference_group": "White",
                "groups": race,
                "summary": {"demographic_parity_ratio": 0.5},
                "excluded_groups": [{"group": "Native American", "n": 8, "share": 0.008}],
            },
            {
                "kind": "demographic",
                "attribute": "sex&race",
                "attributes": ["sex", "race"],
                "reference_group": "Male&White",
                "groups": inter,
                "summary": {},
            },
            {
                "kind": "counterfactual-text",
                "attribute": "gender",
                "reference_group": "male",
                "groups": [
                    {
                        "group": "male",
                        "n": 200,
                        "mean_score": 0.61,
                        "mean_score_ci": [0.58, 0.64],
                        "score_gap": 0.0,
                        "score_gap_ci": [0.0, 0.0],
                        "flip_rate": 0.0,
                        "flip_rate_ci": [0.0, 0.02],
                        "p_value": None,
                    },
                    {
                        "group": "female",
                        "n": 200,
                        "mean_score": 0.57,
                        "mean_score_ci": [0.54, 0.6],
                        "score_gap": -0.04,
                        "score_gap_ci": [-0.05, -0.03],
                        "flip_rate": 0.035,
                        "flip_rate_ci": [0.017, 0.07],
                        "p_value": 1.5e-9,
                    },
                ],
                "examples": [
                    {
                        "group": "female",
                        "text": "Greg led the <b>robotics</b> team.",
                        "counterfactual": "Emily led the <img src=x onerror=alert(2)> team.",
                        "score": 0.71,
                        "counterfactual_score": 0.52,
                        "delta": -0.19,
                    },
                    {
                        "group": "female",
                        "text": "Brad managed budgets.",
                        "counterfactual": "Lakisha managed budgets.",
                        "score": 0.6,
                        "counterfactual_score": 0.57,
                        "delta": -0.03,
                    },
                ],
                "summary": {"max_abs_score_gap": 0.04},
            },
        ],
        "findings": [
            _finding("sex", "Male", 1.0, "pass", p_value=None),
            _finding("sex", "Female", 0.75, "fail", p_value=4e-4),
            _finding("race", "Black", 0.75, "fail", p_value=3.2e-6),
            _finding("race", XSS, 0.5, "insufficient_data", p_value=0.3),
            _finding(
                "gender",
                "female",
                -0.04,
                "fail",
                probe="counterfactual-text",
                metric="score_gap",
                threshold=0.02,
                direction="max",
                p_value=1.5e-9,
            ),
        ],
        "verdict": "fail",
        "manifest": {
            "biasaudit_version": "0.1.0",
            "seed": 1234,
            "versions": {"numpy": "2.1.0", "fairlearn": "0.15.0"},
            "thresholds": {"min_impact_ratio": 0.8, "max_score_gap": 0.02},
        },
    }


def lending_no_label() -> dict[str, Any]:
    """A lending audit without label or score, with sparse entries and no findings."""
    return {
        "schema_version": 1,
        "audit": {"id": "l-1", "name": "credit-limits", "domain": "lending"},
        "model": {"kind": "predictions"},
        "dataset": {"rows": 50},
        "probes": [
            {
                "kind": "demographic",
                "attribute": "age_group",
                "groups": [
                    {
                        "group": "<25",
                        "n": 20,
                        "selected": 0,
                        "selection_rate": 0.0,
                        "selection_rate_ci": [0.0, 0.16],
                        "impact_ratio": 0.0,
                        "tpr": None,
                        "fpr": None,
                        "p_value_adjusted": None,
                        "insufficient_data": True,
                    },
                    {
                        "group": "25+",
                        "n": 30,
                        "selected": 12,
                        "selection_rate": 0.4,
                        "impact_ratio": 1.0,
                        "tpr": None,
                        "fpr": None,
                    },
                    {"group": "empty", "n": 0, "selected": 0, "selection_rate": None},
                ],
            },
            {
                "kind": "mlm-stereotype",
                "attribute": "bias_type",
                "groups": [
                    {"group": "gender", "stereotype_score": 0.61, "n": 40, "p_value": 2.5e-5}
                ],
                "examples": [
                    {
                        "group": "gender",
                        "stereotype": "She <cooked>.",
                        "anti_stereotype": "He cooked.",
                    }
                ],
                "summary": {"stereotype_score": 0.61, "p_value": 2.5e-5},
            },
            {"kind": "embedding-association", "attribute": "race"},
            {"kind": "counterfactual-tabular", "attribute": "sex"},
        ],
        "findings": [],
        "verdict": "pass",
    }


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def _attr(el: ET.Element, name: str) -> str:
    """An attribute the renderer always writes (fails the test if it is missing)."""
    value = el.get(name)
    assert value is not None, f"<{el.tag}> has no {name!r} attribute"
    return value


def _section(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    end = html.find("<section", start)
    return html[start : end if end != -1 else len(html)]


def test_verdict_banner_comes_before_group_tables() -> None:
    html = render_html(hiring_results())
    banner = html.index('id="verdict"')
    assert banner < html.index('id="findings"') < html.index('class="groups"')
    head = html[banner : html.index('id="findings"')]
    assert ">FAIL<" in head and "resume-screener-q2" in head
    assert "6f1c0f52-9d5e-4a63-9a70-5b1a2b8e1f01" in head
    assert "a" * 64 in head and "b" * 64 in head and "1,000" in head
    assert "2024-05-02 09:15 UTC" in head
    assert re.search(r"<strong>3</strong> failed", head)
    assert re.search(r"<strong>1</strong> insufficient data", head)


def test_findings_table_lists_failed_first() -> None:
    findings = _section(render_html(hiring_results()), "findings")
    statuses = re.findall(r'<tr class="row-(\w+)">', findings)
    assert statuses == ["fail", "fail", "fail", "insufficient_data", "pass"]
    assert "≤ 0.020" in findings and "≥ 0.800" in findings
    assert "4.00e-04" in findings and "[0.700, 0.800]" in findings


def test_chart_has_one_bar_per_group_and_four_fifths_line() -> None:
    results = hiring_results()
    svgs = _svgs(render_html(results))
    demographic = [e for e in results["probes"] if e["kind"] == "demographic"]
    assert len(svgs) == len(demographic)
    for svg, entry in zip(svgs, demographic, strict=True):
        bars = [r for r in svg.iter("rect") if "bar" in r.get("class", "").split()]
        assert len(bars) == len(entry["groups"])
        widths = [float(_attr(b, "width")) for b in bars]
        rates = [g["selection_rate"] for g in entry["groups"]]
        for w, rate in zip(widths, rates, strict=True):  # bar length proportional to the rate
            assert w / max(widths) == pytest.approx(rate / max(rates), abs=1e-3)
        (line,) = [ln for ln in svg.iter("line") if ln.get("class") == "four-fifths"]
        assert float(_attr(line, "x1")) == pytest.approx(PLOT_LEFT + 0.8 * max(widths), abs=0.02)
        assert float(_attr(line, "data-value")) == pytest.approx(0.8 * max(rates))
        assert "0.8 × " + entry["reference_group"].replace("&", " × ") in ET.tostring(
            svg, encoding="unicode"
        )
    sex_bars = {r.get("data-group"): r for r in svgs[0].iter("rect")}
    assert "fail" in _attr(sex_bars["Female"], "class").split()
    assert "fail" not in _attr(sex_bars["Male"], "class").split()
    race_bars = {r.get("data-group"): r for r in svgs[1].iter("rect")}
    # escaped in HTML, parsed back by XML
    assert "insufficient" in _attr(race_bars[XSS], "class").split()


def test_four_fifths_line_follows_the_reference_group() -> None:
    """Impact ratios divide by the reference group's rate, not a tiny group's higher one."""
    results = hiring_results()
    race = results["probes"][1]
    race["groups"][3]["selected"], race["groups"][3]["selection_rate"] = 12, 0.8  # n = 15
    svg = _svgs(render_html(results))[1]  # the race chart
    widths = {r.get("data-group"): float(_attr(r, "width")) for r in svg.iter("rect")}
    assert widths[XSS] > widths["White"]
    (line,) = [ln for ln in svg.iter("line") if ln.get("class") == "four-fifths"]
    assert float(_attr(line, "x1")) == pytest.approx(PLOT_LEFT + 0.8 * widths["White"], abs=0.02)
    del race["reference_group"]  # no reference given: the highest among groups with enough data
    svg = _svgs(render_html(results))[1]
    (line,) = [ln for ln in svg.iter("line") if ln.get("class") == "four-fifths"]
    assert float(_attr(line, "data-value")) == pytest.approx(0.8 * 0.4)


def test_group_table_shows_cis_holm_p_and_error_rates() -> None:
    section = _section(render_html(hiring_results()), "probe-1")
    assert "Female" in section and "0.300" in section and "[0.260, 0.340]" in section
    assert "0.750" in section and "4.00e-04" in section  # impact ratio, Holm-adjusted p
    assert "TPR" in section and "[0.600, 0.800]" in section
    assert "<code>demographic_parity_difference</code>" in section
    assert "<code>privileged.disparate_impact</code>" in section


def test_ll144_summary_for_hiring() -> None:
    html = render_html(hiring_results())
    ll = _section(html, "ll144")
    assert html.index('id="ll144"') < html.index('class="groups"')
    for heading in ("Sex categories", "Race/Ethnicity categories", "Intersectional categories"):
        assert f"<h3>{heading}" in ll
    for col in ("Number of applicants", "Selection rate", "Impact ratio"):
        assert col in ll
    assert "Scoring rate" not in ll
    assert "Date of the audit:</strong> 2024-05-02" in ll
    assert "data/applicants_2023.csv" in ll
    small, insufficient = ll.split("† Categories")[1], ll.split("Insufficient data")[1]
    assert "Native American (n = 8, 0.8%)" in small.split("</p>")[0]  # excluded_groups
    assert "Native American (n = 8, 0.8%)" in insufficient.split("</p>")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (n = 15, 1.5%)" in ll  # share below 2%
    sex = ll[ll.index("ll144-sex") : ll.index("ll144-race")]
    assert re.search(r"<td>Female</td>\s*<td class=\"num\">400</td>", sex)
    inter = ll[ll.index("ll144-intersectional") :]
    assert "<th>Sex</th><th>Race/Ethnicity</th>" in inter
    assert "<td>Female</td><td>Black</td>" in inter


def test_ll144_shows_selection_and_scoring_rates_when_a_score_is_present() -> None:
    results = hiring_results()
    for g in results["probes"][0]["groups"]:
        g["scoring_rate"], g["scoring_impact_ratio"] = 0.5, 0.9
    ll = _section(render_html(results), "ll144")
    sex = ll[ll.index("ll144-sex") : ll.index("ll144-race")]
    assert '<th class="span" colspan="2">Selection</th>' in sex
    assert '<th class="span" colspan="2">Scoring</th>' in sex
    assert sex.index("Selection rate") < sex.index("Scoring rate")
    assert re.search(r">400</td><td[^>]*>0.300</td><td[^>]*>0.750</td><td[^>]*>0.500</td>", sex)
    for g in results["probes"][0]["groups"]:  # a scoring-only tool: scoring rate alone
        del g["selection_rate"]
    sex = _section(render_html(results), "ll144")
    sex = sex[sex.index("ll144-sex") : sex.index("ll144-race")]
    assert "Scoring rate" in sex and "Selection rate" not in sex and "0.900" in sex


def test_ll144_leaves_out_attributes_it_does_not_cover() -> None:
    results = hiring_results()
    age = copy.deepcopy(results["probes"][0])
    age.update(attribute="age_group", attributes=["age_group"])
    results["probes"].append(age)
    ll = _section(render_html(results), "ll144")
    assert "age_group categories" not in ll and "<th>age_group</th>" not in ll
    assert "not part of the LL144 summary: age_group" in ll


def test_ll144_absent_for_lending() -> None:
    html = render_html(lending_no_label())
    assert 'id="ll144"' not in html
    assert "Number of applicants" not in html and "Sex categories" not in html


def test_strings_from_results_are_escaped() -> None:
    results = hiring_results()
    results["audit"]["name"] = "<i>x</i>"
    results["manifest"]["note<script>"] = "</td><script>"
    results["findings"][0]["status"] = 'x" onclick="alert(3)'
    results["probes"][1]["groups"][0]["group"] = "W' onmouseover='alert(4)"
    html = render_html(results)
    assert 'onclick="alert(3)"' not in html and "onmouseover='alert(4)'" not in html
    assert "<script" not in html.lower() and "<img" not in html and "<i>x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;b&gt;robotics&lt;/b&gt;" in html


def test_report_is_self_contained() -> None:
    html = render_html(hiring_results())
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<style>" in html and "@media print" in html


def test_counterfactual_section() -> None:
    section = _section(render_html(hiring_results()), "probe-4")
    assert "-0.040" in section and "[-0.050, -0.030]" in section and "1.50e-09" in section
    assert "0.035" in section and "[0.017, 0.070]" in section
    assert section.index("-0.190") < section.index("-0.030</td>")  # largest change first
    assert 'class="row-fail"' in section


def test_nulls_and_missing_keys_render_as_dash() -> None:
    html = render_html(lending_no_label())
    assert ">PASS<" in html and "No policy checks were recorded" in html
    assert not re.search(r">\s*(None|nan|null)\s*<", html)
    table = _section(html, "probe-1")
    empty_row = table[table.index("<td>empty") :].split("</tr>")[0]
    assert empty_row.count(f">{DASH}<") >= 3  # selection rate, impact ratio, p-value
    assert "TPR" not in table and "No ground-truth label" in table
    mlm = _section(html, "probe-2")
    assert "Stereotype score" in mlm and "0.610" in mlm and mlm.count("2.50e-05") == 2
    assert "She &lt;cooked&gt;." in mlm and "Anti stereotype" in mlm
    assert "No per-group results" in _section(html, "probe-3")


@pytest.mark.parametrize(
    "results",
    [
        {},
        {"probes": [{}], "findings": [{}]},
        {"verdict": "fail", "probes": [{"kind": "demographic", "groups": [{}]}]},
        {"probes": [{"kind": "counterfactual-text", "groups": [{}], "examples": [{}]}]},
    ],
)
def test_sparse_documents_do_not_crash(results: dict[str, Any]) -> None:
    html = render_html(copy.deepcopy(results))
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_reproducibility_manifest_rendered() -> None:
    section = _section(render_html(hiring_results()), "reproducibility")
    assert "<code>versions.fairlearn</code>" in section and "0.15.0" in section
    assert "<code>seed</code>" in section and ">1234<" in section
    assert re.search(r"<code>thresholds.max_score_gap</code></td><td[^>]*>0.02<", section)
    assert re.search(r"<code>thresholds.min_impact_ratio</code></td><td[^>]*>0.8<", section)
    assert "<code>audit.spec_sha256</code>" in section


def test_number_formatting() -> None:
    assert fmt_rate(0.123456) == "0.123" and fmt_rate(None) == DASH
    assert fmt_rate(float("nan")) == DASH and fmt_rate(True) == DASH
    assert fmt_p(3.2e-6) == "3.20e-06" and fmt_p(0.04567) == "0.046" and fmt_p(None) == DASH
    assert fmt_ci([0.1, 0.25]) == "[0.100, 0.250]" and fmt_ci([0.1, None]) == DASH
    assert fmt_int(12345) == "12,345" and fmt_value(None) == DASH and fmt_value(42) == "42"


def test_write_report(tmp_path: Path) -> None:
    out = write_report(hiring_results(), tmp_path / "nested" / "report.html")
    assert out == tmp_path / "nested" / "report.html"
    assert out.read_text(encoding="utf-8") == render_html(hiring_results())
