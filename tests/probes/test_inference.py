"""The shared inference engine: dedupe, length sort, batching, OOM halving, cache."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from probes import inference
from probes.inference import (
    InferenceCancelled,
    ModelCache,
    inference_context,
    pad_batch,
    pick_device,
    run_batched,
    use_onednn_linear,
)


class Recorder:
    """A compute callable that records its batches (and can simulate CUDA OOM)."""

    def __init__(self, oom_above: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.attempts: list[int] = []
        self.oom_above = oom_above

    def __call__(self, batch: list[str]) -> np.ndarray:
        self.attempts.append(len(batch))
        if self.oom_above is not None and len(batch) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        self.batches.append(list(batch))
        return np.array([len(s) * 10 + s.count("x") for s in batch])


def _expected(items: list[str]) -> np.ndarray:
    return np.array([len(s) * 10 + s.count("x") for s in items])


def test_dedupe_computes_each_distinct_input_once_and_keeps_input_order() -> None:
    items = ["aaa", "b", "aaa", "cc", "b", "xx"]
    rec = Recorder()
    out = run_batched(items, rec, batch_size=2)
    np.testing.assert_array_equal(out, _expected(items))
    seen = [s for b in rec.batches for s in b]
    assert sorted(seen) == sorted({"aaa", "b", "cc", "xx"})
    assert len(seen) == len(set(seen))


def test_batches_are_sorted_longest_first_and_bounded() -> None:
    items = ["a" * n for n in (3, 9, 1, 7, 5, 2, 8)]
    rec = Recorder()
    run_batched(items, rec, batch_size=3)
    lengths = [len(s) for b in rec.batches for s in b]
    assert lengths == sorted(lengths, reverse=True)
    assert [len(b) for b in rec.batches] == [3, 3, 1]


def test_custom_length_key_orders_batches() -> None:
    items = ["zzzz", "a", "bb"]
    rec = Recorder()
    run_batched(items, rec, batch_size=1, length=lambda s: -len(s))
    assert [b[0] for b in rec.batches] == ["a", "bb", "zzzz"]


def test_token_budget_bounds_padded_batch_size() -> None:
    items = ["a" * n for n in (10, 2, 9, 3, 3, 2, 1, 10, 4, 20)]
    rec = Recorder()
    out = run_batched(items, rec, batch_size=100, max_tokens=12)
    np.testing.assert_array_equal(out, _expected(items))
    sizes = [(len(b), max(len(s) for s in b)) for b in rec.batches]
    # the 20-token item exceeds the budget and goes alone; the others fill <= 12 padded tokens
    assert sizes == [(1, 20), (1, 10), (1, 9), (3, 4), (1, 1)]
    assert all(n == 1 or n * longest <= 12 for n, longest in sizes)
    assert sum(n for n, _ in sizes) == len(set(items))


def test_token_budget_and_batch_size_both_cap() -> None:
    items = ["a" * (i % 5 + 1) + str(i) for i in range(30)]
    rec = Recorder()
    run_batched(items, rec, batch_size=4, max_tokens=1000)
    assert max(len(b) for b in rec.batches) == 4
    with pytest.raises(ValueError, match="max_tokens"):
        run_batched(items, rec, batch_size=4, max_tokens=0)


def test_cuda_oom_halves_a_token_budget_batch() -> None:
    items = [f"t{i:02d}" for i in range(12)]  # 3 tokens each: budget 30 -> 10 per batch
    rec = Recorder(oom_above=4)
    out = run_batched(items, rec, batch_size=64, max_tokens=30)
    np.testing.assert_array_equal(out, _expected(items))
    assert rec.attempts[:3] == [10, 5, 2]
    assert all(len(b) <= 2 for b in rec.batches)


def test_cuda_oom_halves_the_batch_and_keeps_results_right() -> None:
    items = [f"item{i:02d}" + "x" * (i % 3) for i in range(20)]
    rec = Recorder(oom_above=3)
    out = run_batched(items, rec, batch_size=8)
    np.testing.assert_array_equal(out, _expected(items))
    assert rec.attempts[:3] == [8, 4, 2]  # halved twice, then it fits
    assert {len(b) for b in rec.batches} == {2}  # the smaller size is kept afterwards


def test_oom_at_batch_size_one_is_raised() -> None:
    rec = Recorder(oom_above=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_batched(["a", "b", "c"], rec, batch_size=4)
    assert rec.attempts == [3, 1]


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_batched(["a", "b"], broken, batch_size=2)
    assert calls == [2]


def test_progress_reports_fractions_up_to_one() -> None:
    seen: list[float] = []
    run_batched(["a", "bb", "ccc", "dddd", "a"], Recorder(), batch_size=2, progress=seen.append)
    assert seen == pytest.approx([0.5, 1.0])


def test_cancel_is_checked_between_batches() -> None:
    rec = Recorder()
    checks = iter([False, True])
    with pytest.raises(InferenceCancelled):
        run_batched(["a", "bb", "ccc"], rec, batch_size=1, should_cancel=lambda: next(checks))
    assert len(rec.batches) == 1


def test_empty_input_and_bad_batch_size() -> None:
    assert run_batched([], Recorder(), batch_size=4).shape == (0,)
    with pytest.raises(ValueError, match="batch_size"):
        run_batched(["a"], Recorder(), batch_size=0)


def test_pad_batch_right_pads_with_mask() -> None:
    ids, mask = pad_batch([(5, 6, 7), (8,)], pad_id=0, device="cpu")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_pad_batch_pads_only_to_the_batch_longest() -> None:
    ids, mask = pad_batch([(1,), (2, 3)], pad_id=9, device="cpu")
    assert ids.shape == (2, 2) and ids.dtype == torch.long and mask.dtype == torch.long
    assert ids.tolist() == [[1, 9], [2, 3]]
    empty_ids, empty_mask = pad_batch([], pad_id=0, device="cpu")
    assert empty_ids.shape == (0, 0) and empty_mask.shape == (0, 0)


def _mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)

    class Scaled(torch.nn.Linear):  # a subclass keeps its own forward
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    return torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4), Scaled(4, 3)
    )


def test_onednn_linear_gives_the_same_outputs() -> None:
    plain, fast = _mlp().eval(), _mlp().eval()
    assert use_onednn_linear(fast) == 2
    x = torch.randn(5, 7, 16)
    with torch.inference_mode():
        np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fast(x[0]).numpy(), plain(x[0]).numpy(), atol=1e-6)
        # float64 inputs take the stock path (and still work)
        fast64, plain64 = _mlp().double(), _mlp().double()
        assert use_onednn_linear(fast64) == 0
        assert torch.equal(fast64(x.double()), plain64(x.double()))
    assert "forward" not in vars(fast[3]) and "forward" in vars(fast[0])


def test_onednn_linear_keeps_gradients_and_can_be_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast, plain = _mlp(), _mlp()
    use_onednn_linear(fast)
    x = torch.randn(4, 16, requires_grad=True)
    fast(x).sum().backward()
    grad = x.grad.clone()  # type: ignore[union-attr]
    x.grad = None
    plain(x).sum().backward()
    assert x.grad is not None
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), atol=1e-6)
    monkeypatch.setenv("BIASAUDIT_ONEDNN_LINEAR", "0")
    assert use_onednn_linear(_mlp()) == 0


def test_linear_backend_is_decided_per_machine_or_by_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("BIASAUDIT_ONEDNN_LINEAR", "0")
    off = _mlp()
    assert inference.pick_linear_backend(off) == "stock"
    assert "forward" not in vars(off[0])
    monkeypatch.setenv("BIASAUDIT_ONEDNN_LINEAR", "1")
    forced = _mlp()
    assert inference.pick_linear_backend(forced) == "onednn"
    assert "forward" in vars(forced[0])
    assert inference.pick_linear_backend(_mlp().to(torch.bfloat16)) == "stock"  # fp32 only
    monkeypatch.setenv("BIASAUDIT_ONEDNN_LINEAR", "auto")
    monkeypatch.setattr(inference, "_BACKEND_CHOICES", {})
    timed = _mlp()
    choice = inference.pick_linear_backend(timed)
    (key,) = inference._BACKEND_CHOICES  # one timing per shape set and process
    assert key == ((4, 32), (32, 16))  # the plain nn.Linear shapes (out, in)
    assert choice == ("onednn" if inference._BACKEND_CHOICES[key] else "stock")
    assert ("forward" in vars(timed[0])) == (choice == "onednn")
    inference._BACKEND_CHOICES[key] = not inference._BACKEND_CHOICES[key]  # remembered
    assert inference.pick_linear_backend(_mlp()) != choice


def test_a_machine_times_the_linear_backend_once_for_all_its_processes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A later process (empty memory) reads the first one's choice from the shared file
    instead of timing again: a worker and an embedded run on one machine agree."""
    from probes import machine_choice

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("BIASAUDIT_ONEDNN_LINEAR", "auto")
    monkeypatch.setattr(inference, "_BACKEND_CHOICES", {})
    first = inference.pick_linear_backend(_mlp())
    stored = json.loads((tmp_path / "biasaudit" / machine_choice.FILE_NAME).read_text())
    ((name, faster),) = stored.items()
    assert machine_choice.cpu_model() in name and "(4, 32), (32, 16)" in name
    assert first == ("onednn" if faster else "stock")

    def no_timing(*_: object) -> float:
        raise AssertionError("timed again although the machine had decided")

    monkeypatch.setattr(inference, "_time_linear", no_timing)
    for told in (faster, not faster):  # whatever the file says is what runs
        stored[name] = told
        (tmp_path / "biasaudit" / machine_choice.FILE_NAME).write_text(json.dumps(stored))
        monkeypatch.setattr(inference, "_BACKEND_CHOICES", {})
        assert inference.pick_linear_backend(_mlp()) == ("onednn" if told else "stock")


