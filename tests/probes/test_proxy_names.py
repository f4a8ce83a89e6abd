"""probes.proxy.names: name keys as the census and the CFPB form them; ZCTA and tract keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probes.proxy import (
    match_names,
    name_candidates,
    normalize_name,
    normalize_tract,
    normalize_zcta,
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Davis Jr. ", "DAVIS"),  # surgeo's own normalisation tests
        (" Mapother IV", "MAPOTHER"),
        (" D'angelo", "DANGELO"),
        ("DE SANTIS ", "DESANTIS"),
        ("O'Brien", "OBRIEN"),
        ("O\u2019Brien", "OBRIEN"),  # curly apostrophe
        ("Smith Jr.", "SMITH"),
        ("Smith, Sr", "SMITH"),
        ("Ng II", "NG"),  # surgeo keeps NGII
        ("Henry VIII", "HENRYVIII"),  # not a listed suffix
        ("José", "JOSE"),  # accents folded
        ("Nasr", "NASR"),  # surgeo's regex turns it into NA
        ("Aviv", "AVIV"),
        ("Liv", "LIV"),
        ("Jr", "JR"),  # a suffix alone is the name
        ("smith-jones", "SMITHJONES"),
    ],
)
def test_surnames_normalise_as_the_census_does(raw: str, key: str) -> None:
    assert normalize_name(raw) == key


def test_compound_names_try_the_whole_then_each_part() -> None:
    assert name_candidates("Garcia-Lopez") == ("GARCIALOPEZ", "GARCIA", "LOPEZ")
    assert name_candidates("Garcia Lopez Jr.") == ("GARCIALOPEZ", "GARCIA", "LOPEZ")
    # initials dropped (the CFPB drops single letters) before the parts
    assert name_candidates("J. Smith") == ("JSMITH", "SMITH")
    assert name_candidates("van der Berg-Ng") == (
        "VANDERBERGNG", "VANDERBERG", "NG", "VAN", "DER", "BERG",
    )  # fmt: skip


@pytest.mark.parametrize("blank", [None, np.nan, "", "  ", "-", "'", pd.NA])
def test_blank_names_have_no_key(blank: object) -> None:
    assert name_candidates(blank) == ()
    assert normalize_name(blank) is None


def test_match_names_looks_up_distinct_values_and_reports_how() -> None:
    index = {"GARCIA": 0, "SMITHJONES": 1, "LOPEZ": 2}
    got = match_names(
        ["Garcia", "Smith-Jones", "Garcia-Lopez", "Lopez-Garcia", "Zzyzx", None, "", "garcia"],
        index,
    )
    assert got.rows.tolist() == [0, 1, 0, 2, -1, -1, -1, 0]
    assert got.blank.tolist() == [False, False, False, False, False, True, True, False]
    assert got.by_part.tolist() == [False, False, True, True, False, False, False, False]
    series = pd.Series(["Lopez", np.nan], index=[10, 11])
    assert match_names(series, index).rows.tolist() == [2, -1]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (63144, "63144"),  # surgeo's tests
        (631, "00631"),
        ("65201", "65201"),
        (" 63110", "63110"),
        (63144.0, "63144"),  # float ZIPs (surgeo: no match)
        ("63144-1234", "63144"),  # ZIP+4
        ("631441234", "63144"),
        (6314412, "00631"),  # ZIP+4 "00631-4412" that lost its leading zeros
        ("6314", "06314"),
        (None, None),
        (np.nan, None),
        ("will fail", None),
        ("63144.5", None),
        (63144.5, None),
        ("", None),
    ],
)
def test_zcta_keys(raw: object, key: str | None) -> None:
    assert normalize_zcta(raw) == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("01001020100", "01001020100"),
        (1001020100, "01001020100"),
        (1001020100.0, "01001020100"),
        ("01-001-020100", "01001020100"),
        ("26163515400", "26163515400"),
        ("bad,data,tested", None),
        ("0100102010", "00100102010"),  # ten digits: a lost leading zero
        ("123", None),
        (None, None),
    ],
)
def test_tract_keys_are_11_digit_fips(raw: object, key: str | None) -> None:
    assert normalize_tract(raw) == key
