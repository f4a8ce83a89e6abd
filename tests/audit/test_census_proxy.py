"""BISG/BIFSG on the real Census 2010 tables against oracle values.

Oracles: surgeo 1.1.2's published test values and a re-run of surgeo on these
tables (ZCTA BISG and BIFSG); for tracts our own formula P(r|s) P(t|r), because
surgeo 1.1.2's tract model multiplies P(r|s) by P(r|t) (it loads the wrong table)
and double counts P(r). Race order in the rows below: white, black, api, native,
multiple, hispanic (surgeo's column order).
"""

from __future__ import annotations

import numpy as np
import pytest

from audit.sources.census import fetch, load_tables
from probes.proxy import RACES, ProxyTables, bifsg, bisg, predict_race

SURGEO_ORDER = ["white", "black", "api", "native", "multiple", "hispanic"]

BISG_ZCTA = [  # surgeo 1.1.2 re-run, 6 dp
    ("WILSON", "00631", [0.022581, 0, 0.001763, 0, 0, 0.975655]),
    ("GARCIA", "63144", [0.294432, 0.004318, 0.074080, 0.003267, 0.009207, 0.614696]),
    ("DIAZ", "65201", [0.264680, 0.015885, 0.051868, 0.002006, 0.011957, 0.653604]),
    ("JOHNSON", "63144", [0.872022, 0.089793, 0.007666, 0.001766, 0.024494, 0.004259]),
    ("WASHINGTON", "63110", [0.014138, 0.967599, 0.000661, 0.000571, 0.015949, 0.001081]),
    ("NGUYEN", "94103", [0.001090, 0.000198, 0.991208, 0.000066, 0.005914, 0.001524]),
    ("LEE", "02139", [0.166736, 0.093045, 0.707403, 0.001129, 0.027081, 0.004606]),
    ("SMITH", "60629", [0.164473, 0.678365, 0.000791, 0.001804, 0.007565, 0.147003]),
    ("Smith Jr.", "60629", [0.164473, 0.678365, 0.000791, 0.001804, 0.007565, 0.147003]),
    ("O'Brien", "11201", [0.929497, 0.015356, 0.015939, 0.000882, 0.021168, 0.017158]),
    ("Smith-Jones", "30303", [0.052487, 0.928059, 0.002504, 0.001319, 0.014834, 0.000796]),
]
BIFSG_ZCTA = [  # surgeo 1.1.2 re-run, 6 dp
    ("ADAM", "WILSON", "00631", [0.151976, 0, 0.000470, 0, 0, 0.847554]),
    ("HECTOR", "DIAZ", "65201", [0.003834, 0.000225, 0.000688, 0, 0, 0.995253]),
    ("PHILLIP", "JOHNSON", "63144", [0.923162, 0.050272, 0.001017, 0.001100, 0.023515, 0.000935]),
    ("JANICE", "WASHINGTON", "63110", [0.017885, 0.968260, 0.000059, 0.000356, 0.013339, 0.000101]),
    ("MARIA", "GARCIA", "10001", [0.004794, 0.000089, 0.002861, 0.000016, 0.000364, 0.991876]),
    ("THI", "NGUYEN", "94103", [0.000020, 0, 0.999980, 0, 0, 0]),
    ("JOHN", "SMITH", "60629", [0.493606, 0.445467, 0.000181, 0.001814, 0.008499, 0.050433]),
    ("WEI", "LEE", "02139", [0.000467, 0, 0.981735, 0, 0.017745, 0.000053]),
]  # fmt: skip
BISG_TRACT = [  # our formula; surgeo 1.1.2 gives BROWN white .921435 (wrong table)
    ("BROWN", "01001020100", [0.680079, 0.295468, 0.000688, 0.007264, 0.013550, 0.002952]),
    ("DAVIS", "01003010705", [0.692465, 0.281387, 0.001750, 0.005867, 0.014396, 0.004135]),
    ("RODRIGUEZ", "26163515400", [0.155484, 0.178831, 0.004608, 0.012118, 0.020963, 0.627996]),
    ("JONES", "48471790102", [0.662121, 0.291086, 0.000141, 0.004262, 0.021756, 0.020634]),
    ("WILLIAMS", "37025040500", [0.476771, 0.478027, 0.000564, 0.003168, 0.020882, 0.020588]),
]


@pytest.fixture(scope="module")
def tables() -> ProxyTables:
    fetch()
    return load_tables()


def _ours(frame) -> np.ndarray:  # type: ignore[no-untyped-def]
    return frame[SURGEO_ORDER].to_numpy()


def test_tables_have_the_census_shapes(tables: ProxyTables) -> None:
    assert len(tables.surname) == 162_253  # + the ALL OTHER NAMES row, kept out of lookups
    assert tables.surname.other is not None
    assert len(tables.geographies["zcta"]) == 33_120
    assert len(tables.geographies["tract"]) == 74_002
    assert int((~tables.geographies["zcta"].populated).sum()) == 144  # zero population
    assert int((~tables.geographies["tract"].populated).sum()) == 576
    assert tables.first_name is not None and len(tables.first_name) == 4_250
    col_sums = tables.first_name.probs.sum(axis=0) + tables.first_name.other
    np.testing.assert_allclose(col_sums, 1.0, atol=1e-12)
    prior = dict(zip(RACES, tables.prior, strict=True))  # Census 2010 SF1, all ages
    expected = {"white": 0.631019, "black": 0.120922, "hispanic": 0.173728, "api": 0.047983}
    assert {k: round(prior[k], 6) for k in expected} == expected


