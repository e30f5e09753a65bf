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
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from operator import attrgetter
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from ratifier.core import models
from ratifier.core.errors import UnknownSchema, WireFormatError
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    EscalationPacket,
    Outcome,
    PassDecision,
    Record,
    RetryRequest,
    Verdict,
)
from ratifier.schemas import mapping

__all__ = [
    "HEADER_SIZE",
    "MARKER",
    "RECORD_TYPES",
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
)

T = TypeVar(
    "T", Candidate, Verdict, PassDecision, RetryRequest, EscalationPacket, DeadLetter, Outcome
)

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
    to_avro: Callable[[Any], mapping.Datum]
    from_avro: Callable[[mapping.Datum], Any]
    # The compiled fast path (see "compiled readers and writers" below); None where the schema
    # uses a type it does not cover, and for older versions (those need resolution).
    read_fast: _Read | None = None
    write_fast: _Write | None = None
    # None for the current schema. For an older version: the current wire schema, which the old
    # body is resolved into, so that from_avro (written for the current shape) can read it.
    reader: dict[str, Any] | None = None


def _build_codecs(directory: Path) -> Iterator[_Codec]:
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
        yield _Codec(
            kind=kind,
            name=kind.__name__,
            header=MARKER + fingerprint_,
            contract=contract,
            wire=wire,
            canonical_form=canonical,
            to_avro=mapping.TO_AVRO[kind],
            from_avro=mapping.FROM_AVRO[kind],
            read_fast=_compiled(_compile_reader, wire),
            write_fast=_compiled(_compile_writer, wire),
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
        for old in _build_codecs(version):
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


# --- compiled readers and writers ------------------------------------------------------------
# fastavro interprets the schema for every message (per field: look the type up by name, check
# defaults, dispatch), and mapping.py then converts its dicts to and from the models. On the
# tally's hot path (decode every verdict, encode a decision holding the candidate and every vote)
# that was most of the codec's time. So each current schema is also compiled, once at import,
# into closures that read the body straight into the models and write it straight from them:
# every model has its schema's fields, in the same order and with the same names (checked here:
# a record type that does not gets no compiled path), enums are the models' StrEnum members,
# arrays their tuples, a union [null, X] is None or an X.
#
# The compiled path is strict. Anything unusual (a truncated or garbled body, an unknown enum or
# union index, a negative block count, a value of the wrong type) raises, and the caller redoes
# the message with fastavro and mapping.py, so every error and edge case stays theirs. Avro's
# binary encoding is fixed by the specification (zig-zag varints, one block per array and map,
# as fastavro writes them), so both paths give the same bytes and the same records; the codec
# tests compare them on generated records.

_Read = Callable[[bytes, int], tuple[Any, int]]
_Write = Callable[[bytearray, Any], None]
_DOUBLE: Final = struct.Struct("<d")
_MIN_INT: Final = -(2**31)
_MAX_INT: Final = 2**31 - 1
_MIN_LONG: Final = -(2**63)
_MAX_LONG: Final = 2**63 - 1


class _Unsupported(Exception):
    """The compiled path does not handle this schema, or this value: fastavro does."""


def _fast_encode(codec: _Codec, record: Record) -> bytes | None:
    """``record``'s message by the compiled writer; None when fastavro must write it."""
    if codec.write_fast is None:
        return None
    out = bytearray(codec.header)
    try:
        codec.write_fast(out, record)
    except Exception:  # a value the compiled writer does not take: fastavro decides
        return None
    return bytes(out)


def _fast_decode(codec: _Codec, data: bytes) -> Any:
    """The record in ``data`` by the compiled reader; None when fastavro must read it."""
    if codec.read_fast is None:
        return None
    try:
        record, end = codec.read_fast(data, HEADER_SIZE)
    except Exception:  # bad or unusual bytes: fastavro reads them again, and explains
        return None
    return record if end == len(data) else None


def _compiled(compile_: Callable[[Any, dict[str, Any]], Any], schema: Any) -> Any:
    try:
        return compile_(schema, {})
    except _Unsupported:
        return None


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    pos += 1
    if byte < 0x80:  # one byte: most lengths, counts, indexes and small numbers
        return (byte >> 1) ^ -(byte & 1), pos
    value = byte & 0x7F
    shift = 7
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    if value >> 64:
        raise _Unsupported("varint longer than 64 bits")
    return (value >> 1) ^ -(value & 1), pos


def _read_int(data: bytes, pos: int) -> tuple[int, int]:
    value, pos = _read_long(data, pos)
    if not _MIN_INT <= value <= _MAX_INT:
        raise _Unsupported("int out of range")
    return value, pos


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = _read_long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise _Unsupported("bytes length out of range")
    return data[pos:end], end


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    size = data[pos]
    if size < 0x80 and not size & 1:  # a one-byte, non-negative length: most strings
        size >>= 1
        pos += 1
    else:
        size, pos = _read_long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise _Unsupported("string length out of range")
    return data[pos:end].decode(), end


def _read_double(data: bytes, pos: int) -> tuple[float, int]:
    return _DOUBLE.unpack_from(data, pos)[0], pos + 8


def _read_null(data: bytes, pos: int) -> tuple[None, int]:
    return None, pos


_PRIMITIVE_READERS: Final[dict[str, _Read]] = {
    "null": _read_null,
    "int": _read_int,
    "long": _read_long,
    "double": _read_double,
    "string": _read_string,
    "bytes": _read_bytes,
}


def _model_of(full_name: str) -> Any:
    """The model class or enum of a named schema type (``ratifier.Verdict`` -> Verdict)."""
    model = getattr(models, full_name.rpartition(".")[2], None)
    if model is None:
        raise _Unsupported(f"no model for {full_name}")
    return model


def _record_model(schema: dict[str, Any]) -> Any:
    """The record's model, if its fields are the schema's, in order; else no compiled path."""
    model = _model_of(schema["name"])
    names = [f.name for f in dataclasses.fields(model)] if dataclasses.is_dataclass(model) else []
    if names != [f["name"] for f in schema["fields"]]:
        raise _Unsupported(f"{model.__name__}'s fields are not its schema's")
    return model


def _compile_reader(schema: Any, named: dict[str, _Read]) -> _Read:
    """A reader of ``schema`` (parsed) giving its model; ``named`` collects named types."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_READERS:
            return _PRIMITIVE_READERS[schema]
        if schema in named:
            return named[schema]
        raise _Unsupported(schema)
    if isinstance(schema, list):
        return _union_reader([_compile_reader(branch, named) for branch in schema])
    kind = schema["type"]
    if kind == "record":
        fields: list[_Read] = []
        # Filled in place: a record refers to itself by name only after its definition.
        named[schema["name"]] = reader = _record_reader(_record_model(schema), fields)
        fields.extend(_compile_reader(f["type"], named) for f in schema["fields"])
        return reader
    if kind == "enum":
        enum = _model_of(schema["name"])
        members = tuple(enum(symbol) for symbol in schema["symbols"])
        named[schema["name"]] = reader = _enum_reader(members)
        return reader
    if kind == "array":
        return _array_reader(_compile_reader(schema["items"], named))
    if kind == "map":
        return _map_reader(_compile_reader(schema["values"], named))
    return _compile_reader(kind, named)  # a primitive with attributes


def _record_reader(model: Any, fields: list[_Read]) -> _Read:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        values = []
        for read_field in fields:
            value, pos = read_field(data, pos)
            values.append(value)
        return model(*values), pos  # positional: the fields are in the schema's order

    return read


def _enum_reader(members: tuple[Any, ...]) -> _Read:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = _read_long(data, pos)
        if not 0 <= index < len(members):
            raise _Unsupported("enum index out of range")
        return members[index], pos

    return read


def _union_reader(branches: list[_Read]) -> _Read:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = _read_long(data, pos)
        if not 0 <= index < len(branches):
            raise _Unsupported("union index out of range")
        return branches[index](data, pos)

    return read


def _array_reader(read_item: _Read) -> _Read:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        items: list[Any] = []
        count, pos = _read_long(data, pos)
        while count:
            if count < 0:  # a block with its size in bytes: legal, rare, left to fastavro
                raise _Unsupported("array block with a byte size")
            for _ in range(count):
                item, pos = read_item(data, pos)
                items.append(item)
            count, pos = _read_long(data, pos)
        return tuple(items), pos  # the models hold tuples

    return read


def _map_reader(read_value: _Read) -> _Read:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        values: dict[str, Any] = {}
        count, pos = _read_long(data, pos)
        while count:
            if count < 0:
                raise _Unsupported("map block with a byte size")
            for _ in range(count):
                key, pos = _read_string(data, pos)
                values[key], pos = read_value(data, pos)
            count, pos = _read_long(data, pos)
        return values, pos

    return read


def _write_long(out: bytearray, value: int) -> None:
    if not (isinstance(value, int) and _MIN_LONG <= value <= _MAX_LONG):
        raise _Unsupported("not a long")
    value = (value << 1) ^ (value >> 63)
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _write_int(out: bytearray, value: int) -> None:
    if not (isinstance(value, int) and _MIN_INT <= value <= _MAX_INT):
        raise _Unsupported("not an int")
    _write_long(out, value)


def _write_bytes(out: bytearray, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _Unsupported("not bytes")
    _write_long(out, len(value))
    out += value


def _write_string(out: bytearray, value: str) -> None:
    if not isinstance(value, str):
        raise _Unsupported("not a string")
    encoded = value.encode()
    if len(encoded) < 64:  # most strings: a one-byte length
        out.append(len(encoded) << 1)
    else:
        _write_long(out, len(encoded))
    out += encoded


def _write_double(out: bytearray, value: float) -> None:
    out += _DOUBLE.pack(value)


def _write_null(out: bytearray, value: None) -> None:
    if value is not None:
        raise _Unsupported("not null")


_PRIMITIVE_WRITERS: Final[dict[str, _Write]] = {
    "null": _write_null,
    "int": _write_int,
    "long": _write_long,
    "double": _write_double,
    "string": _write_string,
    "bytes": _write_bytes,
}


def _compile_writer(schema: Any, named: dict[str, _Write]) -> _Write:
    """A writer of ``schema``'s model (parsed schema); ``named`` collects named types."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_WRITERS:
            return _PRIMITIVE_WRITERS[schema]
        if schema in named:
            return named[schema]
        raise _Unsupported(schema)
    if isinstance(schema, list):
        return _union_writer(schema, [_compile_writer(branch, named) for branch in schema])
    kind = schema["type"]
    if kind == "record":
        _record_model(schema)  # the model's fields must be the schema's
        writers: list[_Write] = []
        names = [f["name"] for f in schema["fields"]]
        named[schema["name"]] = writer = _record_writer(attrgetter(*names), writers)
        writers.extend(_compile_writer(f["type"], named) for f in schema["fields"])
        return writer
    if kind == "enum":
        named[schema["name"]] = writer = _enum_writer(schema["symbols"])
        return writer
    if kind == "array":
        return _array_writer(_compile_writer(schema["items"], named))
    if kind == "map":
        return _map_writer(_compile_writer(schema["values"], named))
    return _compile_writer(kind, named)


def _record_writer(values_of: Callable[[Any], Any], writers: list[_Write]) -> _Write:
    def write(out: bytearray, record: Any) -> None:
        for write_field, value in zip(writers, values_of(record), strict=True):
            write_field(out, value)

    return write


def _enum_writer(symbols: list[str]) -> _Write:
    if len(symbols) > 64:
        raise _Unsupported("an enum too large for one-byte indexes")
    indexes = {symbol: index for index, symbol in enumerate(symbols)}

    def write(out: bytearray, symbol: str) -> None:
        out.append(indexes[symbol] << 1)  # the zig-zag varint of an index below 64: one byte

    return write


# Primitive union branches the compiled writer takes, by the Python type a model holds there.
_PRIMITIVE_MODELS: Final[dict[str, type]] = {"string": str, "int": int, "long": int}


def _union_writer(schema: list[Any], branches: list[_Write]) -> _Write:
    """Only the unions the contract has: null or one named type (the model's ``X | None``)."""
    names = [b if isinstance(b, str) else b.get("name") for b in schema]
    if len(schema) != 2 or "null" not in names:
        raise _Unsupported("a union other than [null, named type]")
    null_index = names.index("null")
    other_index = 1 - null_index
    if isinstance(schema[other_index], str) and schema[other_index] in _PRIMITIVE_MODELS:
        other: Any = _PRIMITIVE_MODELS[schema[other_index]]  # e.g. Outcome.attempt: int | None
    elif not isinstance(schema[other_index], dict):
        raise _Unsupported("a union of null and a type that is not named")
    else:
        other = _model_of(schema[other_index]["name"])
    write_other = branches[other_index]

    def write(out: bytearray, value: Any) -> None:
        if value is None:
            out.append(null_index << 1)
        elif isinstance(value, other):
            out.append(other_index << 1)
            write_other(out, value)
        else:
            raise _Unsupported(f"not a {other.__name__} or None")

    return write


def _array_writer(write_item: _Write) -> _Write:
    def write(out: bytearray, items: Any) -> None:
        if len(items):  # one block, then the empty block that ends the array
            _write_long(out, len(items))
            for item in items:
                write_item(out, item)
        out.append(0)

    return write


def _map_writer(write_value: _Write) -> _Write:
    def write(out: bytearray, values: Any) -> None:
        if len(values):
            _write_long(out, len(values))
            for key, value in values.items():
                _write_string(out, key)
                write_value(out, value)
        out.append(0)

    return write


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


def encode(record: Record) -> bytes:
    """``record`` as a single-object encoded Avro message."""
    codec = _BY_TYPE.get(type(record))
    if codec is None:
        codec = _codec_for(type(record))  # raises the TypeError
    encoded = _fast_encode(codec, record)
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


def decode_as(data: bytes, kind: type[T]) -> T:
    """Like :func:`decode`, but ``data`` must hold a ``kind``: raises WireFormatError otherwise."""
    if type(data) is not bytes:
        data = _as_bytes(data)
    codec = _BY_FINGERPRINT.get(data[2:HEADER_SIZE])
    if codec is None or data[:2] != MARKER:
        _raise_bad_header(data)
    if codec.kind is not kind:
        expected = _codec_for(kind).name  # a TypeError if kind is no record type at all
        raise WireFormatError(f"expected {expected}, got {codec.name}")
    return cast(T, _read_body(data, codec))


def _read_body(data: bytes, codec: _Codec) -> Any:
    record = _fast_decode(codec, data)
    if record is not None:
        return record
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
