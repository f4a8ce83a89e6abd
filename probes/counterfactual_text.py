"""Counterfactual text probe: swap names / pronouns / gendered terms, measure the score change.

Every base text (a dataset row, or a built-in template) is rewritten once per group of an
attribute, changing only the words that signal the group; all variants go through the model
in one call, and each group is compared with the reference group on the same base texts:
paired mean score difference (``score_gap``), share of flipped labels (``flip_rate``) and a
paired t-test. References: Prabhakaran et al. (2019), perturbation sensitivity analysis.
"""

from __future__ import annotations

import inspect
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy import stats as _st

from probes import counterfactual_text_models as typed
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
from probes.models.prompt import (
    ANSWER_MASS_CHECK,
    add_answer_mass,
    answer_summary,
    prompted_scores,
)
from probes.stats import mcnemar_exact, proportion_ci
from probes.swap import (
    NameLexicon,
    PronounSwapper,
    TermSwapper,
    builtin_lexicon,
    load_lexicon,
    replace_names,
)
from probes.util import finite_or_none

DEFAULT_REFERENCE = {"gender": "male", "race": "white"}
PAIRED_TEST = "paired t-test on per-text score differences (two-sided)"
CLUSTERED_TEST = (
    "paired t-test on per-text score differences (two-sided), two-way cluster-robust "
    "standard errors over templates and names"
)
MSG_NO_COLUMN = "probes[].text_column: column {col!r} is not in the dataset; columns: {cols}"
MSG_ATTRIBUTE = "probes[].attributes: {attr!r} has no {swap} lexicon; valid: {valid}"
MSG_GROUPS = "probes[].groups.{attr}: {bad} not in the {swap} lexicon; valid: {valid}"
MSG_REFERENCE = "probes[].reference.{attr}: {ref!r} is not a group; valid: {valid}"
MSG_TEMPLATE = "built-in template without a {{name}} slot: {template!r}"

Units = list[dict[str, str]]  # one dict per base text: group -> variant text


class CounterfactualTextConfig(ProbeConfig):
    """Configuration of the counterfactual-text probe (spec ``probes[i]``)."""

    kind: Literal["counterfactual-text"] = "counterfactual-text"
    text_column: str | None = Field(
        default=None, description="dataset column with the texts; omit to use built-in templates"
    )
    templates: Literal["hiring", "lending"] | None = Field(
        default=None, description="built-in template set (default: the audit domain, or hiring)"
    )
    swap: Literal["names", "pronouns", "terms"] = "names"
    attributes: list[str] = Field(default_factory=lambda: ["gender"], min_length=1)
    groups: dict[str, list[str]] | None = Field(
        default=None, description="groups to compare per attribute (default: the lexicon's)"
    )
    reference: dict[str, str] | None = Field(
        default=None,
        description="reference group per attribute (default: male for gender, white for race, "
        "else the lexicon's first group)",
    )
    lexicon: dict[str, Any] | None = Field(
        default=None, description="user lexicon merged into the built-in one (mode: extend|replace)"
    )
    lexicon_path: str | None = Field(default=None, description="JSON file with a user lexicon")
    names_per_group: int | None = Field(default=None, ge=1)
    max_texts: int | None = Field(default=None, ge=1, description="cap on base texts per attribute")
    examples: int = Field(default=10, ge=0)
    seed: int = 0
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    parts = [seed] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(parts)


def _t_interval(x: np.ndarray, confidence: float, lo: float, hi: float) -> list[float] | None:
    """Student-t interval for the mean of ``x`` clipped to [lo, hi]; None below two values."""
    n = x.size
    if n < 2:
        return None
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    m = float(x.mean())
    return [max(lo, m - half), min(hi, m + half)]


def paired_p_value(diff: np.ndarray) -> float | None:
    """Two-sided paired t-test of mean(diff) == 0 (1.0 when every difference is 0)."""
    n = diff.size
    if n < 2:
        return None
    m, sd = float(diff.mean()), float(diff.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(m)):
        return 1.0 if abs(m) <= 1e-12 else 0.0
    t = m / (sd / math.sqrt(n))
    return float(2 * _st.t.sf(abs(t), n - 1))


