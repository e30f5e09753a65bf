"""Ratifier's wire codec: Avro single-object encoding of the records in :mod:`ratifier.core.models`.

Every message value on Ratifier's topics is::

    C3 01 | CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, 8 bytes little-endian
          | Avro binary encoding of the record

which is what the Avro Java library's ``BinaryMessageEncoder`` writes (see docs/wire-format.md).
The fingerprint names the record type, so :func:`decode` needs no topic-to-type table.

The contract is ``schemas/*.avsc``: one named type per file, named ``<full name>.avsc``, types
referring to each other by full name. At import the loader inlines each top-level record's named
types (defined at first use, referred to by name after that, as Java's ``Schema.toString`` does),
parses it once and computes its fingerprint; nothing schema-related happens per message.

Timestamps (``*_ms``) carry the ``timestamp-millis`` logical type in the contract, for other
languages. fastavro would turn them into ``datetime`` on read; the models want integer
milliseconds. Logical types change neither the bytes nor the canonical form (hence not the
fingerprint), so the codec reads and writes with a copy of each schema stripped of them and gets
plain ints both ways, at no cost. :func:`schema` returns the contract version.

Schema evolution: ``schemas/history/<version>/`` keeps every released version of the files,
exactly as released. At import each of their top-level records that differs from the current one
(another fingerprint) gets a decoder that reads the body with that old writer schema and resolves
it into the current one (Avro schema resolution), so records already on the topics stay
readable. Encoding always uses the current schema. Decoding a current record does no resolution
at all; only old records pay for it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from ratifier.core.errors import UnknownSchema, WireFormatError
from ratifier.core.models import (
    Alert,
    Candidate,
    DeadLetter,
    EscalationPacket,
    Outcome,
    PassDecision,
    Record,
    RetryRequest,
    RoundRequest,
    Verdict,
)
from ratifier.schemas import binding

__all__ = [
    "HEADER_SIZE",
    "MARKER",
    "RECORD_TYPES",
    "Bodies",
    "canonical_form",
    "decode",
    "decode_as",
    "encode",
    "fingerprint",
    "readable_fingerprints",
    "schema",
    "schema_dir",
]

MARKER: Final = b"\xc3\x01"
HEADER_SIZE: Final = 10  # marker + 8-byte fingerprint
NAMESPACE: Final = "ratifier"

# The top-level records, one per topic.
RECORD_TYPES: Final[tuple[type[Record], ...]] = (
    Candidate,
    Verdict,
    PassDecision,
    RetryRequest,
    EscalationPacket,
    DeadLetter,
    Outcome,
    Alert,
    RoundRequest,
)

# Bound, not constrained: a caller holding a union of record types (``type[Candidate] |
# type[Verdict]``) gets that union back.
T = TypeVar("T", bound=Record)
# Records read from messages, with their bodies, for encode to copy: see decode_as.
Bodies = binding.Bodies

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


def schema_dir() -> Path:
    """The folder holding the ``*.avsc`` files (installed as package data beside this module)."""
    # Resolved: a strict editable install links this module into a build folder file by file,
    # and the schema history below the real folder is not linked there.
    return Path(__file__).resolve().parent


def history_dir() -> Path:
    """The folder of released schema versions: one sub-folder per version, files as released."""
    return schema_dir() / "history"


# --- loading ---------------------------------------------------------------------------------


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name else f"{namespace}.{name}"


def _load_named_types(directory: Path) -> dict[str, dict[str, Any]]:
    """Every named type in ``directory``, by full name; each file must be ``<full name>.avsc``."""
    named: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.avsc")):
        definition = json.loads(path.read_text(encoding="utf-8"))
        name = _fullname(definition["name"], definition.get("namespace", NAMESPACE))
        # The file name is how other tools (fastavro's load_schema, readers) find a type.
        if path.name != f"{name}.avsc":
            raise ValueError(f"{path} defines {name}; it must be named {name}.avsc")
        named[name] = definition
    return named


def _standalone(name: str, named: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``name``'s schema with each named type it uses defined inline at its first use.

    That is the one form whose canonical form (hence fingerprint) every Avro library agrees on.
    """
    defined: set[str] = set()

    def inline(node: Any, namespace: str) -> Any:
        if isinstance(node, list):
            return [inline(branch, namespace) for branch in node]
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            full = _fullname(node, namespace)
            if full in defined or full not in named:
                # Already defined above, or unknown: fastavro's parser reports the latter.
                return full
            return inline(named[full], namespace)
        kind = node["type"]
        if kind in _NAMED:
            namespace = node.get("namespace", namespace)
            defined.add(_fullname(node["name"], namespace))
            if kind in ("record", "error"):
                fields = [{**f, "type": inline(f["type"], namespace)} for f in node["fields"]]
                return {**node, "fields": fields}
            return dict(node)
        if kind == "array":
            return {**node, "items": inline(node["items"], namespace)}
        if kind == "map":
            return {**node, "values": inline(node["values"], namespace)}
        if kind in _PRIMITIVES:
            return dict(node)  # a primitive with attributes, e.g. a logical type
        return {**node, "type": inline(kind, namespace)}  # {"type": "some.Name"}

    return cast(dict[str, Any], inline(named[name], NAMESPACE))


