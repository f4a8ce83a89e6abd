"""``biasaudit submit SPEC --api URL``: run a local spec on a biasaudit service.

1. The spec is read and validated here (exit 2 with every error before anything is sent).
2. ``dataset.path`` is uploaded and replaced by ``dataset.id``: straight to the
   server's object store when it has one (``POST /v1/datasets/uploads``, a PUT to
   the presigned URL, then ``complete`` with the file's SHA-256), else with
   ``POST /v1/datasets``;
   a local ``model.path`` (a ``.skops`` file, or a Hugging Face folder, sent as a
   ``.tar.gz`` of its files) is uploaded (``POST /v1/models``) and replaced by
   ``model.id``; a probe's local file that the service takes as an upload
   (lda-search's ``train``) is uploaded like the dataset and replaced by its id
   (``train_id``). Paths are relative to the spec file, as for ``biasaudit run``.
3. The rewritten spec is submitted (``POST /v1/audits``, with an ``Idempotency-Key``
   so a retried submission cannot start a second audit).
4. With ``--wait`` (the default) the status is polled and its progress printed on
   stderr until the audit ends or ``--timeout`` passes; then ``results.json`` and
   ``report.html`` are downloaded into ``--out``, with every file the audit produced
   (``GET /v1/audits/ID/artifacts``: lda-search's ``lda-best-<attribute>.skops``).
   ``--no-wait`` prints the audit id.

Exit codes are those of ``biasaudit run``: 0 every check passed, 1 a finding failed,
2 the input was refused (the server's message, with its field), the audit failed or
was cancelled, or the service could not be reached. The token is read from
``BIASAUDIT_TOKEN``, the URL from ``--api`` or ``BIASAUDIT_API``. The arguments are in
:mod:`audit.cli.submit_args`, so that building the parser imports neither httpx nor yaml.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from audit.cli.api_client import TIMEOUT, ApiClient, ApiRequestError

EXIT_PASS, EXIT_FAIL, EXIT_INVALID = 0, 1, 2
EXIT_INTERRUPTED = 130
MSG_INTERRUPTED = (
    "biasaudit: interrupted; an audit already submitted goes on on the service "
    "(GET /v1/audits/ID, or POST /v1/audits/ID/cancel)"
)
POLL_MIN, POLL_MAX = 0.5, 5.0
BAR_WIDTH = 30
MSG_NO_TOKEN = (
    "BIASAUDIT_TOKEN: not set; ask the service's admin for a submitter token "
    "('biasaudit keys create --role submitter --project NAME' on the server) and export it"
)
MSG_NO_API = "--api: required (or set BIASAUDIT_API), e.g. --api https://biasaudit.example.org"
MSG_BAD_API = "--api: {url!r} is not an http:// or https:// URL"
MSG_NOT_FOUND = "{field}: file not found: {path}"
MSG_PUT = "dataset.path: the object store refused the upload (HTTP {status}): {text}"
MSG_ENDED = "audit {id} {status}: {error}"
MSG_TIMEOUT = (
    "audit {id} is still {status} after {timeout:.0f} s (--timeout); it goes on on the "
    "service: biasaudit submit does not cancel it"
)
FINISHED = ("succeeded", "failed", "cancelled")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_raw_spec(path: Path) -> dict[str, Any]:
    """The spec file as a dict, validated like ``biasaudit run`` (SpecError otherwise)."""
    from audit.engine.spec import parse_spec
    from audit.errors import SpecError

    parse_spec(path)  # every error at once, with field paths
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(raw, dict):  # parse_spec refused it already; for type checkers
        raise SpecError([("spec", "the spec must be a mapping (YAML/JSON object)")])
    return raw


def _local(value: str, base: Path, field: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise ApiRequestError(MSG_NOT_FOUND.format(field=field, path=path))
    return path


def _upload(client: ApiClient, route: str, path: Path, name: str) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        handle = path.open("rb")  # closed by httpx once sent
        return {"files": {"file": (name, handle, "application/octet-stream")}}

    response: dict[str, Any] = client.request("POST", route, build=build).json()
    return response


def upload_direct(client: ApiClient, path: Path) -> dict[str, Any] | None:
    """Send a dataset straight to the server's object store (presigned PUT, then
    ``complete`` with its SHA-256); None when the server has no object store (``409``)."""
    size = path.stat().st_size
    try:
        ticket = client.request(
            "POST", "/v1/datasets/uploads", build=lambda: {"json": {"size_bytes": size}}
        ).json()
    except ApiRequestError as exc:
        if exc.status in (404, 409):  # an older server, or datasets kept in a folder
            return None
        raise
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    with path.open("rb") as f:
        put = httpx.put(ticket["url"], content=f, timeout=TIMEOUT)  # no bearer token here
    if put.status_code >= 300:
        raise ApiRequestError(MSG_PUT.format(status=put.status_code, text=put.text[:300]))
    body = {"sha256": digest.hexdigest(), "filename": path.name[:255]}
    done: dict[str, Any] = client.request(
        "POST", ticket["complete_url"], build=lambda: {"json": body}
    ).json()
    return done


def _pack_folder(folder: Path, dest: Path) -> Path:
    """The model folder's files as ``dest/<name>.tar.gz`` (regular files only)."""
    archive = dest / f"{folder.name or 'model'}.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for file in sorted(folder.rglob("*")):
            rel = file.relative_to(folder)
            if file.is_file() and not any(p.startswith(".") for p in rel.parts):
                tf.add(file, arcname=rel.as_posix(), recursive=False)
    return archive


