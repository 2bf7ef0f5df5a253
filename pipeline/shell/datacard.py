"""The data card of a dataset release, as JSON (for machines) and Markdown (for people).

Pure: it only formats what the release asset gathered. It says what is in the release,
where it came from (raw-log commits, code version, dbt manifest), how it was curated and
whether it passed validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def build_card(
    *,
    counts: Mapping[str, int],
    coverage: Sequence[Mapping[str, Any]],
    decisions: Mapping[str, int],
    validation: Sequence[Mapping[str, Any]],
    raw_commits: Sequence[str],
    partitions: Sequence[str],
    code_version: str,
    dbt_manifest_digest: str,
    content_digests: Mapping[str, str],
    judge_agreement: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "card_version": 1,
        "counts": dict(sorted(counts.items())),
        "coverage": list(coverage),
        "curation_decisions": dict(sorted(decisions.items())),
        "validation": list(validation),
        "verdict": "passed" if all(v["success"] for v in validation) else "failed",
        "provenance": {
            "raw_log_commits": sorted(raw_commits),
            "partitions": sorted(partitions),
            "code_version": code_version,
            "dbt_manifest_digest": dbt_manifest_digest,
        },
        "content_digests": dict(sorted(content_digests.items())),
        # per judge model and rubric: its agreement with verified outcomes (Cohen's kappa,
        # confusion matrix); empty when no judge labelled anything
        "judge_agreement": list(judge_agreement),
    }


def card_json(card: Mapping[str, Any]) -> bytes:
    return json.dumps(card, indent=2, sort_keys=True, default=str).encode()


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return lines


def card_markdown(card: Mapping[str, Any]) -> bytes:
    prov = card["provenance"]
    lines = [
        "# Dataset release",
        "",
        f"Validation verdict: **{card['verdict']}**",
        "",
        "## Contents",
        *_table([{"table": k, "rows": v} for k, v in card["counts"].items()], ["table", "rows"]),
        "",
        "## Curation decisions",
        *_table([{"decision": k, "trajectories": v} for k, v in card["curation_decisions"].items()],
                ["decision", "trajectories"]),
        "",
        "## Coverage (task type × outcome × split)",
        *_table(card["coverage"], list(card["coverage"][0].keys()) if card["coverage"] else ["none"]),
        "",
        "## Judge agreement with verified outcomes",
        *(_table(card["judge_agreement"], ["judge_model", "rubric_version", "n_compared", "n_unreadable",
                                           "both_pass", "judge_pass_verified_fail", "judge_fail_verified_pass",
                                           "both_fail", "cohen_kappa"])
          if card.get("judge_agreement") else ["No judge labels in this release."]),
        "",
        "## Validation",
        *_table(
            [{"suite": v["suite"], "success": v["success"], "summary": v["summary"]} for v in card["validation"]],
            ["suite", "success", "summary"],
        ),
        "",
        "## Provenance",
        f"- code version: `{prov['code_version']}`",
        f"- dbt manifest digest: `{prov['dbt_manifest_digest']}`",
        f"- partitions: {', '.join(prov['partitions'])}",
        "- raw-log commits: " + ", ".join(f"`{c}`" for c in prov["raw_log_commits"]),
        "",
        "## Content digests (sha256 of each released file)",
        *[f"- `{name}`: `{digest}`" for name, digest in card["content_digests"].items()],
        "",
    ]
    return "\n".join(lines).encode()
