"""The integration stack reaps services left by a killed test run, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.integration.conftest import OWNER_VAR, reap_orphans


def _sleeper(owner: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, OWNER_VAR: str(owner)}
    code = "import time; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)


def test_reaps_services_whose_test_run_is_gone_and_spares_live_ones() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process: the "killed pytest"
    orphan, ours = _sleeper(gone.pid), _sleeper(os.getpid())
    try:
        time.sleep(0.3)  # let both exec with their environment
        killed = reap_orphans()
        assert orphan.pid in killed and ours.pid not in killed
        assert orphan.wait(timeout=10) != 0
        assert ours.poll() is None
    finally:
        for proc in (orphan, ours):
            proc.kill()
            proc.wait()