def cluster_robust_se(x: np.ndarray, clusters: np.ndarray) -> tuple[float, int] | None:
    """Standard error of ``mean(x)`` with two-way cluster-robust variance, and its df.

    ``clusters`` has one column per clustering (here: template, name pair); the
    variance is Cameron, Gelbach & Miller's (2011) V_1 + V_2 - V_12 with the
    small-sample factor G/(G-1) per clustering, V_12 the heteroskedasticity-robust
    term of the cells (each row its own cell). Falls back to the larger one-way
    variance if the sum is not positive. A clustering with fewer than two
    clusters is left out. Returns None below two rows or with no usable clustering;
    df is (fewest clusters - 1).
    """
    n = x.size
    if n < 2:
        return None
    e = x - x.mean()
    parts: list[float] = []
    sizes: list[int] = []
    for k in range(clusters.shape[1]):
        _, ids = np.unique(clusters[:, k], return_inverse=True)
        g = int(ids.max()) + 1
        if g < 2:
            continue
        sums = np.bincount(ids, weights=e, minlength=g)
        parts.append(g / (g - 1) * float(sums @ sums) / n**2)
        sizes.append(g)
    if not parts:
        return None
    var = sum(parts)
    if len(parts) == 2:
        var -= n / (n - 1) * float(e @ e) / n**2
        if var <= 0:
            var = max(parts)
    return math.sqrt(max(var, 0.0)), min(sizes) - 1


def _clustered_interval(
    x: np.ndarray, clusters: np.ndarray, confidence: float, lo: float, hi: float
) -> list[float] | None:
    se = cluster_robust_se(x, clusters)
    if se is None:
        return None
    half = float(_st.t.ppf(0.5 + confidence / 2, se[1])) * se[0]
    m = float(x.mean())
    return [max(lo, m - half), min(hi, m + half)]


def _clustered_p_value(diff: np.ndarray, clusters: np.ndarray) -> float | None:
    se = cluster_robust_se(diff, clusters)
    if se is None:
        return None
    m = float(diff.mean())
    if se[0] <= 1e-12 * max(1.0, abs(m)):
        return 1.0 if abs(m) <= 1e-12 else 0.0
    return float(2 * _st.t.sf(abs(m / se[0]), se[1]))


# --------------------------------------------------------------------------- variants


def _pair_names(
    lex: NameLexicon, attr: str, groups: list[str], per_group: int | None, seed: int
) -> list[dict[str, str]]:
    """Name tuples (one name per group, same cell of the other attributes), round-robin."""
    rng = _rng(seed, "names", attr)
    per_cell: list[list[dict[str, str]]] = []
    for _cell, by_group in sorted(lex.cells(attr).items(), key=lambda kv: str(kv[0])):
        if not all(by_group.get(g) for g in groups):
            continue
        lists = {g: list(rng.permutation(by_group[g])) for g in groups}
        k = min(len(v) for v in lists.values())
        per_cell.append([{g: str(lists[g][i]) for g in groups} for i in range(k)])
    pairs: list[dict[str, str]] = []
    for i in range(max((len(c) for c in per_cell), default=0)):
        pairs += [c[i] for c in per_cell if i < len(c)]
    return pairs[:per_group] if per_group else pairs


def _name_template_units(
    templates: list[str], pairs: list[dict[str, str]]
) -> tuple[Units, np.ndarray]:
    """Every template with every name tuple, and each unit's (template, name tuple) index."""
    for t in templates:
        if "{name}" not in t:
            raise ProbeError(MSG_TEMPLATE.format(template=t))
    units = [{g: t.replace("{name}", n) for g, n in p.items()} for t in templates for p in pairs]
    clusters = np.array([(i, j) for i in range(len(templates)) for j in range(len(pairs))])
    return units, clusters.reshape(len(units), 2)


def _name_text_units(
    texts: Sequence[str], lex: NameLexicon, attr: str, groups: list[str], seed: int
) -> Units:
    """For each text naming someone in the lexicon, one variant per group (else skipped)."""
    pattern = lex.detector(attr)
    cells = lex.cells(attr)
    everyone = {g: sorted(n for c in cells.values() for n in c.get(g, [])) for g in groups}
    units: Units = []
    for i, text in enumerate(texts):
        found = lex.find(text, attr, pattern=pattern)
        if not found:
            continue
        rng = _rng(seed, "text", attr, i)
        variants = {}
        for g in groups:
            used, mapping = set(found), {}
            for name in found:
                if lex.level(name, attr) == g:
                    continue
                pool = cells.get(lex.cell_of(name, attr), {}).get(g) or everyone[g]
                pool = [n for n in pool if n not in used] or pool
                mapping[name] = pool[int(rng.integers(len(pool)))]
                used.add(mapping[name])
            variants[g] = replace_names(text, mapping)
        units.append(variants)
    return units


# --------------------------------------------------------------------------- statistics


