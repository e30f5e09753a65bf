"""Deterministic rule validators: regular expressions, length bounds, JSON schema.

Each class compiles its configuration once in the constructor (a bad pattern or schema raises
:class:`~ratifier.core.errors.ConfigError` at start-up, not on the first candidate) and judges with
confidence 1.0, since a rule is certain about what it checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import FormatChecker, SchemaError, ValidationError, validators

from ratifier.core.errors import ConfigError
from ratifier.core.models import Candidate, Judgement, Reason, Severity, Span, Vote

__all__ = ["JsonSchemaRule", "LengthBounds", "RegexRule"]

_ACCEPT = Judgement(vote=Vote.ACCEPT)

_REGEX_FLAGS = {
    "i": re.IGNORECASE,
    "m": re.MULTILINE,
    "s": re.DOTALL,
    "x": re.VERBOSE,
    "a": re.ASCII,
}

# One fenced block, optionally tagged (```json), that is the whole content.
_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_+-]*[ \t]*\r?\n(.*?)\r?\n?```\s*\Z", re.DOTALL)


def parse_severity(value: str | Severity, name: str = "severity") -> Severity:
    """A configured severity, case-insensitive (``"major"`` works too)."""
    try:
        return Severity(str(value).strip().upper())
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise ConfigError(f"{name} must be one of {allowed}, got {value!r}") from None


def _patterns(value: str | Iterable[str] | None, name: str) -> list[str]:
    # `--param deny=foo` arrives as a plain string: treat it as a one-pattern list.
    if value is None:
        return []
    if isinstance(value, str):
        # The CLI passes a list that failed to parse as JSON through as a string; do not let it
        # become one pattern that is a character class.
        if value.lstrip().startswith('["'):
            raise ConfigError(
                f"{name} looks like a JSON list but is not valid JSON (in JSON, a backslash is "
                f"written \\\\): {value!r}"
            )
        return [value]
    items = list(value)
    if not all(isinstance(p, str) for p in items):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return items


def _max_severity(severities: Iterable[Severity]) -> Severity:
    order = list(Severity)
    return max(severities, key=order.index)


def _non_negative_int(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return value


class RegexRule:
    """REJECT when a deny pattern matches, or when allow patterns are given and none matches.

    ``flags`` is a string of letters: ``i`` ignore case, ``m`` multiline, ``s`` dot matches newline,
    ``x`` verbose, ``a`` ASCII-only classes. Each matching deny pattern gives one ``regex.denied``
    reason whose span is its first match; a missing allow match gives ``regex.not_allowed``.
    Patterns are trusted configuration: Python's ``re`` can backtrack badly on hostile patterns.
    """

    version = "1.0.0"

    def __init__(
        self,
        deny: str | list[str] | None = None,
        allow: str | list[str] | None = None,
        flags: str = "",
        severity: str = "MAJOR",
    ) -> None:
        deny_patterns = _patterns(deny, "deny")
        allow_patterns = _patterns(allow, "allow")
        if not deny_patterns and not allow_patterns:
            raise ConfigError("RegexRule needs at least one deny or allow pattern")
        unknown = set(flags) - set(_REGEX_FLAGS)
        if unknown:
            raise ConfigError(
                f"unknown regex flag(s) {''.join(sorted(unknown))!r}; use some of 'imsxa'"
            )
        re_flags = re.NOFLAG
        for letter in flags:
            re_flags |= _REGEX_FLAGS[letter]
        self.severity = parse_severity(severity)
        self._deny = [self._compile(p, re_flags) for p in deny_patterns]
        self._allow = [self._compile(p, re_flags) for p in allow_patterns]

    @staticmethod
    def _compile(pattern: str, flags: re.RegexFlag) -> re.Pattern[str]:
        try:
            return re.compile(pattern, flags)
        except re.error as exc:
            raise ConfigError(f"invalid regex {pattern!r}: {exc}") from None

    async def __call__(self, candidate: Candidate) -> Judgement:
        content = candidate.content
        reasons: list[Reason] = []
        for pattern in self._deny:
            match = pattern.search(content)
            if match is not None:
                reasons.append(
                    Reason(
                        code="regex.denied",
                        message=f"content matches denied pattern {pattern.pattern!r}",
                        span=Span(match.start(), match.end()),
                    )
                )
        if self._allow and not any(p.search(content) for p in self._allow):
            listed = ", ".join(repr(p.pattern) for p in self._allow)
            reasons.append(
                Reason(code="regex.not_allowed", message=f"content matches none of {listed}")
            )
        if not reasons:
            return _ACCEPT
        return Judgement(vote=Vote.REJECT, severity=self.severity, reasons=tuple(reasons))


class LengthBounds:
    """REJECT content whose length in characters (or words) is outside the bounds.

    Characters are Python string characters (Unicode code points), the unit spans use.
    With ``strip=True`` (the default) leading and trailing whitespace does not count. A too-long
    content's span covers the part past ``max_chars``. Bounds are inclusive; ``None``: no bound.
    """

    version = "1.0.0"

    def __init__(
        self,
        min_chars: int = 0,
        max_chars: int | None = None,
        min_words: int = 0,
        max_words: int | None = None,
        strip: bool = True,
        too_short_severity: str = "MAJOR",
        too_long_severity: str = "MINOR",
    ) -> None:
        self.min_chars = _non_negative_int(min_chars, "min_chars") or 0
        self.max_chars = _non_negative_int(max_chars, "max_chars")
        self.min_words = _non_negative_int(min_words, "min_words") or 0
        self.max_words = _non_negative_int(max_words, "max_words")
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ConfigError(f"max_chars {self.max_chars} is below min_chars {self.min_chars}")
        if self.max_words is not None and self.max_words < self.min_words:
            raise ConfigError(f"max_words {self.max_words} is below min_words {self.min_words}")
        if not isinstance(strip, bool):
            raise ConfigError(f"strip must be true or false, got {strip!r}")
        self.strip = strip
        # Empty or truncated content usually means the producer failed; long content is style.
        self.too_short_severity = parse_severity(too_short_severity, "too_short_severity")
        self.too_long_severity = parse_severity(too_long_severity, "too_long_severity")

    async def __call__(self, candidate: Candidate) -> Judgement:
        content = candidate.content
        start, end = 0, len(content)
        if self.strip:
            start = len(content) - len(content.lstrip())
            end = max(start, len(content.rstrip()))
        n_chars = end - start
        reasons: list[Reason] = []
        severities: list[Severity] = []
        if n_chars < self.min_chars:
            reasons.append(
                Reason(
                    "length.too_short", f"{n_chars} characters, at least {self.min_chars} needed"
                )
            )
            severities.append(self.too_short_severity)
        if self.max_chars is not None and n_chars > self.max_chars:
            reasons.append(
                Reason(
                    "length.too_long",
                    f"{n_chars} characters, at most {self.max_chars} allowed",
                    Span(start + self.max_chars, end),
                )
            )
            severities.append(self.too_long_severity)
        if self.min_words or self.max_words is not None:
            n_words = len(content[start:end].split())
            if n_words < self.min_words:
                reasons.append(
                    Reason("length.too_few_words", f"{n_words} words, at least {self.min_words}")
                )
                severities.append(self.too_short_severity)
            if self.max_words is not None and n_words > self.max_words:
                reasons.append(
                    Reason("length.too_many_words", f"{n_words} words, at most {self.max_words}")
                )
                severities.append(self.too_long_severity)
        if not reasons:
            return _ACCEPT
        return Judgement(
            vote=Vote.REJECT, severity=_max_severity(severities), reasons=tuple(reasons)
        )


def _shorten(text: str, limit: int = 300) -> str:
    # jsonschema messages quote the offending instance, which can be the whole document.
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> Any:
    # The stdlib parser accepts NaN and Infinity, which are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def _load_schema(schema: Mapping[str, Any] | bool | str) -> Mapping[str, Any] | bool:
    if isinstance(schema, bool | Mapping):
        return schema
    if not isinstance(schema, str):
        raise ConfigError(f"schema must be an object, a JSON string or a path, got {schema!r}")
    text = schema.strip()
    if text.startswith("{"):
        source = "the schema string"
    else:
        path = Path(schema).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read JSON schema file {str(path)!r}: {exc}") from None
        source = str(path)
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(loaded, bool | dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(loaded).__name__}")
    return loaded


class JsonSchemaRule:
    """REJECT content that is not JSON (``json.invalid``) or violates a JSON Schema.

    ``schema`` is a schema object, a JSON string, or a path to a JSON file. The schema's
    ``$schema`` picks the draft (default: the latest jsonschema supports). Each violation is one
    ``json.schema_violation`` reason naming its JSON path, at most ``max_errors`` of them.
    ``check_formats`` enforces ``format`` keywords. ``strip_code_fence`` accepts content that is
    one fenced block (````json ... ````), as chat models often answer.
    """

    version = "1.0.0"

    def __init__(
        self,
        schema: Mapping[str, Any] | bool | str,
        max_errors: int = 10,
        check_formats: bool = True,
        strip_code_fence: bool = False,
        severity: str = "MAJOR",
        invalid_json_severity: str = "MAJOR",
    ) -> None:
        loaded = _load_schema(schema)
        cls = validators.validator_for(loaded)
        try:
            # types-jsonschema's Validator protocol narrows check_schema to a dict; jsonschema
            # takes any schema, booleans included (its own protocol says Schema).
            cls.check_schema(loaded)  # type: ignore[arg-type]
        except SchemaError as exc:
            raise ConfigError(f"invalid JSON schema: {exc.message}") from None
        format_checker = FormatChecker() if check_formats else None
        self._validator = cls(loaded, format_checker=format_checker)
        if isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 1:
            raise ConfigError(f"max_errors must be a positive integer, got {max_errors!r}")
        self.max_errors = max_errors
        self.strip_code_fence = strip_code_fence
        self.severity = parse_severity(severity)
        self.invalid_json_severity = parse_severity(invalid_json_severity, "invalid_json_severity")

    def _parse(self, content: str) -> tuple[Any, Reason | None]:
        offset = 0
        text = content
        if self.strip_code_fence:
            fenced = _FENCE.match(content)
            if fenced is not None:
                offset, text = fenced.start(1), fenced.group(1)
        try:
            return json.loads(text, parse_constant=_reject_constant), None
        except json.JSONDecodeError as exc:
            at = offset + exc.pos
            span = Span(at, min(at + 1, len(content)))
            return None, Reason("json.invalid", f"not valid JSON: {exc.msg} at char {at}", span)
        except (ValueError, RecursionError) as exc:
            # ValueError: NaN/Infinity or an integer beyond Python's digit limit.
            return None, Reason("json.invalid", f"not valid JSON: {exc}")

    async def __call__(self, candidate: Candidate) -> Judgement:
        document, invalid = self._parse(candidate.content)
        if invalid is not None:
            return Judgement(
                vote=Vote.REJECT, severity=self.invalid_json_severity, reasons=(invalid,)
            )
        try:
            errors: list[ValidationError] = sorted(
                self._validator.iter_errors(document), key=lambda e: (e.json_path, e.message)
            )
        except RecursionError:
            reason = Reason("json.schema_violation", "document is nested too deeply to validate")
            return Judgement(vote=Vote.REJECT, severity=self.severity, reasons=(reason,))
        if not errors:
            return _ACCEPT
        reasons = [
            Reason("json.schema_violation", _shorten(f"{e.json_path}: {e.message}"))
            for e in errors[: self.max_errors]
        ]
        if len(errors) > self.max_errors:
            more = len(errors) - self.max_errors
            reasons.append(Reason("json.more_violations", f"{more} more violation(s) not listed"))
        return Judgement(vote=Vote.REJECT, severity=self.severity, reasons=tuple(reasons))
