"""The "dataset" probe: Clarify pre-training metrics per group on seeded synthetic data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from probes import ProbeError, ProbeInput, ProbeResult, get_probe, list_probes
from probes.dataset import DatasetProbe, DatasetProbeConfig


def _frame(n: int = 20_000, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Applicants by sex/race/department; women are steered to the harsh department.

    The favorable label depends on the department only, so women's raw positive
    rate is lower (DPL > 0) while within each department there is no gap (CDDL ~ 0).
    """
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male", "unknown"], size=n, p=[0.45, 0.5, 0.05])
    race = rng.choice(["black", "white", "asian"], size=n, p=[0.2, 0.65, 0.15])
    harsh = rng.random(n) < np.where(sex == "female", 0.7, 0.2)
    dept = np.where(harsh, "engineering", "sales")
    y = rng.random(n) < np.where(harsh, 0.2, 0.6)
    frame = pd.DataFrame(
        {
            "sex": pd.Categorical(sex, categories=["female", "male", "unknown"]),
            "race": pd.Categorical(race),
            "dept": dept,
        }
    )
    return frame, y


@pytest.fixture(scope="module")
def data() -> ProbeInput:
    frame, y = _frame()
    return ProbeInput(frame=frame, protected=("sex", "race"), y_true=y)


def _run(data: ProbeInput, **config: Any) -> ProbeResult:
    return DatasetProbe().run(data=data, config=DatasetProbeConfig(kind="dataset", **config))


def test_registered_as_data_probe() -> None:
    assert "dataset" in list_probes()
    cls = get_probe("dataset")
    assert cls is DatasetProbe and cls.kind == "data"
    assert cls.config_model.model_validate({"kind": "dataset"}).intersectional is False
    with pytest.raises(ValueError, match="extra"):
        cls.config_model.model_validate({"kind": "dataset", "colour": 1})


def test_group_metrics_against_pandas_aif360_and_scipy(data: ProbeInput) -> None:
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric

    result = _run(data)
    [sex, race] = result.entries
    assert (sex.kind, sex.attribute, race.attribute) == ("dataset", "sex", "race")
    frame, y = data.frame, data.y_true
    assert y is not None
    for g in sex.groups:
        mask = (frame.sex == g["group"]).to_numpy()
        assert g["levels"] == {"sex": g["group"]}
        assert g["n"] == mask.sum() and g["share"] == pytest.approx(mask.mean())
        assert g["positive_rate"] == pytest.approx(y[mask].mean())
        lo, hi = g["positive_rate_ci"]
        assert lo < g["positive_rate"] < hi
        assert g["p_value_adjusted"] >= g["p_value"]
        base = pd.DataFrame({"f": mask.astype(float), "y": y.astype(float)})
        ds = BinaryLabelDataset(df=base, label_names=["y"], protected_attribute_names=["f"])
        m = BinaryLabelDatasetMetric(
            ds, unprivileged_groups=[{"f": 1.0}], privileged_groups=[{"f": 0.0}]
        )
        assert g["DPL"] == pytest.approx(-m.statistical_parity_difference(), abs=1e-12)
        n_d, n_a = mask.sum(), (~mask).sum()
        assert g["CI"] == pytest.approx((n_a - n_d) / (n_a + n_d), abs=1e-12)
        p_a = np.array([1 - y[~mask].mean(), y[~mask].mean()])
        p_d = np.array([1 - y[mask].mean(), y[mask].mean()])
        assert g["KL"] == pytest.approx(entropy(p_a, p_d), abs=1e-12)
        assert g["JS"] == pytest.approx(jensenshannon(p_a, p_d) ** 2, abs=1e-12)
        assert g["LP"] == pytest.approx(np.sqrt(2) * abs(g["DPL"]), abs=1e-12)
        assert g["TVD"] == pytest.approx(abs(g["DPL"])) == g["KS"]
        assert g["CDDL"] is None  # no strata configured
    female = next(g for g in sex.groups if g["group"] == "female")
    assert female["DPL"] > 0.1 and female["p_value"] < 1e-6  # the planted gap
    assert sex.summary["max_abs_DPL_group"] == "female"
    assert sex.summary["max_abs_DPL"] == pytest.approx(max((g["DPL"] for g in sex.groups), key=abs))
    assert sex.summary["positive_rate"] == pytest.approx(y.mean())
    rates = [g["positive_rate"] for g in sex.groups]
    assert sex.summary["positive_rate_ratio"] == pytest.approx(min(rates) / max(rates))
    assert sex.summary["max_abs_CDDL"] is None


