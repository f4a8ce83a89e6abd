"""Prompted decisions of causal LMs: answer log-probabilities, prefix reuse, chat
templates, truncation, precision and the spec's checks.

The reference for every score is a plain transformers loop: one full forward
pass over prompt + answer per prompt and answer, summing the answer tokens'
log-probabilities.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from audit.engine.spec import parse_spec
from audit.errors import SpecError
from probes.base import ProbeError
from probes.models import load_model
from probes.models.answer_batch import common_prefix_length
from probes.models.hf_causal import CausalLMAdapter
from probes.models.huggingface import load_huggingface
from probes.models.prompt import AnswerScores, PromptConfig, fill_template
from probes.models.safety import ModelLoadError, UnsafeModelError
from tests.probes.screener_lm import DECISION

# byte-level tiny GPT-2: one token per byte, 128 positions
INSTRUCTIONS = "You screen nurses for a hospital. Resume: {text}\nAdvance? Answer:"
TEXTS = ["Ada, nurse, 5 years.", "Bo, clerk.", "Cy, engineer, 9 years, MSc.", "Di", "Ada, nurse."]


def _reference(path: Path, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """log P(answer | prompt) by one full forward pass per prompt and answer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    out = np.zeros((len(prompts), len(answers)))
    for i, p in enumerate(prompts):
        ctx = tok(p)["input_ids"]
        for j, a in enumerate(answers):
            ans = tok(a, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([ctx + ans])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            out[i, j] = sum(float(logp[len(ctx) - 1 + k, t]) for k, t in enumerate(ans))
    return out


def _adapter(path: Path, **prompt: Any) -> CausalLMAdapter:
    adapter = load_huggingface(
        path=path,
        task="causal-lm",
        device="cpu",
        batch_size=2,
        prompt={"template": INSTRUCTIONS, **prompt},
    )
    assert isinstance(adapter, CausalLMAdapter)
    return adapter


def _count_tokens(adapter: CausalLMAdapter) -> Callable[[], int]:
    """Total input tokens the model's forward passes see from now on."""
    seen = [0]

    def hook(_module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        seen[0] += int(ids.numel())

    handle = adapter.model.register_forward_pre_hook(hook, with_kwargs=True)

    def total() -> int:
        handle.remove()
        return seen[0]

    return total


def test_scores_match_a_plain_forward_loop_with_and_without_prefix_reuse(
    tiny_models: dict[str, Path],
) -> None:
    # byte-level tokenizer: " Yes" and " No" are 4 and 3 tokens (multi-token answers)
    path = tiny_models["causal-lm"]
    adapter = _adapter(path)
    want = _reference(path, [INSTRUCTIONS.replace("{text}", t) for t in TEXTS], [" Yes", " No"])
    reused = adapter.answer_scores(TEXTS)
    assert adapter.prefix_status.startswith("on")
    np.testing.assert_allclose(reused.logp, want, atol=1e-4)
    adapter.reuse_prefix = False
    full = adapter.answer_scores(TEXTS)
    assert adapter.prefix_status == "off"
    np.testing.assert_allclose(full.logp, want, atol=1e-4)
    score = adapter.score(TEXTS)
    p = np.exp(want)
    np.testing.assert_allclose(score, p[:, 0] / p.sum(axis=1), atol=1e-4)
    np.testing.assert_allclose(reused.mass, p.sum(axis=1), rtol=1e-3)
    assert ((adapter.predict(TEXTS)) == (score >= 0.5)).all()


def test_the_shared_prefix_is_computed_once(tiny_models: dict[str, Path]) -> None:
    texts = [f"Candidate {i}: nurse, {i} years." for i in range(24)]
    adapter = _adapter(tiny_models["causal-lm"], favorable="Y", unfavorable="N")
    adapter.batch_size = 8
    total = _count_tokens(adapter)
    adapter.answer_scores(texts)
    reused = total()
    adapter.reuse_prefix = False
    total = _count_tokens(adapter)
    adapter.answer_scores(texts)
    full = total()
    prefix = len(INSTRUCTIONS.split("{text}")[0].encode())  # bytes = tokens here
    # without reuse every prompt carries the 42-token instructions; with reuse once
    # (plus the self-check's two passes over one prompt)
    assert full - reused >= prefix * (len(texts) - 3)
    assert reused < 0.5 * full


def test_common_prefix_keeps_a_token_for_every_row() -> None:
    assert common_prefix_length([(1, 2, 3), (1, 2, 3, 4)]) == 2
    assert common_prefix_length([(5,), (5, 6)]) == 0
    assert common_prefix_length([(1, 2), (3, 4)]) == 0
    assert common_prefix_length([]) == 0


def test_answer_scores_share_and_mass_are_stable_in_log_space() -> None:
    scores = AnswerScores(np.array([[-800.0, -801.0], [np.log(0.3), np.log(0.1)]]))
    np.testing.assert_allclose(scores.share(0), [1 / (1 + np.exp(-1)), 0.75])
    np.testing.assert_allclose(scores.mass, [0.0, 0.4])


def _with_chat_template(src: Path, dst: Path) -> Path:
    from transformers import AutoTokenizer

    shutil.copytree(src, dst)
    tok = AutoTokenizer.from_pretrained(dst)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
        "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    tok.save_pretrained(dst)
    return dst


def test_chat_template_applied_when_present_and_configurable(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    chat = _with_chat_template(tiny_models["causal-lm"], tmp_path / "chat")
    auto = _adapter(chat, system="Be fair.")
    assert auto.uses_chat_template()
    rendered = auto.render(auto.prompt.template, {"text": "Ada"})  # type: ignore[union-attr]
    assert rendered.startswith("<system>Be fair.</system><user>You screen")
    assert rendered.endswith("Answer:</user><assistant>")
    assert auto.info()["prompt"]["chat_template"] is True
    never = _adapter(chat, chat_template="never")
    assert never.render(INSTRUCTIONS, {"text": "Ada"}) == INSTRUCTIONS.replace("{text}", "Ada")
    # the scores follow the rendered prompt
    assert not np.allclose(auto.score(TEXTS[:2]), never.score(TEXTS[:2]))
    plain = _adapter(tiny_models["causal-lm"], chat_template="always")
    with pytest.raises(ProbeError, match=r"model.prompt.chat_template: 'always'"):
        plain.score(["x"])


def test_long_inputs_are_cut_with_a_count_and_the_question_kept(
    tiny_models: dict[str, Path],
) -> None:
    adapter = _adapter(tiny_models["causal-lm"])  # context 128 tokens (bytes)
    assert adapter.max_length == 128
    long = "experienced nurse " * 40
    scores = adapter.answer_scores([long, "short"])
    assert scores.truncated == 1
    ids, cut = adapter._fit(INSTRUCTIONS, {"text": long}, room=128 - 4)
    assert cut and len(ids) <= 124
    tail = adapter.tokenizer.decode(ids[-20:])
    assert tail.endswith("\nAdvance? Answer:")  # the template is never cut
    adapter.max_length = 40
    with pytest.raises(ProbeError, match=r"model.max_length: 40 tokens leave no room"):
        adapter.answer_scores(["short"])


def test_answers_must_give_different_tokens(screeners: Callable[[str], Path]) -> None:
    adapter = load_huggingface(
        path=screeners("fair"),
        task="causal-lm",
        device="cpu",
        prompt={"template": DECISION, "favorable": " Yes", "unfavorable": "Yes"},
    )
    assert isinstance(adapter, CausalLMAdapter)
    with pytest.raises(ProbeError, match="give the same tokens"):  # words split on spaces
        adapter.score(["Emily has five years of experience as a nurse ."])


def test_screener_answers_are_single_tokens_scored_in_one_pass(
    screeners: Callable[[str], Path],
) -> None:
    adapter = load_huggingface(
        path=screeners("fair"), task="causal-lm", device="cpu", prompt={"template": DECISION}
    )
    assert isinstance(adapter, CausalLMAdapter)
    total = _count_tokens(adapter)
    texts = [f"Emily has {w} years of experience as a nurse ." for w in ("two", "eight")]
    scores = adapter.score(texts)
    full = len(adapter.tokenizer(DECISION.replace("{text}", texts[0]))["input_ids"])
    prefix = 5  # every prompt starts [BOS] Resume : Emily has
    # the prefix once; the self-check: one prompt on the cache and one in full; then one
    # pass over the rest of both prompts, whose last logits give both answers (no answer pass)
    assert total() == prefix + (full - prefix) + full + 2 * (full - prefix)
    assert scores[0] < 0.1 < 0.9 < scores[1]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"task": "causal-lm", "prompt": {"template": "no slot"}},
            "model.prompt.template: must contain the slot {text}",
        ),
        (
            {"task": "causal-lm", "prompt": {"template": "{text}", "favorable": " No"}},
            "model.prompt: favorable and unfavorable must differ",
        ),
        (
            {"task": "text-classification", "prompt": {"template": "{text}"}},
            "model.prompt: only for model.task causal-lm",
        ),
        (
            {"task": "causal-lm", "precision": "int8"},
            "model.precision",
        ),
        (
            {"task": "causal-lm", "prompt": {"template": "{text}", "chat_template": "yes"}},
            "model.prompt.chat_template",
        ),
    ],
)
def test_spec_refuses_bad_prompts_naming_the_field(model: dict[str, Any], message: str) -> None:
    spec = {
        "name": "x",
        "model": {"kind": "huggingface", "path": "m", **model},
        "probes": [{"kind": "counterfactual-text"}],
    }
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert message in str(err.value)


