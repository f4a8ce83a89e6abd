"""`biasaudit run` shows progress on stderr: a bar on a terminal, lines in a pipe, none with -q.

The audit: 3,000 résumés through a name swap on a tiny BERT classifier built from a
config (random weights; tests/probes/conftest.py), with no dataset.protected (a
model-only audit). The acceptance bound: output at least every 5 seconds, from the
start of the process to its end, under a pseudo-terminal and under a pipe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pexpect
import pytest
import yaml

from tests.probes.conftest import WORDS, build_bert

pytestmark = pytest.mark.slow

MAX_GAP_S = 5.0
BIASAUDIT = str(Path(sys.executable).with_name("biasaudit"))
NAMES = ["Emily", "Greg", "Lakisha", "Jamal", "Anne", "Brad", "Latonya", "Darnell"]
ROLES = ["engineer", "teacher", "nurse", "doctor"]


@pytest.fixture(scope="module")
def resume_audit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    build_bert(root / "model", "text-classification", num_labels=2)
    rng = np.random.default_rng(0)
    # words of the tiny model's vocabulary: every text tokenizes differently, so all
    # 3,000 x 2 variants are scored (identical token sequences are scored once)
    texts = [
        f"{NAMES[i % len(NAMES)]} is {ROLES[i % len(ROLES)]}: " + " ".join(rng.choice(WORDS, 24))
        for i in range(3000)
    ]
    pd.DataFrame({"resume": texts}).to_csv(root / "resumes.csv", index=False)
    spec = {
        "name": "resume-name-swap",
        "dataset": {"path": "resumes.csv"},
        "model": {"kind": "huggingface", "path": "model", "task": "text-classification"},
        "probes": [{"kind": "counterfactual-text", "text_column": "resume", "swap": "names"}],
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return root / "spec.yaml"


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}


def _max_gap(times: list[float], start: float, end: float) -> float:
    points = [start, *times, end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def test_progress_under_a_terminal(resume_audit: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    child = pexpect.spawn(
        BIASAUDIT,
        ["run", str(resume_audit), "--out", str(tmp_path / "out"), "--no-store"],
        env=_env(),
        encoding="utf-8",
        timeout=300,
        dimensions=(40, 100),
    )
    arrivals: list[float] = []
    chunks: list[str] = []
    while True:
        try:
            chunks.append(child.read_nonblocking(4096, timeout=60))
            arrivals.append(time.monotonic())
        except pexpect.EOF:
            break
    end = time.monotonic()
    child.close()
    text = "".join(chunks)
    assert child.exitstatus in (0, 1), text[-2000:]
    assert "text/s" in text, text[-2000:]  # tqdm's rate on the bar
    assert "probe 1/1 counterfactual-text" in text
    assert "verdict" in text
    gap = _max_gap(arrivals, start, end)
    assert gap <= MAX_GAP_S, f"{gap:.1f}s without output:\n{text[-2000:]}"


def test_progress_lines_in_a_pipe(resume_audit: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    proc = subprocess.Popen(
        [BIASAUDIT, "run", str(resume_audit), "--out", str(tmp_path / "out"), "--no-store"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read)
    reader.start()
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()  # not communicate(): it would read stderr too, racing the thread
    proc.wait(timeout=300)
    reader.join()
    proc.stdout.close()
    proc.stderr.close()
    end = time.monotonic()
    text = "".join(line for _, line in lines)
    assert proc.returncode in (0, 1), text
    assert "\r" not in text  # plain lines, no bar
    assert "texts/s" in text and "ETA" in text, text
    assert "6000/6000 texts" in text, text
    assert "loading model (huggingface)" in text and "loading dataset resumes.csv" in text
    assert "verdict" in out and "verdict" not in text  # the summary goes to stdout
    gap = _max_gap([t for t, _ in lines], start, end)
    assert gap <= MAX_GAP_S, f"{gap:.1f}s without a line:\n{text}"


def test_quiet_and_a_closed_pipe(resume_audit: Path, tmp_path: Path) -> None:
    spec = Path(shutil.copy(resume_audit, tmp_path / "spec.yaml"))
    for name in ("resumes.csv", "model"):
        (tmp_path / name).symlink_to(resume_audit.parent / name)
    done = subprocess.run(
        f"'{BIASAUDIT}' run '{spec}' --quiet --no-store | head -n 0",
        shell=True,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stderr == "", done.stderr  # quiet: nothing; and no BrokenPipe traceback
