"""Whole-word, case-preserving swapping of first names, pronouns and gendered terms.

The counterfactual-text probe rewrites one text into one variant per group
("Emily led the team" -> "Greg led the team"). Everything here is plain ``re``
over whole words (``\\w`` boundaries, so ``Anne`` never matches inside
``Annette``), and every replacement takes the case of the word it replaces
(``He`` -> ``She``, ``JOHN`` -> ``EMILY``). A lexicon word written with a capital
letter (names, ``Mr``, ``Miss``) only matches capitalized text, so ``frank``,
``bill`` or the verb ``miss`` are never swapped.

The lexicons are JSON files in ``probes/lexicons/``; :func:`load_lexicon` reads
one and merges a user-supplied lexicon into it (``mode: extend`` or ``replace``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from probes.base import ProbeError

LEXICON_FILES = {"names": "names.json", "pronouns": "pronouns.json", "terms": "terms.json"}
NAME_META_KEYS = frozenset({"name", "sources", "tzioumis_share", "ambiguous", "note"})
MSG_LEXICON_MODE = "lexicon.mode: {mode!r} is not valid; use 'extend' or 'replace'"
_NEXT_WORD = re.compile(r"[ \t]*([\w'’]+)")


def match_case(source: str, target: str) -> str:
    """``target`` written in the case of ``source`` (upper, title or lower; else as is).

    >>> match_case("He", "she"), match_case("JOHN", "Emily"), match_case("his", "Her")
    ('She', 'EMILY', 'her')
    """
    if len(source) > 1 and source.isupper():
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    if source.islower():
        return target.lower()
    return target


def word_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """Case-insensitive whole-word alternation, longest words first."""
    alts = sorted({w for w in words if w}, key=lambda w: (-len(w), w))
    if not alts:
        return re.compile(r"(?!x)x")  # matches nothing
    return re.compile(
        r"(?<![\w-])(" + "|".join(map(re.escape, alts)) + r")(?![\w-])", re.IGNORECASE
    )


def _case_ok(found: str, lexicon_word: str) -> bool:
    """Capitalized lexicon words only match capitalized (title or upper case) text."""
    return not lexicon_word[:1].isupper() or found[:1].isupper()


def _next_word(text: str, end: int) -> tuple[str | None, int, int]:
    m = _NEXT_WORD.match(text, end)
    if m is None:
        return None, end, end
    return m.group(1), m.start(1), m.end(1)


# --------------------------------------------------------------------------- lexicons


@cache
def _builtin(file: str) -> str:
    return (resources.files("probes") / "lexicons" / file).read_text(encoding="utf-8")


def builtin_lexicon(name: str) -> dict[str, Any]:
    """A fresh copy of the built-in lexicon ``name`` (names, pronouns, terms, templates)."""
    file = LEXICON_FILES.get(name, f"{name}.json")
    return json.loads(_builtin(file))


def _read_user(lexicon: Mapping[str, Any] | None, path: str | Path | None) -> dict[str, Any]:
    user: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            user = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProbeError(f"lexicon_path: file not found: {p}") from None
        except json.JSONDecodeError as exc:
            raise ProbeError(f"lexicon_path: {p} is not valid JSON: {exc}") from None
        if not isinstance(user, dict):
            raise ProbeError(f"lexicon_path: {p} must hold a JSON object")
    if lexicon:
        user = {**user, **copy.deepcopy(dict(lexicon))}
    return user


def load_lexicon(
    kind: str,
    *,
    lexicon: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """The built-in ``kind`` lexicon with a user lexicon merged in.

    The user lexicon (a dict and/or a JSON file; the dict wins) has the shape of
    the built-in file plus ``mode``: ``extend`` (default) adds names / pairs /
    forms to the built-in ones, ``replace`` uses the user's alone. For names a
    compact form is accepted too: ``{"groups": {"gender": {"female": ["Ada"]}}}``.
    """
    if kind not in LEXICON_FILES:
        raise ProbeError(f"swap: {kind!r} is not valid; use one of {', '.join(LEXICON_FILES)}")
    user = _read_user(lexicon, path)
    mode = user.pop("mode", "extend")
    if mode not in ("extend", "replace"):
        raise ProbeError(MSG_LEXICON_MODE.format(mode=mode))
    base = builtin_lexicon(kind)
    if kind == "names":
        records = [dict(r) for r in user.get("names", [])]
        for attr, groups in (user.get("groups") or {}).items():
            for group, names in groups.items():
                records += [{"name": n, attr: group} for n in names]
        for r in records:
            if not isinstance(r.get("name"), str) or not r["name"].strip():
                raise ProbeError(f"lexicon.names: every entry needs a 'name' string, got {r!r}")
        if mode == "replace":
            return {"attributes": user.get("attributes", {}), "names": records}
        by_name = {r["name"]: r for r in base["names"]}
        for r in records:
            by_name[r["name"]] = {**by_name.get(r["name"], {}), **r}
        base["names"] = list(by_name.values())
        for attr, groups in (user.get("attributes") or {}).items():
            known = base["attributes"].setdefault(attr, [])
            known += [g for g in groups if g not in known]
        return base
    if kind == "terms":
        attrs = user.get("attributes", {})
        if mode == "replace":
            return {"attributes": attrs}
        for attr, spec in attrs.items():
            into = base["attributes"].setdefault(attr, {"pairs": []})
            into["pairs"] = list(spec.get("pairs", [])) + into["pairs"]
            if "default_groups" in spec:
                into["default_groups"] = spec["default_groups"]
        return base
    if mode == "replace":
        return {**{"agreement": {}, "object_followers": []}, **user}
    for role, groups in user.get("forms", {}).items():
        base["forms"].setdefault(role, {}).update(groups)
    for key in ("default_groups", "attribute"):
        if key in user:
            base[key] = user[key]
    base["object_followers"] += list(user.get("object_followers", []))
    return base


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class NameLexicon:
    """First names with their group per attribute (``None``: the source gave none)."""

    levels: dict[str, dict[str, str | None]]  # name -> {attribute: group}
    order: dict[str, list[str]] = field(default_factory=dict)  # attribute -> group order
    ambiguous: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> NameLexicon:
        levels: dict[str, dict[str, str | None]] = {}
        ambiguous = set()
        for rec in doc.get("names", []):
            name = str(rec["name"]).strip()
            levels[name] = {
                k: (None if v is None else str(v))
                for k, v in rec.items()
                if k not in NAME_META_KEYS and (v is None or isinstance(v, str))
            }
            if rec.get("ambiguous"):
                ambiguous.add(name)
        order = {a: list(g) for a, g in (doc.get("attributes") or {}).items()}
        return cls(levels=levels, order=order, ambiguous=frozenset(ambiguous))

    @property
    def attributes(self) -> list[str]:
        seen = list(self.order)
        for lv in self.levels.values():
            seen += [a for a in lv if a not in seen]
        return seen

    def groups(self, attribute: str) -> list[str]:
        """Groups of ``attribute`` that have names, in the lexicon's order."""
        present = {lv.get(attribute) for lv in self.levels.values()} - {None}
        ordered = [g for g in self.order.get(attribute, []) if g in present]
        return ordered + sorted(str(g) for g in present if g not in ordered)

    def level(self, name: str, attribute: str) -> str | None:
        return self.levels.get(name, {}).get(attribute)

    def cells(self, attribute: str) -> dict[tuple[str | None, ...], dict[str, list[str]]]:
        """Names by cell of the other attributes, then by group of ``attribute``.

        Swapping within a cell changes only ``attribute`` (a Black woman's name
        becomes a Black man's name when swapping gender).
        """
        others = [a for a in self.attributes if a != attribute]
        out: dict[tuple[str | None, ...], dict[str, list[str]]] = {}
        for name in sorted(self.levels):
            group = self.level(name, attribute)
            if group is None:
                continue
            cell = tuple(self.level(name, a) for a in others)
            out.setdefault(cell, {}).setdefault(group, []).append(name)
        return out

    def cell_of(self, name: str, attribute: str) -> tuple[str | None, ...]:
        return tuple(self.level(name, a) for a in self.attributes if a != attribute)

    def detector(self, attribute: str) -> re.Pattern[str]:
        """Pattern for the names of ``attribute`` that may be detected in free text."""
        names = [n for n in self.levels if n not in self.ambiguous and self.level(n, attribute)]
        return word_pattern(names)

    def find(self, text: str, attribute: str, *, pattern: re.Pattern[str]) -> list[str]:
        """Distinct lexicon names (canonical spelling) found capitalized in ``text``."""
        canon = {n.lower(): n for n in self.levels}
        found: list[str] = []
        for m in pattern.finditer(text):
            word = m.group(1)
            name = canon.get(word.lower())
            if name and word[:1].isupper() and name not in found:
                found.append(name)
        return found


