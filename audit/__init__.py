"""biasaudit: bias and fairness audits of models used in high-stakes decisions.

``from audit import run_audit`` runs one audit in-process (embedded mode), on files
or on a DataFrame and a fitted model; ``audit_predictions`` audits arrays of
decisions in one line. Both return an :class:`AuditResult`. Heavy dependencies
(torch, transformers, aif360) are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.engine.result import AuditResult

__all__ = ["AuditResult", "audit_predictions", "run_audit"]


def run_audit(spec: Any, out_dir: Any = None, **kwargs: Any) -> AuditResult:
    """Run one audit (see :func:`audit.engine.run.run_audit`)."""
    from audit.engine.run import run_audit as _run

    return _run(spec, out_dir, **kwargs)


def audit_predictions(**kwargs: Any) -> AuditResult:
    """Audit arrays of decisions (see :func:`audit.engine.quick.audit_predictions`)."""
    from audit.engine.quick import audit_predictions as _audit

    return _audit(**kwargs)


def __getattr__(name: str) -> Any:
    if name == "AuditResult":
        from audit.engine.result import AuditResult

        return AuditResult
    raise AttributeError(f"module 'audit' has no attribute {name!r}")