def _without_logical_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_logical_types(n) for n in node]
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items() if k != "logicalType"}
    return node


@dataclass(frozen=True, slots=True)
class _Codec:
    kind: type[Record]
    name: str  # the record's short name, for messages
    header: bytes  # marker + fingerprint
    contract: dict[str, Any]  # parsed, as published (with logical types)
    wire: dict[str, Any]  # parsed, logical types stripped: the writer schema the body is read with
    canonical_form: str
    # The model <-> datum conversions of the current schema (fastavro's path, ratifier.schemas.
    # binding); an older version's datums are resolved into the current shape, so it shares them.
    to_avro: Callable[[Any], Any]
    from_avro: Callable[[Any], Any]
    # The generated fast path (binding.py); None for older versions (those need resolution).
    read_fast: binding.Read | None = None
    write_fast: binding.Write | None = None
    # None for the current schema. For an older version: the current wire schema, which the old
    # body is resolved into, so that from_avro (written for the current shape) can read it.
    reader: dict[str, Any] | None = None


def _build_codecs(directory: Path, current: dict[type, _Codec] | None = None) -> Iterator[_Codec]:
    """The codecs of the schemas in ``directory``: bound to the models (binding.py) if they are
    the current ones; an older version (``current`` given) reuses the current conversions."""
    named = _load_named_types(directory)
    for kind in RECORD_TYPES:
        if f"{NAMESPACE}.{kind.__name__}" not in named and directory != schema_dir():
            continue  # a record type added after that release (e.g. Outcome after v2)
        standalone = _standalone(f"{NAMESPACE}.{kind.__name__}", named)
        contract = parse_schema(standalone, named_schemas={})
        wire = parse_schema(_without_logical_types(standalone), named_schemas={})
        canonical = to_parsing_canonical_form(contract)
        if to_parsing_canonical_form(wire) != canonical:  # would make the fingerprint lie
            raise ValueError(f"{kind.__name__}: stripping logical types changed the schema")
        fingerprint_ = bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))
        header = MARKER + fingerprint_
        if current is not None:
            newest = current[kind]
            yield _Codec(
                kind, kind.__name__, header, contract, wire, canonical,
                newest.to_avro, newest.from_avro,
            )  # fmt: skip
            continue
        bound = binding.bind(wire)
        if bound.model is not kind:
            raise binding.BindingError(f"{kind.__name__}'s schema is bound to {bound.model}")
        yield _Codec(
            kind=kind,
            name=kind.__name__,
            header=header,
            contract=contract,
            wire=wire,
            canonical_form=canonical,
            to_avro=bound.to_datum,
            from_avro=bound.from_datum,
            read_fast=bound.read,
            write_fast=bound.write,
        )


