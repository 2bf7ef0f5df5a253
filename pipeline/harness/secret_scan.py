"""Secret hygiene: find configured credentials and planted secrets where they must never be.

`scan_for_secrets(texts, secrets)` looks for every secret, and for trivially transformed
copies of it (URL-encoded, JSON-escaped once or twice, HTML-escaped, base64 at any alignment
inside a longer base64 stream, hex), in `(where, text)` pairs, and returns one `Leak` per
occurrence. A Leak names the place and WHICH secret (its index in the list given, and a short
SHA-256 fingerprint): never the secret, and never text around it. Labels that would contain a
secret are masked too.

`scan_place(place, collect, secrets)` scans one place (the texts a collector yields) and says
whether it was scanned at all: a place that cannot be opened, fails while it is read, or holds
no text is "not scanned", since finding no leak there proves nothing.

Collectors turn the places a secret could end up into `(where, text)` pairs:
- `texts_from_tree(root)`: every file under a directory (logs, Data Docs, data cards;
  Parquet column values and metadata; gzip decompressed; everything else as text),
- `texts_from_mlflow(tracking_uri)`: experiments, runs (names, params, tags, metric names,
  dataset inputs, artifacts), logged models and registered models,
- `texts_from_dagster(instance)`: every run (config, tags) and every event of it (log
  messages, asset materialization metadata), and run-less materializations,
- `texts_from_lakefs(repository, ref)`: every object at the ref (and its user metadata),
  the commit log (messages, metadata), tag and branch names, repository metadata.

`known_secrets(settings)` lists what must not leak: the configured lakeFS secret access key and
encrypt secret, passwords inside configured URIs, credentials in well-known environment
variables, and the simulator's planted secrets (`ground_truth/<date>/pii.jsonl` entries of
type API_KEY, TOKEN or PASSWORD). Note that planted secrets are EXPECTED in the raw landing
data and the raw lakeFS repository (they are the PII redaction must remove): scan what is
derived from it (curated datasets, releases, Data Docs, MLflow, Dagster event logs).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlsplit

if TYPE_CHECKING:
    from pipeline.settings import Settings

MIN_SECRET_CHARS = 6  # shorter values would match by chance: they are not scanned for
MIN_VARIANT_CHARS = 8  # a transformed copy (e.g. a base64 fragment) shorter than this is dropped
_ANCHOR = 8  # variants are found by their first _ANCHOR characters, then compared whole
MAX_TEXT_BYTES = 64 * 1024 * 1024  # files/objects are read in windows of this size
_WINDOW_OVERLAP = 64 * 1024  # windows overlap so a copy across a boundary is still found
SECRET_ENTITY_TYPES = frozenset({"API_KEY", "TOKEN", "PASSWORD"})
# Environment variables that hold credentials for the services the pipeline talks to.
SECRET_ENV_VARS = (
    "FLYWHEEL_LAKEFS_SECRET_ACCESS_KEY",
    "FLYWHEEL_LAKEFS_ENCRYPT_SECRET",
    "LAKEFS_AUTH_ENCRYPT_SECRET_KEY",
    "LAKEFS_INSTALLATION_SECRET_ACCESS_KEY",
    "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
    "LAKEFS_BLOCKSTORE_S3_CREDENTIALS_SECRET_ACCESS_KEY",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DAGSTER_PG_PASSWORD",
    "FLYWHEEL_POSTGRES_PASSWORD",
)


@dataclass(frozen=True)
class Leak:
    """One occurrence of a secret (or a transformed copy) in one text. Holds no secret."""

    where: str  # the collector's label for the text, secrets masked
    secret_index: int  # index of the secret in the list given to scan_for_secrets
    fingerprint: str  # "sha256:" + 12 hex digits of the secret's SHA-256
    encoding: str  # plain, url, json, json_double, html, base64, base64url, hex
    offset: int  # character offset of the copy in the text

    def __str__(self) -> str:
        where = f"{self.where} @{self.offset}"
        return f"{where}: secret #{self.secret_index} ({self.fingerprint}), {self.encoding}"


def fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


# --- matching ---------------------------------------------------------------------------------


def _base64_fragments(raw: bytes, alphabet: str) -> set[str]:
    """The base64 characters that depend only on `raw`, for each of the 3 alignments `raw` can
    have inside a longer base64 stream (so `user:secret` in Basic auth is caught too)."""
    out = set()
    for shift in range(3):
        padded = b"\0" * shift + raw + b"\0\0"
        encoded = base64.b64encode(padded).decode()
        if alphabet == "url":
            encoded = encoded.replace("+", "-").replace("/", "_")
        first = -(-8 * shift // 6)  # ceil: first char whose 6 bits all come from raw
        last = (8 * (shift + len(raw))) // 6  # exclusive
        out.add(encoded[first:last])
    return out


def variants(secret: str) -> dict[str, str]:
    """Transformed copies of `secret` → the encoding's name (the plain secret included)."""
    found: dict[str, str] = {}

    def add(text: str, name: str) -> None:
        if len(text) >= MIN_VARIANT_CHARS or (name == "plain" and text):
            found.setdefault(text, name)

    add(secret, "plain")
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        add(encoded, "url")
        add(re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), encoded), "url")
    escaped = json.dumps(secret)[1:-1]
    for once in (escaped, json.dumps(secret, ensure_ascii=False)[1:-1], escaped.replace("/", "\\/")):
        add(once, "json")
        add(json.dumps(once)[1:-1], "json_double")
    add(html.escape(secret), "html")
    add(html.escape(secret, quote=False), "html")
    raw = secret.encode("utf-8", "surrogatepass")
    for fragment in _base64_fragments(raw, "std"):
        add(fragment, "base64")
    for fragment in _base64_fragments(raw, "url"):
        add(fragment, "base64url")
    add(raw.hex(), "hex")
    add(raw.hex().upper(), "hex")
    return found


