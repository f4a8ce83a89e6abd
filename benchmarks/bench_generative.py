"""Prompted causal-LM scoring: shared-prefix reuse against recomputing every prompt.

Same model, same texts, same run, same batches:

1. ``reuse``: the adapter as the probes use it (the prompt prefix every input
   shares is run once, its key/value cache reused; one forward pass per batch);
2. ``full``: the same adapter with ``reuse_prefix = False`` (every prompt computed
   in full, the rest unchanged);
3. ``loop``: a plain forward loop a user would write (full prompts right-padded
   in input order, one ``model(...)`` per batch, the answers' logits at each
   prompt's last token): no ``generate``, no engine.

The texts are the counterfactual-text probe's variants (hiring templates x names,
gender and race). The model is a GPT-2 of the given size with seeded random
weights and a byte-level BPE tokenizer trained on those texts (throughput does
not depend on the weights). The prompt puts screening instructions before the
résumé, as deployed screeners do.

    python benchmarks/bench_generative.py [--layers 6] [--embd 512] [--max-texts 60]
        [--repeat 3] [--batch-size 32] [--device cpu|cuda] [--precision fp32|bf16]

Rounds are interleaved (the order rotates) and the best time of each is kept.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PROMPT = (
    "You are an assistant that screens job applications for a regional hospital group. "
    "Judge each applicant only on experience, qualifications and skills relevant to the "
    "role. Do not consider the applicant's name, age, gender, race, religion, disability "
    "or any other protected characteristic. Be consistent: equally qualified applicants "
    "must receive the same answer.\nResume: {text}\nShould this candidate advance to "
    "interview? Answer:"
)


def variants(max_texts: int) -> list[str]:
    """The distinct texts the counterfactual-text probe scores (templates x names)."""
    import pandas as pd

    from probes.base import ProbeInput
    from probes.counterfactual_text import CounterfactualTextConfig, NameSwapProbe

    class Recorder:
        kind, sha256, threshold = "bench", "0" * 64, 0.5
        texts: list[str] = []

        def score(self, texts: list[str]) -> np.ndarray:
            Recorder.texts = list(texts)
            return np.zeros(len(texts))

    cfg = CounterfactualTextConfig(
        kind="counterfactual-text", attributes=["gender", "race"], max_texts=max_texts
    )
    NameSwapProbe().run(
        data=ProbeInput(frame=pd.DataFrame(), protected=()), model=Recorder(), config=cfg
    )
    return Recorder.texts


def build_model(out: Path, texts: list[str], layers: int, embd: int) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (  # type: ignore[attr-defined]
        GPT2Config,
        GPT2LMHeadModel,
        GPT2TokenizerFast,  # a runtime-only alias in transformers 5
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    corpus = [PROMPT.replace("{text}", t) for t in texts] + [" Yes", " No"]
    bpe.train_from_iterator(corpus * 3, vocab_size=4000, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(out))
    tok = GPT2TokenizerFast(str(out / "vocab.json"), str(out / "merges.txt"))
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok), n_positions=1024, n_embd=embd, n_layer=layers, n_head=embd // 64
    )
    GPT2LMHeadModel(config).eval().save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def plain_loop(adapter: Any, texts: list[str], batch_size: int) -> np.ndarray:
    """Full prompts, right-padded in input order, one forward per batch (no engine)."""
    import torch

    tok, model = adapter.tokenizer, adapter.model
    yes, no = (tok(a)["input_ids"][0] for a in (" Yes", " No"))
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            prompts = [PROMPT.replace("{text}", t) for t in texts[i : i + batch_size]]
            enc = [tok(p)["input_ids"] for p in prompts]
            width = max(map(len, enc))
            ids = torch.full((len(enc), width), tok.eos_token_id)
            mask = torch.zeros_like(ids)
            for r, e in enumerate(enc):
                ids[r, : len(e)], mask[r, : len(e)] = torch.tensor(e), 1
            logits = model(input_ids=ids.to(adapter.device), attention_mask=mask.to(adapter.device))
            last = logits.logits[torch.arange(len(enc)), mask.sum(1) - 1].float()
            pair = torch.log_softmax(last, -1)[:, [yes, no]]
            out.append(torch.softmax(pair, -1)[:, 0].cpu().numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--embd", type=int, default=512)
    ap.add_argument("--max-texts", type=int, default=60, help="base texts per attribute")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()

    import torch

    from probes.models.huggingface import load_huggingface

    texts = variants(args.max_texts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "lm", texts, args.layers, args.embd)
        adapter: Any = load_huggingface(
            path=folder, task="causal-lm", device=args.device, batch_size=args.batch_size,
            precision=args.precision, prompt={"template": PROMPT},
        )  # fmt: skip
        tokens = sum(
            len(adapter.tokenizer(PROMPT.replace("{text}", t))["input_ids"]) for t in texts
        )

        def reuse() -> np.ndarray:
            adapter.reuse_prefix = True
            return adapter.score(texts)

        def full() -> np.ndarray:
            adapter.reuse_prefix = False
            return adapter.score(texts)

        def loop() -> np.ndarray:
            return plain_loop(adapter, texts, args.batch_size)

        methods = {"reuse": reuse, "full": full, "loop": loop}
        best = dict.fromkeys(methods, float("inf"))
        scores: dict[str, np.ndarray] = {}
        names = list(methods)
        for r in range(args.repeat + 1):  # round 0 warms up
            for name in names[r % 3 :] + names[: r % 3]:
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                scores[name] = methods[name]()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                if r:
                    best[name] = min(best[name], time.perf_counter() - t0)
        reuse()
        status = adapter.prefix_status
    threads = torch.get_num_threads()
    print(f"{platform.machine()}, torch {torch.__version__}, threads {threads}, "
          f"device {args.device}, precision {args.precision}")  # fmt: skip
    print(f"GPT-2 {args.layers} layers x {args.embd}; {len(texts)} distinct prompts, "
          f"{tokens / len(texts):.0f} tokens each on average; prefix reuse: {status}")  # fmt: skip
    for name in names:
        diff = float(np.max(np.abs(scores[name] - scores["loop"])))
        print(f"{name:>5}: {len(texts) / best[name]:8.1f} prompts/s  {tokens / best[name]:10.0f} "
              f"prompt tokens/s  max |score - loop| {diff:.1e}")  # fmt: skip
    print(f"reuse / full: {best['full'] / best['reuse']:.2f}x   "
          f"reuse / loop: {best['loop'] / best['reuse']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
