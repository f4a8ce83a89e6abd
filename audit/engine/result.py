"""``AuditResult``: what :func:`audit.run_audit` returns, for scripts and notebooks.

A ``dict`` equal to the ``results.json`` document (``res["verdict"]`` keeps
working, ``json.dumps(res)`` writes it), with views a data scientist reaches for
first, after fairlearn's ``MetricFrame`` and scikit-learn's reports:
``.verdict``, ``.findings`` and ``.groups(attribute)`` as pandas DataFrames,
``.to_dict()``, ``.save(dir)``, ``.report()`` (the HTML report), ``.compare(other)``
(what changed between two audits, e.g. two model versions) and ``_repr_html_``
(Jupyter shows the verdict, the findings and a selection-rate chart inline).
"""

from __future__ import annotations

import copy
import html
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from audit.engine.results_model import AuditResults

FINDING_COLUMNS = [
    "probe",
    "attribute",
    "group",
    "metric",
    "value",
    "threshold",
    "status",
    "p_value",
    "ci",
    "direction",
    "note",
]
_KEY = ["probe", "attribute", "group", "metric"]
MAX_INLINE_FINDINGS = 15


class AuditResult(dict[str, Any]):
    """The results of one audit: a mapping equal to results.json, with DataFrame views."""

    @property
    def verdict(self) -> str:
        """``pass`` or ``fail`` (``fail`` when any finding fails)."""
        return str(self["verdict"])

    def typed(self) -> AuditResults:
        """The document as the typed model ``AuditResults`` (each entry in its probe's
        model, e.g. ``res.typed().probes[0].groups[0].selection_rate``); validating it
        raises ``pydantic.ValidationError`` naming the field at fault."""
        from audit.engine.results_model import AuditResults

        return AuditResults.model_validate(dict(self))

    @property
    def attributes(self) -> list[str]:
        """The attributes (and intersections, ``a&b``) that have entries, in order."""
        seen: dict[str, None] = {}
        for entry in self.get("probes", []):
            seen.setdefault(str(entry.get("attribute")), None)
        return list(seen)

    @property
    def findings(self) -> pd.DataFrame:
        """One row per finding (policy check on a group and metric), failed first."""
        frame = pd.DataFrame(self.get("findings", []))
        for col in FINDING_COLUMNS:
            if col not in frame.columns:
                frame[col] = None
        order = {"fail": 0, "insufficient_data": 1, "pass": 2, "not_applicable": 3}
        frame = frame.assign(_order=frame["status"].map(order).fillna(4))
        frame = frame.sort_values("_order", kind="stable").drop(columns="_order")
        return frame[FINDING_COLUMNS + [c for c in frame.columns if c not in FINDING_COLUMNS]]

    def groups(self, attribute: str, probe: str | None = None) -> pd.DataFrame:
        """One row per group of ``attribute`` (``"race&sex"`` for an intersection).

        With several probes on the attribute, rows of each carry a ``probe`` column;
        ``probe=`` keeps one. Raises ``KeyError`` naming the attributes there are.
        """
        rows: list[dict[str, Any]] = []
        for entry in self.get("probes", []):
            if entry.get("attribute") != attribute:
                continue
            if probe is not None and entry.get("kind") != probe:
                continue
            for g in entry.get("groups", []):
                rows.append({"probe": entry.get("kind"), **g})
        if not rows:
            what = f" for probe {probe!r}" if probe else ""
            raise KeyError(
                f"attribute {attribute!r}{what} not in the results; attributes: "
                f"{', '.join(self.attributes)}"
            )
        frame = pd.DataFrame(rows)
        return frame.set_index("group") if frame["group"].is_unique else frame

    def to_dict(self) -> dict[str, Any]:
        """A plain, deep-copied dict: the results.json document."""
        return copy.deepcopy(dict(self))

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``results.json`` and ``report.html`` into ``out_dir``; returns their paths."""
        from audit.engine.outputs import write_outputs

        return write_outputs(self.to_dict(), Path(out_dir))

    def report(self) -> str:
        """The self-contained HTML report (as ``report.html``)."""
        from audit.reports.html import render_html

        return render_html(self.to_dict())

    def compare(self, other: Mapping[str, Any], *, tolerance: float = 1e-9) -> pd.DataFrame:
        """Findings side by side with ``other`` (another audit, e.g. a new model version).

        One row per (probe, attribute, group, metric) in either audit: ``value`` and
        ``status`` of each (``_self``, ``_other``), ``delta`` (other minus self) and
        ``changed`` (status differs, or the value moved by more than ``tolerance``).
        """
        mine = self.findings[[*_KEY, "value", "status"]]
        theirs = AuditResult(other).findings[[*_KEY, "value", "status"]]
        both = mine.merge(theirs, on=_KEY, how="outer", suffixes=("_self", "_other"))
        both["delta"] = pd.to_numeric(both["value_other"], errors="coerce") - pd.to_numeric(
            both["value_self"], errors="coerce"
        )
        moved = both["delta"].abs() > tolerance
        both["changed"] = (both["status_self"] != both["status_other"]) | moved.fillna(False)
        return both.sort_values(["changed", *_KEY], ascending=[False, True, True, True, True])

    # ------------------------------------------------------------------ Jupyter
    def _chart(self) -> str:
        from audit.reports.svg import Bar, selection_rate_chart

        failing = {
            (f["attribute"], f["group"]) for f in self.get("findings", []) if f["status"] == "fail"
        }
        for entry in self.get("probes", []):
            groups = entry.get("groups") or []
            if not groups or not all("selection_rate" in g for g in groups):
                continue
            attr = str(entry.get("attribute"))
            bars = [
                Bar(
                    label=str(g["group"]),
                    value=g.get("selection_rate"),
                    ci=tuple(g["selection_rate_ci"]) if g.get("selection_rate_ci") else None,
                    failing=(attr, str(g["group"])) in failing,
                    insufficient=bool(g.get("insufficient_data")),
                    reference=str(g["group"]) == str(entry.get("reference_group")),
                )
                for g in groups
            ]
            return selection_rate_chart(bars, title=f"Selection rate by {attr}")
        return ""

    def _repr_html_(self) -> str:
        audit = self.get("audit", {})
        findings = self.findings
        counts = findings["status"].value_counts().to_dict()
        colour = "#b00020" if self.verdict == "fail" else "#1b5e20"
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        shown = findings.head(MAX_INLINE_FINDINGS).drop(columns=["ci", "direction"])
        table = shown.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.3g}")
        more = len(findings) - len(shown)
        tail = f"<p>… and {more} more findings (<code>.findings</code>)</p>" if more > 0 else ""
        return (
            f"<div><h3>{html.escape(str(audit.get('name', 'audit')))}: verdict "
            f'<span style="color:{colour}">{html.escape(self.verdict.upper())}</span></h3>'
            f"<p>{len(findings)} findings: {html.escape(summary)}</p>"
            f"{table}{tail}{self._chart()}</div>"
        )

    def __repr__(self) -> str:
        name = self.get("audit", {}).get("name")
        return f"AuditResult(name={name!r}, verdict={self.get('verdict')!r})"
