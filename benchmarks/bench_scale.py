"""Large decision logs: in-process vs sharded over worker processes, Parquet and CSV.

Generates a synthetic decision log of ``--rows`` rows into a temporary folder (under
``--tmp``, deleted afterwards), once as Parquet (row groups of ``--shard-rows``) and
once as CSV (and, with ``upload``, the CSV file with the columnar copy an upload gets,
its conversion timed apart as a one-time cost), then times on each file:

- the in-process audit (``compute_results``; the file read in chunks, as the engine
  reads any file above ``BIASAUDIT_CHUNK_BYTES``), in a child process of its own;
- the sharded audit: the worker's plan (``sharding.plan_for``), every shard counted
  by ``data.count_chunks`` in a pool of ``--workers`` processes (what each
  ``biasaudit.run_shard`` task runs), their JSON parts merged by
  ``sharding.results_from_parts`` (what ``biasaudit.merge_shards`` runs). Celery's
  transport is left out: it moves the parts, whose size is printed.

It prints wall times, the ratio sharded / in-process, peak memory (RSS) per process,
rows per second per process, merge time and bytes moved, and checks that every
value of the four results documents is equal (the file's own fields aside).

    python benchmarks/bench_scale.py --rows 2000000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BLOCK = 2_000_000  # rows generated at a time


def spec_for(path: Path) -> dict[str, Any]:
    return {
        "name": "bench-scale",
        "domain": "lending",
        "dataset": {
            "path": str(path),
            "label": "repaid",
            "prediction": "approved",
            "protected": ["sex", "race", "age_group"],
        },
        "probes": [{"kind": "demographic", "intersectional": True, "bootstrap": 200}],
    }


def generate(
    folder: Path, rows: int, row_group: int, formats: tuple[str, ...] = ("parquet", "csv")
) -> tuple[Path, Path]:
    """Write the same rows as Parquet and as CSV (those in ``formats``), block by block
    (bounded memory: 100M rows take ~1 GB of Parquet and ~2 GB of CSV on disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    parquet, csv = folder / "log.parquet", folder / "log.csv"
    rng = np.random.default_rng(0)
    races = pa.array(["Asian", "Black", "Hispanic", "White", "Other", None])
    sexes, ages = pa.array(["F", "M"]), pa.array(["<25", "25-44", "45-64", "65+"])
    race_p = np.cumsum([0.06, 0.13, 0.18, 0.58, 0.03, 0.02])
    writer = None
    with open(csv, "wb") as out:
        for start in range(0, rows, BLOCK):
            n = min(BLOCK, rows - start)
            sex = rng.integers(0, 2, n)
            race = np.minimum(np.searchsorted(race_p, rng.random(n)), 5)
            table = pa.table(
                {
                    "sex": sexes.take(sex),
                    "race": races.take(race),
                    "age_group": ages.take(rng.integers(0, 4, n)),
                    "repaid": rng.integers(0, 2, n, dtype=np.int8),
                    "approved": (rng.random(n) < np.where(sex == 0, 0.52, 0.6)).astype(np.int8),
                }
            )
            if "parquet" in formats:
                if writer is None:
                    writer = pq.ParquetWriter(parquet, table.schema)
                writer.write_table(table, row_group_size=row_group)
            if "csv" not in formats and "upload" not in formats:
                continue
            options = pacsv.WriteOptions(include_header=start == 0, quoting_style="needed")
            pacsv.write_csv(table, out, write_options=options)
    if writer is not None:
        writer.close()
    return parquet, csv


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process (its threads included): a rate that the machine's
    load does not bend as much as wall time does."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_process(path: str, small: str) -> tuple[dict[str, Any], float, float, float]:
    """The in-process audit, in this (fresh) process: document, seconds, peak MB, CPU s."""
    os.environ["BIASAUDIT_CHUNK_BYTES"] = "1"  # read in chunks (and counted), as large files are
    from audit.engine.run import compute_results
    from audit.settings import get_settings

    get_settings.cache_clear()  # forked from the parent: its settings were cached

    compute_results(spec_for(Path(small)))  # lazy imports done, as in a running worker
    t0, c0 = time.perf_counter(), _cpu_s()
    doc = compute_results(spec_for(Path(path)), audit_id="bench")
    return doc, time.perf_counter() - t0, _peak_mb(), _cpu_s() - c0


def count_shard(path: str, shard: tuple[int, int, int, str]) -> dict[str, Any]:
    """One ``biasaudit.run_shard``: its JSON part, plus timing and this process's peak."""
    from audit.engine import data as data_mod
    from audit.engine.spec import parse_spec
    from audit.settings import get_settings

    spec, _ = parse_spec(spec_for(Path(path)))
    t0, c0 = time.perf_counter(), _cpu_s()
    part = data_mod.count_chunks(
        spec.dataset,
        Path(path),
        shard=data_mod.Shard(*shard),
        chunk_rows=get_settings().chunk_rows,
        max_levels=spec.policy.max_levels,
    )
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return {
        "part": part,
        "seconds": seconds,
        "cpu_s": cpu,
        "pid": os.getpid(),
        "peak_mb": _peak_mb(),
    }


def convert(csv: str, shard_rows: int) -> tuple[str, float, float, float, str]:
    """The upload's columnar copy (what ``biasaudit.convert_dataset`` runs once per CSV
    upload), in this (fresh) process: the uploaded file, seconds, peak MB, CPU s, and its
    sha256 (the API computes it while the bytes stream in; not timed)."""
    from audit.engine import columnar
    from audit.engine.data import file_sha256

    upload = Path(csv).parent / "upload" / "log.csv"
    upload.parent.mkdir(exist_ok=True)
    try:
        os.link(csv, upload)  # the same bytes, no second copy on disk
    except OSError:  # a file system without hard links
        shutil.copyfile(csv, upload)
    t0, c0 = time.perf_counter(), _cpu_s()
    columnar.convert_csv(upload, columnar.copy_path(upload), row_group_rows=shard_rows)
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return str(upload), seconds, _peak_mb(), cpu, file_sha256(upload)


def warm(small: str) -> int:
    """Lazy imports done before the clock starts, as in a running worker process."""
    from audit.engine.run import compute_results

    compute_results(spec_for(Path(small)))
    return os.getpid()


def sharded(
    path: Path, pool: ProcessPoolExecutor, args: argparse.Namespace, sha256: str | None = None
) -> dict[str, Any]:
    """``sha256``: an upload's, stored when it arrived (the merge then hashes nothing)."""
    from audit.engine import sharding
    from audit.engine.spec import parse_spec

    t0 = time.perf_counter()
    spec, _ = parse_spec(spec_for(path))
    shards = sharding.plan_for(
        spec, path, rows=None, shard_rows=args.shard_rows, max_shards=args.max_shards
    )
    plan_s = time.perf_counter() - t0
    futures = [
        pool.submit(count_shard, str(path), (s.index, s.start, s.stop, s.unit)) for s in shards
    ]
    done = [f.result() for f in futures]
    count_s = time.perf_counter() - t0 - plan_s
    parts = [json.loads(json.dumps(d["part"])) for d in done]  # through the result backend
    moved = sum(len(json.dumps(d["part"])) for d in done)
    t1 = time.perf_counter()
    doc = sharding.results_from_parts(
        spec_for(path), parts, audit_id="bench", path=path, sha256=sha256
    )
    merge_s = time.perf_counter() - t1
    peaks: dict[int, float] = {}
    for d in done:
        peaks[d["pid"]] = max(peaks.get(d["pid"], 0.0), d["peak_mb"])
    rates = [d["part"]["rows"] / d["seconds"] for d in done if d["seconds"] > 0]
    cpu = sum(d["cpu_s"] for d in done)
    return {
        "doc": doc,
        "seconds": time.perf_counter() - t0,
        "plan_s": plan_s,
        "count_s": count_s,
        "merge_s": merge_s,
        "shards": len(shards),
        "bytes_moved": moved,
        "peak_mb": max(peaks.values()),
        "rows_per_s_per_process": float(np.median(rates)),
        "cpu_s": cpu,
        "rows_per_cpu_s": sum(d["part"]["rows"] for d in done) / cpu if cpu > 0 else 0.0,
    }


def values(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for key in ("id", "started_at", "finished_at"):
        doc["audit"].pop(key)
    for key in ("sha256", "path", "shards", "chunked", "columnar"):
        doc["dataset"].pop(key, None)
    doc["manifest"]["spec"]["dataset"].pop("path")
    doc["audit"].pop("spec_sha256")
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-rows", type=int, default=2_000_000)
    parser.add_argument("--max-shards", type=int, default=64)
    parser.add_argument("--tmp", default=tempfile.gettempdir())
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--formats",
        default="parquet,csv,upload",
        help="comma-separated: parquet, csv, upload (the CSV file with its columnar copy, "
        "as an upload gets; the conversion timed apart); only these are audited",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.tmp))
    figures: dict[str, Any] = {"rows": args.rows, "workers": args.workers}
    try:
        formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
        t0 = time.perf_counter()
        parquet, csv = generate(folder, args.rows, args.shard_rows, formats)
        small, _ = generate(folder / "warm", 5000, 5000)
        warm(str(small))  # this process merges: its imports are done too
        sizes = ", ".join(
            f"{p.suffix[1:]} {p.stat().st_size / 1e6:.0f} MB" for p in (parquet, csv) if p.exists()
        )
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.0f} s: {sizes}")
        docs = {}
        upload, stored_sha256 = csv, None
        if "upload" in formats:
            with ProcessPoolExecutor(max_workers=1) as solo:
                made = solo.submit(convert, str(csv), args.shard_rows).result()
            upload, seconds, peak, cpu = Path(made[0]), made[1], made[2], made[3]
            stored_sha256 = made[4]
            copy_mb = upload.with_name(upload.name + ".columnar.parquet").stat().st_size / 1e6
            figures["conversion"] = {"seconds": seconds, "peak_mb": peak, "cpu_s": cpu}
            figures["conversion"]["copy_mb"] = copy_mb
            print(
                f"columnar copy (once per upload): {seconds:.2f} s, {cpu:.1f} CPU s, "
                f"peak {peak:.0f} MB, {copy_mb:.0f} MB on disk"
            )
        for name, path in (("parquet", parquet), ("csv", csv), ("upload", upload)):
            if name not in formats:
                continue
            with ProcessPoolExecutor(max_workers=1) as solo:
                doc, seconds, peak, cpu = solo.submit(in_process, str(path), str(small)).result()
            docs[f"in-process {name}"] = doc
            with ProcessPoolExecutor(max_workers=args.workers) as pool:
                [f.result() for f in [pool.submit(warm, str(small)) for _ in range(args.workers)]]
                run = sharded(path, pool, args, stored_sha256 if name == "upload" else None)
            docs[f"sharded {name}"] = run.pop("doc")
            run.update(in_process_s=seconds, in_process_peak_mb=peak, in_process_cpu_s=cpu)
            run["ratio"] = run["seconds"] / seconds
            figures[name] = run
            print(
                f"{name}: in-process {seconds:.2f} s (peak {peak:.0f} MB); sharded "
                f"{run['seconds']:.2f} s = {run['ratio']:.2f}x (plan {run['plan_s']:.2f} s, "
                f"{run['shards']} shards {run['count_s']:.2f} s, merge {run['merge_s']:.2f} s), "
                f"peak per process {run['peak_mb']:.0f} MB, "
                f"{run['rows_per_s_per_process'] / 1e6:.2f} M rows/s per process "
                f"({run['rows_per_cpu_s'] / 1e6:.2f} M rows per CPU second; in-process "
                f"{cpu:.1f} CPU s), "
                f"{run['bytes_moved'] / 1e3:.0f} kB moved"
            )
        ways = (("in_process", "in_process_s"), ("sharded", "seconds"))
        cpus = (("in_process_cpu", "in_process_cpu_s"), ("sharded_cpu", "cpu_s"))
        for name in ("csv", "upload"):
            if name not in figures or "parquet" not in figures:
                continue
            for way, key in (*ways, *cpus):
                ratio = figures[name][key] / figures["parquet"][key]
                figures[f"{name}_over_parquet_{way}"] = ratio
                print(f"{way.replace('_', '-')} {name} / parquet = {ratio:.2f}")
        reference = values(next(iter(docs.values())))
        equal = {name: values(doc) == reference for name, doc in docs.items()}
        figures["equal"] = equal
        figures["load_average"] = os.getloadavg()
        print(f"every value equal to {next(iter(docs))}: {equal}")
        worst = max(figures[n]["ratio"] for n in formats)
        peak = max(max(figures[n]["peak_mb"], figures[n]["in_process_peak_mb"]) for n in formats)
        print(
            f"acceptance: sharded / in-process at most {worst:.2f} (<= 1.2), "
            f"peak per process {peak:.0f} MB (< 1024)"
            + "".join(
                f", {n} / parquet sharded {figures[f'{n}_over_parquet_sharded']:.2f} (<= 2)"
                for n in ("csv", "upload")
                if f"{n}_over_parquet_sharded" in figures
            )
        )
        print("load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2, default=float))
        if not all(equal.values()):
            raise SystemExit("results differ")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
