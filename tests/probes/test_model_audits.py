"""Model audits end to end through run_audit: Hugging Face folders and template probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import run_audit
from audit.errors import AuditInputError
from probes.models.fingerprint import fingerprint


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.settings import get_settings

    monkeypatch.setenv("BIASAUDIT_ARTIFACT_DIR", str(tmp_path / "home"))
    get_settings.cache_clear()


def test_text_classifier_counterfactual_audit_with_lending_templates(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tiny_models["text-classification"]
    spec = {
        "name": "screener-names",
        "domain": "lending",
        "model": {
            "kind": "huggingface",
            "path": str(folder),
            "task": "text-classification",
            "positive_label": "accept",
        },
        "probes": [
            {
                "kind": "counterfactual-text",
                "swap": "names",
                "attributes": ["gender", "race"],
                "names_per_group": 3,
            }
        ],
    }
    results = run_audit(spec, tmp_path / "out")
    assert results["model"]["sha256"] == fingerprint(folder)
    entries = {e["attribute"]: e for e in results["probes"]}
    assert set(entries) == {"gender", "race"}
    assert entries["gender"]["reference_group"] == "male"
    assert {g["group"] for g in entries["race"]["groups"]} == {
        "black",
        "white",
        "hispanic",
        "asian",
    }
    metrics = {f["metric"] for f in results["findings"]}
    assert {"score_gap", "flip_rate"} <= metrics
    assert results["dataset"]["sha256"] is None
    text = " ".join(ex.get("text", "") for ex in entries["gender"]["examples"]).lower()
    assert any(w in text for w in ("loan", "credit", "mortgage", "borrow")), text[:300]
    assert (tmp_path / "out" / "report.html").exists()


@pytest.mark.slow
def test_fill_mask_and_embedding_probes_run_without_a_dataset(tiny_models: dict[str, Path]):
    mlm = run_audit(
        {
            "name": "mlm",
            "model": {
                "kind": "huggingface",
                "path": str(tiny_models["fill-mask"]),
                "task": "fill-mask",
            },
            "probes": [{"kind": "mlm-stereotype"}],
        },
        store=False,
    )
    assert mlm["probes"][0]["kind"] == "mlm-stereotype"
    assert all(f["metric"] == "stereotype_score" for f in mlm["findings"])
    emb = run_audit(
        {
            "name": "weat",
            "model": {
                "kind": "huggingface",
                "path": str(tiny_models["embedding"]),
                "task": "embedding",
            },
            "probes": [{"kind": "embedding-association", "permutations": 200, "bootstrap": 50}],
        },
        store=False,
    )
    assert emb["probes"] and all(f["metric"] == "effect_size" for f in emb["findings"])


def test_model_probe_without_a_model_is_a_clear_error() -> None:
    with pytest.raises(AuditInputError, match=r"probes\[0\].kind.*needs a model"):
        run_audit({"name": "x", "probes": [{"kind": "mlm-stereotype"}]}, store=False)


def test_spec_batching_options_reach_the_model_and_do_not_change_results(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from audit.engine.run import _load_model
    from audit.engine.spec import parse_spec
    from audit.errors import SpecError

    def spec(**batching: int) -> dict:
        return {
            "name": "batching",
            "domain": "hiring",
            "model": {
                "kind": "huggingface",
                "path": str(tiny_models["text-classification"]),
                "task": "text-classification",
                "positive_label": "accept",
                **batching,
            },
            "probes": [{"kind": "counterfactual-text", "swap": "pronouns"}],
        }

    default, _ = parse_spec(spec())
    assert (default.model.batch_size, default.model.max_tokens) == (64, None)
    small, _ = parse_spec(spec(batch_size=3, max_tokens=40))
    adapter = _load_model(small, tmp_path)
    assert (adapter.batch_size, adapter.max_tokens) == (3, 40)
    with pytest.raises(SpecError, match=r"model\.max_tokens"):
        parse_spec(spec(max_tokens=0))

    def scores(results: dict) -> list[float]:
        return [g["mean_score"] for e in results["probes"] for g in e["groups"]]

    a = run_audit(spec(), tmp_path / "a")
    b = run_audit(spec(batch_size=3, max_tokens=40), tmp_path / "b")
    assert scores(a) and scores(a) == pytest.approx(scores(b), abs=1e-5)
