"""The integration stack reaps services left by a killed test run, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

from tests.integration.conftest import OWNER_VAR, reap_orphans, wait_for


def _sleeper(owner: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, OWNER_VAR: str(owner)}
    code = "import time; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)


def _has_owner(environ: Path) -> bool:
    return f"{OWNER_VAR}=".encode() in environ.read_bytes()


def test_reaps_services_whose_test_run_is_gone_and_spares_live_ones() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process: the "killed pytest"
    orphan, ours = _sleeper(gone.pid), _sleeper(os.getpid())
    try:
        # Popen may return before /proc shows the exec'd child's environment (it read
        # empty here at times): wait for it, not for a moment
        for proc in (orphan, ours):
            wait_for(
                partial(_has_owner, Path(f"/proc/{proc.pid}/environ")),
                timeout=30,
                what=f"process {proc.pid} to exec with {OWNER_VAR}",
                step=0.01,
            )
        killed = reap_orphans()
        assert orphan.pid in killed and ours.pid not in killed
        assert orphan.wait(timeout=10) != 0
        assert ours.poll() is None
    finally:
        for proc in (orphan, ours):
            proc.kill()
            proc.wait()
