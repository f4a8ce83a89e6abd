"""The bundled examples: the hiring generator, the lending model and the demo.

The hiring pool must be reproducible for a seed and must carry exactly the
disparity it documents (Black or African American vs White advanced at about
0.6x; sex neutral), checked on the raw CSV with fairlearn as the oracle. The
lending model must survive a skops round trip without any untrusted type.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate

from audit.examples import EXAMPLES, generate, hiring, lending, template_path
from audit.sources.public import fetch, load_german

ROOT = Path(__file__).resolve().parents[2]
BLACK, WHITE = "Black or African American", "White"


def _ratio(df: pd.DataFrame, attribute: str, group: str, reference: str) -> float:
    rates = MetricFrame(
        metrics=selection_rate,
        y_true=df["qualified"],
        y_pred=df["advanced"],
        sensitive_features=df[attribute],
    ).by_group
    return float(rates[group] / rates[reference])


def test_hiring_pool_is_deterministic_for_a_seed() -> None:
    a = hiring.make_applicants(n=800, seed=7)
    pd.testing.assert_frame_equal(a, hiring.make_applicants(n=800, seed=7))
    assert not a["score"].equals(hiring.make_applicants(n=800, seed=8)["score"])


def test_hiring_pool_columns_and_categories() -> None:
    df = hiring.make_applicants()
    assert len(df) == 5000 and df["applicant_id"].is_unique
    assert set(df["race_ethnicity"]) == set(hiring.RACE_SHARES)  # all LL144 categories
    assert set(df["sex"]) == {"Female", "Male"}
    assert set(df["age_group"]) == {"<40", "40+"}
    assert set(df["qualified"]) == set(df["advanced"]) == {0, 1}
    assert df["score"].between(0, 1).all()
    assert ((df["score"] >= 0.5) == (df["advanced"] == 1)).all()


@pytest.mark.parametrize("seed", range(5))
def test_planted_disparity_is_in_the_raw_data(seed: int) -> None:
    df = hiring.make_applicants(seed=seed)
    assert hiring.PLANTED == ("race_ethnicity", BLACK, WHITE)
    assert _ratio(df, "race_ethnicity", BLACK, WHITE) < 0.8
    # the neutral attribute: fairlearn's demographic parity ratio (min over max)
    assert (
        demographic_parity_ratio(df["qualified"], df["advanced"], sensitive_features=df["sex"])
        > 0.85
    )


def test_planted_disparity_in_the_population() -> None:
    """On a large pool the sampling noise is gone: ~0.6x for the planted group, ~1 for sex."""
    df = hiring.make_applicants(n=200_000, seed=0)
    assert 0.55 < _ratio(df, "race_ethnicity", BLACK, WHITE) < 0.72
    assert 0.95 < _ratio(df, "sex", "Female", "Male") < 1.05
    # the disparity is the model's, not the ground truth's: equal qualification rates
    base = df.groupby("race_ethnicity")["qualified"].mean()
    assert abs(base[BLACK] - base[WHITE]) < 0.02


def test_generate_hiring_writes_data_and_a_valid_spec(tmp_path: Path) -> None:
    from audit.engine.spec import parse_spec

    spec_path = generate("hiring", out_dir=tmp_path)
    spec, base = parse_spec(spec_path)
    assert spec.domain == "hiring" and spec.model.kind == "predictions"
    assert spec.probes[0]["intersectional"] is True
    assert spec.dataset.path is not None
    df = pd.read_csv(base / spec.dataset.path)
    pd.testing.assert_frame_equal(df, hiring.make_applicants(), check_dtype=False)
    for column in [spec.dataset.label, spec.dataset.prediction, spec.dataset.score]:
        assert column in df.columns
    assert set(spec.dataset.protected) <= set(df.columns)


def test_generate_keeps_an_edited_spec(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("name: edited\n")
    generate("hiring", out_dir=tmp_path, seed=1)
    assert (tmp_path / "spec.yaml").read_text() == "name: edited\n"
    assert (tmp_path / "applicants.csv").is_file()
    with pytest.raises(ValueError, match="not one of"):
        generate("insurance", out_dir=tmp_path)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_has_one_spec_and_a_readme(name: str) -> None:
    # one copy of each example spec: the packaged template (the demo and the generators
    # copy it next to the data they write)
    assert not (ROOT / "examples" / name / "spec.yaml").exists()
    assert template_path(name).is_file()
    assert (ROOT / "examples" / name / "README.md").is_file()


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    fetch()  # no-op when the data folder is already verified
    return load_german()


def test_lending_model_round_trips_through_skops(tmp_path: Path, german: pd.DataFrame) -> None:
    spec_path = lending.generate(out_dir=tmp_path)
    model_path = tmp_path / lending.MODEL_FILE
    assert sio.get_untrusted_types(file=model_path) == []  # loadable without trusting anything
    loaded = sio.load(model_path, trusted=[])
    assert list(loaded.feature_names_in_) == lending.FEATURES

    eval_df = pd.read_csv(tmp_path / lending.EVAL_FILE)
    assert list(eval_df.columns) == [*lending.FEATURES, lending.LABEL, *lending.PROTECTED]
    assert len(eval_df) == 400 and set(eval_df[lending.LABEL]) == {0, 1}
    assert not set(lending.PROTECTED) & set(lending.FEATURES)

    model, held_out = lending.train(german, seed=0)  # same seed: same fit
    np.testing.assert_allclose(
        loaded.predict_proba(eval_df[lending.FEATURES]),
        model.predict_proba(held_out[lending.FEATURES]),
        rtol=1e-12,
    )
    assert (loaded.predict(eval_df[lending.FEATURES]) == eval_df[lending.LABEL]).mean() > 0.7

    spec = yaml.safe_load(spec_path.read_text())
    assert spec["domain"] == "lending"
    assert spec["model"] == {"kind": "sklearn", "path": lending.MODEL_FILE}
    assert spec["dataset"]["path"] == lending.EVAL_FILE


def test_demo_runs_both_audits_end_to_end(tmp_path: Path, german: pd.DataFrame) -> None:
    from audit.examples.demo import format_summary, run_demo

    summaries = run_demo(out_dir=tmp_path, store=False)
    assert [s["name"] for s in summaries] == ["hiring", "lending", "lending-proxy"]
    proxied = summaries.pop()["results"]  # the census-table example: proxy and pricing
    proxy = next(p for p in proxied["probes"] if p["attribute"] == "race_proxy")
    assert proxy["summary"]["proxy"]["rows"] == 10_000
    assert "weight" not in proxy["summary"] and proxy["reference_group"] == "white"
    pricing = [f for f in proxied["findings"] if f["metric"] == "adjusted_difference"]
    assert {f["group"] for f in pricing if f["status"] == "fail"} == {"black", "hispanic"}
    for s in summaries:
        assert Path(s["report"]).is_file() and Path(s["report"]).stat().st_size > 0
        on_disk = json.loads(Path(s["results_path"]).read_text())
        assert on_disk["verdict"] == s["verdict"] == s["results"]["verdict"]
        assert on_disk["schema_version"] == 1
    hiring_results, lending_results = (s["results"] for s in summaries)
    assert lending_results["model"]["kind"] == "sklearn"
    assert lending_results["dataset"]["rows"] == 400

    # the planted disparity is what fails; the neutral attribute passes
    assert summaries[0]["verdict"] == "fail"
    failed = [f for f in hiring_results["findings"] if f["status"] == "fail"]
    assert failed and all(BLACK in f["group"] for f in failed)
    sex = [f for f in hiring_results["findings"] if f["attribute"] == "sex"]
    assert sex and all(f["status"] == "pass" for f in sex)
    # the engine's selection rates agree with fairlearn on the generated CSV
    df = pd.read_csv(tmp_path / "hiring" / "applicants.csv")
    oracle = MetricFrame(
        metrics=selection_rate,
        y_true=df["qualified"],
        y_pred=df["advanced"],
        sensitive_features=df["race_ethnicity"],
    ).by_group
    entry = next(p for p in hiring_results["probes"] if p["attribute"] == "race_ethnicity")
    for g in entry["groups"]:
        assert g["selection_rate"] == pytest.approx(oracle[g["group"]], abs=1e-12)
    assert "hiring: FAIL" in format_summary(summaries)


def test_demo_without_german_data_says_how_to_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.errors import AuditInputError
    from audit.examples.demo import run_demo

    monkeypatch.setenv("BIASAUDIT_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(AuditInputError, match="biasaudit data fetch"):
        run_demo(out_dir=tmp_path / "out", store=False)
    assert not (tmp_path / "out").exists()  # failed before generating anything
