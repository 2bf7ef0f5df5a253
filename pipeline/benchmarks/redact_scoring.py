"""Scoring a redactor against planted ground truth.

Input: messages (a text and the values planted in it, by entity type) and, per message,
what a redactor produced (redacted text + detected spans in the original text's coordinates).

- Recall per entity type: a planted value counts as found when it no longer appears
  verbatim in the redacted text AND detected spans (of any type) cover every letter and digit
  of every place it occurs as a whole word. Planted values that do not occur in their message's
  text at all (a landing format dropped or re-encoded them) are counted as `not_located`, not scored.
- Precision per detected type: detected spans that overlap a planted value / all detected
  spans of that type. Detector-specific names are mapped to ours first (`entity_map`, e.g.
  EMAIL_ADDRESS → EMAIL); names without a mapping (URL, DATE_TIME, ...) are reported as they
  are. Precision is only as good as the ground truth: a real but unplanted value (an agent's
  own phone number, say) counts against it.
- Flagged per entity type: planted values that some detected span overlaps at all. A scanner
  that points at a secret without covering it (a private key's header line) flags it without
  finding it.
- Secrets surviving: distinct planted API_KEY / TOKEN / PASSWORD / PRIVATE_KEY values still
  present verbatim anywhere in the redacted output (all messages together), or not found
  where planted (a private key whose header was masked and whose body was not).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from pipeline.core.redaction.detectors import SECRET_TYPES, STRUCTURED_TYPES

# Planted secret types: ours, plus PRIVATE_KEY (the external corpus plants PEM blocks; our
# redactor reports them as API_KEY, so it is a type of the ground truth only).
PLANTED_SECRET_TYPES: frozenset[str] = SECRET_TYPES | {"PRIVATE_KEY"}


@dataclass(frozen=True)
class EvalMessage:
    text: str
    planted: tuple[tuple[str, str], ...]  # (entity_type, exact value)
    group: str = ""  # the trajectory (record) it belongs to: one placeholder map per group
    kind: str = "text"  # content / arguments / tool_result


@dataclass(frozen=True)
class RedactorOutput:
    text: str
    spans: Sequence[tuple[int, int, str]]  # (start, end, entity_type) in the original text


@dataclass
class TypeScore:
    planted: int = 0
    found: int = 0
    flagged: int = 0
    detected: int = 0
    detected_on_planted: int = 0

    @property
    def recall(self) -> float | None:
        return self.found / self.planted if self.planted else None

    @property
    def precision(self) -> float | None:
        return self.detected_on_planted / self.detected if self.detected else None

    def to_dict(self) -> dict[str, float | int | None]:
        return {**asdict(self), "recall": self.recall, "precision": self.precision}


@dataclass
class Evaluation:
    by_type: dict[str, TypeScore] = field(default_factory=dict)
    messages: int = 0
    not_located: int = 0
    secrets_planted: int = 0
    secrets_surviving: int = 0
    missed_examples: dict[str, list[str]] = field(default_factory=dict)  # type → redacted contexts

    def recall(self, types: Sequence[str] | None = None) -> float | None:
        scores = [s for t, s in self.by_type.items() if types is None or t in types]
        planted = sum(s.planted for s in scores)
        return sum(s.found for s in scores) / planted if planted else None

    def precision(self, types: Sequence[str] | None = None) -> float | None:
        scores = [s for t, s in self.by_type.items() if types is None or t in types]
        detected = sum(s.detected for s in scores)
        return sum(s.detected_on_planted for s in scores) / detected if detected else None

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "not_located": self.not_located,
            "secrets_planted": self.secrets_planted,
            "secrets_surviving": self.secrets_surviving,
            "recall": self.recall(),
            "recall_structured": self.recall(STRUCTURED_TYPES),
            "precision": self.precision(),
            "by_type": {t: s.to_dict() for t, s in sorted(self.by_type.items())},
        }


def _occurrences(text: str, value: str) -> list[int]:
    """Where value occurs as itself, not inside a longer word or number (a first name "Al"
    is not in "Alabama"; a building number "12" is not in "2012")."""
    out, start = [], text.find(value)
    while start >= 0:
        end = start + len(value)
        if not (value[0].isalnum() and start > 0 and text[start - 1].isalnum()) and not (
                value[-1].isalnum() and end < len(text) and text[end].isalnum()):
            out.append(start)
        start = text.find(value, start + 1)
    return out


def evaluate(
    messages: Sequence[EvalMessage],
    outputs: Sequence[RedactorOutput],
    entity_map: Mapping[str, str] | None = None,
    *,
    keep_examples: int = 0,
) -> Evaluation:
    if len(messages) != len(outputs):
        raise ValueError("one output per message")
    mapping = dict(entity_map or {})
    ev = Evaluation(messages=len(messages))
    scores: dict[str, TypeScore] = defaultdict(TypeScore)
    secrets: set[str] = set()
    exposed: set[str] = set()  # planted values not found in some message
    for msg, out in zip(messages, outputs):
        text = msg.text
        covered = bytearray(len(text))
        for start, end, _ in out.spans:
            covered[max(0, start):min(len(text), end)] = b"\x01" * (min(len(text), end) - max(0, start))
        planted_ranges: list[tuple[int, int]] = []
        for entity_type, value in dict.fromkeys(msg.planted):
            if entity_type in PLANTED_SECRET_TYPES:
                secrets.add(value)
            places = _occurrences(text, value)
            if not places:
                ev.not_located += 1
                continue
            score = scores[entity_type]
            score.planted += 1
            planted_ranges.extend((p, p + len(value)) for p in places)
            all_covered = all(
                covered[p + i] or not ch.isalnum() for p in places for i, ch in enumerate(value)
            )
            if any(covered[p:p + len(value)].count(1) for p in places):
                score.flagged += 1
            if all_covered and not _occurrences(out.text, value):
                score.found += 1
                continue
            exposed.add(value)
            if keep_examples and len(ev.missed_examples.setdefault(entity_type, [])) < keep_examples:
                p = places[0]
                ev.missed_examples[entity_type].append(f"{value!r} in …{text[max(0, p - 60):p + len(value) + 30]}…")
        for start, end, etype in out.spans:
            score = scores[mapping.get(etype, etype)]
            score.detected += 1
            if any(start < b and a < end for a, b in planted_ranges):
                score.detected_on_planted += 1
    corpus = "\n".join(o.text for o in outputs)
    ev.secrets_planted = len(secrets)
    ev.secrets_surviving = sum(1 for s in secrets if s in exposed or s in corpus)
    ev.by_type = dict(sorted(scores.items()))
    return ev
