"""``biasaudit`` commands that need no probe start without the heavy libraries.

Each check runs in a fresh interpreter (``sys.modules`` of the test process already
holds everything): the command line is parsed as the console script parses it, and
none of scipy, torch, transformers, scikit-learn or pandas may have been imported.
Timings are in docs/performance.md ("CLI start-up").
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

HEAVY = ("scipy", "torch", "transformers", "sklearn", "pandas")

PROBE = """
import sys
from audit.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY", heavy, "CODE", code)
"""


def _imported(argv: list[str]) -> str:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["keys", "list", "--help"],
        ["run", "--help"],
        ["submit", "--help"],
        ["report", "--help"],
        ["worker", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    assert _imported(argv) == "HEAVY [] CODE 0"


def test_errors_and_the_parser_import_no_probe() -> None:
    code = (
        "import sys, audit.errors, audit.cli; audit.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'probes' or m.startswith('probes.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_command_that_needs_the_probes_still_gets_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The lazy imports happen: ``biasaudit probes`` lists the registered probes."""
    from audit.cli import main

    assert main(["probes"]) == 0
    assert "demographic" in capsys.readouterr().out


def test_builtin_commands_are_the_parsers_own_and_plugins_come_otherwise() -> None:
    """``main`` skips the plugin entry points (~50 ms) only for this package's commands."""
    from audit.cli.main import BUILTIN_COMMANDS, build_parser

    def names(parser: argparse.ArgumentParser) -> set[str]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return set(action.choices)

    assert names(build_parser(plugins=False)) == BUILTIN_COMMANDS
    assert names(build_parser()) - BUILTIN_COMMANDS == {"worker", "beat"}


def test_help_lists_the_plugin_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from audit.cli import main

    assert main(["--help"]) == 0
    assert "worker" in capsys.readouterr().out
    assert main(["worker", "--help"]) == 0
    assert "--queues" in capsys.readouterr().out
