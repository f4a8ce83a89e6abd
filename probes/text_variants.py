"""Variants of base texts, one per group, for the text probes that compare groups.

counterfactual-text and pairwise-choice both rewrite every base text (a dataset
row, or a built-in template) once per group of an attribute, changing only the
words that signal the group (names, pronouns or gendered terms, from
:mod:`probes.swap`). :func:`plan_variants` builds those variants per attribute,
with its groups, reference group and (template mode) clusters;
:func:`largest_changes` picks the example rows both probes report.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from probes.base import ProbeError, ProbeInput
from probes.swap import (
    NameLexicon,
    PronounSwapper,
    TermSwapper,
    builtin_lexicon,
    load_lexicon,
    replace_names,
)

if TYPE_CHECKING:
    from probes.counterfactual_text import CounterfactualTextConfig

DEFAULT_REFERENCE = {"gender": "male", "race": "white"}
MSG_NO_COLUMN = "probes[].text_column: column {col!r} is not in the dataset; columns: {cols}"
MSG_ATTRIBUTE = "probes[].attributes: {attr!r} has no {swap} lexicon; valid: {valid}"
MSG_GROUPS = "probes[].groups.{attr}: {bad} not in the {swap} lexicon; valid: {valid}"
MSG_REFERENCE = "probes[].reference.{attr}: {ref!r} is not a group; valid: {valid}"
MSG_TEMPLATE = "built-in template without a {{name}} slot: {template!r}"

Units = list[dict[str, str]]  # one dict per base text: group -> variant text


@dataclass(frozen=True)
class VariantPlan:
    """One attribute's variants: its groups, reference group and one unit per base text.

    ``skipped`` counts base texts with nothing to swap; ``clusters`` (template mode
    with name swaps) gives each unit's (template, name tuple) index, else None.
    """

    attribute: str
    groups: list[str]
    reference: str
    units: Units
    skipped: int
    clusters: np.ndarray | None


def seeded_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator seeded by ``seed`` and ``keys`` (strings hashed with CRC-32)."""
    parts = [seed] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng(parts)


def plan_variants(data: ProbeInput, cfg: CounterfactualTextConfig) -> tuple[list[VariantPlan], str]:
    """The variants of every configured attribute (sampled to ``max_texts``), and their source."""
    texts, source = base_texts(data, cfg)
    lexicon = load_lexicon(cfg.swap, lexicon=cfg.lexicon, path=cfg.lexicon_path)
    plans = []
    for attr in cfg.attributes:
        groups, units, skipped, clusters = _units(cfg, lexicon, attr, texts)
        if cfg.max_texts and len(units) > cfg.max_texts:
            order = seeded_rng(cfg.seed, "sample", attr).permutation(len(units))
            keep = np.sort(order[: cfg.max_texts])
            units = [units[i] for i in keep]
            clusters = None if clusters is None else clusters[keep]
        ref = _reference(cfg, attr, groups)
        plans.append(VariantPlan(attr, groups, ref, units, skipped, clusters))
    return plans, source


def base_texts(data: ProbeInput, cfg: CounterfactualTextConfig) -> tuple[list[str], str]:
    """The base texts (a dataset column, or the built-in templates) and where they came from."""
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


def largest_changes(
    delta: np.ndarray,
    groups: list[str],
    ref: int,
    k: int,
    row: Callable[[int, int, int], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Example rows for the ``k`` largest ``|delta|`` (units x non-reference groups).

    Largest first (ties in unit order); each row is ``group``, ``reference_group``
    and what ``row(unit, group index, column of delta)`` adds.
    """
    others = [j for j in range(len(groups)) if j != ref]
    if k == 0 or delta.size == 0 or not others:
        return []
    out = []
    for flat in np.argsort(-np.abs(delta), axis=None, kind="stable")[:k]:
        u, c = divmod(int(flat), len(others))
        j = others[c]
        out.append({"group": groups[j], "reference_group": groups[ref], **row(u, j, c)})
    return out


def _pair_names(
    lex: NameLexicon, attr: str, groups: list[str], per_group: int | None, seed: int
) -> list[dict[str, str]]:
    """Name tuples (one name per group, same cell of the other attributes), round-robin."""
    rng = seeded_rng(seed, "names", attr)
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
        rng = seeded_rng(seed, "text", attr, i)
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