def _build_older_codecs(history: Path, current: dict[type, _Codec]) -> Iterator[tuple[str, _Codec]]:
    """(version, codec) for each released record schema that is not the current one.

    Versions are read in name order; a fingerprint met again (a record unchanged between two
    releases) is yielded once, with the first version that has it.
    """
    if not history.is_dir():
        # Without it, records written with older schemas would be dead-lettered as unknown:
        # a package built without its schema history is broken, and says so at once.
        raise FileNotFoundError(
            f"schema history {history} is missing: the package was built without "
            "schemas/history/ (package data), so records written with older schemas are unreadable"
        )
    seen = {c.header for c in current.values()}
    versions = sorted((p for p in history.iterdir() if p.is_dir()), key=_version_number)
    for version in versions:
        for old in _build_codecs(version, current):
            if old.header in seen:
                continue
            seen.add(old.header)
            newest = current[old.kind]
            _check_resolves(version.name, old, newest)
            old = dataclasses.replace(old, reader=newest.wire, read_fast=None, write_fast=None)
            yield version.name, old


def _version_number(folder: Path) -> int:
    """``v<N>`` -> N: versions sort by number (v10 after v9), and other names are mistakes."""
    name = folder.name
    if not (name.startswith("v") and name[1:].isdigit()):
        raise ValueError(f"schema history folder {folder} must be named v<number>")
    return int(name[1:])


def _check_resolves(version: str, old: _Codec, newest: _Codec) -> None:
    """Fail at import, not on the first old message, if ``old`` cannot be read as ``newest``.

    fastavro resolves lazily, while reading, so a schema change that breaks old data would
    otherwise only show when such a record arrives.
    """
    problem = _resolution_problem(old.wire, newest.wire, old.name)
    if problem is not None:
        raise ValueError(f"schema history {version}: {problem}; see docs/wire-format.md")


# Avro's promotions: a writer's type that a reader of another type still reads.
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


def _type_name(node: Any) -> str:
    return node if isinstance(node, str) else "union" if isinstance(node, list) else node["type"]


def _resolution_problem(writer: Any, reader: Any, where: str) -> str | None:
    """Why data of ``writer`` could fail to resolve into ``reader`` (parsed schemas); None if not.

    The Avro specification's rules, as far as these schemas use them. A named type used a second
    time is a bare name on both sides and was checked at its first use.
    """
    if isinstance(writer, list):  # each branch the writer can write must find a reader branch
        for branch in writer:
            options = reader if isinstance(reader, list) else [reader]
            if all(_resolution_problem(branch, r, where) for r in options):
                return f"{where}: union branch {_type_name(branch)!r} has no match"
        return None
    if isinstance(reader, list):
        if any(_resolution_problem(writer, r, where) is None for r in reader):
            return None
        return f"{where}: {_type_name(writer)!r} matches no union branch"
    w_type, r_type = _type_name(writer), _type_name(reader)
    if w_type != r_type:
        if (w_type, r_type) in _PROMOTIONS:
            return None
        return f"{where}: type {w_type!r} became {r_type!r}"
    if isinstance(writer, str) or isinstance(reader, str):
        return None  # a primitive, or a named type checked where it was defined
    if w_type == "enum":
        lost = sorted(set(writer["symbols"]) - set(reader["symbols"]))
        if lost and "default" not in reader:
            return f"{where}: enum symbols {lost} were removed and the enum has no default"
        return None
    if w_type == "array":
        return _resolution_problem(writer["items"], reader["items"], f"{where}[]")
    if w_type == "map":
        return _resolution_problem(writer["values"], reader["values"], f"{where}{{}}")
    if w_type == "fixed" and writer["size"] != reader["size"]:
        return f"{where}: fixed size changed"
    if w_type == "record":
        return _fields_problem(writer, reader, where)
    return None


def _fields_problem(writer: dict[str, Any], reader: dict[str, Any], where: str) -> str | None:
    old_fields = {f["name"]: f for f in writer["fields"]}
    for field in reader["fields"]:
        path = f"{where}.{field['name']}"
        previous = old_fields.get(field["name"])
        if previous is None:
            if "default" not in field:
                return f"{path}: added without a default"
            continue
        problem = _resolution_problem(previous["type"], field["type"], path)
        if problem is not None:
            return problem
    return None


