"""The HTML report's layout in a real browser (Debian's headless chromium): at a phone's
width (390 px) and at 1280 px nothing but the wide tables' own boxes scrolls sideways, even
with many sections in the contents bar and long group names."""

from __future__ import annotations

import copy
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from audit.reports.html import render_html
from tests.audit.test_report import hiring_results

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium's window is at least 500 px wide; the report is laid out in an iframe of the width
# under test, and the host page reads the framed document's widths (srcdoc: same origin).
HOST = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" style="border:0;width:{width}px;height:900px" srcdoc="{doc}"></iframe>
<script>
var f = document.getElementById("f");
f.onload = function () {{
  var d = f.contentDocument, w = f.contentWindow.innerWidth, out = [];
  d.querySelectorAll("body *").forEach(function (e) {{
    if (e.closest(".table-wrap, figure")) return;  // these scroll inside their own box
    if (e.getBoundingClientRect().right > w + 1) out.push(e.tagName + "." + e.className);
  }});
  var result = d.documentElement.scrollWidth + "/" + w + "/" + out.join(",");
  document.body.setAttribute("data-result", result);
}};
</script></body></html>"""


def _crowded_results() -> dict:
    results = hiring_results()
    entry = results["probes"][2]  # sex × race, long intersectional names
    many = []
    for i in range(24):
        e = copy.deepcopy(entry)
        e["attribute"] = f"sex&race&region_with_a_long_name_{i}"
        many.append(e)
    results["probes"] += many
    results["probes"][0]["groups"][0]["group"] = "A-very-long-group-name-without-any-spaces-" * 3
    return results


def _measure(doc: str, width: int, tmp_path: Path) -> tuple[int, int, str]:
    host = tmp_path / f"host_{width}.html"
    host.write_text(HOST.format(width=width, doc=html.escape(doc, quote=True)), encoding="utf-8")
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"]
    args += ["--virtual-time-budget=5000", "--dump-dom", host.as_uri()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r'data-result="(\d+)/(\d+)/([^"]*)"', out)
    assert match, out[-2000:]
    return int(match.group(1)), int(match.group(2)), match.group(3)


@pytest.mark.slow
@pytest.mark.parametrize("width", [390, 1280])
def test_nothing_overflows_the_page(width: int, tmp_path: Path) -> None:
    doc = render_html(_crowded_results())
    scroll_width, inner, overflowing = _measure(doc, width, tmp_path)
    assert inner == width
    assert overflowing == "" and scroll_width <= width, (scroll_width, overflowing)


@pytest.mark.slow
def test_the_old_contents_bar_did_overflow(tmp_path: Path) -> None:
    """The check can fail: links without a break between them run off a phone's screen."""
    doc = render_html(_crowded_results())
    nav = doc[doc.index('<nav class="toc"') : doc.index("</nav>")]
    glued = re.sub(r"</a>\s+<a ", "</a><a ", nav).replace("flex-wrap: wrap", "")
    glued = glued.replace('class="toc"', 'class="toc" style="display:block;white-space:nowrap"')
    scroll_width, _, overflowing = _measure(doc.replace(nav, glued), 390, tmp_path)
    assert scroll_width > 390 and "A." in overflowing
