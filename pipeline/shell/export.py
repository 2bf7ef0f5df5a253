"""Export a dataset release for people who train elsewhere (TRL, OpenAI fine-tuning).

`export_release(repo, "dataset-2026-11-17-1", "trl-sft", out_dir)` resolves the release
(a tag, or a commit id) to its commit id once and reads every file at that commit id, so
the export is exactly that release even if the tag is later moved. A ref that does not
resolve to a published release (a commit whose validation verdict passed) is refused.

What each format exports (records: pipeline/core/export_formats.py). Only the train split
feeds the train files (sft_examples, preference_pairs and kto_examples hold kept train
trajectories only); eval_cases, the held-out eval split, becomes the evaluation file of the
formats that take one:

    trl-sft  trl-sft-train.jsonl      sft_examples      conversational language modeling
             trl-sft-eval.jsonl       eval_cases        prompt-completion (an SFTTrainer eval_dataset)
    trl-dpo  trl-dpo-train.jsonl      preference_pairs  conversational preference
    trl-kto  trl-kto-train.jsonl      kto_examples      conversational unpaired preference
    openai   openai-train.jsonl       sft_examples      chat fine-tuning (training_file)
             openai-validation.jsonl  eval_cases        chat fine-tuning (validation_file)

Beside them: the release's data card (`data_card.json`, `DATA_CARD.md`, byte for byte) and
`<format>-manifest.json` (release, commit id, format, and each file's rows and sha256),
written last, so a directory with a manifest holds a complete export. A directory may hold
several formats of one release, never two releases.

Worth knowing when training elsewhere:
- The JSONL round-trips exactly through `datasets.load_dataset("json", ...)` from datasets
  4.7 on (objects of varying keys, such as tool-call arguments, load as its Json type);
  older versions merge every call's arguments into one struct and add null keys.
- An eval row is one decision point: the conversation before it and the reference turn (its
  first tool call, or its final answer). Given with a `messages` train set, TRL's SFTTrainer
  scores every assistant turn of an eval row (it takes `completion_only_loss` from the train
  set), the earlier reference turns included; the OpenAI validation file gives those turns
  weight 0, so only the decision point counts.
- Not carried over: the balancing weight of sft_examples and kto_examples (neither TRL nor
  OpenAI has a per-example weight; it stays in the release's Parquet files).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.core.export_formats import check_format, jsonl
from pipeline.shell.lakefs_store import read_objects
from pipeline.shell.marts import read_parquet
from pipeline.shell.release import DATA_PREFIX, TAG_PREFIX
from pipeline.version import code_version

DATA_CARD_FILES = ("data_card.json", "DATA_CARD.md")
MANIFEST_SUFFIX = "-manifest.json"


class UnknownRelease(LookupError):
    """The ref names no published dataset release."""


@dataclass(frozen=True)
class ExportedFile:
    name: str
    sha256: str
    rows: int | None = None  # None for the data card
    source: str | None = None  # the released file it was made from, by commit id


@dataclass(frozen=True)
class ExportManifest:
    repo: str
    release: str  # as asked: a tag (or a commit id)
    commit_id: str  # what every file was read at
    content_digest: str
    format: str
    files: tuple[ExportedFile, ...]
    code_version: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    def __str__(self) -> str:
        lines = [f"{self.format} export of {self.release} (lakefs://{self.repo}/{self.commit_id})"]
        lines += [f"  {f.name}" + (f"  {f.rows} rows" if f.rows is not None else "") + f"  sha256 {f.sha256}"
                  for f in self.files]
        return "\n".join(lines)


def resolve_release(repo: Any, release: str) -> tuple[str, dict[str, str]]:
    """(commit id, commit metadata) of a published release, named by tag or commit id."""
    from lakefs.exceptions import NotFoundException

    try:
        commit = repo.ref(release).get_commit()
    except NotFoundException:
        try:
            tags = sorted(t.id for t in repo.tags(prefix=TAG_PREFIX))
        except NotFoundException:
            raise UnknownRelease(f"no lakeFS repository {repo.id!r} (looking for release {release!r})") from None
        known = ", ".join(tags[-5:]) if tags else "none yet"
        raise UnknownRelease(f"no dataset release {release!r} in lakeFS repository {repo.id!r} "
                             f"(latest release tags: {known})") from None
    metadata = commit.metadata or {}
    if metadata.get("validation_verdict") != "passed" or "content_digest" not in metadata:
        raise UnknownRelease(f"{release!r} (commit {commit.id}) in {repo.id!r} is not a published dataset "
                             f"release (validation verdict: {metadata.get('validation_verdict', 'none')})")
    return commit.id, metadata


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _refuse_another_release(out_dir: Path, commit_id: str) -> None:
    for manifest in out_dir.glob(f"*{MANIFEST_SUFFIX}"):
        other = json.loads(manifest.read_bytes()).get("commit_id")
        if other != commit_id:
            raise ValueError(f"{out_dir} holds an export of another release (commit {other}, see "
                             f"{manifest.name}); export commit {commit_id} into another directory")


def export_release(repo: Any, release: str, fmt: str, out_dir: Path) -> ExportManifest:
    """Write release `release` (tag or commit id) of the lakeFS datasets repository `repo`
    in format `fmt` into `out_dir`, with its data card and a manifest; returns the manifest."""
    files_spec = check_format(fmt)
    commit_id, metadata = resolve_release(repo, release)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _refuse_another_release(out_dir, commit_id)

    marts = sorted({f"{mart}.parquet" for _, mart, _ in files_spec})
    read = dict(read_objects(repo, commit_id, [DATA_PREFIX + name for name in [*marts, *DATA_CARD_FILES]]))
    written = []
    for suffix, mart, convert in files_spec:
        frame = read_parquet(read[f"{DATA_PREFIX}{mart}.parquet"])
        data = jsonl(convert(row) for row in frame.to_dict("records"))
        name = f"{fmt}-{suffix}.jsonl"
        _write(out_dir / name, data)
        written.append(ExportedFile(name, _sha256(data), len(frame),
                                    f"lakefs://{repo.id}/{commit_id}/{DATA_PREFIX}{mart}.parquet"))
    for name in DATA_CARD_FILES:
        data = read[DATA_PREFIX + name]
        _write(out_dir / name, data)
        written.append(ExportedFile(name, _sha256(data), None, f"lakefs://{repo.id}/{commit_id}/{DATA_PREFIX}{name}"))

    manifest = ExportManifest(repo.id, release, commit_id, metadata["content_digest"], fmt, tuple(written),
                              code_version())
    _write(out_dir / f"{fmt}{MANIFEST_SUFFIX}", manifest.to_json())
    return manifest
