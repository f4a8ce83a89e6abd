"""Extension point: callables run after an audit is claimed, inside its lease.

A plug-in registers a function ``hook(audit_id, spec, heartbeat)`` with
:func:`after_claim`; it runs in the worker process after the claim and before
the computation, with the heartbeat the engine uses (``heartbeat.progress``,
``heartbeat.should_cancel``). A hook that raises ``AuditCancelled`` cancels
the audit; any other exception counts as a crash of the attempt. The service
registers none: the integration tests load their fault-injection hooks this
way (``tests/service_hooks.py``), so production workers carry no test code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.lease import Heartbeat

AfterClaim = Callable[[str, dict[str, Any], "Heartbeat"], None]
_AFTER_CLAIM: list[AfterClaim] = []


def after_claim(hook: AfterClaim) -> AfterClaim:
    """Register ``hook`` (usable as a decorator); registering twice runs it once."""
    if hook not in _AFTER_CLAIM:
        _AFTER_CLAIM.append(hook)
    return hook


def remove_after_claim(hook: AfterClaim) -> None:
    """Unregister ``hook`` (no error if it was not registered)."""
    if hook in _AFTER_CLAIM:
        _AFTER_CLAIM.remove(hook)


def run_after_claim(audit_id: str, spec: dict[str, Any], heartbeat: Heartbeat) -> None:
    """Run the registered hooks in registration order."""
    for hook in list(_AFTER_CLAIM):
        hook(audit_id, spec, heartbeat)
