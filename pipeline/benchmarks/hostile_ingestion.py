"""The hostile corpus through ingestion, measured: records tried, ingested, quarantined,
lost, by reason, peak RSS and seconds, and every record's outcome against the manifest.

`run_hostile_ingestion(n_records, seed)` generates a corpus in a temporary folder, ingests it
with `pipeline.shell.ingest.ingest_files` in a fresh subprocess (for a clean memory
measurement) and returns the reliability numbers. `python -m
pipeline.benchmarks.hostile_ingestion DIR` is that subprocess: it ingests every file of DIR
and prints the measurement as JSON.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.benchmarks.hostile_corpus import (
    INGESTED,
    MB,
    QUARANTINED,
    HostileManifest,
    generate_hostile_corpus,
)
from pipeline.benchmarks.samplers import RssSampler, peak_hwm, reset_peak, rss


def measure_ingestion(landing_dir: Path) -> dict[str, Any]:
    """Ingest every file of `landing_dir` in this process and measure it: RSS before, peak RSS
    during ingestion, seconds, and every record's outcome. Meant to run in a fresh process
    (`python -m pipeline.benchmarks.hostile_ingestion DIR`), where nothing else has touched the heap."""
    from pipeline.shell.ingest import SourceFile, ingest_files

    files = [
        SourceFile(p.name, f"lakefs://hostile/c0ffee/{p.name}", p.read_bytes())
        for p in sorted(Path(landing_dir).iterdir())
        if p.is_file()
    ]
    gc.collect()
    baseline = rss()
    exact = reset_peak()
    started = time.perf_counter()
    with RssSampler() as sampler:
        result = ingest_files(files, partition="2026-11-21", raw_commit="c0ffee")
    seconds = time.perf_counter() - started
    hwm = peak_hwm() if exact else None
    peak = max(sampler.peak, hwm or 0)
    return {
        "records_read": result.records_read,
        "ingested": result.ingested,
        "quarantined": result.quarantined,
        "by_reason": result.by_reason(),
        "files": [asdict(f) for f in result.files],
        "outcomes": [[row["source_uri"].rsplit("/", 1)[1], row["source_line"], INGESTED, None]
                     for row in result.tables["trajectories"]]
        + [[row["source_file"], row["source_line"], QUARANTINED, row["reason"]]
           for row in result.tables["quarantine"]],
        "input_bytes": sum(len(f.data) for f in files),
        "largest_file_bytes": max((len(f.data) for f in files), default=0),
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "rss_growth_bytes": peak - baseline,
        "peak_exact": hwm is not None,
        "seconds": seconds,
    }


def measure_in_subprocess(landing_dir: Path, timeout: float = 300) -> dict[str, Any]:
    """`measure_ingestion` in a fresh interpreter, for a clean RSS measurement."""
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.benchmarks.hostile_ingestion", str(landing_dir)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=root, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hostile ingestion subprocess failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def compare_outcomes(manifest: HostileManifest, outcomes: Iterable[Iterable[Any]]) -> list[str]:
    """Differences between what the manifest expects and what ingestion did, one line each
    (empty when every record came out as expected)."""
    actual: dict[tuple[str, int], tuple[str, str | None]] = {}
    problems = []
    for name, line, outcome, reason in outcomes:
        if (name, line) in actual:
            problems.append(f"{name}:{line}: two records start on this line")
        actual[(name, line)] = (outcome, reason)
    for f in manifest.files:
        for r in f.records:
            got = actual.pop((f.name, r.line), None)
            at = f"{f.name}:{r.line} ({r.case})"
            if got is None:
                problems.append(f"{at}: no record came out (lost)")
            elif got[0] != r.outcome:
                problems.append(f"{at}: expected {r.outcome}, got {got[0]} {got[1] or ''}")
            elif r.outcome == QUARANTINED and r.reasons and got[1] not in r.reasons:
                problems.append(f"{at}: expected reason {'/'.join(r.reasons)}, got {got[1]}")
    problems += [f"{name}:{line}: unexpected {o} record ({why})" for (name, line), (o, why) in actual.items()]
    return problems


def run_hostile_ingestion(n_records: int = 1200, seed: int = 13, *, isolated: bool = True) -> dict[str, Any]:
    """Generate a hostile corpus in a temporary folder, ingest it, and summarise reliability:
    records_tried (written), ingested, quarantined, lost (= tried - ingested - quarantined,
    must be 0), by_reason, peak_rss_mb (peak RSS of the ingesting process), seconds (ingestion
    only), plus rss_growth_mb, input_mb, largest_file_mb, generate_seconds and mismatches
    (records whose outcome differs from the manifest). `isolated` runs ingestion in a fresh
    subprocess so the memory numbers are not polluted by the caller."""
    with tempfile.TemporaryDirectory(prefix="flywheel-hostile-") as tmp:
        started = time.perf_counter()
        manifest = generate_hostile_corpus(Path(tmp), n_records=n_records, seed=seed)
        generate_seconds = time.perf_counter() - started
        m = measure_in_subprocess(Path(tmp)) if isolated else measure_ingestion(Path(tmp))
    mismatches = compare_outcomes(manifest, m["outcomes"])
    return {
        "records_tried": manifest.records,
        "records_read": m["records_read"],
        "ingested": m["ingested"],
        "quarantined": m["quarantined"],
        "lost": manifest.records - m["ingested"] - m["quarantined"],
        "by_reason": m["by_reason"],
        "peak_rss_mb": round(m["peak_rss_bytes"] / MB, 1),
        "rss_growth_mb": round(m["rss_growth_bytes"] / MB, 1),
        "input_mb": round(m["input_bytes"] / MB, 1),
        "largest_file_mb": round(m["largest_file_bytes"] / MB, 1),
        "seconds": round(m["seconds"], 2),
        "generate_seconds": round(generate_seconds, 2),
        "files": len(manifest.files),
        "mismatches": mismatches,
    }


def _main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pipeline.benchmarks.hostile_ingestion LANDING_DIR", file=sys.stderr)
        return 2
    print(json.dumps(measure_ingestion(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
