"""pipeline.harness.secret_scan: planted secrets (plain and trivially transformed) are found with their
location, clean text gives no leaks, and a Leak never shows the secret."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import html
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from pipeline.harness.secret_scan import (
    Leak,
    fingerprint,
    known_secrets,
    planted_secrets,
    scan_for_secrets,
    scan_place,
    texts_from_tree,
    variants,
)
from pipeline.settings import Secret, get_settings

LAKEFS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"  # '/' changes under URL and JSON escaping
PASSWORD = 'Kestrel#4821"&\\<x>'  # quote, backslash, '&', '<' change under JSON/HTML escaping
API_KEY = "sk-" + "Q3v9TzLm0pXa7RkEw2Yb" * 2
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2Vzc2lvbi10b2tlbi1mb3ItdGVzdA.Zm9vYmFyYmF6cXV4"
SECRETS = [LAKEFS_KEY, PASSWORD, API_KEY, TOKEN]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _found(leaks: list[Leak]) -> set[tuple[str, int, str]]:
    return {(leak.where.rsplit("/", 1)[-1], leak.secret_index, leak.encoding) for leak in leaks}


@pytest.fixture()
def planted_tree(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    (root / "logs").mkdir(parents=True)
    (root / "gx" / "data_docs").mkdir(parents=True)
    (root / "cards").mkdir()
    (root / "mlflow").mkdir()
    (root / "logs" / "dagster.log").write_text(
        f"2026-11-21 INFO connecting to lakeFS with secret_access_key={LAKEFS_KEY}\nnext line\n"
    )
    (root / "logs" / "http.log").write_text(
        f"GET /api/v1/auth?password={quote_plus(PASSWORD)}&key={quote(LAKEFS_KEY, safe='')} 200\n"
    )
    (root / "gx" / "data_docs" / "index.html").write_text(
        f"<html><td>unexpected value: {html.escape(PASSWORD)}</td></html>"
    )
    (root / "cards" / "datacard.md").write_text(
        "## Access\n\n    curl -H 'Authorization: Basic "
        + _b64(f"flywheel-admin:{API_KEY}")  # base64 of the secret at a non-zero alignment
        + "' https://lakefs.example\n"
    )
    (root / "mlflow" / "params.json").write_text(json.dumps({"config": json.dumps({"password": PASSWORD})}))
    (root / "release.json").write_text(json.dumps({"notes": f"token {TOKEN}"}))
    (root / "events.jsonl.gz").write_bytes(gzip.compress(f'{{"msg": "{_b64(TOKEN)}"}}\n'.encode()))
    (root / "blob.bin").write_bytes(b"\x00\xff\x10" + LAKEFS_KEY.encode().hex().encode() + b"\x00")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"content": ["hello", f"my key is {API_KEY}", None], "n": [1, 2, 3]})
    pq.write_table(table, root / "curated.parquet", compression="snappy")
    return root


def test_planted_secrets_are_found_with_their_location(planted_tree: Path) -> None:
    leaks = scan_for_secrets(texts_from_tree(planted_tree), SECRETS)
    found = _found(leaks)
    expected = {
        ("dagster.log", 0, "plain"),
        ("http.log", 1, "url"),
        ("http.log", 0, "url"),
        ("index.html", 1, "html"),
        ("datacard.md", 2, "base64"),
        ("params.json", 1, "json_double"),
        ("release.json", 3, "plain"),
        ("events.jsonl.gz", 3, "base64"),
        ("blob.bin", 0, "hex"),
        ("curated.parquet#column=content", 2, "plain"),
    }
    assert expected <= found, expected - found
    assert found <= expected, found - expected  # nothing else: no false positives
    log = next(leak for leak in leaks if leak.where.endswith("dagster.log"))
    assert log.where == f"file:{planted_tree / 'logs' / 'dagster.log'}"
    assert log.offset == len("2026-11-21 INFO connecting to lakeFS with secret_access_key=")
    assert log.fingerprint == fingerprint(LAKEFS_KEY)


@pytest.mark.parametrize("shift", [0, 1, 2])
@pytest.mark.parametrize(
    ("encode", "encoding"),
    [
        (lambda s: s, "plain"),
        (lambda s: quote(s, safe=""), "url"),
        (lambda s: re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(s, safe="")), "url"),
        (lambda s: json.dumps(s)[1:-1], "json"),
        (lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1], "json_double"),
        (lambda s: s.encode().hex(), "hex"),
    ],
)
def test_each_transformation_is_caught(shift: int, encode, encoding: str) -> None:
    text = "x" * shift + "prefix " + encode(PASSWORD) + " suffix"
    leaks = scan_for_secrets([("t", text)], SECRETS)
    assert [(leak.secret_index, leak.encoding) for leak in leaks] == [(1, encoding)]
    assert leaks[0].offset == shift + len("prefix ")


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc:"])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_base64_inside_a_longer_stream_at_any_alignment(prefix: str, urlsafe: bool) -> None:
    raw = (prefix + LAKEFS_KEY + "?>~~ trailing").encode()
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    leaks = scan_for_secrets([("blob", f"data:{encoded}")], SECRETS)
    assert [leak.secret_index for leak in leaks] == [0]
    assert leaks[0].encoding in ("base64", "base64url")


def test_clean_tree_gives_no_leaks(tmp_path: Path) -> None:
    root = tmp_path / "clean"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "run.log").write_text(
        "connecting with secret_access_key=********\n"
        f"near miss: {LAKEFS_KEY[:-1]}\n"  # all but the last character
        f"another: {API_KEY[1:]}\n"
        f"{_b64('some other credential entirely')}\n"
        "Secret('********')\n"
    )
    (root / "index.html").write_text("<html><body>" + "lorem ipsum " * 5000 + "</body></html>")
    (root / "card.json").write_text(json.dumps({"redacted": "<API_KEY_1>", "token": "<TOKEN_1>"}))
    (root / "empty.txt").write_text("")
    (root / "bytes.bin").write_bytes(bytes(range(256)) * 100)
    assert scan_for_secrets(texts_from_tree(root), SECRETS) == []


def test_a_leak_never_shows_the_secret(tmp_path: Path) -> None:
    # the secret also sits in a file name: the location label is masked
    (tmp_path / f"dump-{API_KEY}.txt").write_text(f"{API_KEY} and {quote(PASSWORD, safe='')}")
    leaks = scan_for_secrets(texts_from_tree(tmp_path), SECRETS)
    assert {(leak.secret_index, leak.encoding) for leak in leaks} == {(2, "plain"), (1, "url")}
    forms = [v for secret in SECRETS for v in variants(secret)]
    for leak in leaks:
        for shown in (repr(leak), str(leak), leak.where, json.dumps(dataclasses.asdict(leak))):
            for form in forms:
                assert form not in shown, (shown, "shows a form of a secret")
    assert "<secret #2>" in leaks[0].where


def test_short_and_empty_secrets_are_skipped() -> None:
    assert scan_for_secrets([("t", "abc 12345 abc")], ["", "   ", "abc", "12345"]) == []


def test_variants_include_the_listed_encodings() -> None:
    names = set(variants(PASSWORD).values())
    assert {"plain", "url", "json", "json_double", "html", "base64", "base64url", "hex"} <= names
    assert variants(PASSWORD)[PASSWORD] == "plain"


def test_known_secrets_collects_settings_uris_environment_and_planted(tmp_path: Path) -> None:
    day = tmp_path / "ground_truth" / "2026-11-16"
    day.mkdir(parents=True)
    rows = [
        {"trajectory_id": "t1", "step": 1, "field": "content", "entity_type": "EMAIL",
         "value": "a@b.example"},
        {"trajectory_id": "t1", "step": 1, "field": "content", "entity_type": "API_KEY", "value": API_KEY},
        {"trajectory_id": "t2", "step": 3, "field": "content", "entity_type": "TOKEN", "value": TOKEN},
        {"trajectory_id": "t3", "step": 1, "field": "content", "entity_type": "PASSWORD", "value": PASSWORD},
        {"trajectory_id": "t4", "step": 1, "field": "content", "entity_type": "PASSWORD", "value": PASSWORD},
    ]
    (day / "pii.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    assert planted_secrets(tmp_path / "ground_truth") == [API_KEY, TOKEN, PASSWORD]
    settings = dataclasses.replace(
        get_settings(),
        lakefs_secret_access_key=Secret(LAKEFS_KEY),
        lakefs_encrypt_secret=Secret("encrypt-secret-for-test"),
        mlflow_tracking_uri="http://flywheel:mlflow-pass-123@127.0.0.1:5000",
    )
    secrets = known_secrets(
        settings, ground_truth_dirs=[tmp_path / "ground_truth", tmp_path / "missing"],
        environ={"AWS_SECRET_ACCESS_KEY": "aws-secret-for-test", "HOME": "/root"},
    )
    assert secrets == [LAKEFS_KEY, "encrypt-secret-for-test", "mlflow-pass-123", "aws-secret-for-test",
                       API_KEY, TOKEN, PASSWORD]
    assert "a@b.example" not in secrets and "/root" not in secrets


def test_known_secrets_default_ground_truth_sits_beside_landing(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    day = tmp_path / "ground_truth" / "2026-11-17"
    day.mkdir(parents=True)
    (day / "pii.jsonl").write_text(json.dumps({"entity_type": "TOKEN", "value": TOKEN}) + "\n")
    settings = dataclasses.replace(get_settings(), landing_dir=tmp_path / "landing")
    assert TOKEN in known_secrets(settings, environ={})


# --- places: scanned, or not, and why --------------------------------------------------------


def test_a_place_that_yields_no_text_is_not_scanned() -> None:
    scan = scan_place("dagster", lambda: iter(()), SECRETS)
    assert (scan.scanned, scan.texts, scan.leaks, scan.not_scanned_because) == (False, 0, [], "no text to scan")
    clean = scan_place("files", lambda: [("file:a.log", "nothing secret here")], SECRETS)
    assert (clean.scanned, clean.texts, clean.leaks) == (True, 1, [])


def test_a_place_that_fails_midway_is_not_scanned_but_keeps_what_it_found() -> None:
    def texts():
        yield "mlflow:run:1:name", f"token {TOKEN}"
        raise ConnectionError(f"lost the server while reading a run tagged {API_KEY}")

    scan = scan_place("mlflow", texts, SECRETS)
    assert not scan.scanned and scan.texts == 1
    assert [(leak.where, leak.secret_index) for leak in scan.leaks] == [("mlflow:run:1:name", 3)]
    assert scan.not_scanned_because == "ConnectionError: lost the server while reading a run tagged <secret #2>"


def test_when_the_dagster_instance_cannot_be_loaded_that_place_is_reported_not_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It raised UnboundLocalError once; now every place is tried and each failure named."""
    from pipeline.benchmarks.reliability import scan_secrets
    from pipeline.shell.ports import free_port

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage:\n  sqlite: {base_dir: [\n")  # not YAML
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    (tmp_path / "state" / "logs").mkdir(parents=True)
    (tmp_path / "state" / "logs" / "run.log").write_text(f"connecting with {LAKEFS_KEY}\n")
    nobody = free_port()  # no stack: MLflow and lakeFS cannot be read either
    settings = dataclasses.replace(
        get_settings(), state_dir=tmp_path / "state", landing_dir=tmp_path / "landing",
        lakefs_secret_access_key=Secret(LAKEFS_KEY), lakefs_endpoint=f"http://127.0.0.1:{nobody}",
        mlflow_tracking_uri=f"http://127.0.0.1:{nobody}")
    logged: list[str] = []
    result = scan_secrets(settings, logged.append)
    assert result["places_scanned"] == ["files"]
    assert set(result["places_not_scanned"]) == {"dagster", "mlflow", "lakefs-datasets"}
    assert result["places_not_scanned"]["dagster"].startswith("ParserError")
    assert result["secrets_leaked"] == 1  # the places that could be read still were
    assert any(line.startswith("dagster not scanned: ParserError") for line in logged)
