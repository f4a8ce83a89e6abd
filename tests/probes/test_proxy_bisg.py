"""probes.proxy BISG/BIFSG on tiny hand-made tables: the formulas, fallbacks and coverage.

The census tables themselves (oracle values from surgeo and from our own tract
formula) are in tests/audit/test_census_proxy.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probes.proxy import RACES, ProxyTableError, ProxyTables, bifsg, bisg, predict_race

# population by geography (rows) and race (columns, RACES order); 00003 has nobody
POP = np.array(
    [
        [800.0, 100.0, 60.0, 30.0, 5.0, 5.0],
        [200.0, 600.0, 150.0, 40.0, 5.0, 5.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)
ZCTAS = ["00001", "00002", "00003"]
SURNAMES = {
    "GARCIA": [0.05, 0.01, 0.90, 0.02, 0.01, 0.01],
    "SMITH": [0.70, 0.23, 0.02, 0.01, 0.02, 0.02],
    "WHITEONLY": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    "ALL OTHER NAMES": [0.6, 0.1, 0.15, 0.1, 0.03, 0.02],
}
FIRST = {  # P(first name | race), columns sum to 1 with the catch-all row
    "MARIA": [0.01, 0.02, 0.30, 0.05, 0.02, 0.04],
    "JOHN": [0.30, 0.20, 0.02, 0.05, 0.10, 0.10],
    "ALL OTHER FIRST NAMES": [0.69, 0.78, 0.68, 0.90, 0.88, 0.86],
}


def _frame(rows: dict[str, list[float]] | np.ndarray, index: list[str]) -> pd.DataFrame:
    values = np.array(list(rows.values()) if isinstance(rows, dict) else rows, dtype=float)
    return pd.DataFrame(values, index=index, columns=list(RACES))


@pytest.fixture(scope="module")
def tables() -> ProxyTables:
    col = POP.sum(axis=0)
    row = POP.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        race_given = np.where(row > 0, POP / row, np.nan)
    return ProxyTables.from_frames(
        surname=_frame(SURNAMES, list(SURNAMES)),
        geographies={"zcta": (_frame(POP / col, ZCTAS), _frame(race_given, ZCTAS))},
        first_name=_frame(FIRST, list(FIRST)),
    )


def _p(name: str) -> np.ndarray:
    return np.array(SURNAMES[name])


def _norm(u: np.ndarray) -> np.ndarray:
    return u / u.sum()


def test_national_shares_come_from_the_geography_tables(tables: ProxyTables) -> None:
    np.testing.assert_allclose(tables.prior, POP.sum(axis=0) / POP.sum(), atol=1e-12)


def test_bisg_is_bayes_rule_and_equals_the_consistency_form(tables: ProxyTables) -> None:
    res = bisg(tables, surname=["Garcia", "smith"], geography=["00001", 2])
    p_g_r = POP / POP.sum(axis=0)
    p_r_g = POP[:2] / POP[:2].sum(axis=1, keepdims=True)
    prior = POP.sum(axis=0) / POP.sum()
    for i, (name, g) in enumerate([("GARCIA", 0), ("SMITH", 1)]):
        expected = _norm(_p(name) * p_g_r[g])
        np.testing.assert_allclose(res.posteriors.iloc[i], expected, atol=1e-12)
        np.testing.assert_allclose(
            res.posteriors.iloc[i], _norm(_p(name) * p_r_g[g] / prior), atol=1e-12
        )
    assert list(res.posteriors.columns) == list(RACES)
    assert list(res.evidence) == ["surname+geography"] * 2


def test_fallbacks_when_surname_or_geography_is_missing(tables: ProxyTables) -> None:
    res = bisg(
        tables,
        surname=["Zzyzx", "Garcia", "Garcia", "Garcia", None, "Smith"],
        geography=["00002", None, "00003", "99999", "bad", "00001"],
    )
    post = res.posteriors.to_numpy()
    np.testing.assert_allclose(post[0], POP[1] / POP[1].sum(), atol=1e-12)  # geography only
    for i in (1, 2, 3):  # no geography, a geography without people, an unknown ZCTA
        np.testing.assert_allclose(post[i], _norm(_p("GARCIA")), atol=1e-12)
    np.testing.assert_allclose(post[4], tables.prior, atol=1e-12)  # neither: national
    assert list(res.evidence) == [
        "geography", "surname", "surname", "surname", "national", "surname+geography",
    ]  # fmt: skip
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-12)
    cov = res.coverage
    assert (cov.rows, cov.surname_matched, cov.geography_matched) == (6, 4, 2)
    assert (cov.both_matched, cov.surname_only, cov.geography_only, cov.neither) == (1, 3, 1, 1)
    assert cov.method == "bisg" and cov.geography_level == "zcta"
    assert cov.first_name_matched is None
    assert cov.rate("surname_matched") == pytest.approx(4 / 6)
    assert res.surname_matched.tolist() == [False, True, True, True, False, True]


def test_all_other_names_is_not_a_surname_match(tables: ProxyTables) -> None:
    res = bisg(tables, surname=["All Other Names"], geography=["00001"])
    assert res.coverage.surname_matched == 0
    assert list(res.evidence) == ["geography"]


def test_hard_zeros_fall_back_to_the_next_posterior(tables: ProxyTables) -> None:
    # a surname borne only by white people in a ZCTA without white residents
    p_g_r = POP / POP.sum(axis=0)
    p_g_r[1, 0] = 0.0
    p_g_r[:, 0] /= p_g_r[:, 0].sum()
    zeros = ProxyTables.from_frames(
        surname=_frame(SURNAMES, list(SURNAMES)),
        geographies={"zcta": (_frame(p_g_r, ZCTAS), None)},
        prior=tables.prior,
    )
    res = bisg(zeros, surname=["Whiteonly"], geography=["00002"])
    assert list(res.evidence) == ["surname"]
    np.testing.assert_allclose(res.posteriors.iloc[0], _p("WHITEONLY"))


def test_bifsg_multiplies_in_the_first_name(tables: ProxyTables) -> None:
    res = bifsg(
        tables,
        surname=["Smith", "Smith", "Smith", "Zzyzx", "Smith"],
        first_name=["Maria", "Xochiquetzal", None, "John", "Maria"],
        geography=["00002", "00002", "00002", "00001", None],
    )
    p_g_r = POP / POP.sum(axis=0)
    maria, john, other = (np.array(FIRST[k]) for k in FIRST)
    post = res.posteriors.to_numpy()
    np.testing.assert_allclose(post[0], _norm(_p("SMITH") * maria * p_g_r[1]), atol=1e-12)
    # a first name not on the list is an "other first name"; a blank one adds nothing
    np.testing.assert_allclose(post[1], _norm(_p("SMITH") * other * p_g_r[1]), atol=1e-12)
    np.testing.assert_allclose(post[2], _norm(_p("SMITH") * p_g_r[1]), atol=1e-12)
    np.testing.assert_allclose(post[3], _norm(POP[0] / POP[0].sum() * john), atol=1e-12)
    np.testing.assert_allclose(post[4], _norm(_p("SMITH") * maria), atol=1e-12)
    assert res.first_name_used.tolist() == [True, True, False, True, True]
    assert res.first_name_matched is not None
    assert res.first_name_matched.tolist() == [True, False, False, True, True]
    assert res.coverage.first_name_matched == 3 and res.coverage.method == "bifsg"


def test_series_input_keeps_its_index(tables: ProxyTables) -> None:
    surnames = pd.Series(["Garcia", "Smith"], index=[7, 3])
    res = predict_race(tables, surname=surnames, geography=pd.Series(["00001", "00002"]))
    assert res.posteriors.index.tolist() == [7, 3]
    only = predict_race(tables, surname=["Garcia"])  # no geography: surname only
    np.testing.assert_allclose(only.posteriors.iloc[0], _norm(_p("GARCIA")))
    assert only.coverage.geography_level is None


def test_errors_name_what_is_wrong(tables: ProxyTables) -> None:
    with pytest.raises(ProxyTableError, match="'tract'.*loaded: \\['zcta'\\]"):
        bisg(tables, surname=["Smith"], geography=["01001020100"], level="tract")
    with pytest.raises(ProxyTableError, match="2 values for 1 surnames"):
        bisg(tables, surname=["Smith"], geography=["00001", "00002"])
    no_first = ProxyTables.from_frames(
        surname=_frame(SURNAMES, list(SURNAMES)),
        geographies={"zcta": (_frame(POP / POP.sum(axis=0), ZCTAS), None)},
        prior=tables.prior,
    )
    with pytest.raises(ProxyTableError, match="no first-name table"):
        bifsg(no_first, surname=["Smith"], first_name=["John"], geography=["00001"])
    with pytest.raises(ProxyTableError, match=r"columns \['multiple'\] are missing"):
        ProxyTables.from_frames(
            surname=_frame(SURNAMES, list(SURNAMES)).drop(columns="multiple"),
            geographies={"zcta": (_frame(POP / POP.sum(axis=0), ZCTAS), None)},
            prior=tables.prior,
        )
    with pytest.raises(ProxyTableError, match="levels \\['county'\\] unknown"):
        ProxyTables.from_frames(
            surname=_frame(SURNAMES, list(SURNAMES)), geographies={"county": (None, None)}
        )  # type: ignore[dict-item]