def _trie_regex(words: Iterable[str]) -> str:
    """An alternation of `words` factored as a trie (fast in `re`, shallow: words are short)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        optional = "" in node
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and not optional else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if optional else body

    return emit(trie)


class _Matcher:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets]
        self.by_anchor: dict[str, list[tuple[str, int, str]]] = {}
        for index, secret in enumerate(self.secrets):
            if not isinstance(secret, str) or len(secret.strip()) < MIN_SECRET_CHARS:
                continue
            for text, encoding in variants(secret).items():
                self.by_anchor.setdefault(text[:_ANCHOR], []).append((text, index, encoding))
        anchors = sorted(self.by_anchor)
        self.pattern = re.compile(f"(?=({_trie_regex(anchors)}))", re.S) if anchors else None

    def find(self, text: str) -> Iterator[tuple[int, int, int, str]]:
        """(start, end, secret index, encoding) of every copy in `text`, overlaps included."""
        if self.pattern is None:
            return
        for match in self.pattern.finditer(text):
            start = match.start()
            seen: set[int] = set()
            for variant, index, encoding in self.by_anchor.get(match[1], ()):
                if index not in seen and text.startswith(variant, start):
                    seen.add(index)  # the longest-listed copy of one secret at one place, once
                    yield start, start + len(variant), index, encoding

    def mask(self, label: str) -> str:
        spans = sorted({(s, e, i) for s, e, i, _ in self.find(label)}, key=lambda t: (t[0], -t[1]))
        out, pos = [], 0
        for start, end, index in spans:
            if start >= pos:
                out += [label[pos:start], f"<secret #{index}>"]
                pos = end
            elif end > pos:
                pos = end
        return "".join(out) + label[pos:]


def scan_for_secrets(texts: Iterable[tuple[str, str]], secrets: Iterable[str]) -> list[Leak]:
    """Every copy of every secret (plain or trivially transformed) in `texts`, in order.
    Secrets shorter than MIN_SECRET_CHARS are skipped (they would match by chance)."""
    return list(_leaks(texts, _Matcher(secrets)))


def _leaks(texts: Iterable[tuple[str, str]], matcher: _Matcher) -> Iterator[Leak]:
    prints = [fingerprint(s) if isinstance(s, str) else "" for s in matcher.secrets]
    for where, text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        label = None
        for start, _end, index, encoding in matcher.find(text):
            label = label if label is not None else matcher.mask(where)
            yield Leak(label, index, prints[index], encoding, start)


@dataclass(frozen=True)
class PlaceScan:
    """What scanning one place found. Holds no secret (the reason is masked)."""

    place: str
    texts: int  # texts read from the place
    leaks: list[Leak]  # found before any failure: real leaks even when the place is not scanned
    not_scanned_because: str | None  # None: the place was read whole and held some text

    @property
    def scanned(self) -> bool:
        return self.not_scanned_because is None


def scan_place(place: str, collect: Callable[[], Iterable[tuple[str, str]]], secrets: Iterable[str]) -> PlaceScan:
    """Scan the texts `collect()` yields. A place that cannot be opened, fails while it is
    read, or yields no text at all is not scanned: 0 leaks there proves nothing."""
    matcher = _Matcher(secrets)
    leaks: list[Leak] = []
    texts = 0

    def counted(items: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
        nonlocal texts
        for item in items:
            texts += 1
            yield item

    try:
        leaks.extend(_leaks(counted(collect()), matcher))  # collectors are lazy: errors come while reading
    except Exception as error:  # noqa: BLE001 - any failure means the place was not (wholly) read
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        reason = matcher.mask(f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__)
        return PlaceScan(place, texts, leaks, reason)
    return PlaceScan(place, texts, leaks, None if texts else "no text to scan")


# --- collectors: directory tree ----------------------------------------------------------------


def texts_from_bytes(where: str, name: str, data: bytes) -> Iterator[tuple[str, str]]:
    """The text of one file's bytes: Parquet as metadata + column values, gzip decompressed,
    anything else decoded as UTF-8 (undecodable bytes replaced, so binary files are scanned
    for ASCII copies too)."""
    lower = name.lower()
    if lower.endswith(".parquet") or data[:4] == b"PAR1":
        try:
            yield from _parquet_texts(where, data)
            return
        except Exception:  # not readable as Parquet after all: scan the raw bytes
            pass
    if lower.endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            pass
    yield where, data.decode("utf-8", "replace")


def _parquet_texts(where: str, data: bytes) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(io.BytesIO(data))
    metadata = parquet.schema_arrow.metadata or {}
    yield f"{where}#metadata", "\n".join(
        f"{k.decode('utf-8', 'replace')}={v.decode('utf-8', 'replace')}" for k, v in metadata.items()
    ) + "\n" + "\n".join(parquet.schema_arrow.names)
    for batch in parquet.iter_batches(batch_size=10_000):
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            yield f"{where}#column={name}", "\n".join(
                v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
                for v in column.to_pylist()
            )


def _windows(path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        start = 0
        while True:
            f.seek(start)
            data = f.read(size + _WINDOW_OVERLAP)
            if not data:
                return
            yield start, data
            if len(data) <= size:
                return
            start += size


def texts_from_tree(root: Path, *, max_text_bytes: int = MAX_TEXT_BYTES) -> Iterator[tuple[str, str]]:
    """Every regular file under `root` (symlinks not followed), as `file:<path>` texts. Files
    over `max_text_bytes` are read in overlapping windows labelled `file:<path>@<byte>` (a
    copy inside an overlap is reported once per window)."""
    root = Path(root)
    if root.is_file():
        paths = [root]
    else:
        paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    for path in paths:
        try:
            size = path.stat().st_size
            if size <= max_text_bytes:
                yield from texts_from_bytes(f"file:{path}", path.name, path.read_bytes())
                continue
            for start, data in _windows(path, max_text_bytes):
                yield f"file:{path}@{start}", data.decode("utf-8", "replace")
        except OSError:
            continue  # vanished or unreadable: nothing to scan


# --- collectors: MLflow -----------------------------------------------------------------------


def _pages(fetch: Any) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def texts_from_mlflow(
    tracking_uri: str, *, max_artifact_bytes: int = MAX_TEXT_BYTES
) -> Iterator[tuple[str, str]]:
    """Experiments, runs (name, params, tags, metric names, dataset inputs, artifacts), logged
    models and registered models of the tracking store at `tracking_uri`."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = list(_pages(lambda t: client.search_experiments(view_type=ViewType.ALL, page_token=t)))
    for exp in experiments:
        base = f"mlflow:experiment:{exp.experiment_id}"
        yield f"{base}:name", exp.name
        yield f"{base}:tags", _kv(exp.tags)
        yield f"{base}:artifact_location", exp.artifact_location or ""
        runs = _pages(lambda t, e=exp.experiment_id: client.search_runs(
            [e], run_view_type=ViewType.ALL, max_results=1000, page_token=t))
        for run in runs:
            yield from _run_texts(client, run, max_artifact_bytes)
    ids = [e.experiment_id for e in experiments]
    search_models = getattr(client, "search_logged_models", None)
    if ids and search_models is not None:
        for model in _pages(lambda t: search_models(experiment_ids=ids, page_token=t)):
            base = f"mlflow:logged_model:{model.model_id}"
            yield f"{base}:name", model.name or ""
            yield f"{base}:params", _kv(getattr(model, "params", None) or {})
            yield f"{base}:tags", _kv(getattr(model, "tags", None) or {})
            yield from _artifact_texts(
                f"{base}:artifacts", lambda p, m=model: client.list_logged_model_artifacts(m.model_id, p),
                lambda p, dst, m=model: _download_logged(tracking_uri, m, p, dst), max_artifact_bytes)
    for registered in _pages(lambda t: client.search_registered_models(page_token=t)):
        base = f"mlflow:registered_model:{registered.name}"
        yield f"{base}:name", registered.name
        yield f"{base}:description", registered.description or ""
        yield f"{base}:tags", _kv(registered.tags or {})
        yield f"{base}:aliases", _kv(getattr(registered, "aliases", None) or {})
    for version in _pages(lambda t: client.search_model_versions(page_token=t)):
        base = f"mlflow:model_version:{version.name}/{version.version}"
        yield f"{base}:source", f"{version.source or ''}\n{version.run_id or ''}"
        yield f"{base}:description", version.description or ""
        yield f"{base}:tags", _kv(version.tags or {})


