"""The source registry file (pipeline.core.sources), read from disk (the YAML, and the tool
catalogs it names, relative to the registry file), and `check_file`: what ingestion would
make of a file, without writing anything (`flywheel sources check`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.formats import Quarantined
from pipeline.core.record import Trajectory
from pipeline.core.sources import RegistryError, SourceRegistry, build_registry
from pipeline.shell.ingest import FileLayout, IngestRules, SourceFile, read_file


def load_registry(path: Path) -> SourceRegistry:
    """The registry at `path`; an empty one when the file does not exist (every landing file
    is then detected, as before). Raises RegistryError, one line naming the source and field."""
    if not path.exists():
        return SourceRegistry(path=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RegistryError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None

    def read_catalog(relative: str) -> object:
        catalog = (path.parent / relative)
        try:
            return json.loads(catalog.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{catalog} does not exist") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{catalog} is not JSON: {err}") from None

    return build_registry(raw if raw is not None else {"version": 1}, str(path), read_catalog)


# --- `flywheel sources check`: a dry run over files, writing nothing --------------------------

SHOWN_PER_REASON = 3
EXCERPT_SHOWN = 100  # characters of a quarantined record's start, whitespace folded


@dataclass
class FileCheck:
    """What ingestion would make of one file, for a person fixing a source entry."""

    path: str
    source: str
    layout: FileLayout
    records: int = 0
    parsed: int = 0
    quarantined: dict[str, list[Quarantined]] = field(default_factory=dict)  # first few per reason
    quarantined_counts: Counter[str] = field(default_factory=Counter)
    tool_calls: int = 0
    tool_results: int = 0
    flagged_steps: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # success / failure / unknown
    with_tools: int = 0
    react_text_turns: int = 0  # assistant turns with ReAct text but no tool calls
    sample: dict[str, Any] | None = None  # the first record, canonical


_REACT_HINT = re.compile(r"^\s*(Thought|Action):", re.M)


def check_file(path: Path, registry: SourceRegistry, source: str | None = None) -> FileCheck:
    """Read `path` as ingestion would (its source named, or found by its folder/name) and
    count what comes out. Nothing is written anywhere."""
    name = f"{path.parent.name}/{path.name}" if source is None else f"{source}/{path.name}"
    rules = IngestRules(registry if source is None else SourceRegistry((registry.get(source),)))
    with read_file(SourceFile(name, str(path), path=path), rules) as (spec, layout, _, records):
        check = FileCheck(str(path), spec.name, layout)
        for record in records:
            check.records += 1
            if isinstance(record, Quarantined):
                check.quarantined_counts[record.reason] += 1
                shown = check.quarantined.setdefault(record.reason, [])
                if len(shown) < SHOWN_PER_REASON:
                    shown.append(record)
                continue
            _count(check, record.trajectory)
    return check


def _count(check: FileCheck, t: Trajectory) -> None:
    check.parsed += 1
    check.tool_calls += sum(len(s.tool_calls) for s in t.steps)
    check.tool_results += sum(s.role == "tool" for s in t.steps)
    check.flagged_steps.update(s.flag for s in t.steps if s.flag)
    check.react_text_turns += sum(
        s.role == "assistant" and not s.tool_calls and bool(_REACT_HINT.search(s.content or "")) for s in t.steps
    )
    check.outcomes["unknown" if t.outcome.success is None else "success" if t.outcome.success else "failure"] += 1
    check.with_tools += bool(t.tools)
    if check.sample is None:
        body = t.to_dict()
        body["steps"] = body["steps"][:6] + ([{"...": f"{len(t.steps) - 6} more steps"}] if len(t.steps) > 6 else [])
        body["tools"] = [tool.get("function", tool).get("name") for tool in t.tools]
        check.sample = body


def render_check(check: FileCheck) -> str:
    layout = check.layout
    lines = [
        f"{check.path}",
        f"  source: {check.source}   format: {layout.format or 'not detected'}   "
        f"container: {layout.container or '-'}   compression: {layout.compression}",
        f"  records: {check.records}   parsed: {check.parsed}   quarantined: {sum(check.quarantined_counts.values())}",
    ]
    for reason, n in check.quarantined_counts.most_common():
        lines.append(f"    {reason}: {n}")
        for q in check.quarantined[reason]:
            lines.append(f"      #{q.line}: {q.detail}")
            if q.raw_excerpt:
                lines.append(f"        | {' '.join(q.raw_excerpt.split())[:EXCERPT_SHOWN]}")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(check.outcomes.items())) or "-"
    lines += [
        f"  tool calls: {check.tool_calls}   tool results: {check.tool_results}   "
        f"records with tools: {check.with_tools}/{check.parsed}",
        f"  outcomes: {outcomes}",
    ]
    if check.flagged_steps:
        lines.append("  flagged steps: " + ", ".join(f"{k} {v}" for k, v in check.flagged_steps.items()))
    if check.react_text_turns and not check.tool_calls:
        lines.append(f"  hint: {check.react_text_turns} assistant turns hold ReAct text (Thought:/Action:) "
                     "and no tool calls; set `react_in_chat: true` on the source")
    if check.parsed and not check.with_tools:
        lines.append("  hint: no record carries its tools; give the source a `tool_catalog`")
    if check.sample is not None:
        lines.append("  first record, canonical (steps cut after 6, tools by name):")
        lines += ["    " + line for line in json.dumps(check.sample, indent=2, ensure_ascii=False).splitlines()]
    return "\n".join(lines)
