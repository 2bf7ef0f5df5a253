"""Writes one simulated day: landing files in several formats, and the ground truth beside them.

    OUT/landing/<date>/       canonical-000.jsonl, openai-000.jsonl, openai-wrapped-000.jsonl,
                              otel-000.jsonl, react-000.txt, ... (one format per file)
    OUT/ground_truth/<date>/  pii.jsonl, duplicates.jsonl, outcomes.jsonl, mess.jsonl, manifest.json

Files are written with `pipeline.core.formats.export`, one record at a time, so each record's
line is known exactly and the ground truth can name it. Records of a lane are in start-time
order; an exact replay always lands in a different file than its original (a re-sent
batch), which also keeps OTLP traces, grouped per file by trace id, one per record.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from random import Random
from typing import Any

from pipeline.core import formats
from pipeline.core.formats import OpenAIMapping
from pipeline.core.record import Trajectory
from pipeline.simulator.agent import AgentProfile
from pipeline.simulator.mess import EXACT_REPLAY_RATE, NEAR_DUPLICATE_RATE, Piece, near_duplicate, plant
from pipeline.simulator.tasks import TaskMix
from pipeline.simulator.traffic import SimRecord, simulate_day

FILE_RECORDS = 50  # records per landing file before replays and defects


@dataclass(frozen=True)
class Lane:
    """One integration shipping logs: a format (and mapping) and its file-name prefix."""

    name: str
    fmt: str
    preset: str | None  # openai_chat mapping preset
    ext: str
    weight: int

    def mapping(self) -> OpenAIMapping | None:
        return OpenAIMapping.preset(self.preset) if self.preset else None

    def export(self, t: Trajectory) -> bytes:
        data = formats.export(self.fmt, [t], self.mapping())
        return data + b"\n" if self.fmt == "react_text" else data  # a blank line between transcripts

    def file_name(self, k: int) -> str:
        return f"{self.name}-{k:03d}.{self.ext}"


LANES = (
    Lane("canonical", "canonical", None, "jsonl", 30),
    Lane("openai", "openai_chat", "default", "jsonl", 25),
    Lane("openai-wrapped", "openai_chat", "wrapped", "jsonl", 10),
    Lane("otel", "otel_genai", None, "jsonl", 15),
    Lane("react", "react_text", None, "txt", 20),
)


@dataclass(frozen=True)
class DaySummary:
    date: str
    trajectories: int  # distinct trajectories (near duplicates included)
    files: dict[str, int]  # file → records written (what parse_file yields for it)
    records_by_format: dict[str, int]  # lane → records written
    defects_planted: dict[str, int]  # defect → count


def write_day(out_dir: Path, seed: int, day: int, on: date, per_day: int, mix: TaskMix,
              profile: AgentProfile) -> DaySummary:
    records = simulate_day(seed, day, on, per_day, mix, profile)
    rng = Random(f"landing:{seed}:{day}")
    lane_of, nears = _route(records, rng)
    near_of = {near.trajectory.trajectory_id: original for near, original in nears}
    everything = records + [near for near, _ in nears]
    files, lane_files = _lay_out(everything, lane_of, near_of)
    _add_replays(records, lane_of, files, lane_files, rng)
    lane_by_file = {name: lane for lane in LANES for name in lane_files.get(lane.name, [])}
    planted = {name: plant(files[name], lane.fmt, lane.mapping(), rng) for name, lane in lane_by_file.items()}
    truth = _ground_truth(everything, near_of, planted, lane_by_file, on, day)
    _write(out_dir / "landing" / on.isoformat(), {name: b"".join(p.data for p in ps) for name, ps in planted.items()})
    _write(out_dir / "ground_truth" / on.isoformat(), truth)
    manifest = json.loads(truth["manifest.json"])
    return DaySummary(
        date=on.isoformat(),
        trajectories=manifest["trajectories"],
        files={name: f["records"] for name, f in manifest["files"].items()},
        records_by_format={lane: f["records"] for lane, f in manifest["formats"].items()},
        defects_planted=manifest["defects"],
    )


def _route(records: list[SimRecord], rng: Random) -> tuple[dict[str, Lane], list[tuple[SimRecord, str]]]:
    """Each trajectory's lane, and near duplicates (with their original's id) on lanes of their own."""
    weights = [lane.weight for lane in LANES]
    lane_of: dict[str, Lane] = {}
    nears: list[tuple[SimRecord, str]] = []
    for rec in records:
        lane_of[rec.trajectory.trajectory_id] = rng.choices(LANES, weights)[0]
        if rng.random() < NEAR_DUPLICATE_RATE:
            near = near_duplicate(rec, rng)
            lane_of[near.trajectory.trajectory_id] = rng.choices(LANES, weights)[0]
            nears.append((near, rec.trajectory.trajectory_id))
    return lane_of, nears


def _lay_out(records: list[SimRecord], lane_of: dict[str, Lane], near_of: dict[str, str]
             ) -> tuple[dict[str, list[Piece]], dict[str, list[str]]]:
    """Pieces per file (time order, FILE_RECORDS per file) and file names per lane."""
    files: dict[str, list[Piece]] = {}
    lane_files: dict[str, list[str]] = defaultdict(list)
    for lane in LANES:
        mine = sorted((r.trajectory for r in records if lane_of[r.trajectory.trajectory_id] is lane),
                      key=lambda t: (t.started_at or "", t.trajectory_id))
        for k, start in enumerate(range(0, len(mine), FILE_RECORDS)):
            name = lane.file_name(k)
            lane_files[lane.name].append(name)
            files[name] = [
                Piece(lane.export(t), t.trajectory_id, "near_duplicate" if t.trajectory_id in near_of else "record")
                for t in mine[start : start + FILE_RECORDS]
            ]
    return files, lane_files


def _add_replays(records: list[SimRecord], lane_of: dict[str, Lane], files: dict[str, list[Piece]],
                 lane_files: dict[str, list[str]], rng: Random) -> None:
    """Exact replays: a record re-sent, byte for byte, in another file of its lane."""
    home = {p.trajectory_id: (name, p) for name, pieces in files.items() for p in pieces}
    for rec in records:
        if rng.random() >= EXACT_REPLAY_RATE:
            continue
        lane = lane_of[rec.trajectory.trajectory_id]
        original_file, original = home[rec.trajectory.trajectory_id]
        others = [n for n in lane_files[lane.name] if n != original_file]
        if not others:
            others = [lane.file_name(len(lane_files[lane.name]))]
            lane_files[lane.name] += others
            files[others[0]] = []
        target = files[rng.choice(others)]
        target.insert(rng.randrange(len(target) + 1), Piece(original.data, original.trajectory_id, "exact_replay"))


def _ground_truth(records: list[SimRecord], near_of: dict[str, str], files: dict[str, list[Piece]],
                  lanes: dict[str, Lane], on: date, day: int) -> dict[str, bytes]:
    duplicates: list[dict[str, Any]] = []
    mess: list[dict[str, Any]] = []
    manifest_files: dict[str, dict[str, Any]] = {}
    for name, pieces in files.items():
        line = 1
        for p in pieces:
            if p.kind == "exact_replay":
                duplicates.append({"trajectory_id": p.trajectory_id, "duplicate_of": p.trajectory_id,
                                   "kind": "exact", "file": name, "line": line})
            if p.kind == "near_duplicate":
                duplicates.append({"trajectory_id": p.trajectory_id, "duplicate_of": near_of[p.trajectory_id],
                                   "kind": "near", "file": name, "line": line})
            if p.defect:
                mess.append({"file": name, "line": line, "defect": p.defect, "expected_reason": p.reason,
                             "trajectory_id": p.trajectory_id})
            line += p.data.count(b"\n")
        records_written = sum(p.records for p in pieces)
        quarantined = sum(1 for p in pieces if p.reason)
        manifest_files[name] = {
            "lane": lanes[name].name, "format": lanes[name].fmt, "mapping": lanes[name].preset,
            "records": records_written, "parsed": records_written - quarantined, "quarantined": quarantined,
            "lines": line - 1,
        }
    ordered = sorted(records, key=lambda r: (r.trajectory.started_at or "", r.trajectory.trajectory_id))
    outcomes = [
        {"trajectory_id": r.trajectory.trajectory_id, "task_type": r.trajectory.task_type,
         "success": r.trajectory.outcome.success, "termination": r.trajectory.outcome.termination,
         "feedback_conflict": r.feedback_conflict}
        for r in ordered
    ]
    manifest = {
        "date": on.isoformat(),
        "day": day,
        "trajectories": len(records),
        "formats": {
            lane.name: {"format": lane.fmt, "mapping": lane.preset, "files": names,
                        "records": sum(manifest_files[n]["records"] for n in names)}
            for lane in LANES if (names := [n for n, owner in lanes.items() if owner is lane])
        },
        "files": manifest_files,
        "defects": dict(sorted(Counter(m["defect"] for m in mess).items())),
    }
    return {
        "pii.jsonl": _jsonl(asdict(span) for r in ordered for span in r.pii),
        "duplicates.jsonl": _jsonl(duplicates),
        "outcomes.jsonl": _jsonl(outcomes),
        "mess.jsonl": _jsonl(mess),
        "manifest.json": (json.dumps(manifest, indent=2) + "\n").encode(),
    }


def _jsonl(rows: Any) -> bytes:
    return b"".join((json.dumps(row, ensure_ascii=False) + "\n").encode() for row in rows)


def _write(folder: Path, files: dict[str, bytes]) -> None:
    """Replace the folder's files with `files` (the folder is this day's, owned by the simulator)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    for name, data in files.items():
        (folder / name).write_bytes(data)
