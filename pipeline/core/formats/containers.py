"""How a file holds its JSON records, and how it is compressed: read as a stream, one record
in memory at a time.

Containers:
- `jsonl`: one object per line (records are numbered by line, as before);
- `json_array`: a JSON array of objects, pretty-printed or not (`[{...}, {...}]`);
- `json_object`: a JSON object whose values are the records, keyed by id (`{"run-1": {...}}`).
Arrays and objects are streamed with ijson's C backend, so a 2 GB array never needs 2 GB of
memory. Their records are numbered by position (1-based) instead of by line: ijson reports
no byte offsets. A syntax error inside an array or object ends what can be read of it: the
records before it are kept, and the rest becomes one `invalid_json` record at the position
where reading stopped (nothing after it is dropped silently).

Compression (`gzip`, `zstd`) is detected from the first bytes, whatever the file is called.
"""

from __future__ import annotations

import codecs
import gzip
import io
from collections.abc import Iterator
from typing import IO, Any

import ijson
import zstandard

from pipeline.core.formats.guard import Parsed, Quarantined, RecordError
from pipeline.core.formats.json_lines import JsonItem, iter_lines, strict_json

CONTAINERS: tuple[str, ...] = ("jsonl", "json_array", "json_object")
COMPRESSIONS: tuple[str, ...] = ("none", "gzip", "zstd")
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
_BOM = codecs.BOM_UTF8
READ_CHUNK = 64 * 1024


def detect_compression(head: bytes) -> str:
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), "none")


def decompressed(stream: IO[bytes], compression: str) -> IO[bytes]:
    """`stream` read through its decompressor (a stream too: nothing is read up front)."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if compression == "zstd":
        return io.BufferedReader(_ZstdReader(stream), READ_CHUNK)
    if compression == "none":
        return stream
    raise ValueError(f"unknown compression {compression!r}; known: {', '.join(COMPRESSIONS)}")


class _ZstdReader(io.RawIOBase):
    """A zstd stream's content, frame after frame. zstandard's own stream reader ends quietly
    at a truncated frame; this one raises EOFError there, as gzip does, so that the lost
    rest of a cut-off file is counted instead of silently missing."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._stream.read(READ_CHUNK)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd stream ended before the end of its frame")
                return 0
            self._decompress(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n

    def _decompress(self, data: bytes) -> None:
        while data:
            self._in_frame = True
            self._pending += self._frame.decompress(data)
            if not self._frame.eof:
                return
            data, self._in_frame = self._frame.unused_data, False
            self._frame = zstandard.ZstdDecompressor().decompressobj()


def detect_container(head: bytes) -> str | None:
    """`json_array` when the text starts with `[`; `jsonl` when its first line is a whole
    JSON value; `json_object` when it starts with `{` that the first line does not close
    (a pretty-printed object); None when it is not JSON at all (a text format)."""
    text = head.removeprefix(_BOM).lstrip()
    if text.startswith(b"["):
        return "json_array"
    if not text.startswith(b"{"):
        return None
    first_line = text.split(b"\n", 1)[0].strip()
    return "jsonl" if b"\n" not in text or _is_json(first_line) else "json_object"


def _is_json(line: bytes) -> bool:
    try:
        strict_json(line)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return False
    return True


def json_items(stream: IO[bytes], container: str) -> Iterator[JsonItem]:
    """The records of a (decompressed) stream, one JsonItem each; blank JSONL lines are not
    records."""
    if container == "jsonl":
        for number, line in iter_lines(stream):
            if line.strip():
                yield JsonItem(number, raw=line)
        return
    if container not in CONTAINERS:
        raise ValueError(f"unknown container {container!r}; known: {', '.join(CONTAINERS)}")
    # use_float: numbers as floats like every other reader here (ijson's default is Decimal)
    if container == "json_array":
        elements = ((None, value) for value in ijson.items(stream, "item", use_float=True))
        what = "array"
    else:
        elements = ijson.kvitems(stream, "", use_float=True)
        what = "object"
    position = 0
    try:
        for key, value in elements:
            position += 1
            yield JsonItem(position, value=value, key=key)
    except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as err:
        detail = (f"the JSON {what} cannot be read past record {position}: {err}"
                  f"{' (truncated?)' if 'incomplete' in str(err).lower() else ''}")
        yield JsonItem(position + 1, error=RecordError("invalid_json", detail))


def first_record(head: bytes, container: str) -> Any:
    """The first record of an array/object container if the head holds all of it, else None."""
    try:
        for item in json_items(io.BytesIO(head), container):
            return item.value
    except (ValueError, RecursionError):
        return None
    return None


DECOMPRESSION_ERRORS = (OSError, EOFError, zstandard.ZstdError)


def until_unreadable(records: Iterator[Parsed | Quarantined], uri: str) -> Iterator[Parsed | Quarantined]:
    """`records`, and when the compressed stream under them breaks (a corrupt or truncated
    gzip/zstd file), one `corrupt_compression` record for the rest of the file, at the next
    position: the records before it are kept, and what is lost is counted."""
    last = 0
    try:
        for record in records:
            last = record.line if isinstance(record, Quarantined) else record.trajectory.provenance.line
            yield record
    except DECOMPRESSION_ERRORS as err:
        detail = f"the compressed stream cannot be read past record {last}: {type(err).__name__}: {err}"
        yield Quarantined("corrupt_compression", detail[:500], uri, last + 1, "")