def _group_stats(
    s: np.ndarray,
    p: np.ndarray,
    groups: list[str],
    ref: int,
    confidence: float,
    clusters: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Per-group means, paired gaps and flip rates with intervals and p-values.

    Without ``clusters`` the base texts are independent units (t intervals,
    Wilson for flips, paired t-test). With ``clusters`` (template mode: units
    share templates and names) every interval and p-value uses two-way
    cluster-robust standard errors (:func:`cluster_robust_se`).
    """
    n = s.shape[0]
    out = []
    for j, g in enumerate(groups):
        row: dict[str, Any] = {"group": g, "n": int(n)}
        if n == 0:
            row |= dict.fromkeys(
                (
                    "mean_score",
                    "mean_score_ci",
                    "score_gap",
                    "score_gap_ci",
                    "flip_rate",
                    "flip_rate_ci",
                    "p_value",
                    "flip_p_value",
                )
            )
            out.append(row)
            continue
        diff = s[:, j] - s[:, ref]
        flips = int((p[:, j] != p[:, ref]).sum())
        ups, downs = int((p[:, j] & ~p[:, ref]).sum()), int((~p[:, j] & p[:, ref]).sum())
        lo, hi = proportion_ci(np.array([flips]), np.array([n]), confidence=confidence)
        if clusters is None:
            mean_ci = _t_interval(s[:, j], confidence, 0.0, 1.0)
            gap_ci = _t_interval(diff, confidence, -1.0, 1.0)
            flip_ci: list[float] | None = [float(lo[0]), float(hi[0])]
            p_value = paired_p_value(diff)
            flip_p: float | None = mcnemar_exact(ups, downs)
        else:
            flipped = (p[:, j] != p[:, ref]).astype(float)
            mean_ci = _clustered_interval(s[:, j], clusters, confidence, 0.0, 1.0)
            gap_ci = _clustered_interval(diff, clusters, confidence, -1.0, 1.0)
            flip_ci = _clustered_interval(flipped, clusters, confidence, 0.0, 1.0)
            p_value = _clustered_p_value(diff, clusters)
            # signed flips (+1 up, -1 down): McNemar's null (as many up as down), clustered
            flip_p = _clustered_p_value(p[:, j].astype(float) - p[:, ref], clusters)
        row |= {
            "mean_score": finite_or_none(s[:, j].mean()),
            "mean_score_ci": mean_ci,
            "score_gap": finite_or_none(diff.mean()),
            "score_gap_ci": None if j == ref else gap_ci,
            "flip_rate": flips / n,
            "flip_rate_ci": None if j == ref else flip_ci,
            "p_value": None if j == ref else p_value,
            "flip_p_value": None if j == ref else flip_p,
        }
        out.append(row)
    return out


def _examples(
    units: Units, s: np.ndarray, groups: list[str], ref: int, k: int
) -> list[dict[str, Any]]:
    if k == 0 or s.size == 0:
        return []
    others = [j for j in range(len(groups)) if j != ref]
    delta = s[:, others] - s[:, [ref]]
    order = np.argsort(-np.abs(delta), axis=None, kind="stable")[:k]
    out = []
    for flat in order:
        u, c = divmod(int(flat), len(others))
        j = others[c]
        out.append(
            {
                "group": groups[j],
                "reference_group": groups[ref],
                "text": units[u][groups[ref]],
                "counterfactual": units[u][groups[j]],
                "score": float(s[u, ref]),
                "counterfactual_score": float(s[u, j]),
                "delta": float(delta[u, c]),
            }
        )
    return out


def _hooks(data: ProbeInput) -> dict[str, Any]:
    """The progress (mapped to 5-95% of the probe) and cancel hooks of a scoring call."""
    kwargs: dict[str, Any] = {}
    if data.progress is not None:
        report = data.progress
        kwargs["progress"] = lambda f: report(0.05 + 0.9 * float(f))
    if data.should_cancel is not None:
        kwargs["should_cancel"] = data.should_cancel
    return kwargs


def _call(fn: Callable[..., Any], texts: list[str], data: ProbeInput) -> np.ndarray:
    """Call ``fn(texts)``, passing progress/cancel hooks when the adapter accepts them."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = {}  # type: ignore[assignment]
    kwargs = {k: v for k, v in _hooks(data).items() if k in params}
    return np.asarray(fn(texts, **kwargs))


def score_texts(model: Any, texts: list[str], data: ProbeInput) -> tuple[np.ndarray, np.ndarray]:
    """(scores, predicted labels) for ``texts`` with one scoring pass.

    When the adapter exposes a float ``threshold`` (as the Hugging Face adapter
    does, with ``predict = score >= threshold``) the labels come from the scores
    and the model runs once; otherwise ``model.predict`` is called too.
    """
    if not texts:
        return np.zeros(0), np.zeros(0, dtype=bool)
    scores = _call(model.score, texts, data).astype(float).reshape(-1)
    if scores.shape != (len(texts),):
        raise ProbeError(f"model.score returned {scores.shape[0]} scores for {len(texts)} texts")
    threshold = getattr(model, "threshold", None)
    if isinstance(threshold, float | int) and not isinstance(threshold, bool):
        return scores, scores >= float(threshold)
    preds = _call(model.predict, texts, data).astype(bool).reshape(-1)
    return scores, preds


@register_probe(
    "counterfactual-text", kind="counterfactual", needs=("model",), tags=("text", "model")
)
class NameSwapProbe(Probe):
    """Swap first names / pronouns / gendered terms between groups; measure the score change.

    References: Bertrand & Mullainathan (2004); Garg et al. (2019).
    """

    config_model = CounterfactualTextConfig
    title = "Counterfactual name/term swap"
    layout = "counterfactual"
    group_model = typed.SwapGroup
    summary_model = typed.SwapSummary
    entry_fields = typed.SwapEntryFields
    example = typed.EXAMPLE
    checks = (
        Check(
            "score_gap",
            "max_score_gap",
            0.02,
            "max",
            "largest |mean score change| tolerated",
            absolute=True,
            ci="score_gap_ci",
            min_n=1,
            skip_missing=True,
            skip_reference=True,
            ge=0,
        ),
        Check(
            "flip_rate",
            "max_flip_rate",
            0.01,
            "max",
            "largest share of flipped decisions tolerated",
            ci="flip_rate_ci",
            p_value="flip_p_value",
            min_n=1,
            skip_missing=True,
            skip_reference=True,
            ge=0,
            le=1,
        ),
        ANSWER_MASS_CHECK,
    )

    @classmethod
    def uses_dataset(cls, raw: Mapping[str, Any]) -> bool:
        """Only with ``text_column``: the built-in templates need no dataset."""
        return bool(raw.get("text_column"))

    def run(
        self, *, data: ProbeInput, model: ModelAdapter | None, config: CounterfactualTextConfig
    ) -> ProbeResult:
        if model is None:
            raise ProbeError("model: the counterfactual-text probe needs a model (model.kind)")
        cfg = config
        texts, source = self._base_texts(data, cfg)
        lexicon = load_lexicon(cfg.swap, lexicon=cfg.lexicon, path=cfg.lexicon_path)
        plans = []
        for attr in cfg.attributes:
            groups, units, skipped, clusters = self._units(cfg, lexicon, attr, texts)
            if cfg.max_texts and len(units) > cfg.max_texts:
                keep = np.sort(
                    _rng(cfg.seed, "sample", attr).permutation(len(units))[: cfg.max_texts]
                )
                units = [units[i] for i in keep]
                clusters = None if clusters is None else clusters[keep]
            ref = self._reference(cfg, attr, groups)
            plans.append((attr, groups, ref, units, skipped, clusters))
        if data.progress is not None:
            data.progress(0.05)
        all_texts = list(
            dict.fromkeys(t for *_, units, _, _ in plans for u in units for t in u.values())
        )
        prompted = prompted_scores(model, all_texts, **_hooks(data))
        if prompted is None:
            scores, preds = score_texts(model, all_texts, data)
        else:  # a prompted causal LM: scores and answer mass from one pass
            scores = prompted.share(0)
            preds = scores >= float(getattr(model, "threshold", 0.5))
        at = {t: i for i, t in enumerate(all_texts)}
        entries = []
        for attr, groups, ref, units, skipped, clusters in plans:
            idx = np.array([[at[u[g]] for g in groups] for u in units], dtype=int).reshape(
                len(units), len(groups)
            )
            s, p = scores[idx], preds[idx]
            r = groups.index(ref)
            stats = _group_stats(s, p, groups, r, cfg.confidence, clusters)
            extra = {}
            if prompted is not None:
                add_answer_mass(stats, prompted.mass[idx])
                extra = answer_summary(prompted.mass[np.unique(idx)], prompted.truncated)
            gaps = [abs(g["score_gap"]) for g in stats if g["score_gap"] is not None]
            flips = [g["flip_rate"] for g in stats if g["flip_rate"] is not None]
            entries.append(
                ProbeEntry.model_validate(
                    {
                        "kind": self.name,
                        "attribute": attr,
                        "reference_group": ref,
                        "groups": stats,
                        "examples": _examples(units, s, groups, r, cfg.examples),
                        "summary": {
                            "max_abs_score_gap": max(gaps) if gaps else None,
                            "max_flip_rate": max(flips) if flips else None,
                            "base_texts": len(units),
                            "skipped_texts": skipped,
                            "swap": cfg.swap,
                            "source": source,
                            "test": PAIRED_TEST if clusters is None else CLUSTERED_TEST,
                            **extra,
                        },
                    }
                )
            )
        if data.progress is not None:
            data.progress(1.0)
        return ProbeResult(entries=entries, extra={"scored_texts": len(all_texts)})

    @staticmethod
    def _base_texts(data: ProbeInput, cfg: CounterfactualTextConfig) -> tuple[list[str], str]:
        if cfg.text_column is not None:
            frame = data.frame
            if cfg.text_column not in frame.columns:
                cols = ", ".join(map(str, frame.columns)) or "(none)"
                raise ProbeError(MSG_NO_COLUMN.format(col=cfg.text_column, cols=cols))
            col = frame[cfg.text_column].dropna()
            return [str(t) for t in col.tolist()], f"column:{cfg.text_column}"
        domain = getattr(data, "domain", None)
        name = cfg.templates or (domain if domain in ("hiring", "lending") else "hiring")
        return builtin_lexicon("templates")[name][cfg.swap], f"templates:{name}"

    @staticmethod
    def _units(
        cfg: CounterfactualTextConfig, lexicon: dict[str, Any], attr: str, texts: list[str]
    ) -> tuple[list[str], Units, int, np.ndarray | None]:
        """Groups, variants per base text, texts with nothing to swap, and clusters.

        Clusters (template, name tuple) only in template mode with name swaps, where
        base texts share both; elsewhere each base text is its own unit (None).
        """
        if cfg.swap == "names":
            lex = NameLexicon.from_json(lexicon)
            available = lex.groups(attr)
        elif cfg.swap == "pronouns":
            own = lexicon.get("attribute", "gender")
            available = list(lexicon["default_groups"]) if attr == own else []
            every = sorted({g for f in lexicon["forms"].values() for g in f}) if attr == own else []
        else:
            spec = lexicon.get("attributes", {}).get(attr, {})
            every = sorted({g for row in spec.get("pairs", []) for g in row})
            available = list(spec.get("default_groups") or every)
        if not available:
            raise ProbeError(
                MSG_ATTRIBUTE.format(attr=attr, swap=cfg.swap, valid=_valid_attrs(cfg, lexicon))
            )
        groups = available
        if cfg.groups and attr in cfg.groups:
            groups = list(dict.fromkeys(cfg.groups[attr]))
            pool = available if cfg.swap == "names" else every
            bad = [g for g in groups if g not in pool]
            if bad or not groups:
                raise ProbeError(
                    MSG_GROUPS.format(attr=attr, bad=bad, swap=cfg.swap, valid=", ".join(pool))
                )
        if cfg.swap == "names":
            if cfg.text_column is None:
                pairs = _pair_names(lex, attr, groups, cfg.names_per_group, cfg.seed)
                units, clusters = _name_template_units(texts, pairs)
                return groups, units, 0, clusters
            units = _name_text_units(texts, lex, attr, groups, cfg.seed)
            return groups, units, len(texts) - len(units), None
        swapper: PronounSwapper | TermSwapper = (
            PronounSwapper(lexicon, groups)
            if cfg.swap == "pronouns"
            else TermSwapper(lexicon["attributes"][attr]["pairs"], groups)
        )
        units = [{g: swapper.swap(t, g) for g in groups} for t in texts if swapper.detect(t)]
        return groups, units, len(texts) - len(units), None

    @staticmethod
    def _reference(cfg: CounterfactualTextConfig, attr: str, groups: list[str]) -> str:
        if cfg.reference and attr in cfg.reference:
            ref = cfg.reference[attr]
            if ref not in groups:
                raise ProbeError(MSG_REFERENCE.format(attr=attr, ref=ref, valid=", ".join(groups)))
            return ref
        default = DEFAULT_REFERENCE.get(attr)
        return default if default in groups else groups[0]


def _valid_attrs(cfg: CounterfactualTextConfig, lexicon: dict[str, Any]) -> str:
    if cfg.swap == "names":
        return ", ".join(NameLexicon.from_json(lexicon).attributes)
    if cfg.swap == "pronouns":
        return str(lexicon.get("attribute", "gender"))
    return ", ".join(lexicon.get("attributes", {}))
