"""Compatibility alias: the counting passes live in :mod:`probes.keys`."""

from probes.keys import (
    BLOCK_ROWS,
    dense_pass,
    drop_unused,
    group_sum,
    lexsorted,
    small_marginal,
    sparse_pass,
)

__all__ = [
    "BLOCK_ROWS",
    "dense_pass",
    "drop_unused",
    "group_sum",
    "lexsorted",
    "small_marginal",
    "sparse_pass",
]
