"""detect-secrets (Yelp) as the reference for secrets: Presidio is not a secret scanner.

It runs as its documentation shows for a scan: `default_settings()` (every plugin, default
entropy limits and filters) and the scan of a file (`detect_secrets.core.scan.scan_file`, what
`SecretsCollection.scan_file` calls), on one temporary `.log` file holding all the texts, line
by line (it is a line scanner, so the unit of text is the same whether one message or a whole
conversation is written). Its findings are taken before SecretsCollection keeps one per
distinct value and file: every "BEGIN RSA PRIVATE KEY" header is the same value, and each
message must get its own finding. Its IPPublicDetector is switched off:
IP addresses are not secrets, and ours are scored as PII.

A finding is (line, plugin, secret value). Some plugins report only part of the secret (the
GitHub plugin reports "ghp", the JWT plugin stops at the second dot), so a finding becomes a
span over the whole token around the reported value: the run of token characters
(`_TOKEN_CHARS`) it sits in, as a redactor built on the scanner would mask it. A private key
is reported as its "BEGIN ... PRIVATE KEY" header: the span is that header, and the key body
is not covered (scoring counts a value found only when all of it is covered; `flagged`
counts any overlap).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipeline.benchmarks.redact_scoring import RedactorOutput

# detect-secrets' plugin names (secret_type) → ours. Generic plugins (keywords, entropy) say
# "a secret" without a kind: SECRET.
SCANNER_TO_OURS: dict[str, str] = {
    "Private Key": "PRIVATE_KEY",
    "JSON Web Token": "TOKEN",
    "Basic Auth Credentials": "PASSWORD",
    "Secret Keyword": "SECRET",
    "Base64 High Entropy String": "SECRET",
    "Hex High Entropy String": "SECRET",
}  # every other plugin is a vendor key pattern: API_KEY
COMPARED_TYPES: frozenset[str] = frozenset({"API_KEY", "TOKEN", "PASSWORD", "PRIVATE_KEY"})
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.+/~]")
_TOKEN_END_CHARS = re.compile(r"[A-Za-z0-9_\-.+/~=]")  # base64 padding ends a token; "KEY=" does not start one


def scanner_type(secret_type: str) -> str:
    return SCANNER_TO_OURS.get(secret_type, "API_KEY")


def _token_span(line: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) widened over the token characters on either side."""
    while start > 0 and _TOKEN_CHARS.match(line[start - 1]):
        start -= 1
    while end < len(line) and _TOKEN_END_CHARS.match(line[end]):
        end += 1
    return start, end


def findings_to_spans(line: str, findings: Sequence[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """(start, end, our type) in `line` for each (plugin secret_type, reported value) found in it."""
    spans: list[tuple[int, int, str]] = []
    for secret_type, value in findings:
        at = line.find(value) if value else -1
        while at >= 0:
            start, end = _token_span(line, at, at + len(value))
            spans.append((start, end, scanner_type(secret_type)))
            at = line.find(value, at + 1)
    return spans


def _masked(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    out, last = [], 0
    for start, end, etype in sorted(spans):
        if start < last:  # overlaps the previous span: extend it
            start = last
        if end <= start:
            continue
        out.append(text[last:start])
        out.append(f"<{etype}>")
        last = end
    out.append(text[last:])
    return "".join(out)


def scan_texts(texts: Sequence[str]) -> list[RedactorOutput]:
    """One RedactorOutput per text: spans over what detect-secrets found, masked in the text."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings, get_settings

    # Line number (1-based) in the scanned file → (text index, offset of the line in that text).
    where: list[tuple[int, int]] = [(-1, 0)]
    lines: list[str] = []
    for i, text in enumerate(texts):
        offset = 0
        for line in text.split("\n"):
            # The scanner reads with universal newlines: a lone \r would start a new line.
            lines.append(line.replace("\r", " "))
            where.append((i, offset))
            offset += len(line) + 1
    with tempfile.TemporaryDirectory(prefix="flywheel-secret-scan-") as tmp:
        path = Path(tmp) / "messages.log"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        by_line: dict[int, list[tuple[str, str]]] = {}
        with default_settings():
            get_settings().disable_plugins("IPPublicDetector")
            for secret in scan_file(str(path)):
                by_line.setdefault(secret.line_number, []).append((secret.type, secret.secret_value or ""))
    spans: list[list[tuple[int, int, str]]] = [[] for _ in texts]
    for line_number, findings in by_line.items():
        i, offset = where[line_number]
        spans[i].extend((offset + s, offset + e, t) for s, e, t in findings_to_spans(lines[line_number - 1], findings))
    return [RedactorOutput(_masked(text, s), sorted(set(s))) for text, s in zip(texts, spans)]
