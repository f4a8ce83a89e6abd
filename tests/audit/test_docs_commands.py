"""Every shell command and Python snippet in README.md, docs/*.md and examples/*/README.md runs.

What a reader copies must work as written. The test copies the repository (the files
git tracks or would track) into a fresh folder, puts the project's ``.venv`` in it,
gets the ``make demo`` output there (the session's ``biasaudit-demo/`` when it exists,
else it runs ``make demo``), and then, from that folder:

- runs each fenced ``bash`` block, one logical command at a time (comments removed,
  ``\\`` continuations joined) in one shell: a command must exit 0, except
  ``biasaudit run`` which may also exit 1 ("a finding failed", documented);
- runs the ``python`` blocks of each file in order in one interpreter;
- validates each ``yaml`` block that is a whole spec (it has a top-level ``name``) with
  the spec parser (a spec that needs a model folder cannot run here; the progress test
  runs the counterfactual one end to end).

A block right after ``<!-- docs-test: skip REASON -->`` is not run; the reason is
required and such blocks are few (the service walkthroughs need a running server and
worker: tests/integration covers them). ``make test`` is not run here: this test is
part of it. Blocks fenced as ``text`` are illustrations, not commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from audit.engine.spec import parse_spec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS += sorted((ROOT / "examples").glob("*/README.md"))
FENCE = re.compile(
    r"(?P<skip><!-- docs-test: skip(?P<reason>[^>]*)-->\s*\n)?```(?P<lang>\w+)\n(?P<body>.*?)```",
    re.S,
)
MAX_SKIPPED = 4
NOT_RUN = {"make test": "this test is part of `make test`"}
DEMO_DONE = "make demo"  # the fixture below made (or reused) the demo output


@dataclass(frozen=True)
class Block:
    doc: Path
    lang: str
    body: str
    line: int
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def _blocks() -> list[Block]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start("lang")) + 1
            skip = m.group("reason").strip() if m.group("skip") else None
            out.append(Block(doc, m.group("lang"), m.group("body"), line, skip))
    return out


BLOCKS = _blocks()


def _commands(body: str) -> list[str]:
    """Logical commands: ``\\`` continuations joined, comment lines and tails dropped."""
    commands, current = [], ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        commands.append(re.sub(r"\s+#\s.*$", "", current).strip())
        current = ""
    return commands


def _copy_repo(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (p.decode() for p in listed)):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)  # keeps mtimes: make sees the venv as current
    (dest / ".venv").symlink_to(Path(sys.executable).parents[1])


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("fresh-clone")
    repo = root / "biasaudit"
    repo.mkdir()
    _copy_repo(repo)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "BIASAUDIT_ARTIFACT_DIR": str(root / "home"),
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }
    env.pop("BIASAUDIT_DATABASE_URL", None)
    env.pop("BIASAUDIT_BROKER_URL", None)
    demo = ROOT / "biasaudit-demo"
    if all((demo / name / "results.json").is_file() for name in ("hiring", "lending")):
        shutil.copytree(demo, repo / "biasaudit-demo")  # the session's demo output
    else:
        done = subprocess.run(
            ["make", "demo"], cwd=repo, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return repo, env


def test_skips_are_rare_and_justified() -> None:
    skipped = [b for b in BLOCKS if b.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, [b.where for b in skipped]
    assert all(len(b.skip or "") >= 20 for b in skipped), [(b.where, b.skip) for b in skipped]
    assert any(b.lang == "bash" and b.skip is None for b in BLOCKS)


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.lang in ("bash", "sh") and b.skip is None],
    ids=lambda b: b.where,
)
def test_shell_block_runs(block: Block, clone: tuple[Path, dict[str, str]]) -> None:
    repo, env = clone
    script = ["set -o pipefail"]
    for cmd in _commands(block.body):
        if cmd == DEMO_DONE or cmd in NOT_RUN:
            continue
        allowed = "0|1" if re.match(r"^(\S*/)?biasaudit run\b", cmd) else "0"
        quoted = cmd.replace("'", "'\\''")
        script += [
            cmd,
            f'rc=$?; case $rc in {allowed}) ;; *) echo "FAILED (exit $rc): '
            f'{quoted}" >&2; exit 99;; esac; (exit $rc)',
        ]
    script.append("exit 0")  # the last command may have been a `biasaudit run` exiting 1
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{block.where}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize(
    "doc",
    sorted({b.doc for b in BLOCKS if b.lang == "python" and b.skip is None}),
    ids=lambda d: str(d.relative_to(ROOT)),
)
def test_python_snippets_run(doc: Path, clone: tuple[Path, dict[str, str]]) -> None:
    repo, env = clone
    # the lending-proxy README reads the pool its bash block writes
    if doc.parent.name == "lending-proxy" and not (repo / "my-pool").exists():
        subprocess.run(
            [sys.executable, "-m", "audit.examples.lending_proxy", "--out", "my-pool"],
            cwd=repo,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
    code = "\n\n".join(b.body for b in BLOCKS if b.doc == doc and b.lang == "python" and not b.skip)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{doc}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.lang == "yaml" and b.skip is None and "\nname:" in "\n" + b.body],
    ids=lambda b: b.where,
)
def test_yaml_specs_validate(block: Block) -> None:
    spec = yaml.safe_load(block.body)
    parse_spec(spec)  # raises SpecError listing every problem
