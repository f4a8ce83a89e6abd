"""The bundled example audits: a synthetic hiring screen and a German-credit lending model.

Each example is a generator that writes its data (and model) plus a ``spec.yaml``
into a folder; ``biasaudit run FOLDER/spec.yaml`` then audits it, and
``biasaudit demo`` (:func:`audit.examples.demo.run_demo`) does both.

>>> from pathlib import Path
>>> from audit.examples import generate
>>> generate("hiring", out_dir=Path("out/demo/hiring"))  # doctest: +SKIP
PosixPath('out/demo/hiring/spec.yaml')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from audit.examples._common import template_path

__all__ = ["EXAMPLES", "generate", "template_path"]

#: example name -> one-line description
EXAMPLES: dict[str, str] = {
    "hiring": "synthetic applicant pool screened by a model with a planted race disparity",
    "lending": "logistic-regression credit model trained on the German credit data",
    "lending-proxy": "synthetic applicants from the census tables, race estimated by BIFSG",
}


def _generator(name: str) -> Callable[..., Path]:
    if name == "hiring":
        from audit.examples import hiring

        return hiring.generate
    if name == "lending":
        from audit.examples import lending

        return lending.generate
    if name == "lending-proxy":
        from audit.examples import lending_proxy

        return lending_proxy.generate
    raise ValueError(f"example: {name!r} is not one of {sorted(EXAMPLES)}")


def generate(name: str, *, out_dir: Path, seed: int = 0) -> Path:
    """Write example ``name``'s data and ``spec.yaml`` into ``out_dir``; return the spec path."""
    return _generator(name)(out_dir=Path(out_dir), seed=seed)
