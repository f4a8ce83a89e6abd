"""The CSV report: one row per (probe, attribute, group, metric), safe to open in a spreadsheet.

Every numeric metric of every group is a row, with its 95% CI (the ``<metric>_ci``
field), the group's size and, where a policy check was made on it, the
finding's threshold, p-value and status. Findings on metrics a group does not
carry (e.g. ``lda_available``) are rows too, so every finding appears. A race-proxy
entry adds its coverage counts (``proxy.surname_matched`` ..., group empty) and the
posterior >= 0.8 threshold-assignment results (``threshold.selection_rate``,
``threshold.impact_ratio`` per group).

Formula-safe (CONTRACT §7; OWASP "CSV injection"): every cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed by ``'``, so a
group named ``=HYPERLINK(...)`` is shown as text, never run. Negative numbers
are therefore written ``'-0.04``: spreadsheets show them as text; strip the
quote to compute with them (``pandas.read_csv(...).replace("^'", "", regex=True)``).

>>> text = render_csv({"probes": [{"kind": "demographic", "attribute": "race",
...     "groups": [{"group": "=1+1", "n": 10, "selection_rate": 0.5}]}], "findings": []})
>>> text.splitlines()[1]
"demographic,race,'=1+1,selection_rate,0.5,,,10,,,,"
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from audit.reports.svg import flatten, num

COLUMNS = (
    "probe",
    "attribute",
    "group",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "p_value",
    "threshold",
    "direction",
    "status",
)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# group fields that describe the group rather than measure it
_NOT_METRICS = {"n", "p_value", "p_value_adjusted", "insufficient_data", "group"}


def safe_cell(value: Any) -> str:
    """One cell as text, prefixed by ``'`` when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _ci(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return num(value[0]), num(value[1])
    return None, None


def _metrics(group: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(metric, value, ci) of a group's numeric fields (nested ones dotted: ``clarify.DI``)."""
    flat = flatten(group)
    for key, value in flat.items():
        if key in _NOT_METRICS or key.endswith("_ci") or key.startswith("levels."):
            continue
        if isinstance(value, bool) or num(value) is None:
            continue
        yield key, value, flat.get(f"{key}_ci", group.get(f"{key}_ci"))


def _row(key: tuple[str, str, str, str], value: Any, ci: Any, n: Any, p: Any, f: Mapping) -> list:
    low, high = _ci(ci if ci is not None else f.get("ci"))
    tail = [f.get("threshold"), f.get("direction"), f.get("status")]
    return [*key, value, low, high, n, f.get("p_value", p), *tail]


def _proxy_rows(entry: Mapping[str, Any]) -> Iterator[tuple[str, str, Any, Any]]:
    """(group, metric, value, n) of a race-proxy block: the coverage counts (group empty,
    ``proxy.<count>``) and the threshold-assignment results (``threshold.<metric>``)."""
    summary = entry.get("summary")
    proxy = summary.get("proxy") if isinstance(summary, Mapping) else None
    if not isinstance(proxy, Mapping):
        return
    for key, value in proxy.items():
        if not isinstance(value, bool) and num(value) is not None:
            yield "", f"proxy.{key}", value, None
    threshold = proxy.get("threshold")
    groups = threshold.get("groups") if isinstance(threshold, Mapping) else None
    for group, metrics in (groups or {}).items():
        for metric in ("selection_rate", "impact_ratio"):
            if num(metrics.get(metric)) is not None:
                yield str(group), f"threshold.{metric}", metrics[metric], metrics.get("n")


def csv_rows(results: Mapping[str, Any]) -> Iterator[list[Any]]:
    """The report's rows (raw values, not yet made safe), in results order."""
    findings = [f for f in results.get("findings") or [] if isinstance(f, Mapping)]
    by_key = {
        (str(f.get("probe")), str(f.get("attribute")), str(f.get("group")), str(f.get("metric"))): f
        for f in findings
    }
    seen: set[tuple[str, str, str, str]] = set()
    for entry in results.get("probes") or []:
        if not isinstance(entry, Mapping):
            continue
        kind, attribute = str(entry.get("kind")), str(entry.get("attribute"))
        for g in entry.get("groups") or []:
            if not isinstance(g, Mapping):
                continue
            for metric, value, ci in _metrics(g):
                key = (kind, attribute, str(g.get("group")), metric)
                seen.add(key)
                # a group's own p-value tests its selection rate against the reference
                p_value = g.get("p_value") if metric == "impact_ratio" else None
                yield _row(key, value, ci, g.get("n"), p_value, by_key.get(key, {}))
        for group, metric, value, n in _proxy_rows(entry):
            yield _row((kind, attribute, group, metric), value, None, n, None, {})
    for key, f in by_key.items():
        if key not in seen:
            yield _row(key, f.get("value"), None, f.get("n"), None, f)


def render_csv(results: Mapping[str, Any]) -> str:
    """The CSV report of a results document (header row first; ``\\r\\n`` line ends)."""
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be the results.json mapping, got {type(results).__name__}")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in csv_rows(results):
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()
