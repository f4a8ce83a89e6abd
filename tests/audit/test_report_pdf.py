"""The PDF report: WeasyPrint from the HTML report, read back with poppler (pdftoppm, pdftotext)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.reports.pdf import html_to_pdf, render_pdf
from tests.audit.test_report import hiring_results
from tests.pdf_tools import first_page_png, ink_share, pdf_text

REVIEWS = [
    {
        "decision": "reject",
        "reviewer": "Rita Reviewer <rita@example.com>",
        "comment": "Black applicants: impact ratio below 0.8",
        "created_at": "2026-11-02T10:00:00+00:00",
    },
    {
        "decision": "approve",
        "reviewer": "Omar Officer",
        "comment": "Remediation plan accepted",
        "created_at": "2026-11-03T09:30:00+00:00",
    },
]


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return render_pdf(hiring_results(), reviews=REVIEWS)


def test_first_page_is_a_rendered_page_not_blank(pdf: bytes, tmp_path: Path) -> None:
    assert pdf.startswith(b"%PDF-")
    png = first_page_png(pdf, tmp_path)
    share = ink_share(png)
    assert 0.02 < share < 0.9, share  # text, the verdict banner and tables: ink, mostly paper


def test_text_holds_verdict_summary_ll144_and_reviewers(pdf: bytes, tmp_path: Path) -> None:
    text = " ".join(pdf_text(pdf, tmp_path).split())  # layout spacing folded
    assert "FAIL" in text and "resume-screener-q2" in text
    assert "FAIL: 3 of 5 checks failed" in text
    for heading in ("Sex categories", "Race/Ethnicity categories", "Intersectional categories"):
        assert heading in text
    for column in ("Number of applicants", "Selection rate", "Impact ratio"):
        assert column in text
    assert "Sign-off" in text and "Review state: approved" in text
    assert "Rita Reviewer <rita@example.com>" in text and "Omar Officer" in text
    assert "Remediation plan accepted" in text
    assert "Page 1 of" in text  # page numbers from the print CSS


def test_passed_checks_are_printed_open(pdf: bytes, tmp_path: Path) -> None:
    text = " ".join(pdf_text(pdf, tmp_path).split())
    passed = text[text.index("1 passed check") :]
    assert "pass" in passed[:400]  # the collapsed table is in the PDF, not hidden


def test_without_reviews_there_is_no_sign_off(tmp_path: Path) -> None:
    text = pdf_text(render_pdf({"verdict": "pass", "audit": {"name": "x"}}), tmp_path)
    assert "PASS" in text and "Sign-off" not in text
    awaiting = pdf_text(render_pdf({"verdict": "pass"}, reviews=[]), tmp_path)
    assert "awaiting review" in awaiting


def test_renderer_fetches_nothing(tmp_path: Path) -> None:
    """A stylesheet on disk that would add text if loaded: never read (nor any other URL)."""
    css = tmp_path / "evil.css"
    css.write_text('body::after { content: "FETCHED-FROM-DISK"; }', encoding="utf-8")
    html = (
        f'<html><head><link rel="stylesheet" href="{css.as_uri()}"></head><body>'
        f'<p>visible</p><img src="{css.as_uri()}"><img src="http://127.0.0.1:9/x.png"></body></html>'
    )
    text = pdf_text(html_to_pdf(html), tmp_path)
    assert "visible" in text and "FETCHED-FROM-DISK" not in text
    import weasyprint  # the same document with WeasyPrint's default fetcher does read it

    loaded = weasyprint.HTML(string=html).write_pdf()
    assert "FETCHED-FROM-DISK" in pdf_text(loaded, tmp_path)


def test_results_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="results must be the results.json mapping"):
        render_pdf(["not", "a", "mapping"])  # type: ignore[arg-type]
