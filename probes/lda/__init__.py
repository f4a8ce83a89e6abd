"""Less-discriminatory-alternative search (probe ``lda-search``): see :mod:`probes.lda.probe`."""

from probes.lda import probe  # noqa: F401  (registers "lda-search")