def test_cddl_with_strata_explains_the_gap(data: ProbeInput) -> None:
    [sex, _] = _run(data, strata="dept").entries
    frame, y = data.frame, data.y_true
    assert y is not None
    female = next(g for g in sex.groups if g["group"] == "female")
    # row-level Clarify definition: sum_i n_i (share of rejected - share of accepted) / n
    expected = 0.0
    for dept in ("engineering", "sales"):
        s = (frame.dept == dept).to_numpy()
        is_f = (frame.sex == "female").to_numpy()
        acc, rej = s & y, s & ~y
        expected += s.sum() * (is_f[rej].mean() - is_f[acc].mean())
    expected /= len(frame)
    assert female["CDDL"] == pytest.approx(expected, abs=1e-12)
    assert abs(female["CDDL"]) < 0.03 < female["DPL"]  # within departments, no gap
    assert sex.summary["strata"] == "dept" and sex.summary["max_abs_CDDL"] is not None


def test_strata_with_missing_values_become_unknown() -> None:
    frame, y = _frame(n=2_000)
    frame["dept"] = frame["dept"].where(np.arange(len(frame)) % 10 != 0, None)
    result = _run(ProbeInput(frame=frame, protected=("sex",), y_true=y), strata="dept")
    assert all(g["CDDL"] is not None for g in result.entries[0].groups)
    assert result.extra["label_counts"]["levels"][-1] == ["engineering", "sales", "unknown"]


def test_intersectional_groups(data: ProbeInput) -> None:
    entries = _run(data, intersectional=True).entries
    assert [e.attribute for e in entries] == ["sex", "race", "sex&race"]
    inter = entries[2]
    assert (inter.model_extra or {})["attributes"] == ["sex", "race"]
    assert sum(g["n"] for g in inter.groups) == data.rows
    g = next(g for g in inter.groups if g["group"] == "female&black")
    assert g["levels"] == {"sex": "female", "race": "black"}
    mask = ((data.frame.sex == "female") & (data.frame.race == "black")).to_numpy()
    assert data.y_true is not None
    assert g["n"] == mask.sum()
    assert g["positive_rate"] == pytest.approx(data.y_true[mask].mean())


def test_small_groups_flagged_and_left_out_of_summary() -> None:
    frame, y = _frame(n=3_000)
    result = _run(ProbeInput(frame=frame, protected=("sex",), y_true=y), min_group_size=200)
    [entry] = result.entries
    small = [g["group"] for g in entry.groups if g["insufficient_data"]]
    assert small == ["unknown"]
    assert [g["group"] for g in (entry.model_extra or {})["excluded_groups"]] == ["unknown"]
    assert entry.summary["max_abs_CI_group"] != "unknown"


def test_missing_label_names_the_field() -> None:
    frame, _ = _frame(n=100)
    with pytest.raises(ProbeError, match=r"dataset\.label"):
        _run(ProbeInput(frame=frame, protected=("sex",)))


def test_bad_attribute_and_strata_are_named(data: ProbeInput) -> None:
    with pytest.raises(ProbeError, match=r"attributes: column 'age'"):
        _run(data, attributes=["age"])
    with pytest.raises(ProbeError, match=r"strata: column 'region' not found"):
        _run(data, strata="region")
    with pytest.raises(ProbeError, match=r"strata: column 'sex' is also an audited attribute"):
        _run(data, strata="sex")


def test_one_group_and_empty_input_do_not_crash() -> None:
    one = pd.DataFrame({"sex": pd.Categorical(["male"] * 50)})
    y = np.arange(50) % 3 == 0
    [entry] = _run(ProbeInput(frame=one, protected=("sex",), y_true=y)).entries
    [g] = entry.groups
    assert g["n"] == 50 and g["positive_rate"] == pytest.approx(y.mean())
    assert all(g[m] is None for m in ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS"))
    assert g["p_value"] is None
    empty = pd.DataFrame({"sex": pd.Categorical([], categories=["f", "m"])})
    result = _run(ProbeInput(frame=empty, protected=("sex",), y_true=np.zeros(0, bool)))
    assert result.entries[0].groups == [] and result.entries[0].summary["rows"] == 0


def test_serialisation_round_trip_and_determinism(data: ProbeInput) -> None:
    first = _run(data, strata="dept", intersectional=True)
    again = ProbeResult.model_validate_json(first.model_dump_json())
    assert again == first
    assert _run(data, strata="dept", intersectional=True) == first
