"""The race-proxy section of the HTML, PDF and CSV reports, on the lending-proxy example.

The example (audit.examples.lending_proxy, as ``make demo`` runs it, fewer rows) is
audited with BIFSG; the report must show the method, the coverage counts of
``summary.proxy``, the probability-weighted, multiple-imputation and threshold results
of every group, and the caveat; the PDF's text (pdftotext) must hold the same.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from audit.engine.run import compute_results
from audit.examples.lending_proxy import generate
from audit.reports.csv_report import render_csv
from audit.reports.html import render_html
from audit.reports.pdf import render_pdf
from audit.reports.svg import fmt_ci, fmt_int, fmt_rate
from audit.sources.census import fetch
from tests.audit.test_report import hiring_results
from tests.pdf_tools import pdf_text


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    fetch()
    spec = generate(tmp_path_factory.mktemp("lending-proxy"), n=3000, seed=0)
    return compute_results(spec)


def _proxy_entry(doc: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in doc["probes"] if p["attribute"] == "race_proxy")


def _folded(text: str) -> str:
    return " ".join(text.split())


def test_html_has_the_proxy_section(results: dict[str, Any]) -> None:
    html = render_html(results)
    assert '<section id="proxy">' in html and 'href="#proxy"' in html
    section = _folded(
        html[
            html.index('<section id="proxy">') : html.index(
                "</section>", html.index('<section id="proxy">')
            )
        ]
    )
    entry = _proxy_entry(results)
    proxy = entry["summary"]["proxy"]
    assert "BIFSG" in section and "ZIP code tabulation area" in section
    for key in ("surname_matched", "first_name_matched", "geography_matched", "neither"):
        assert f">{fmt_int(proxy[key])}<" in section, key
    assert "fallback: the national race distribution" in section
    threshold = proxy["threshold"]["groups"]
    for g in entry["groups"]:
        row = section[section.index(f"<td>{g['group']}") :]
        row = row[: row.index("</tr>")]
        assert fmt_rate(g["selection_rate"]) in row
        assert fmt_rate(g["impact_ratio_mi"]) in row
        if g["group"] != entry["reference_group"]:
            assert fmt_ci(g["impact_ratio_ci"]) in row
        assert fmt_rate(threshold[g["group"]]["selection_rate"]) in row
    assert "understate disparities" in section


def test_pdf_text_holds_the_proxy_section(results: dict[str, Any], tmp_path: Path) -> None:
    text = _folded(pdf_text(render_pdf(results), tmp_path))
    start = text.index("Race estimated by proxy", text.index("Findings"))
    section = text[start : start + 6000]
    assert "BIFSG" in section
    for phrase in ("Coverage", "Probability-weighted", "Multiple imputation", "Threshold ≥ 0.8"):
        assert phrase in section, phrase
    proxy = _proxy_entry(results)["summary"]["proxy"]
    assert fmt_int(proxy["surname_matched"]) in section
    assert "understate disparities" in text


def test_csv_has_the_threshold_results_and_coverage(results: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(results))))
    proxy = _proxy_entry(results)["summary"]["proxy"]
    mine = [r for r in rows if r["attribute"] == "race_proxy" and r["probe"] == "demographic"]
    coverage = {r["metric"]: r["value"] for r in mine if r["group"] == ""}
    assert coverage["proxy.surname_matched"] == str(proxy["surname_matched"])
    assert coverage["proxy.rows"] == str(proxy["rows"])
    ratios = {
        r["group"]: float(r["value"]) for r in mine if r["metric"] == "threshold.impact_ratio"
    }
    for group, g in proxy["threshold"]["groups"].items():
        if g["impact_ratio"] is not None:
            assert ratios[group] == pytest.approx(g["impact_ratio"], abs=1e-12)
    assert "white" in ratios and ratios["white"] == pytest.approx(1.0)


def test_no_proxy_no_section() -> None:
    html = render_html(hiring_results())
    assert 'id="proxy"' not in html and "Race estimated by proxy" not in html
