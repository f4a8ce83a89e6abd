"""The ``biasaudit`` command line (``main``) and its service commands (``service``)."""

from audit.cli.main import build_parser, console_main, main

__all__ = ["build_parser", "console_main", "main"]