# --- the generated fast path ------------------------------------------------------------------
# fastavro interprets the schema for every message (per field: look the type up by name, check
# defaults, dispatch), and its dicts must then be converted to and from the models. On the
# tally's hot path (decode every verdict, encode a decision holding the candidate and every vote)
# that was most of the codec's time. So each current schema is bound to its model once at import
# (binding.py): generated code reads the body straight into the models and writes it straight
# from them. It is strict: whatever it does not take (bad bytes, unusual but valid encodings,
# values of the wrong type) raises, and the message is redone by fastavro, so every error and
# edge case stays fastavro's; both paths give the same bytes and records (tests/unit/test_codec.py).


def _fast_encode(codec: _Codec, record: Record, bodies: Bodies | None = None) -> bytes | None:
    """``record``'s message by the generated writer; None when fastavro must write it."""
    if codec.write_fast is None:
        return None
    out = bytearray(codec.header)
    try:
        codec.write_fast(out, record, bodies)
    except Exception:  # a value the generated writer does not take: fastavro decides
        return None
    return bytes(out)


def _fast_decode(codec: _Codec, data: bytes, bodies: Bodies | None = None) -> Any:
    """The record in ``data`` by the generated reader; None when fastavro must read it."""
    if codec.read_fast is None:
        return None
    try:
        record, end = codec.read_fast(data, HEADER_SIZE)
    except Exception:  # bad or unusual bytes: fastavro reads them again, and explains
        return None
    if end != len(data):
        return None
    if bodies is not None:
        # The generated reader takes only the one encoding a writer writes (anything else went
        # to fastavro above), so this body is exactly what encoding the record would give.
        bodies[id(record)] = (record, memoryview(data)[HEADER_SIZE:])
    return record


_BY_TYPE: Final[dict[type, _Codec]] = {c.kind: c for c in _build_codecs(schema_dir())}
_OLDER: Final[tuple[tuple[str, _Codec], ...]] = tuple(_build_older_codecs(history_dir(), _BY_TYPE))
_BY_FINGERPRINT: Final[dict[bytes, _Codec]] = {
    c.header[2:]: c for c in (*_BY_TYPE.values(), *(codec for _, codec in _OLDER))
}


def _codec_for(kind: type) -> _Codec:
    try:
        return _BY_TYPE[kind]
    except KeyError:
        names = ", ".join(k.__name__ for k in RECORD_TYPES)
        raise TypeError(f"{kind.__name__} is not a Ratifier record type ({names})") from None


def fingerprint(kind: type[Record]) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of ``kind``'s schema, little-endian as on the wire."""
    return _codec_for(kind).header[2:]


def readable_fingerprints(kind: type[Record]) -> dict[bytes, str]:
    """Every fingerprint of ``kind`` that :func:`decode` reads -> the schema version it names.

    The current one first (version ``"current"``), then older released ones, oldest first.
    """
    current = {fingerprint(kind): "current"}
    return current | {c.header[2:]: version for version, c in _OLDER if c.kind is kind}


def schema(kind: type[Record]) -> dict[str, Any]:
    """``kind``'s parsed schema as published (fastavro form). Shared: do not modify it."""
    return _codec_for(kind).contract


def canonical_form(kind: type[Record]) -> str:
    """``kind``'s schema in Avro Parsing Canonical Form, the text the fingerprint is taken of."""
    return _codec_for(kind).canonical_form


# --- the hot path ----------------------------------------------------------------------------


def encode(record: Record, bodies: Bodies | None = None) -> bytes:
    """``record`` as a single-object encoded Avro message.

    With ``bodies`` (filled by :func:`decode_as`), every record inside ``record`` that was read
    from a message is copied from that message's body instead of being encoded again.
    """
    codec = _BY_TYPE.get(type(record))
    if codec is None:
        codec = _codec_for(type(record))  # raises the TypeError
    encoded = _fast_encode(codec, record, bodies)
    if encoded is not None:
        return encoded
    out = BytesIO()
    out.write(codec.header)
    schemaless_writer(out, codec.wire, codec.to_avro(record))
    return out.getvalue()


def decode(data: bytes) -> Record:
    """The record in ``data``, whatever its type (told by the fingerprint).

    Raises :class:`WireFormatError` if ``data`` is not a well-formed message and
    :class:`UnknownSchema` if its fingerprint names no schema this version knows.
    """
    if type(data) is not bytes:
        data = _as_bytes(data)
    codec = _BY_FINGERPRINT.get(data[2:HEADER_SIZE])
    if codec is None or data[:2] != MARKER:
        _raise_bad_header(data)
    return cast(Record, _read_body(data, codec))


