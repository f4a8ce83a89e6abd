"""Fault injection for the service tests: a worker plug-in that only the tests load.

The production worker holds no test code. The integration tests start their
workers with ``python -m tests.service_hooks worker --queues cpu ...`` (the
``biasaudit worker`` command with this plug-in registered first, see
``tests/integration/conftest.py``); in-process tests call :func:`install`. The
hook runs after the claim, inside the lease (``workers.hooks.after_claim``),
and reads the spec's ``description``:

- ``biasaudit-test:crash`` SIGKILLs the worker process (a worker lost mid-audit);
- ``biasaudit-test:sleep=S`` keeps it busy S seconds, reporting progress and
  honouring a cancel request;
- ``biasaudit-test:hold=S`` spends S whole seconds in one C call that holds the
  GIL (libc ``sleep`` through ``ctypes.PyDLL``): no other thread of the worker
  process runs meanwhile, as in a long native computation.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import sys
import time
from typing import Any

from audit.errors import AuditCancelled
from workers import hooks
from workers.lease import Heartbeat

log = logging.getLogger("biasaudit.test_hooks")
HOOK = re.compile(r"biasaudit-test:(crash|sleep|hold)(?:=([0-9.]+))?")


def hold_gil(seconds: int) -> None:
    """Block in C for ``seconds`` without releasing the GIL."""
    libc = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call
    remaining = int(seconds)
    while remaining > 0:  # sleep() returns early (the seconds left) if a signal arrives
        remaining = int(libc.sleep(ctypes.c_uint(remaining)))


def fault_hook(audit_id: str, spec: dict[str, Any], heartbeat: Heartbeat) -> None:
    """The after-claim hook: crash, sleep or hold the GIL as the description asks."""
    for name, value in HOOK.findall(str(spec.get("description") or "")):
        if name == "crash":
            log.warning("test hook: killing this worker process")
            os.kill(os.getpid(), signal.SIGKILL)
        elif name == "hold":
            log.info("test hook: holding the GIL for %s s", value or 1)
            hold_gil(int(float(value or 1)))
        else:
            deadline = time.monotonic() + float(value or 1)
            while time.monotonic() < deadline:
                if heartbeat.should_cancel():
                    raise AuditCancelled("audit cancelled")
                time.sleep(0.1)


def install() -> None:
    """Register the fault hook in this process (and the processes it forks)."""
    hooks.after_claim(fault_hook)


def uninstall() -> None:
    hooks.remove_after_claim(fault_hook)


def main(argv: list[str] | None = None) -> int:
    """``biasaudit worker`` / ``beat`` with the fault hook installed."""
    from workers.cli import main as cli_main

    install()
    return cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