def _kv(mapping: Mapping[str, Any]) -> str:
    return "\n".join(f"{k}={v}" for k, v in mapping.items())


def _run_texts(client: Any, run: Any, max_artifact_bytes: int) -> Iterator[tuple[str, str]]:
    run_id = run.info.run_id
    yield f"mlflow:run:{run_id}:name", run.info.run_name or ""
    for key, value in run.data.params.items():
        yield f"mlflow:params:{run_id}:{key}", f"{key}\n{value}"
    for key, value in run.data.tags.items():
        yield f"mlflow:tags:{run_id}:{key}", f"{key}\n{value}"
    yield f"mlflow:metrics:{run_id}", "\n".join(run.data.metrics)
    inputs = getattr(run, "inputs", None)
    for i, dataset_input in enumerate(getattr(inputs, "dataset_inputs", None) or []):
        d = dataset_input.dataset
        attrs = ("name", "digest", "source_type", "source", "schema", "profile")
        yield f"mlflow:inputs:{run_id}:{i}", "\n".join(
            [*(str(getattr(d, attr, "") or "") for attr in attrs),
             _kv({t.key: t.value for t in dataset_input.tags or []})])
    yield from _artifact_texts(
        f"mlflow:artifacts:{run_id}", lambda p: client.list_artifacts(run_id, p),
        lambda p, dst: client.download_artifacts(run_id, p, dst), max_artifact_bytes)


