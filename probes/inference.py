"""The inference engine every model adapter uses.

One place decides how inputs become batches so every probe gets the same
behaviour: identical inputs are computed once, inputs are sorted by length
(longest first, so padding is small and an out-of-memory error shows up on the
first batch), a batch holds at most ``batch_size`` items and, optionally, at most
``max_tokens`` padded tokens, runs under ``torch.inference_mode`` and a CUDA
out-of-memory error halves the batch and retries. A progress callback gets the
fraction done, :data:`ITEMS_PROGRESS` (a context variable) the inputs done and their
total, and a cancel check runs between batches.

No autocast: a model runs in the precision its weights were loaded in
(``model.precision``), on GPU as on CPU, because an audit must score the model as
it is deployed (bf16 autocast moves probabilities by ~3e-4 and flips decisions at
the threshold). On CPU, :func:`pick_linear_backend` times a model's float32
``nn.Linear`` shapes through oneDNN and through the stock BLAS call once per
machine (:mod:`probes.machine_choice`) and keeps the faster: oneDNN was 17-22%
faster on the AMD EPYC used in the benchmarks and 8-11% slower on an Intel Xeon
with AMX.

Loaded models are cached per process (LRU keyed by fingerprint, task, device,
precision) so a worker that audits the same model again does not reload it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

H = TypeVar("H", bound=Hashable)

DEFAULT_CACHE_SIZE = 2


class InferenceCancelled(RuntimeError):
    """The caller's cancel check returned True between two batches."""


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)


def _free_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def pick_device(device: str | None = None) -> str:
    """``device`` if given (validated by torch), else ``cuda`` when available, else ``cpu``."""
    import torch

    if device:
        try:
            torch.device(device)
        except RuntimeError as exc:
            raise ValueError(
                f"model.device: {device!r} is not a torch device (e.g. cpu, cuda, cuda:0): {exc}"
            ) from None
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"model.device: {device!r} requested but CUDA is not available")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


_threads_set = False


def configure_cpu_threads() -> None:
    """Use the CPUs this process may run on (capped at 16), unless the user set a count.

    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` win; otherwise torch's default (all
    physical cores of the machine) oversubscribes containers and pinned workers.
    """
    global _threads_set
    if _threads_set or os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    import torch

    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        available = os.cpu_count() or 1
    torch.set_num_threads(max(1, min(available, 16)))
    _threads_set = True


@contextlib.contextmanager
def inference_context(device: str) -> Iterator[None]:
    """``torch.inference_mode``; never autocast (the loaded precision is the audited one)."""
    import torch

    with torch.inference_mode():
        yield


# Who watches inputs being scored (the CLI's progress display): called with (done, total)
# distinct inputs after every batch of any run_batched call in this context.
ITEMS_PROGRESS: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar(
    "biasaudit_items_progress", default=None
)


