"""Keys for the census tables: surnames, first names, ZCTAs and census tracts.

Surnames are normalised as the Census Bureau and the CFPB do (CFPB
``surname_parser.do``): upper case, accents folded, apostrophes and quotes
deleted, other punctuation and digits turned into spaces, and the generational
or professional suffixes JR, SR, II, III, IV, DDS, MD and PHD dropped **only
as separate words** (so NASR, AVIV or LIV stay as they are). A name is then
looked up by a list of candidate keys, the first that the table knows wins:

1. the whole name with spaces and hyphens removed (GARCIALOPEZ, DELACRUZ,
   OBRIEN, SMITHJONES: the census list stores many compounds this way);
2. the same without single letters (initials, as the CFPB drops them);
3. each hyphen- or space-separated part in order (GARCIA-LOPEZ falls back to
   GARCIA, then LOPEZ), as the CFPB falls back to the parts of hyphenated names.

Every function works on the distinct values only, so a million rows with a
hundred thousand distinct names cost a hundred thousand normalisations.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV", "DDS", "MD", "PHD"})
_DELETE = re.compile(r"['\"`\u2018\u2019\u00b4\u02bc]")  # apostrophes and quotes: O'Brien -> OBRIEN
_SPACE = re.compile(r"[^A-Z\- ]")  # any other character separates words
_HYPHEN = re.compile(r"\s*-+\s*")
_ZIP = re.compile(r"(\d{5})(?:-\d{4})?|(\d{9})|(\d{1,8})")


def _fold(text: str) -> str:
    """Upper case ASCII letters: accents folded (JOSÉ -> JOSE), the rest kept for splitting."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).upper()


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and np.isnan(value)


def name_candidates(value: Any) -> tuple[str, ...]:
    """Lookup keys to try, in order, for one raw surname or first name (empty if blank).

    >>> name_candidates("Garcia-Lopez Jr.")
    ('GARCIALOPEZ', 'GARCIA', 'LOPEZ')
    >>> name_candidates("Nasr")
    ('NASR',)
    """
    if _missing(value):
        return ()
    text = _SPACE.sub(" ", _DELETE.sub("", _fold(str(value))))
    parts = [p.split() for p in _HYPHEN.split(text.strip())]
    words = [w for p in parts for w in p]
    if any(w not in SUFFIXES for w in words):  # a lone "JR" stays a name
        parts = [[w for w in p if w not in SUFFIXES] for p in parts]
    parts = [p for p in parts if p]
    if not parts:
        return ()
    out: list[str] = ["".join(w for p in parts for w in p)]
    out.append("".join(w for p in parts for w in p if len(w) > 1))
    out.extend("".join(p) for p in parts)
    out.extend(w for p in parts for w in p if len(w) > 1)
    return tuple(dict.fromkeys(k for k in out if k))


def normalize_name(value: Any) -> str | None:
    """The primary key of a name (the whole normalised name), None when blank."""
    keys = name_candidates(value)
    return keys[0] if keys else None


def _factorize(values: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return np.asarray(codes), np.asarray(uniques, dtype=object)


@dataclass(frozen=True)
class NameMatch:
    """Table row per value (-1: no match), blank values, and matches not by the whole name.

    ``by_part`` marks values found only by a fallback key: without initials or by one
    part of a compound name.
    """

    rows: np.ndarray
    blank: np.ndarray
    by_part: np.ndarray


def _lookup(keys: pd.Series, index: Mapping[str, int]) -> np.ndarray:
    """Vectorised ``index.get(key, -1)`` over a Series of keys."""
    table = pd.Index(list(index.keys()))
    rows = np.fromiter(index.values(), dtype=np.int64, count=len(index))
    pos = table.get_indexer(keys)
    return np.where(pos >= 0, rows[np.maximum(pos, 0)], -1) if len(rows) else pos


def match_names(values: Iterable[Any], index: Mapping[str, int]) -> NameMatch:
    """Look every value up in ``index`` (normalised name -> table row), distinct values once.

    Plain one-word names (letters only) are looked up in one vectorised pass; the
    others go through :func:`name_candidates`.
    """
    codes, uniques = _factorize(values)
    rows_u = np.full(len(uniques) + 1, -1, dtype=np.int64)
    blank_u = np.zeros(len(uniques) + 1, dtype=bool)
    part_u = np.zeros(len(uniques) + 1, dtype=bool)
    blank_u[-1] = True  # the NA sentinel (-1) picks the last entry
    text = pd.Series(uniques, dtype=object).astype(str)
    plain = text.str.fullmatch(r"[A-Za-z]+").to_numpy(dtype=bool)
    if plain.any():
        rows_u[:-1][plain] = _lookup(text[plain].str.upper(), index)
    for i in np.flatnonzero(~plain):
        keys = name_candidates(uniques[i])
        blank_u[i] = not keys
        hit = next((j for j, k in enumerate(keys) if k in index), None)
        if hit is not None:
            rows_u[i] = index[keys[hit]]
            part_u[i] = hit > 0
    return NameMatch(rows=rows_u[codes], blank=blank_u[codes], by_part=part_u[codes])


def _digits(value: Any) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, (float, np.floating)):
        if not float(value).is_integer():
            return None
        value = int(value)
    return str(value).strip()


def normalize_zcta(value: Any) -> str | None:
    """A five-digit ZCTA key from a ZIP code, or None.

    Integers and floats lose leading zeros (631 -> 00631, 63144.0 -> 63144); ZIP+4
    (63144-1234 or 631441234) keeps its first five digits. A ZIP code is not always a
    ZCTA (PO-box and single-organisation ZIPs have none): those find no match.
    """
    text = _digits(value)
    if not text:
        return None
    m = _ZIP.fullmatch(text)
    if m is None:
        return None
    if m.group(1):
        return m.group(1)
    if m.group(2):
        return m.group(2)[:5]
    short = m.group(3)
    return short.zfill(5) if len(short) <= 5 else short.zfill(9)[:5]


def normalize_tract(value: Any) -> str | None:
    """An 11-digit census tract FIPS key (state 2 + county 3 + tract 6), or None.

    Separators are dropped (``01-001-020100``); a number that lost its leading zero
    (1001020100) is padded back to 11 digits.
    """
    text = _digits(value)
    if not text:
        return None
    digits = re.sub(r"[\s\-./]", "", text)
    if not digits.isdigit() or not 10 <= len(digits) <= 11:
        return None
    return digits.zfill(11)


def match_keys(values: Iterable[Any], index: Mapping[str, int], *, level: str) -> np.ndarray:
    """Row of ``index`` for every geography value (-1: missing or no match).

    Keys already in canonical form (5 or 11 digits) are looked up in one vectorised
    pass; the others are normalised one distinct value at a time.
    """
    norm = normalize_zcta if level == "zcta" else normalize_tract
    width = 5 if level == "zcta" else 11
    codes, uniques = _factorize(values)
    rows_u = np.full(len(uniques) + 1, -1, dtype=np.int64)
    is_text = np.array([isinstance(v, str) for v in uniques], dtype=bool)
    text = pd.Series(uniques, dtype=object).where(is_text, "").astype(str)
    plain = text.str.fullmatch(rf"\d{{{width}}}").to_numpy(dtype=bool)
    if plain.any():
        rows_u[:-1][plain] = _lookup(text[plain], index)
    for i in np.flatnonzero(~plain):
        key = norm(uniques[i])
        rows_u[i] = index.get(key, -1) if key is not None else -1
    return rows_u[codes]