def _download_logged(tracking_uri: str, model: Any, path: str, dst: str) -> str:
    from mlflow.artifacts import download_artifacts

    uri = f"{model.artifact_location.rstrip('/')}/{path}"
    return str(download_artifacts(artifact_uri=uri, dst_path=dst, tracking_uri=tracking_uri))


def _artifact_texts(base: str, listing: Any, download: Any, max_bytes: int) -> Iterator[tuple[str, str]]:
    """Every artifact file (recursively): its path, and its content when under `max_bytes`."""
    pending: list[str | None] = [None]
    with tempfile.TemporaryDirectory(prefix="flywheel-secret-scan-") as tmp:
        while pending:
            for info in listing(pending.pop()):
                yield f"{base}:{info.path}#path", info.path
                if info.is_dir:
                    pending.append(info.path)
                elif (info.file_size or 0) <= max_bytes:
                    local = Path(download(info.path, tmp))
                    try:
                        yield from texts_from_bytes(f"{base}:{info.path}", info.path, local.read_bytes())
                    finally:
                        local.unlink(missing_ok=True)


# --- collectors: Dagster ----------------------------------------------------------------------


def texts_from_dagster(instance: Any, *, batch: int = 100) -> Iterator[tuple[str, str]]:
    """Every run of a DagsterInstance (config, tags) and every event of it, serialised whole
    (log messages, asset materialization and observation metadata, errors), plus run-less
    materializations of each asset."""
    from dagster import serialize_value

    seen_runs: set[str] = set()
    cursor = None
    while True:
        runs = instance.get_runs(cursor=cursor, limit=batch)
        for run in runs:
            seen_runs.add(run.run_id)
            yield f"dagster:run:{run.run_id}", serialize_value(run)
            for i, entry in enumerate(instance.all_logs(run.run_id)):
                kind = entry.dagster_event.event_type_value if entry.dagster_event else "log"
                yield f"dagster:run:{run.run_id}:event:{i}:{kind}", serialize_value(entry)
        if len(runs) < batch:
            break
        cursor = runs[-1].run_id
    for key in instance.get_asset_keys():
        records = instance.fetch_materializations(key, limit=10_000).records
        for record in records:
            entry = record.event_log_entry
            if entry.run_id not in seen_runs:
                yield f"dagster:asset:{key.to_user_string()}:{record.storage_id}", serialize_value(entry)


