"""The lda-search report section: chart geometry, escaping, baseline/best/drivers rows."""

from __future__ import annotations

from audit.reports.frontier import LEFT, RIGHT, W, frontier_chart, frontier_section


def _entry() -> dict:
    return {
        "kind": "lda-search",
        "attribute": "sex",
        "baseline": {"name": "model in use", "performance": 0.78, "min_impact_ratio": 0.59},
        "alternatives": [
            {
                "name": "drop:proxy",
                "family": "drop",
                "performance": 0.782,
                "min_impact_ratio": 0.85,
                "performance_loss": -0.002,
            },
            {
                "name": "<script>x</script>",
                "family": "reduction",
                "performance": 0.772,
                "min_impact_ratio": 0.98,
                "performance_loss": 0.008,
            },
        ],  # fmt: skip
        "frontier": ["drop:proxy", "<script>x</script>"],
        "best": {"name": "<script>x</script>", "performance": 0.772, "min_impact_ratio": 0.98},
        "drivers": [{"feature": "proxy", "min_impact_ratio_gain": 0.26, "performance_loss": 0.0}],
        "summary": {"lda_needed": True, "lda_found": True, "metric": "auc"},
        "groups": [],
    }


def test_chart_escapes_names_and_marks_four_fifths() -> None:
    svg = frontier_chart(_entry(), "auc")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    x80 = LEFT + 0.8 * (W - RIGHT - LEFT)
    assert f'x1="{x80:.1f}"' in svg  # the dashed four-fifths line
    assert svg.count("<circle") == 3


def test_section_rows() -> None:
    s = frontier_section(_entry(), "fail")
    assert s["type"] == "frontier" and s["found"] and s["needed"]
    assert s["baseline"]["min_ir"] == "0.590"
    assert s["best"]["name"] == "<script>x</script>"  # escaped by the template's autoescape
    assert [r["name"] for r in s["frontier_rows"]] == ["drop:proxy", "<script>x</script>"]
    assert s["drivers"][0]["feature"] == "proxy"
