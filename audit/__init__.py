"""biasaudit: bias and fairness audits of models used in high-stakes decisions.

``from audit import run_audit`` runs one audit in-process (embedded mode).
Heavy dependencies (torch, transformers, aif360) are imported lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_audit"]


def run_audit(spec: Any, out_dir: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Run one audit (see :func:`audit.engine.run_audit`)."""
    from audit.engine.run import run_audit as _run

    return _run(spec, out_dir, **kwargs)