def replace_names(text: str, mapping: Mapping[str, str]) -> str:
    """Replace capitalized whole-word occurrences of each name, keeping case."""
    if not mapping:
        return text
    lower = {k.lower(): v for k, v in mapping.items()}
    pattern = word_pattern(mapping)

    def repl(m: re.Match[str]) -> str:
        word = m.group(1)
        if not word[:1].isupper():
            return word
        return match_case(word, lower[word.lower()])

    return pattern.sub(repl, text)


# --------------------------------------------------------------------------- terms


class TermSwapper:
    """Swap gendered nouns/titles of one attribute to a target group, row by row."""

    def __init__(self, pairs: Iterable[Mapping[str, str]], groups: Iterable[str]) -> None:
        self.groups = list(groups)
        self.rows: dict[str, tuple[str, Mapping[str, str]]] = {}
        for row in pairs:
            for g in self.groups:
                word = row.get(g)
                if word and word.lower() not in self.rows:
                    self.rows[word.lower()] = (word, row)
        self.pattern = word_pattern(w for w, _ in self.rows.values())

    def _matches(self, text: str) -> Iterable[re.Match[str]]:
        for m in self.pattern.finditer(text):
            word, _ = self.rows[m.group(1).lower()]
            if _case_ok(m.group(1), word):
                yield m

    def detect(self, text: str) -> bool:
        return next(iter(self._matches(text)), None) is not None

    def swap(self, text: str, target: str) -> str:
        out, last = [], 0
        for m in self._matches(text):
            _, row = self.rows[m.group(1).lower()]
            new = row.get(target)
            if new:
                out += [text[last : m.start(1)], match_case(m.group(1), new)]
                last = m.end(1)
        return "".join(out) + text[last:]


