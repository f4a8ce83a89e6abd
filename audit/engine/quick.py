"""``audit_predictions``: a fairlearn-style one-liner for arrays of decisions.

>>> from audit import audit_predictions
>>> res = audit_predictions(
...     y_true=[1, 0, 1, 1, 0, 1] * 20,
...     y_pred=[1, 0, 1, 0, 0, 1] * 20,
...     sensitive_features={"sex": ["f", "m", "f", "m", "f", "m"] * 20},
... )
>>> res.verdict
'pass'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.engine.result import AuditResult

MSG_LENGTHS = "{field}: has {n} values, y_pred has {expected}; every array needs one per row"


def _sensitive_frame(sensitive_features: Any) -> Any:
    """Sensitive features as a DataFrame: a DataFrame, a Series, a dict of arrays or one array."""
    import pandas as pd

    if isinstance(sensitive_features, pd.DataFrame):
        return sensitive_features.reset_index(drop=True)
    if isinstance(sensitive_features, pd.Series):
        name = sensitive_features.name if sensitive_features.name is not None else "group"
        return pd.DataFrame({str(name): sensitive_features.to_numpy()})
    if isinstance(sensitive_features, Mapping):
        return pd.DataFrame({str(k): list(v) for k, v in sensitive_features.items()})
    return pd.DataFrame({"group": list(sensitive_features)})


def _free_name(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"_{name}"
    return name


def audit_predictions(
    *,
    y_pred: Any,
    sensitive_features: Any,
    y_true: Any = None,
    y_score: Any = None,
    favorable_label: Any = 1,
    domain: str = "general",
    name: str = "predictions",
    probes: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
    store: bool = False,
) -> AuditResult:
    """Audit decisions given as arrays, like fairlearn's ``MetricFrame``.

    Parameters
    ----------
    y_pred : the model's decisions (one per row); selected = equal to ``favorable_label``.
    sensitive_features : a DataFrame, a dict of arrays (``{"sex": [...], "race": [...]}``),
        a named Series or one array (then called ``group``): the protected attributes.
    y_true, y_score : ground truth (enables TPR, FPR, ...) and scores (AUC, calibration).
    probes, policy, domain : as in a spec (default: the demographic probe, the domain's policy).
    store : also record the audit in the embedded database (default: no).

    Returns the :class:`~audit.engine.result.AuditResult` of :func:`audit.run_audit`.
    """
    from audit.engine.run import run_audit
    from audit.errors import AuditInputError

    frame = _sensitive_frame(sensitive_features)
    protected = [str(c) for c in frame.columns]
    taken = set(protected)
    dataset: dict[str, Any] = {"protected": protected, "favorable_label": favorable_label}
    for field, values, role in (
        ("y_pred", y_pred, "prediction"),
        ("y_true", y_true, "label"),
        ("y_score", y_score, "score"),
    ):
        if values is None:
            continue
        values = list(values)
        if len(values) != len(frame):
            raise AuditInputError(
                MSG_LENGTHS.format(field=field, n=len(values), expected=len(frame)), field=field
            )
        column = _free_name(field, taken)
        taken.add(column)
        frame[column] = values
        dataset[role] = column
    spec: dict[str, Any] = {"name": name, "domain": domain, "dataset": dataset}
    if probes is not None:
        spec["probes"] = probes
    if policy is not None:
        spec["policy"] = policy
    return run_audit(spec, data=frame, store=store)
