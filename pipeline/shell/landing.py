"""The landing area: a day's files as ingestion reads them, and files put there for a day's
ingestion (`flywheel import`)."""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


def landing_files(day: Path) -> dict[str, Path]:
    """A landing day's files by their path within it ("tau/results.json"), sorted; hidden
    files and folders (editors' and uploaders' temporaries) are not logs."""
    if not day.is_dir():
        return {}
    found = {p.relative_to(day).as_posix(): p for p in day.rglob("*") if p.is_file()}
    return {name: found[name] for name in sorted(found) if not any(part.startswith(".") for part in name.split("/"))}


class LandingConflict(RuntimeError):
    """A file of the same name with other content is already in the landing folder."""


@dataclass(frozen=True)
class Placed:
    path: Path
    copied: bool  # False: the same bytes were already there


def import_files(source: Path, folder: Path) -> list[Placed]:
    """Copy `source` (a file, or every file under a folder, keeping their relative paths)
    into `folder`. Each file is written under a hidden temporary name and renamed, so a run
    that starts meanwhile never reads half a file (ingestion skips hidden files). A file
    already there with the same bytes is left alone; one with other bytes is refused before
    anything is copied, since a landed file may have been ingested already."""
    files = {source.name: source} if source.is_file() else {
        p.relative_to(source).as_posix(): p for p in sorted(source.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
    }
    conflicts = [name for name, p in files.items()
                 if (folder / name).exists() and not filecmp.cmp(p, folder / name, shallow=False)]
    if conflicts:
        raise LandingConflict(f"{folder / conflicts[0]} already exists with other content "
                              f"({len(conflicts)} such files); give the new file another name")
    placed = []
    for name, path in files.items():
        target = folder / name
        if target.exists():
            placed.append(Placed(target, copied=False))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.importing")
        shutil.copyfile(path, temporary)
        os.replace(temporary, target)
        placed.append(Placed(target, copied=True))
    return placed