def decode_as(data: bytes, kind: type[T], bodies: Bodies | None = None) -> T:
    """Like :func:`decode`, but ``data`` must hold a ``kind``: raises WireFormatError otherwise.

    ``bodies``, if given, remembers the record's body for :func:`encode` (the tally reads
    candidates and verdicts and writes decisions that hold them). It keeps the records and their
    messages alive: use one per batch of work, then drop it.
    """
    if type(data) is not bytes:
        data = _as_bytes(data)
    codec = _BY_FINGERPRINT.get(data[2:HEADER_SIZE])
    if codec is None or data[:2] != MARKER:
        _raise_bad_header(data)
    if codec.kind is not kind:
        expected = _codec_for(kind).name  # a TypeError if kind is no record type at all
        raise WireFormatError(f"expected {expected}, got {codec.name}")
    read = codec.read_fast
    if read is not None:  # _fast_decode, inline: this is the tally's per-record path
        try:
            record, end = read(data, HEADER_SIZE)
        except Exception:  # bad or unusual bytes: fastavro reads them again, and explains
            pass
        else:
            if end == len(data):
                if bodies is not None:
                    bodies[id(record)] = (record, memoryview(data)[HEADER_SIZE:])
                return cast(T, record)
    return cast(T, _fastavro_read(data, codec))


def _read_body(data: bytes, codec: _Codec) -> Any:
    record = _fast_decode(codec, data)
    if record is not None:
        return record
    return _fastavro_read(data, codec)


def _fastavro_read(data: bytes, codec: _Codec) -> Any:
    body = BytesIO(data)  # shares the bytes' buffer, no copy
    body.seek(HEADER_SIZE)
    try:
        # reader is None for the current schema: no resolution work on the usual path.
        datum = schemaless_reader(body, codec.wire, codec.reader)
    # Bad bytes make fastavro fail in undocumented ways: EOFError, or IndexError when a number
    # is cut short or an enum or union index is out of range, UnicodeDecodeError, ...; none of
    # them may escape as anything but bad data.
    except Exception as exc:
        size = len(data) - HEADER_SIZE
        if body.tell() >= len(data):  # it failed for want of bytes
            message = f"truncated {codec.name}: the body ({size} bytes) ends before the record"
        else:
            message = f"garbled {codec.name} body ({size} bytes): {type(exc).__name__}: {exc}"
        raise WireFormatError(message) from exc
    left = len(data) - body.tell()
    if left:
        raise WireFormatError(f"{left} unexpected bytes after the end of the {codec.name} body")
    return codec.from_avro(datum)


def _as_bytes(data: object) -> bytes:
    if data is None:
        raise WireFormatError("no message value (a tombstone?): expected an Avro single-object")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise WireFormatError(f"expected bytes, got {type(data).__name__}")


def _raise_bad_header(data: bytes) -> NoReturn:
    """Explain why ``data`` does not start with a known single-object header, and raise."""
    if not data:
        raise WireFormatError("empty message: expected an Avro single-object encoded record")
    if len(data) < HEADER_SIZE:
        raise WireFormatError(
            f"message too short: {len(data)} bytes ({data.hex(' ')}), but the single-object "
            f"header alone is {HEADER_SIZE}"
        )
    if data[:2] != MARKER:
        hint = ""
        if data[0] == 0:
            hint = " (looks like Confluent Schema Registry framing: magic byte 0 + schema id)"
        elif data[:1] in (b"{", b"["):
            hint = " (looks like JSON)"
        raise WireFormatError(
            f"not Avro single-object encoding: expected marker c3 01, got {data[:2].hex(' ')}"
            + hint
        )
    found = data[2:HEADER_SIZE]
    known = ", ".join(f"{c.name}={c.header[2:].hex()}" for c in _BY_TYPE.values())
    raise UnknownSchema(
        f"unknown schema fingerprint {found.hex()} (CRC-64-AVRO, little-endian): not a schema "
        f"this version of Ratifier knows ({known}); is the producer on another schema version?"
    )
