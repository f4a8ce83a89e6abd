"""The PDF report: the HTML report laid out for print by WeasyPrint.

The same template as ``report.html`` (:mod:`audit.reports.html`), with its
print CSS: A4 pages with margins, the audit's name at the top and "Page n of
m" at the bottom of every page, table headers repeated and rows never cut
across pages, charts as the same inline SVG (WeasyPrint draws it as vectors),
and the collapsed parts opened. The text is selectable and searchable.

Nothing is fetched while rendering: every resource is inline, and the URL
fetcher refuses any URL, so a document can never make the renderer read a
file or reach the network. WeasyPrint needs Pango and HarfBuzz (Debian:
``libpango-1.0-0``, ``libpangoft2-1.0-0``, ``libharfbuzz-subset0``); it is
imported on first use, so the API and the CLI start without loading it.

>>> pdf = render_pdf({"verdict": "pass", "audit": {"name": "demo"}, "probes": []})
>>> pdf.startswith(b"%PDF-")
True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from audit.reports.html import render_html

MSG_NO_FETCH = "the PDF renderer loads no external resources (refused {url!r})"


def html_to_pdf(html: str) -> bytes:
    """A self-contained HTML report (as :func:`render_html` writes it) as PDF bytes."""
    import weasyprint

    class NoFetch(weasyprint.URLFetcher):  # type: ignore[misc]
        """Refuses every URL: file, http, data, ... (the report is self-contained)."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            raise ValueError(MSG_NO_FETCH.format(url=url))

    # WeasyPrint logs every CSS property it does not support at WARNING (interactive-only
    # rules of the screen stylesheet); they do not change the printed layout.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    document = weasyprint.HTML(string=html, base_url=None, url_fetcher=NoFetch())
    pdf = document.write_pdf()
    assert isinstance(pdf, bytes)
    return pdf


def print_html(
    results: Mapping[str, Any], *, reviews: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """The HTML the PDF is laid out from (collapsed parts open)."""
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be the results.json mapping, got {type(results).__name__}")
    return render_html(results, reviews=reviews, for_print=True)


def render_pdf(
    results: Mapping[str, Any], *, reviews: Sequence[Mapping[str, Any]] | None = None
) -> bytes:
    """The full audit report as PDF: verdict, summary, findings, charts, group tables,
    the LL144 summary, sign-off (``reviews``, as :func:`render_html` takes them), provenance."""
    return html_to_pdf(print_html(results, reviews=reviews))