def test_precision_only_for_hugging_face_models() -> None:
    spec = {"name": "x", "model": {"kind": "sklearn", "precision": "bf16"}}
    with pytest.raises(SpecError, match="model.precision: only for model.kind huggingface"):
        parse_spec(spec)
    with pytest.raises(ModelLoadError, match="model.prompt: only for model.kind huggingface"):
        load_model(kind="onnx", path=None, prompt={"template": "{text}"})


def test_causal_lm_without_prompt_cannot_score(tiny_models: dict[str, Path]) -> None:
    adapter = load_huggingface(path=tiny_models["causal-lm"], task="causal-lm", device="cpu")
    assert isinstance(adapter, CausalLMAdapter)
    with pytest.raises(ProbeError, match="model.prompt: a causal-lm model scores texts only"):
        adapter.score(["x"])


def test_bad_prompt_given_to_the_loader_names_the_field(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"model.prompt.template: must contain"):
        load_huggingface(
            path=tiny_models["causal-lm"], task="causal-lm", prompt={"template": "nothing"}
        )
    with pytest.raises(ModelLoadError, match=r"model.prompt.favorable"):
        load_huggingface(
            path=tiny_models["causal-lm"],
            task="causal-lm",
            prompt={"template": "{text}", "favorable": ""},
        )


