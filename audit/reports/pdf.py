"""A PDF summary of an audit, written by a small pure-Python PDF writer.

Why not the HTML report as PDF: that needs a browser engine (headless
Chromium) or WeasyPrint with its native libraries, too heavy for the API
image. This writes a plain, printable PDF 1.4 from results.json alone: the
verdict, provenance (audit, dataset and model hashes) and every finding, in
the standard Courier / Helvetica fonts (no embedding, no dependencies).
The full report with charts stays the HTML one.

>>> pdf = render_pdf({"verdict": "pass", "audit": {"name": "demo"}, "findings": []})
>>> pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
True
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

PAGE_W, PAGE_H = 595, 842  # A4 in points
MARGIN = 50
FONT_SIZE = 9
LEADING = 12
CHARS = 90  # Courier is 0.6 em wide: 90 * 5.4pt fits the 495pt text width
LINES_PER_PAGE = (PAGE_H - 2 * MARGIN) // LEADING - 2


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """The text of the summary, one list item per printed line (already wrapped)."""
    audit = results.get("audit") or {}
    dataset = results.get("dataset") or {}
    model = results.get("model") or {}
    findings = list(results.get("findings") or [])
    failed = [f for f in findings if f.get("status") == "fail"]
    lines = [
        f"Verdict: {str(results.get('verdict', '-')).upper()}",
        f"{len(findings)} findings, {len(failed)} failed",
        "",
        f"Audit:    {_fmt(audit.get('name'))} ({_fmt(audit.get('id'))})",
        f"Started:  {_fmt(audit.get('started_at'))}   Finished: {_fmt(audit.get('finished_at'))}",
        f"Spec:     sha256 {_fmt(audit.get('spec_sha256'))}",
        f"Dataset:  sha256 {_fmt(dataset.get('sha256'))}, {_fmt(dataset.get('rows'))} rows",
        f"Model:    {_fmt(model.get('kind'))}, sha256 {_fmt(model.get('sha256'))}",
        "",
        "Findings (status  probe  attribute = group: metric value / threshold, p-value)",
        "",
    ]
    order = {"fail": 0, "insufficient_data": 1, "pass": 2}
    for f in sorted(findings, key=lambda f: order.get(str(f.get("status")), 3)):
        text = (
            f"{str(f.get('status', '-')).upper():<18} {_fmt(f.get('probe'))}  "
            f"{_fmt(f.get('attribute'))} = {_fmt(f.get('group'))}: {_fmt(f.get('metric'))} "
            f"{_fmt(f.get('value'))} / {_fmt(f.get('threshold'))}, p={_fmt(f.get('p_value'))}"
        )
        lines.extend(textwrap.wrap(text, CHARS, subsequent_indent=" " * 19) or [""])
    return lines


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _page_stream(title: str, lines: list[str], page: int, pages: int) -> bytes:
    y = PAGE_H - MARGIN
    out = [b"BT", b"/F2 14 Tf", f"{MARGIN} {y} Td".encode(), b"(" + _escape(title) + b") Tj", b"ET"]
    y -= 2 * LEADING
    out += [b"BT", f"/F1 {FONT_SIZE} Tf".encode(), f"{LEADING} TL".encode()]
    out += [f"{MARGIN} {y} Td".encode()]
    for line in lines:
        out.append(b"(" + _escape(line) + b") Tj T*")
    out += [b"ET", b"BT", f"/F1 {FONT_SIZE - 1} Tf".encode()]
    out += [f"{MARGIN} {MARGIN - 20} Td".encode(), _escape_footer(page, pages), b"ET"]
    return b"\n".join(out)


def _escape_footer(page: int, pages: int) -> bytes:
    return b"(" + _escape(f"biasaudit - page {page} of {pages}") + b") Tj"


def render_pdf(results: Mapping[str, Any]) -> bytes:
    """A PDF 1.4 document summarising ``results`` (the results.json mapping)."""
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be the results.json mapping, got {type(results).__name__}")
    name = (results.get("audit") or {}).get("name") or "audit"
    title = f"Bias audit: {name}"
    lines = summary_lines(results)
    chunks = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    n = len(chunks)
    # objects: 1 catalog, 2 pages, 3 Courier, 4 Helvetica-Bold, then (page, content) pairs
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(f"{5 + 2 * i} 0 R".encode() for i in range(n))
        + f"] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    for i, chunk in enumerate(chunks):
        stream = _page_stream(title, chunk, i + 1, n)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
            "/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
            f"/Contents {6 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