def run_batched(
    items: Sequence[H],
    compute: Callable[[list[H]], np.ndarray],
    *,
    batch_size: int,
    max_tokens: int | None = None,
    length: Callable[[H], int] | None = None,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Apply ``compute`` to ``items`` in batches; results come back in input order.

    Parameters
    ----------
    items
        Hashable inputs (strings, token-id tuples, ...); duplicates are computed once.
    compute
        Maps a list of distinct items to an array whose first axis matches the list.
    batch_size
        Items per call at most; halved (down to 1) whenever ``compute`` raises
        ``torch.cuda.OutOfMemoryError``, and kept at the smaller size afterwards.
    max_tokens
        Padded size of a batch at most: items x the longest item's ``length``
        (token-budget batching: many short texts or few long ones per batch).
        A single item longer than the budget still forms its own batch.
    length
        Sort key (longest first); defaults to ``len``.
    progress
        Called with the fraction of distinct items done after every batch.
    should_cancel
        Checked before every batch; True raises :class:`InferenceCancelled`.

    >>> run_batched(["bb", "a", "bb"], lambda b: np.array([len(s) for s in b]), batch_size=8)
    array([2, 1, 2])
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
    index: dict[H, int] = {}
    where = [index.setdefault(item, len(index)) for item in items]
    unique = list(index)
    if not unique:
        return np.empty((0,))
    key: Callable[[Any], int] = length if length is not None else len
    lengths = np.fromiter((key(u) for u in unique), dtype=np.int64, count=len(unique))
    order = np.argsort(-lengths, kind="stable")  # longest first; ties keep first-seen order
    results: np.ndarray | None = None
    done = 0
    size = batch_size
    while done < len(order):
        if should_cancel is not None and should_cancel():
            raise InferenceCancelled("inference cancelled between batches")
        n = size
        if max_tokens is not None:
            n = min(n, max(1, max_tokens // max(1, int(lengths[order[done]]))))
        chunk = order[done : done + n]
        try:
            out = np.asarray(compute([unique[i] for i in chunk]))
        except Exception as exc:
            if not _is_oom(exc) or len(chunk) == 1:
                raise
            size = max(1, len(chunk) // 2)
            _free_cuda_memory()
            continue
        if out.shape[:1] != (len(chunk),):
            raise RuntimeError(
                f"compute returned {out.shape[:1]} results for a batch of {len(chunk)}"
            )
        if results is None:
            results = np.empty((len(unique), *out.shape[1:]), dtype=out.dtype)
        results[chunk] = out
        done += len(chunk)
        if progress is not None:
            progress(done / len(order))
        items_hook = ITEMS_PROGRESS.get()
        if items_hook is not None:
            items_hook(done, len(order))
    assert results is not None
    return results[np.asarray(where, dtype=np.int64)]


def pad_batch(seqs: Sequence[Sequence[int]], *, pad_id: int, device: str) -> tuple[Any, Any]:
    """Right-pad token-id sequences to ``(input_ids, attention_mask)`` tensors on ``device``.

    Built in one numpy pass (no per-row tensor copies), padded to the batch's own
    longest sequence.
    """
    import torch

    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(lens.max()) if len(seqs) else 0
    mask = np.arange(width) < lens[:, None]
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    if width:
        ids[mask] = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(lens.sum()))
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask.astype(np.int64)).to(device)


def _onednn_linear(self: Any, x: Any) -> Any:
    """``nn.Linear.forward`` through oneDNN for float32 CPU inference, else the stock call."""
    import torch

    w = self.weight
    if (
        x.dtype == torch.float32
        and w.dtype == torch.float32
        and x.device.type == "cpu"
        and w.device.type == "cpu"
        and x.dim() >= 2
        and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
    ):
        return torch.ops.mkldnn._linear_pointwise(x, w, self.bias, "none", [], "")
    return torch.nn.functional.linear(x, w, self.bias)


def _onednn_layers(model: Any) -> list[Any]:
    import torch

    return [
        m
        for m in model.modules()
        if type(m) is torch.nn.Linear
        and m.weight.dtype == torch.float32
        and m.weight.device.type == "cpu"
    ]


def _onednn_available() -> bool:
    import torch

    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def use_onednn_linear(model: Any) -> int:
    """Route the float32 CPU ``nn.Linear`` layers of ``model`` through oneDNN; how many.

    Same results as ``torch.nn.functional.linear`` within float32 rounding
    (checked once on a small input before anything is switched); inputs that
    are not float32 CPU tensors, and anything needing gradients, take the stock
    path. Off when ``BIASAUDIT_ONEDNN_LINEAR=0`` or when torch lacks oneDNN.
    Only modules whose type is exactly ``nn.Linear`` are switched (subclasses
    such as LoRA or quantised layers keep their own forward).
    """
    if os.environ.get("BIASAUDIT_ONEDNN_LINEAR", "auto") == "0" or not _onednn_available():
        return 0
    layers = _onednn_layers(model)
    if not layers or not _onednn_agrees():
        return 0
    for m in layers:
        m.forward = types.MethodType(_onednn_linear, m)  # type: ignore[method-assign]
    return len(layers)


_BACKEND_CHOICES: dict[tuple[tuple[int, int], ...], bool] = {}
ONEDNN_MARGIN = 0.95  # oneDNN is kept only when it takes under 95% of the stock time


def _time_linear(weights: list[Any], fn: Callable[[Any, Any], Any], rows: int) -> float:
    import torch

    total = 0.0
    for w in weights:
        x = torch.randn(rows, w.shape[1])
        fn(x, w)  # warm-up (oneDNN builds its primitive on first use)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn(x, w)
            best = min(best, time.perf_counter() - t0)
        total += best
    return total


def onednn_is_faster(model: Any, *, rows: int = 64) -> bool:
    """Whether oneDNN's linear beats the stock one on this machine for ``model``'s shapes.

    A short timing (a few milliseconds for small models, about a second for 7B ones)
    of the four largest distinct weight shapes, both backends interleaved, best of
    three each. The machine decides once per shape set: the first process writes the
    choice to a shared file (:mod:`probes.machine_choice`) that every later process
    reads, so a worker and an embedded run on one machine score alike; each process
    also remembers it in memory.
    """
    import torch

    from probes.machine_choice import cpu_model, decided_once

    layers = _onednn_layers(model)
    by_shape = {tuple(m.weight.shape): m.weight for m in layers}
    shapes = sorted(by_shape, key=lambda s: -s[0] * s[1])[:4]
    key = tuple(sorted(shapes))

    def timed() -> bool:
        weights = [by_shape[s] for s in shapes]
        mkl = torch.ops.mkldnn._linear_pointwise
        with torch.inference_mode():
            stock = onednn = 0.0
            for _ in range(2):
                stock += _time_linear(weights, torch.nn.functional.linear, rows)
                onednn += _time_linear(weights, lambda x, w: mkl(x, w, None, "none", [], ""), rows)
        return onednn < ONEDNN_MARGIN * stock

    if key not in _BACKEND_CHOICES:
        machine_key = f"linear-backend onednn|{cpu_model()}|torch {torch.__version__}|{key}"
        _BACKEND_CHOICES[key] = decided_once(machine_key, timed)
    return _BACKEND_CHOICES[key]


def pick_linear_backend(model: Any) -> str:
    """``onednn`` or ``stock``: how ``model``'s float32 CPU linear layers will run (applied).

    ``BIASAUDIT_ONEDNN_LINEAR``: ``auto`` (default) times both on this machine
    (:func:`onednn_is_faster`), ``1`` forces oneDNN, ``0`` keeps the stock call.
    Models with no float32 CPU linear layers (bf16, fp16, GPU) always run stock.
    """
    setting = os.environ.get("BIASAUDIT_ONEDNN_LINEAR", "auto").strip().lower()
    if setting == "0" or not _onednn_available() or not _onednn_layers(model):
        return "stock"
    if setting != "1" and not onednn_is_faster(model):
        return "stock"
    return "onednn" if use_onednn_linear(model) else "stock"


def _onednn_agrees() -> bool:
    """oneDNN's linear gives F.linear's result on a small random input (no gradients)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((3, 5, 16), (8, 16), (8,)))
    try:
        with torch.inference_mode():
            got = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
            want = torch.nn.functional.linear(x, w, b)
    except RuntimeError:
        return False
    return bool(got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-5))


class ModelCache:
    """A small thread-safe LRU of loaded models (evicted models are simply dropped)."""

    def __init__(self, maxsize: int = DEFAULT_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        """The cached value for ``key``, else ``loader()`` stored under it."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = loader()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
        _free_cuda_memory()


MODEL_CACHE = ModelCache(int(os.environ.get("BIASAUDIT_MODEL_CACHE_SIZE", DEFAULT_CACHE_SIZE)))