# --- collectors: lakeFS -----------------------------------------------------------------------


def texts_from_lakefs(
    repository: Any, ref: str, *, client: Any = None, max_object_bytes: int = MAX_TEXT_BYTES
) -> Iterator[tuple[str, str]]:
    """Every object at `ref` (path, user metadata, content when under `max_object_bytes`),
    the commit log from `ref` (message, committer, metadata), tag and branch names, and the
    repository's metadata. `repository`: a `lakefs.Repository` or a name (with `client`)."""
    import lakefs

    repo = repository
    if not isinstance(repo, lakefs.Repository):
        repo = lakefs.Repository(repository, client=client)
    reference = repo.ref(ref)
    base = f"lakefs://{repo.id}/{ref}"
    for obj in reference.objects():
        if not isinstance(obj, lakefs.ObjectInfo):
            continue
        where = f"{base}/{obj.path}"
        yield f"{where}#path", obj.path
        if obj.metadata:
            yield f"{where}#metadata", _kv(obj.metadata)
        if (obj.size_bytes or 0) <= max_object_bytes:
            with reference.object(obj.path).reader(mode="rb") as reader:
                data = reader.read()
            yield from texts_from_bytes(where, obj.path, data)
    for commit in reference.log():
        yield f"lakefs://{repo.id}@{commit.id}#commit", "\n".join(
            [commit.message or "", commit.committer or "", _kv(commit.metadata or {})])
    yield f"lakefs://{repo.id}#tags", "\n".join(tag.id for tag in repo.tags())
    yield f"lakefs://{repo.id}#branches", "\n".join(branch.id for branch in repo.branches())
    try:
        yield f"lakefs://{repo.id}#repository_metadata", _kv(repo.metadata or {})
    except Exception:  # servers without repository metadata support
        pass


# --- what must not leak -------------------------------------------------------------------------


def planted_secrets(ground_truth_dir: Path) -> list[str]:
    """Values of the simulator's planted API_KEY / TOKEN / PASSWORD entries under a
    ground_truth directory (`<date>/pii.jsonl`), in file order, without repeats."""
    values: dict[str, None] = {}
    for pii in sorted(Path(ground_truth_dir).glob("*/pii.jsonl")):
        for line in pii.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry.get("entity_type") in SECRET_ENTITY_TYPES and entry.get("value"):
                values.setdefault(str(entry["value"]), None)
    return list(values)


def known_secrets(
    settings: Settings | None = None,
    *,
    ground_truth_dirs: Iterable[Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Every value that must not appear in logs, artifacts or releases: the lakeFS secret
    access key and encrypt secret, passwords embedded in the configured URIs, credentials in
    SECRET_ENV_VARS, and the simulator's planted secrets (default ground truth directory:
    beside the landing directory, where `flywheel simulate` writes it)."""
    if settings is None:
        from pipeline.settings import get_settings

        settings = get_settings()
    environ = os.environ if environ is None else environ
    found: dict[str, None] = {}
    candidates = [settings.lakefs_secret_access_key.reveal(), settings.lakefs_encrypt_secret.reveal()]
    # The production profile's PostgreSQL password: given, or generated for the trial server
    # (read if it exists, never made here).
    if settings.postgres_password_env is not None:
        candidates.append(settings.postgres_password_env.reveal())
    elif settings.postgres_password_file.exists():
        candidates.append(settings.postgres_password_file.read_text().strip())
    for uri in (settings.mlflow_tracking_uri, settings.mlflow_backend_store_uri, settings.lakefs_endpoint):
        try:
            candidates.append(urlsplit(uri).password or "")
        except ValueError:
            pass
    candidates += [environ.get(name, "") for name in SECRET_ENV_VARS]
    dirs = list(ground_truth_dirs) if ground_truth_dirs is not None else [
        settings.landing_dir.parent / "ground_truth"]
    for directory in dirs:
        if Path(directory).is_dir():
            candidates += planted_secrets(Path(directory))
    for value in candidates:
        if value and value.strip():
            found.setdefault(value, None)
    return list(found)


__all__ = [
    "Leak", "PlaceScan", "fingerprint", "known_secrets", "planted_secrets", "scan_for_secrets", "scan_place",
    "texts_from_bytes",
    "texts_from_dagster", "texts_from_lakefs", "texts_from_mlflow", "texts_from_tree", "variants",
]
