"""Models stored as positional rows in the tally's state, generated from their dataclass fields.

The case state (:mod:`.state`) keeps each attempt's candidate and every verdict
as a JSON array: the model's fields in dataclass order, without the names and without those the
enclosing state already holds (a counted verdict's case, attempt and candidate id). Which fields
exist is read from the dataclass, never listed here, so a field added to a model (with a
default, as docs/wire-format.md asks) is stored and restored with no edit to the state codec.

A row's first ``always`` fields are always written: the fields the model had when the state
format was released, so existing states keep their bytes. Fields after them are optional
trailing elements: written up to the last one that differs from its default, read as their
default when absent. An older tally cannot read a row that has them (it checks the length).

Values are stored by their annotated type: str, int, bool and ``X | None`` of those as they are;
float through :func:`encode_float` (JSON has no NaN or infinity); an enum as its index in the
enum's definition order (append-only, like the Avro symbols, which are the same list); bytes as
base64 text; a tuple of str as a list; a ``Mapping[str, str]`` as an object; a tuple of
:class:`Reason` as compact reason rows. A field of another type fails the import, naming it.
Encoders and decoders are generated source, compiled once (they run per case per batch).
"""

from __future__ import annotations

import base64
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ratifier.core.models import Reason, Span

__all__ = ["Row", "encode_float", "row"]


@dataclass(frozen=True, slots=True)
class Row:
    encode: Callable[[Any], list[Any]]
    decode: Callable[..., Any]  # (*the implied fields' values, row) -> the model
    source: str


def encode_float(value: float) -> float | str:
    # JSON has no NaN or infinity (orjson would write null); keep them as their repr,
    # which float() reads back.
    return value if math.isfinite(value) else repr(value)


def _encode_reason(reason: Reason) -> list[Any]:
    if reason.span is None:
        return [reason.code, reason.message]
    return [reason.code, reason.message, reason.span.start, reason.span.end]


def _decode_reason(item: list[Any]) -> Reason:
    span = Span(item[2], item[3]) if len(item) == 4 else None
    return Reason(code=item[0], message=item[1], span=span)


# A reason row is [code, message] or [code, message, start, end]: written by hand, so a field
# added to Reason or Span must be added there too. Fail the import rather than drop it silently.
if [f.name for f in dataclasses.fields(Reason)] != ["code", "message", "span"] or [
    f.name for f in dataclasses.fields(Span)
] != ["start", "end"]:
    raise TypeError("Reason or Span gained a field: store it in streams/rows.py's reason rows")


def _converters(annotation: Any, env: dict[str, Any], name: str) -> tuple[str, str]:
    """(encode, decode) expression templates over ``{v}`` for a field of this type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (str, int, bool, type(None)):
        return "{v}", "{v}"
    if annotation is float:
        return "_encode_float({v})", "float({v})"
    if annotation is bytes:
        return "_b64encode({v}).decode('ascii')", "_b64decode({v})"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        members = tuple(annotation)
        env[f"_MEMBERS_{name}"] = members
        env[f"_CODES_{name}"] = {member: code for code, member in enumerate(members)}
        return f"_CODES_{name}[{{v}}]", f"_MEMBERS_{name}[{{v}}]"
    if origin in (types.UnionType, typing.Union) and type(None) in args and len(args) == 2:
        inner = next(arg for arg in args if arg is not type(None))
        encode, decode = _converters(inner, env, name)
        if encode == decode == "{v}":
            return encode, decode
        return (
            f"(None if {{v}} is None else {encode})",
            f"(None if {{v}} is None else {decode})",
        )
    if origin is tuple and args in ((str, Ellipsis),):
        return "list({v})", "tuple({v})"
    if origin is tuple and args == (Reason, Ellipsis):
        return (
            "[_encode_reason(x) for x in {v}]",
            "(tuple(map(_decode_reason, {v})) if {v} else ())",
        )
    if origin is Mapping and args == (str, str):
        return "dict({v})", "{v}"
    raise TypeError(f"streams/rows.py cannot store a field {name} of type {annotation!r}")


def row(model: type, implied: tuple[str, ...], always: int) -> Row:
    """The row codec of ``model``: every field but ``implied``, the first ``always`` always."""
    fields = dataclasses.fields(model)
    hints = typing.get_type_hints(model)
    stored = [f for f in fields if f.name not in implied]
    if always > len(stored):
        raise TypeError(f"{model.__name__} has only {len(stored)} stored fields, not {always}")
    env: dict[str, Any] = {
        "_Model": model,
        "_new": object.__new__,
        "_encode_float": encode_float,
        "_encode_reason": _encode_reason,
        "_decode_reason": _decode_reason,
        "_b64encode": base64.b64encode,
        "_b64decode": base64.b64decode,
    }
    converters = {f.name: _converters(hints[f.name], env, f.name) for f in stored}

    encode = ["def encode(r):"]
    values = [converters[f.name][0].format(v=f"r.{f.name}") for f in stored]
    encode.append(f"    item = [{', '.join(values[:always])}]")
    optional = stored[always:]
    for field in optional:
        env[f"_DEFAULT_{field.name}"] = _default(field)
    # Up to the last optional field that differs from its default: test from the last one.
    for last in range(len(optional) - 1, -1, -1):
        keyword = "if" if last == len(optional) - 1 else "elif"
        field = optional[last]
        tail = ", ".join(values[always : always + last + 1])
        encode.append(f"    {keyword} r.{field.name} != _DEFAULT_{field.name}:")
        encode.append(f"        item += ({tail},)")
    encode.append("    return item")

    decode = [f"def decode({''.join(f'{name}, ' for name in implied)}item):"]
    decode.append("    n = len(item)")
    decode.append(f"    if not {always} <= n <= {len(stored)}:")
    decode.append(
        f"        raise ValueError(f'a {model.__name__} row has {always} to {len(stored)} "
        "elements, not {n}')"
    )
    position = {f.name: i for i, f in enumerate(stored)}
    arguments = {}
    for field in fields:
        if field.name in implied:
            arguments[field.name] = field.name
            continue
        i = position[field.name]
        value = converters[field.name][1].format(v=f"item[{i}]")
        if i >= always:
            value = f"({value} if n > {i} else _DEFAULT_{field.name})"
        arguments[field.name] = value
    decode += _construct(model, [f.name for f in fields], arguments, env)

    source = "\n".join(encode) + "\n\n\n" + "\n".join(decode) + "\n"
    exec(compile(source, f"<state row of {model.__name__}>", "exec"), env)
    return Row(encode=env["encode"], decode=env["decode"], source=source)


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()  # compared, and handed out read-only
    raise TypeError(f"{field.name} is an optional row element and needs a default")


def _construct(
    model: type, order: list[str], arguments: dict[str, str], env: dict[str, Any]
) -> list[str]:
    """Build ``model`` from the expressions: through its slots' setters when it is a slotted
    dataclass without ``__post_init__`` (half the cost of its ``__init__``), else by calling it."""
    if hasattr(model, "__post_init__") or tuple(getattr(model, "__slots__", ())) != tuple(order):
        return [f"    return _Model({', '.join(arguments[name] for name in order)})"]
    lines = ["    r = _new(_Model)"]
    for name in order:
        env[f"_set_{name}"] = model.__dict__[name].__set__
        lines.append(f"    _set_{name}(r, {arguments[name]})")
    lines.append("    return r")
    return lines