# --------------------------------------------------------------------------- pronouns


class PronounSwapper:
    """Swap third-person pronouns to a target group, resolving her/his by context.

    ``her`` is a determiner (-> ``his``) before a word that is not in the
    lexicon's ``object_followers``, else an object (-> ``him``); ``his`` is a
    possessive pronoun (-> ``hers``) before punctuation, the end of the text or
    such a word, else a determiner (-> ``her``). Swapping from or to singular
    ``they`` fixes the agreement of be/have/do right after the subject.
    """

    def __init__(self, lexicon: Mapping[str, Any], groups: Iterable[str]) -> None:
        self.groups = list(groups)
        self.forms: dict[str, dict[str, str]] = {
            role: {g: w for g, w in by_group.items() if g in self.groups}
            for role, by_group in lexicon["forms"].items()
        }
        self.followers = {w.lower() for w in lexicon.get("object_followers", [])}
        agreement = lexicon.get("agreement", {}).get("singular", {})
        self.to_singular = {k.lower(): v for k, v in agreement.items()}
        self.to_plural = {v.lower(): k for k, v in agreement.items()}
        self.neutral = {g for g in self.groups if self.forms.get("subject", {}).get(g) == "they"}
        self.roles: dict[str, list[tuple[str, str]]] = {}
        for role, by_group in self.forms.items():
            for g, w in by_group.items():
                self.roles.setdefault(w.lower(), []).append((role, g))
        for alias, target in (lexicon.get("aliases") or {}).items():
            role, g = target.split(":")
            if g in self.groups:
                self.roles.setdefault(alias.lower(), []).append((role, g))
        self.pattern = word_pattern(self.roles)

    def detect(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def _role(self, word: str, nxt: str | None) -> tuple[str, str]:
        cands = self.roles[word.lower()]
        if len(cands) == 1:
            return cands[0]
        before_word = nxt is not None and nxt.lower() not in self.followers
        roles = {r for r, _ in cands}
        want = ("determiner" if before_word else "object") if "object" in roles else None
        if want is None and "possessive" in roles:
            want = "determiner" if before_word else "possessive"
        return next((c for c in cands if c[0] == want), cands[0])

    def swap(self, text: str, target: str) -> str:
        out, last = [], 0
        for m in self.pattern.finditer(text):
            if m.start(1) < last:
                continue
            word = m.group(1)
            nxt, n0, n1 = _next_word(text, m.end(1))
            role, group = self._role(word, nxt)
            new = self.forms.get(role, {}).get(target)
            if new is None or group == target:
                continue
            out += [text[last : m.start(1)], match_case(word, new)]
            last = m.end(1)
            if (
                role == "subject"
                and nxt is not None
                and (group in self.neutral) != (target in self.neutral)
            ):
                table = self.to_singular if group in self.neutral else self.to_plural
                verb = table.get(nxt.lower())
                if verb is not None:
                    out += [text[last:n0], match_case(nxt, verb)]
                    last = n1
        return "".join(out) + text[last:]
