"""Reading a PDF back in tests with poppler-utils (scripts/system_packages.txt): its text
(``pdftotext``) and its first page as an image (``pdftoppm``)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text, in reading order, as ``pdftotext -layout`` extracts it."""
    src = tmp_path / "report.pdf"
    src.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-layout", str(src), "-"], check=True, capture_output=True, timeout=120
    )
    return out.stdout.decode("utf-8")


def first_page_png(pdf: bytes, tmp_path: Path, *, dpi: int = 50) -> Path:
    """The first page rendered to PNG by ``pdftoppm`` (its path)."""
    src = tmp_path / "page.pdf"
    src.write_bytes(pdf)
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            str(dpi),
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(src),
            str(tmp_path / "page1"),
        ],
        check=True,
        timeout=120,
    )
    return tmp_path / "page1.png"


def ink_share(png: Path) -> float:
    """The share of pixels that are not near-white (0: a blank page)."""
    from PIL import Image  # a WeasyPrint dependency

    with Image.open(png) as image:
        gray = image.convert("L")
        histogram = gray.histogram()
    return sum(histogram[:240]) / max(1, sum(histogram))