def test_machine_choices_agree_under_a_race_and_survive_a_read_only_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from probes import machine_choice

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = iter(range(100))

    def decide() -> bool:  # alternating answers: only the first decision may count
        return next(calls) % 2 == 0

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: machine_choice.decided_once("k", decide), range(16)))
    assert got == [True] * 16
    assert next(calls) == 1  # decided exactly once
    (tmp_path / "not-a-folder").write_text("")  # cannot write there: decided in memory
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    assert machine_choice.decided_once("other", lambda: False) is False
    assert machine_choice.decided_once("other", lambda: True) is True  # nothing was kept


def test_model_cache_is_lru() -> None:
    cache = ModelCache(maxsize=2)
    loads: list[str] = []

    def loader(name: str) -> Callable[[], str]:
        def load() -> str:
            loads.append(name)
            return name

        return load

    assert cache.get_or_load("a", loader("a")) == "a"
    assert cache.get_or_load("a", loader("a")) == "a"
    cache.get_or_load("b", loader("b"))
    cache.get_or_load("a", loader("a"))  # a is now most recent
    cache.get_or_load("c", loader("c"))  # evicts b
    assert loads == ["a", "b", "c"]
    assert cache.keys() == ["a", "c"]


def test_pick_device() -> None:
    assert pick_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="model.device"):
        pick_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_inference_context_on_cpu_is_inference_mode_without_autocast() -> None:
    with inference_context("cpu"):
        assert torch.is_inference_mode_enabled()
        assert not torch.is_autocast_enabled("cuda")
    assert not torch.is_inference_mode_enabled()


def test_cpu_threads_respect_user_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(inference, "_threads_set", False)
    before = torch.get_num_threads()
    inference.configure_cpu_threads()
    assert torch.get_num_threads() == before
    assert inference._threads_set is False