def test_bisg_zcta_matches_surgeo(tables: ProxyTables) -> None:
    res = bisg(tables, surname=[r[0] for r in BISG_ZCTA], geography=[r[1] for r in BISG_ZCTA])
    np.testing.assert_allclose(_ours(res.posteriors), [r[2] for r in BISG_ZCTA], atol=1e-6)
    # surgeo's own test file at full precision
    wilson = [0.022581185316828418, 0, 0.0017634417056115377, 0, 0, 0.97565537297756]
    np.testing.assert_allclose(_ours(res.posteriors)[0], wilson, atol=1e-12)
    assert res.coverage.both_matched == len(BISG_ZCTA)


def test_bifsg_zcta_matches_surgeo(tables: ProxyTables) -> None:
    res = bifsg(
        tables,
        first_name=[r[0] for r in BIFSG_ZCTA],
        surname=[r[1] for r in BIFSG_ZCTA],
        geography=[r[2] for r in BIFSG_ZCTA],
    )
    np.testing.assert_allclose(_ours(res.posteriors), [r[3] for r in BIFSG_ZCTA], atol=1e-6)
    assert res.coverage.first_name_matched == len(BIFSG_ZCTA)
    np.testing.assert_allclose(  # surgeo's test file, 4 dp
        _ours(res.posteriors)[0], [0.152, 0, 0.0005, 0, 0, 0.8476], atol=5e-5
    )


def test_bisg_tract_uses_p_tract_given_race(tables: ProxyTables) -> None:
    res = bisg(
        tables,
        surname=[r[0] for r in BISG_TRACT],
        geography=[r[1] for r in BISG_TRACT],
        level="tract",
    )
    np.testing.assert_allclose(_ours(res.posteriors), [r[2] for r in BISG_TRACT], atol=1e-6)
    assert abs(res.posteriors["white"].iloc[0] - 0.921435) > 0.2  # not surgeo's tract bug


def test_consistency_form_on_the_census_tables(tables: ProxyTables) -> None:
    """P(r|s) P(g|r) normalised equals P(r|s) P(r|g) / P(r) normalised, on random pairs."""
    rng = np.random.default_rng(0)
    zcta = tables.geographies["zcta"]
    names = np.array(list(tables.surname.index), dtype=object)
    keys = np.array(list(zcta.index), dtype=object)
    s_idx = rng.choice(len(names), size=3000)
    g_idx = rng.choice(np.flatnonzero(zcta.populated), size=3000)
    res = bisg(tables, surname=names[s_idx], geography=keys[g_idx])
    u = tables.surname.probs[s_idx] * zcta.race_given[g_idx] / tables.prior
    ok = u.sum(axis=1) > 0
    expected = u[ok] / u[ok].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(res.posteriors.to_numpy()[ok], expected, atol=1e-9)


def test_fallbacks_on_the_census_tables(tables: ProxyTables) -> None:
    res = bisg(
        tables,
        surname=["Zzyzzx", "Zzyzzx", "Wilson", "Robinson", "Nasr", None],
        geography=["631", "63110", None, "77001", "99999", None],
    )
    post = _ours(res.posteriors)
    # geography only: surgeo's geocode test values for 00631 and 63110
    np.testing.assert_allclose(post[0], [0.003239741, 0, 0.002159827, 0, 0, 0.994600432], atol=1e-9)
    np.testing.assert_allclose(
        post[1],
        [0.518377396, 0.40154757, 0.031772085, 0.001817223, 0.024268714, 0.022217012],
        atol=1e-9,
    )
    # surname only (no ZIP, or a ZIP that is not a ZCTA): surgeo's values, renormalised
    np.testing.assert_allclose(post[2], [0.6736, 0.2599, 0.0060, 0.0106, 0.0238, 0.0261], atol=3e-4)
    np.testing.assert_allclose(post[3], [0.4870, 0.4493, 0.0046, 0.0053, 0.0277, 0.0261], atol=3e-4)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-12)
    assert res.surname_matched[4]  # surgeo's suffix regex turns NASR into NA (no match)
    assert list(res.evidence) == [
        "geography", "geography", "surname", "surname", "surname", "national",
    ]  # fmt: skip


def test_tract_geography_only_matches_surgeo_geocoder(tables: ProxyTables) -> None:
    res = predict_race(
        tables, surname=["Zzyzzx", "Zzyzzx"], geography=[1001020100, "bad,data,tested"],
        level="tract",
    )  # fmt: skip
    np.testing.assert_allclose(
        _ours(res.posteriors)[0],
        [0.837781, 0.113553, 0.007326, 0.006803, 0.011512, 0.023025],
        atol=1e-6,
    )
    assert list(res.evidence) == ["geography", "national"]
