"""A probe config's check over several keys names its key, numbered: ``probes[i].<key>``."""

from __future__ import annotations

import pytest

from audit.engine.spec import SpecError, parse_spec


def test_a_check_over_several_keys_names_the_numbered_key() -> None:
    spec = {
        "name": "x",
        "domain": "lending",
        "dataset": {"path": "a.csv", "label": "y", "protected": ["sex"]},
        "model": {"kind": "sklearn", "path": "m.skops"},
        "probes": [
            {"kind": "demographic"},
            {"kind": "lda-search", "attribute": "sex", "train": "t.csv", "holdout_size": 0.3},
        ],
    }
    with pytest.raises(SpecError) as refused:
        parse_spec(spec)
    text = str(refused.value)
    assert "probes[1].train: set train" in text and "exactly one of them" in text
    assert "probes[1].:" not in text and "probes[].train" not in text and "Value error" not in text
