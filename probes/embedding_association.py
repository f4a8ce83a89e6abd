"""Association bias of an embedding model: WEAT / SEAT effect sizes.

For target sets X, Y (e.g. male and female names) and attribute sets A, B (e.g.
career and family words), each target w gets

    s(w, A, B) = mean_a cos(w, a) - mean_b cos(w, b)

and the effect size (Caliskan et al., 2017) is

    d = (mean_{x in X} s(x) - mean_{y in Y} s(y)) / std_{w in X u Y} s(w)

with the sample standard deviation (ddof=1). ``d > 0`` means X sits closer to A
(and Y to B) than the reverse. The p-value is the permutation test of the
paper: the share of equal-size re-partitions (X_i, Y_i) of X u Y whose statistic
sum s(X_i) - sum s(Y_i) reaches the observed one; exact (all partitions) when
there are at most ``permutations`` of them, else ``permutations`` seeded random
partitions with the (k + 1) / (N + 1) correction. The effect-size CI, when
``bootstrap > 0``, resamples X, Y, A and B with replacement (percentile CI).

Words are put into bleached sentence templates as SEAT does (May et al., 2019).
With ``unit: word`` (default) a word's vector is the mean of its template
sentence embeddings, so the permutation test still permutes words, as WEAT
does; ``unit: sentence`` treats every template sentence as one element (SEAT),
which inflates n because sentences of one word are not independent.

Built-in tests: ``lexicons/weat.json`` (WEAT 3, 5, 6, 7, 8 of Caliskan et al.
2017, sources cited in the file).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from probes import embedding_association_models as typed
from probes.base import (
    Check,
    ModelAdapter,
    Probe,
    ProbeConfig,
    ProbeEntry,
    ProbeError,
    ProbeInput,
    ProbeResult,
    register_probe,
)

BUILTIN_TESTS = Path(__file__).parent / "lexicons" / "weat.json"


def load_tests(path: Path | None = None) -> dict[str, Any]:
    """The WEAT test file (default: built-in), checked for the fields the probe reads."""
    path = BUILTIN_TESTS if path is None else Path(path)
    field = "tests_path"
    if not path.is_file():
        raise ProbeError(f"{field}: file not found: {path} (a JSON file like lexicons/weat.json)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{field}: {path} is not valid JSON: {exc}") from None
    templates = doc.get("templates", {}) if isinstance(doc, dict) else {}
    tests = doc.get("tests") if isinstance(doc, dict) else None
    if not isinstance(tests, dict) or not tests:
        raise ProbeError(f"{field}: {path} needs a non-empty object 'tests'")
    for name, test in tests.items():
        for role in ("targets", "attributes"):
            sets = test.get(role) if isinstance(test, dict) else None
            if not isinstance(sets, list) or len(sets) != 2:
                raise ProbeError(f"{field}: {path} tests.{name}.{role} must list exactly 2 sets")
            for s in sets:
                words = s.get("words") if isinstance(s, dict) else None
                if not isinstance(words, list) or len(words) < 2:
                    raise ProbeError(
                        f"{field}: {path} tests.{name}.{role}: every set needs 'name' and "
                        "at least 2 'words'"
                    )
                tpl = s.get("templates")
                if tpl is not None and tpl not in templates:
                    raise ProbeError(
                        f"{field}: {path} tests.{name}.{role}: templates {tpl!r} is not one "
                        f"of {sorted(templates)}"
                    )
    return doc


class EmbeddingAssociationConfig(ProbeConfig):
    """Configuration of the ``embedding-association`` probe."""

    kind: Literal["embedding-association"] = "embedding-association"
    tests: list[str] | None = Field(default=None, description="test names; default all")
    tests_path: str | None = Field(default=None, description="JSON test file like weat.json")
    permutations: int = Field(default=10000, ge=1, description="random partitions if not exact")
    bootstrap: int = Field(default=1000, ge=0, description="effect-size CI replicates; 0: none")
    confidence: float = Field(default=0.95, gt=0, lt=1)
    unit: Literal["word", "sentence"] = "word"
    alternative: Literal["greater", "two-sided"] = "greater"

    @model_validator(mode="after")
    def _known_tests(self) -> EmbeddingAssociationConfig:
        if self.tests is not None and self.tests_path is None:
            valid = sorted(load_tests()["tests"])
            unknown = [t for t in self.tests if t not in valid]
            if unknown:
                raise ValueError(f"unknown tests {unknown}; built-in tests: {valid}")
        return self


def association_scores(targets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w, A, B) for every row of ``targets``."""
    cos_a = _unit(targets) @ _unit(a).T
    cos_b = _unit(targets) @ _unit(b).T
    return np.asarray(cos_a.mean(axis=1) - cos_b.mean(axis=1))


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def effect_size(s: np.ndarray, n_x: int) -> float:
    """Caliskan et al.'s d from the association scores of X (first n_x) then Y."""
    sd = float(np.std(s, ddof=1))
    if not np.isfinite(sd) or sd == 0.0:
        return math.nan
    return float((s[:n_x].mean() - s[n_x:].mean()) / sd)


