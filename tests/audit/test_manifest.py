"""The manifest's ``git_commit`` is read from the checkout's files, the same in every process.

A ``git`` child timed out on a loaded machine, so one process wrote a commit and
another None; the files give every process the same answer without a child.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from audit.engine.manifest import git_commit, read_head

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"


def test_the_commit_of_this_checkout_is_what_git_says() -> None:
    root = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    said = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert said.returncode == 0, said.stderr
    assert git_commit() == read_head(root / "audit" / "engine") == said.stdout.strip()


def test_a_branch_a_packed_ref_a_detached_head_and_a_worktree(tmp_path: Path) -> None:
    main = tmp_path / "main"
    (main / ".git" / "refs" / "heads").mkdir(parents=True)
    (main / "pkg" / "sub").mkdir(parents=True)
    (main / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (main / ".git" / "refs" / "heads" / "main").write_text(SHA + "\n")
    assert read_head(main / "pkg" / "sub") == SHA  # found from a folder below the root

    (main / ".git" / "refs" / "heads" / "main").unlink()  # after `git pack-refs`
    (main / ".git" / "packed-refs").write_text(
        f"# pack-refs with: peeled fully-peeled sorted\n{OTHER} refs/heads/feature\n"
        f"{SHA} refs/heads/main\n"
    )
    assert read_head(main) == SHA

    (main / ".git" / "HEAD").write_text(OTHER + "\n")  # detached
    assert read_head(main) == OTHER

    # a worktree: .git is a file naming its folder, whose commondir is the main one
    tree = tmp_path / "tree"
    private = main / ".git" / "worktrees" / "tree"
    private.mkdir(parents=True)
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {private}\n")
    (private / "commondir").write_text("../..\n")
    (private / "HEAD").write_text("ref: refs/heads/feature\n")
    assert read_head(tree) == OTHER  # from the common packed-refs

    (main / ".git" / "HEAD").write_text("ref: refs/heads/gone\n")
    assert read_head(main) is None  # a branch with no commit yet
    assert read_head(tmp_path) is None  # no checkout above it