def upload_data_file(client: ApiClient, path: Path, what: str) -> str:
    """Upload a data file as a dataset (object store when the server has one); its id."""
    _say(f"uploading {what} {path.name} ({path.stat().st_size:,} bytes)")
    direct = upload_direct(client, path)
    return str((direct or _upload(client, "/v1/datasets", path, path.name))["id"])


def upload_probe_files(client: ApiClient, spec: dict[str, Any], base: Path) -> None:
    """Each probe's local file that the service takes as an upload (``upload_fields``:
    lda-search's ``train``), uploaded and replaced by ``<key>_id`` (in place)."""
    from probes.base import ProbeError, get_probe

    for i, probe in enumerate(spec.get("probes") or []):
        if not isinstance(probe, dict):
            continue
        try:
            keys = get_probe(str(probe.get("kind"))).upload_fields
        except ProbeError:  # load_raw_spec refused it already
            continue
        for key in keys:
            if probe.get(key) is None or probe.get(f"{key}_id") is not None:
                continue
            field = f"probes[{i}].{key}"
            path = _local(str(probe[key]), base, field)
            probe[f"{key}_id"] = upload_data_file(client, path, field)
            del probe[key]


def upload_inputs(client: ApiClient, raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """The spec with local dataset, probe and model files replaced by the ids of their
    uploads."""
    spec = copy.deepcopy(raw)
    dataset = spec.get("dataset")
    if isinstance(dataset, dict) and dataset.get("path") and not dataset.get("id"):
        path = _local(str(dataset["path"]), base, "dataset.path")
        dataset["id"] = upload_data_file(client, path, "dataset")
        del dataset["path"]
    upload_probe_files(client, spec, base)
    model = spec.get("model")
    if isinstance(model, dict) and model.get("path") and not model.get("id"):
        value = str(model["path"])
        if value.startswith("registered:"):
            return spec  # a model the operator registered on the server
        path = _local(value, base, "model.path")
        with tempfile.TemporaryDirectory(prefix="biasaudit-submit-") as tmp:
            sent = _pack_folder(path, Path(tmp)) if path.is_dir() else path
            _say(f"uploading model {path.name} ({sent.stat().st_size:,} bytes)")
            uploaded = _upload(client, "/v1/models", sent, sent.name)
        model["id"] = uploaded["id"]
        del model["path"]
    return spec


def submit_spec(client: ApiClient, spec: dict[str, Any]) -> str:
    """``POST /v1/audits``; the audit id. One Idempotency-Key for every retry."""
    key = str(uuid.uuid4())
    response = client.request(
        "POST", "/v1/audits", build=lambda: {"json": spec, "headers": {"Idempotency-Key": key}}
    )
    return str(response.json()["id"])


def _progress(audit_id: str, status: str, percent: int, *, final: bool) -> None:
    """One line per change when stderr is piped; on a terminal, one line redrawn as a bar."""
    line = f"audit {audit_id}: {status} {percent}%"
    if not sys.stderr.isatty():
        _say(line)
        return
    filled = percent * BAR_WIDTH // 100
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    end = "\n" if final else ""
    print(f"\r\x1b[2K[{bar}] {line}", end=end, file=sys.stderr, flush=True)


def follow(client: ApiClient, audit_id: str, *, timeout: float) -> dict[str, Any]:
    """Poll the audit until it ends (or ``timeout``); progress lines on stderr."""
    deadline = time.monotonic() + timeout
    pause = POLL_MIN
    shown: tuple[str, int] | None = None
    while True:
        state: dict[str, Any] = client.get_json(f"/v1/audits/{audit_id}")
        status = str(state.get("status"))
        percent = int(round(100 * float(state.get("progress") or 0.0)))
        if (status, percent) != shown:
            _progress(audit_id, status, percent, final=status in FINISHED)
            shown = (status, percent)
            pause = POLL_MIN
        if status in FINISHED:
            return state
        if time.monotonic() >= deadline:
            if sys.stderr.isatty():
                print(file=sys.stderr)  # end the bar's line
            raise TimeoutError(MSG_TIMEOUT.format(id=audit_id, status=status, timeout=timeout))
        time.sleep(min(pause, max(deadline - time.monotonic(), 0.05)))
        pause = min(pause * 1.5, POLL_MAX)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def download(client: ApiClient, audit_id: str, out: Path | None) -> dict[str, Any]:
    """The results document; with ``out``, results.json, report.html and the files the
    audit produced written there (results.json last: it is there only when all is)."""
    results_response = client.request("GET", f"/v1/audits/{audit_id}/results")
    results: dict[str, Any] = results_response.json()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name in download_artifacts(client, audit_id, out):
            _say(f"downloaded {out / name}")
        report = client.request("GET", f"/v1/audits/{audit_id}/report").content
        _write_atomic(out / "report.html", report)
        _write_atomic(out / "results.json", json.dumps(results, indent=2).encode())
    return results


def download_artifacts(client: ApiClient, audit_id: str, out: Path) -> list[str]:
    """Every file the audit produced, into ``out`` (bare names only; checked by SHA-256)."""
    import hashlib

    try:
        listing = client.get_json(f"/v1/audits/{audit_id}/artifacts")
    except ApiRequestError as exc:
        if exc.status == 404:  # a service from before produced files were stored
            return []
        raise
    names = []
    for item in listing.get("data") or []:
        name = str(item["name"])
        if Path(name).name != name or name.startswith("."):  # never outside ``out``
            raise ApiRequestError(f"artifact: refusing the file name {name!r}")
        body = client.request("GET", f"/v1/audits/{audit_id}/artifacts/{name}").content
        if hashlib.sha256(body).hexdigest() != item["sha256"]:
            raise ApiRequestError(f"artifact {name}: the download does not match its sha256")
        _write_atomic(out / name, body)
        names.append(name)
    return names


def _api_url(args: argparse.Namespace) -> str:
    url = (args.api or os.environ.get("BIASAUDIT_API") or "").strip()
    if not url:
        raise ApiRequestError(MSG_NO_API)
    if not url.startswith(("http://", "https://")):
        raise ApiRequestError(MSG_BAD_API.format(url=url))
    return url


def run_submit(args: argparse.Namespace, client: ApiClient | None = None) -> int:
    """The whole workflow; ``client`` may be given (tests), else built from the arguments."""
    from audit.cli.main import _summary as summary

    spec_path = Path(args.spec)
    raw = load_raw_spec(spec_path)
    token = os.environ.get("BIASAUDIT_TOKEN", "").strip()
    if client is None:
        url = _api_url(args)
        if not token:
            raise ApiRequestError(MSG_NO_TOKEN)
        client = ApiClient(url, token)
    with client:
        spec = upload_inputs(client, raw, spec_path.resolve().parent)
        audit_id = submit_spec(client, spec)
        _say(f"audit {audit_id} queued")
        if not args.wait:
            print(audit_id)
            return EXIT_PASS
        state = follow(client, audit_id, timeout=args.timeout)
        if state["status"] != "succeeded":
            error = state.get("error") or "no error recorded"
            message = MSG_ENDED.format(id=audit_id, status=state["status"], error=error)
            raise ApiRequestError(message)
        out = Path(args.out) if args.out else None
        results = download(client, audit_id, out)
    print(summary(results))
    if out is not None:
        print(f"  results: {out / 'results.json'}")
        print(f"  report:  {out / 'report.html'}")
    return EXIT_FAIL if results.get("verdict") == "fail" else EXIT_PASS


def cmd_submit(args: argparse.Namespace) -> int:
    from audit.errors import SpecError

    try:
        return run_submit(args)
    except SpecError as exc:
        print(f"biasaudit: error: {exc}", file=sys.stderr)
    except (ApiRequestError, TimeoutError) as exc:
        print(f"biasaudit: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"biasaudit: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(MSG_INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_INVALID