def test_precision_auto_follows_the_checkpoint_dtype(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "bf16"
    shutil.copytree(tiny_models["causal-lm"], folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    auto = _adapter(folder)
    assert auto.precision == "bf16" and auto.model.dtype == torch.bfloat16
    assert auto.precision_info["checkpoint_dtype"] == "bfloat16"
    fp32 = load_huggingface(path=folder, task="causal-lm", device="cpu", precision="fp32")
    assert fp32.precision == "fp32" and fp32.model.dtype == torch.float32
    assert fp32.linear_backend in ("stock", "onednn")
    with pytest.raises(ModelLoadError, match="model.precision: 'int8' is not valid"):
        load_huggingface(path=folder, task="causal-lm", precision="int8")


def test_causal_folder_asking_for_remote_code_is_refused(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "remote"
    shutil.copytree(tiny_models["causal-lm"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilLM"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsafeModelError, match="trust_remote_code is always off") as err:
        load_huggingface(path=folder, task="causal-lm", prompt={"template": "{text}"})
    assert str(folder / "config.json") in str(err.value)


def test_prompt_config_is_frozen_and_fills_plain_slots() -> None:
    cfg = PromptConfig(template='Resume: {text}\nJSON: {"ok": true}\nAnswer:')
    assert cfg.answers == (" Yes", " No")
    filled = fill_template(cfg.template, {"text": "{b}"})
    assert filled == 'Resume: {b}\nJSON: {"ok": true}\nAnswer:'