def permutation_pvalue(
    s: np.ndarray, n_x: int, *, permutations: int, seed: int, alternative: str = "greater"
) -> tuple[float, int, bool]:
    """(p-value, partitions used, exact?) of the WEAT permutation test."""
    n = s.size
    total = float(s.sum())
    observed = 2.0 * float(s[:n_x].sum()) - total
    count = math.comb(n, n_x)
    if count <= permutations:
        idx = np.array(list(itertools.combinations(range(n), n_x)), dtype=np.int64)
        exact = True
    else:
        rng = np.random.default_rng(seed)
        idx = np.argsort(rng.random((permutations, n)), axis=1)[:, :n_x]
        exact = False
    stats = 2.0 * s[idx].sum(axis=1) - total
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "two-sided":
        centre = total * (2.0 * n_x / n - 1.0)
        hits = int((np.abs(stats - centre) >= abs(observed - centre) - tol).sum())
    else:
        hits = int((stats >= observed - tol).sum())
    p = hits / len(stats) if exact else (hits + 1) / (len(stats) + 1)
    return min(1.0, p), int(len(stats)), exact


def bootstrap_effect_ci(
    x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, *,
    replicates: int, seed: int, confidence: float,
) -> list[float] | None:  # fmt: skip
    """Percentile CI of d, resampling each of X, Y, A, B with replacement."""
    if replicates <= 0:
        return None
    rng = np.random.default_rng(seed)
    t = _unit(np.vstack([x, y]))
    cos_a, cos_b = t @ _unit(a).T, t @ _unit(b).T
    ia = rng.integers(0, len(a), size=(replicates, len(a)))
    ib = rng.integers(0, len(b), size=(replicates, len(b)))
    s = cos_a[:, ia].mean(axis=2).T - cos_b[:, ib].mean(axis=2).T  # (replicates, targets)
    ix = rng.integers(0, len(x), size=(replicates, len(x)))
    iy = len(x) + rng.integers(0, len(y), size=(replicates, len(y)))
    sx = np.take_along_axis(s, ix, axis=1)
    sy = np.take_along_axis(s, iy, axis=1)
    sd = np.std(np.hstack([sx, sy]), axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (sx.mean(axis=1) - sy.mean(axis=1)) / sd
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    alpha = 1.0 - confidence
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return [float(lo), float(hi)]


def _sentences(word_set: dict[str, Any], templates: dict[str, list[str]]) -> list[list[str]]:
    tpl = templates.get(word_set.get("templates") or "", ["{word}"])
    return [[t.format(word=w) for t in tpl] for w in word_set["words"]]


@register_probe("embedding-association", kind="association", needs=("model",), tags=("embedding",))
class EmbeddingAssociationProbe(Probe):
    """SEAT/WEAT effect sizes with permutation p-values, one entry per test.

    References: Caliskan, Bryson & Narayanan (2017); May et al. (2019).
    """

    config_model = EmbeddingAssociationConfig
    title = "Embedding association (WEAT/SEAT)"
    group_model = typed.AssociationGroup
    summary_model = typed.AssociationSummary
    example = typed.EXAMPLE
    checks = (
        Check(
            "effect_size",
            "max_effect_size",
            0.5,
            "max",
            "largest |SEAT/WEAT effect size| tolerated",
            absolute=True,
            require_significance=True,
            ge=0,
        ),
    )

    def run(
        self,
        *,
        data: ProbeInput | None,
        model: ModelAdapter | None,
        config: EmbeddingAssociationConfig,
    ) -> ProbeResult:
        if model is None or getattr(model, "task", None) != "embedding":
            got = getattr(model, "task", None) or getattr(model, "kind", None)
            raise ProbeError(
                "probes.embedding-association: needs model.kind huggingface with model.task "
                f"embedding (got {got!r})"
            )
        doc = load_tests(Path(config.tests_path) if config.tests_path else None)
        names = config.tests or list(doc["tests"])
        unknown = [n for n in names if n not in doc["tests"]]
        if unknown:
            raise ProbeError(f"tests: unknown tests {unknown}; valid: {sorted(doc['tests'])}")
        templates = doc.get("templates", {})
        # One embed call for every sentence of every test: one progress bar, one dedupe.
        plan = {
            name: [
                _sentences(s, templates)
                for s in doc["tests"][name]["targets"] + doc["tests"][name]["attributes"]
            ]
            for name in names
        }
        flat = sorted({sent for sets in plan.values() for ws in sets for w in ws for sent in w})
        vectors = model.embed(  # type: ignore[attr-defined]
            flat,
            progress=getattr(data, "progress", None),
            should_cancel=getattr(data, "should_cancel", None),
        )
        row = {sent: i for i, sent in enumerate(flat)}
        seed = int(getattr(data, "seed", 0) or 0)
        entries = []
        for name in names:
            sets = []
            for word_sentences in plan[name]:
                emb = [np.asarray(vectors[[row[t] for t in ws]], dtype=np.float64)
                       for ws in word_sentences]  # fmt: skip
                if config.unit == "word":
                    sets.append(np.vstack([_unit(e).mean(axis=0) for e in emb]))
                else:
                    sets.append(np.vstack(emb))
            entries.append(_test_entry(name, doc["tests"][name], sets, config, seed))
        return ProbeResult(entries=entries)


def _test_entry(
    name: str,
    test: dict[str, Any],
    sets: list[np.ndarray],
    config: EmbeddingAssociationConfig,
    seed: int,
) -> ProbeEntry:
    """One WEAT/SEAT test's entry from the embeddings of its sets X, Y, A, B."""
    x, y, a, b = sets
    s = association_scores(np.vstack([x, y]), a, b)
    d = effect_size(s, len(x))
    p, used, exact = permutation_pvalue(
        s, len(x), permutations=config.permutations, seed=seed,
        alternative=config.alternative,
    )  # fmt: skip
    ci = bootstrap_effect_ci(
        x, y, a, b, replicates=config.bootstrap, seed=seed, confidence=config.confidence
    )
    group = {
        "group": name,
        "n": int(len(x) + len(y)),
        "n_targets": [int(len(x)), int(len(y))],
        "n_attributes": [int(len(a)), int(len(b))],
        "targets": [t["name"] for t in test["targets"]],
        "attributes": [t["name"] for t in test["attributes"]],
        "effect_size": None if math.isnan(d) else d,
        "effect_size_ci": ci,
        "test_statistic": float(s[: len(x)].sum() - s[len(x) :].sum()),
        "p_value": p,
        "permutations": used,
        "exact_p_value": exact,
    }
    summary = {
        "effect_size": group["effect_size"],
        "p_value": p,
        "description": test.get("description", ""),
        "source": test.get("source", ""),
        "unit": config.unit,
        "alternative": config.alternative,
    }
    return ProbeEntry(kind="embedding-association", attribute=name, groups=[group], summary=summary)
