from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ratifier.core.errors import ConfigError
from ratifier.core.models import Candidate, Judgement, Severity, Span, Vote
from ratifier.validators.builtin import JsonSchemaRule, LengthBounds, RegexRule


def make_candidate(content: str) -> Candidate:
    return Candidate(
        case_id="case-1",
        attempt=1,
        candidate_id="cand-1",
        policy="default",
        category="test",
        query="q?",
        content=content,
        producer="unit",
        produced_at_ms=0,
    )


def codes(judgement: Judgement) -> list[str]:
    return [r.code for r in judgement.reasons]


# --- RegexRule ------------------------------------------------------------------------------

REGEX_CASES: list[tuple[str, dict[str, Any], str, Vote, list[str], list[Span | None]]] = [
    ("no deny match", {"deny": ["secret"]}, "all public", Vote.ACCEPT, [], []),
    (
        "deny match with span",
        {"deny": [r"sk-[a-z0-9]+"]},
        "key: sk-abc123 ok",
        Vote.REJECT,
        ["regex.denied"],
        [Span(5, 14)],
    ),
    (
        "first match of each deny pattern",
        {"deny": ["foo", "bar"]},
        "foo bar foo",
        Vote.REJECT,
        ["regex.denied", "regex.denied"],
        [Span(0, 3), Span(4, 7)],
    ),
    ("case sensitive by default", {"deny": ["SECRET"]}, "a secret", Vote.ACCEPT, [], []),
    (
        "flag i",
        {"deny": ["SECRET"], "flags": "i"},
        "a secret",
        Vote.REJECT,
        ["regex.denied"],
        [Span(2, 8)],
    ),
    (
        "flag m",
        {"deny": ["^bad$"], "flags": "m"},
        "ok\nbad\nok",
        Vote.REJECT,
        ["regex.denied"],
        [Span(3, 6)],
    ),
    ("single string deny", {"deny": "x"}, "abc", Vote.ACCEPT, [], []),
    ("allow matches", {"allow": [r"\d+"]}, "answer: 42", Vote.ACCEPT, [], []),
    (
        "allow none matches",
        {"allow": [r"\d+", "yes"]},
        "no digits",
        Vote.REJECT,
        ["regex.not_allowed"],
        [None],
    ),
    (
        "deny and allow both fail",
        {"deny": ["bad"], "allow": ["good"]},
        "bad",
        Vote.REJECT,
        ["regex.denied", "regex.not_allowed"],
        [Span(0, 3), None],
    ),
    (
        "unicode offsets are characters",
        {"deny": ["x"]},
        "é€x",
        Vote.REJECT,
        ["regex.denied"],
        [Span(2, 3)],
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "content", "vote", "want_codes", "spans"),
    [case[1:] for case in REGEX_CASES],
    ids=[case[0] for case in REGEX_CASES],
)
async def test_regex_rule(
    kwargs: dict[str, Any],
    content: str,
    vote: Vote,
    want_codes: list[str],
    spans: list[Span | None],
) -> None:
    judgement = await RegexRule(**kwargs)(make_candidate(content))
    assert judgement.vote is vote
    assert codes(judgement) == want_codes
    assert [r.span for r in judgement.reasons] == spans
    if vote is Vote.REJECT:
        assert judgement.severity is Severity.MAJOR
        for reason in judgement.reasons:
            if reason.span is not None:
                assert reason.message  # names the pattern
    else:
        assert judgement.severity is None


async def test_regex_rule_severity_is_configurable() -> None:
    judgement = await RegexRule(deny=["x"], severity="critical")(make_candidate("x"))
    assert judgement.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "at least one"),
        ({"deny": ["("]}, "invalid regex"),
        ({"deny": ["x"], "flags": "q"}, "flag"),
        ({"deny": ["x"], "severity": "HUGE"}, "severity"),
        ({"deny": [1]}, "list of strings"),
        # What the CLI passes on when a JSON list has unescaped backslashes.
        ({"deny": r'["\d+"]'}, "not valid JSON"),
    ],
)
def test_regex_rule_rejects_bad_config(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        RegexRule(**kwargs)


# --- LengthBounds ---------------------------------------------------------------------------

LENGTH_CASES: list[tuple[str, dict[str, Any], str, Vote, list[str], Severity | None]] = [
    ("within bounds", {"min_chars": 2, "max_chars": 5}, "abcd", Vote.ACCEPT, [], None),
    ("bounds are inclusive", {"min_chars": 4, "max_chars": 4}, "abcd", Vote.ACCEPT, [], None),
    (
        "too short",
        {"min_chars": 5},
        "abc",
        Vote.REJECT,
        ["length.too_short"],
        Severity.MAJOR,
    ),
    (
        "whitespace does not count",
        {"min_chars": 1},
        "   \n ",
        Vote.REJECT,
        ["length.too_short"],
        Severity.MAJOR,
    ),
    ("whitespace counts unstripped", {"min_chars": 1, "strip": False}, "  ", Vote.ACCEPT, [], None),
    (
        "too long",
        {"max_chars": 3},
        "abcdef",
        Vote.REJECT,
        ["length.too_long"],
        Severity.MINOR,
    ),
    ("no bounds", {}, "", Vote.ACCEPT, [], None),
    (
        "too few words",
        {"min_words": 3},
        "two words",
        Vote.REJECT,
        ["length.too_few_words"],
        Severity.MAJOR,
    ),
    (
        "too many words",
        {"max_words": 2},
        "one two three",
        Vote.REJECT,
        ["length.too_many_words"],
        Severity.MINOR,
    ),
    (
        "worst severity wins",
        {"max_chars": 3, "min_words": 2},
        "abcdef",
        Vote.REJECT,
        ["length.too_long", "length.too_few_words"],
        Severity.MAJOR,
    ),
    (
        "custom severity",
        {"max_chars": 1, "too_long_severity": "CRITICAL"},
        "ab",
        Vote.REJECT,
        ["length.too_long"],
        Severity.CRITICAL,
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "content", "vote", "want_codes", "severity"),
    [case[1:] for case in LENGTH_CASES],
    ids=[case[0] for case in LENGTH_CASES],
)
async def test_length_bounds(
    kwargs: dict[str, Any],
    content: str,
    vote: Vote,
    want_codes: list[str],
    severity: Severity | None,
) -> None:
    judgement = await LengthBounds(**kwargs)(make_candidate(content))
    assert judgement.vote is vote
    assert codes(judgement) == want_codes
    assert judgement.severity is severity


async def test_length_too_long_span_covers_the_excess_in_original_offsets() -> None:
    judgement = await LengthBounds(max_chars=3)(make_candidate("  abcdef \n"))
    (reason,) = judgement.reasons
    assert reason.span == Span(5, 8)
    assert "  abcdef \n"[5:8] == "def"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_chars": -1},
        {"min_chars": 5, "max_chars": 2},
        {"max_words": 1, "min_words": 2},
        {"max_chars": "10"},
        {"strip": "yes"},
        {"too_short_severity": "bad"},
    ],
)
def test_length_bounds_rejects_bad_config(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        LengthBounds(**kwargs)


# --- JsonSchemaRule -------------------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
    "additionalProperties": False,
}

JSON_CASES: list[tuple[str, str, Vote, list[str], list[str]]] = [
    ("valid", '{"name": "ada", "age": 36}', Vote.ACCEPT, [], []),
    ("not json", "name: ada", Vote.REJECT, ["json.invalid"], []),
    ("truncated json", '{"name": "ada"', Vote.REJECT, ["json.invalid"], []),
    ("NaN is not json", '{"name": "ada", "age": NaN}', Vote.REJECT, ["json.invalid"], []),
    ("empty content", "", Vote.REJECT, ["json.invalid"], []),
    (
        "missing required",
        '{"age": 3}',
        Vote.REJECT,
        ["json.schema_violation"],
        ["$: 'name' is a required property"],
    ),
    (
        "errors carry json paths",
        '{"name": "ada", "age": -1, "tags": ["a", 2]}',
        Vote.REJECT,
        ["json.schema_violation", "json.schema_violation"],
        ["$.age:", "$.tags[1]:"],
    ),
    ("wrong top-level type", "[1, 2]", Vote.REJECT, ["json.schema_violation"], ["$: [1, 2]"]),
]


@pytest.mark.parametrize(
    ("content", "vote", "want_codes", "message_starts"),
    [case[1:] for case in JSON_CASES],
    ids=[case[0] for case in JSON_CASES],
)
async def test_json_schema_rule(
    content: str, vote: Vote, want_codes: list[str], message_starts: list[str]
) -> None:
    judgement = await JsonSchemaRule(SCHEMA)(make_candidate(content))
    assert judgement.vote is vote
    assert codes(judgement) == want_codes
    for reason, start in zip(judgement.reasons, message_starts, strict=False):
        assert reason.message.startswith(start), reason.message
    assert judgement.severity is (Severity.MAJOR if vote is Vote.REJECT else None)


async def test_json_invalid_points_at_the_error() -> None:
    content = '{"name": "ada",, }'
    judgement = await JsonSchemaRule(SCHEMA)(make_candidate(content))
    (reason,) = judgement.reasons
    assert reason.span is not None
    assert content[reason.span.start : reason.span.end] == ","


async def test_json_schema_errors_are_limited() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    rule = JsonSchemaRule(schema, max_errors=3)
    judgement = await rule(make_candidate(json.dumps(["a"] * 10)))
    assert codes(judgement) == ["json.schema_violation"] * 3 + ["json.more_violations"]
    assert "7 more" in judgement.reasons[-1].message


@pytest.mark.parametrize("source", ["dict", "json string", "path"])
async def test_json_schema_sources(source: str, tmp_path: Path) -> None:
    schema: dict[str, Any] | str
    if source == "dict":
        schema = SCHEMA
    elif source == "json string":
        schema = json.dumps(SCHEMA)
    else:
        path = tmp_path / "schema.json"
        path.write_text(json.dumps(SCHEMA), encoding="utf-8")
        schema = str(path)
    rule = JsonSchemaRule(schema)
    assert (await rule(make_candidate('{"name": "x"}'))).vote is Vote.ACCEPT
    assert (await rule(make_candidate('{"x": 1}'))).vote is Vote.REJECT


async def test_json_code_fence_is_optional() -> None:
    fenced = '```json\n{"name": "ada",}\n```'
    strict = await JsonSchemaRule(SCHEMA)(make_candidate('```json\n{"name": "ada"}\n```'))
    assert codes(strict) == ["json.invalid"]
    lenient = JsonSchemaRule(SCHEMA, strip_code_fence=True)
    assert (await lenient(make_candidate('```json\n{"name": "ada"}\n```'))).vote is Vote.ACCEPT
    broken = await lenient(make_candidate(fenced))
    (reason,) = broken.reasons
    assert reason.span is not None
    assert fenced[reason.span.start] == "}"  # offsets are into the original content


async def test_json_format_checking() -> None:
    schema = {"type": "string", "format": "date"}
    assert (await JsonSchemaRule(schema)(make_candidate('"2024-13-45"'))).vote is Vote.REJECT
    unchecked = JsonSchemaRule(schema, check_formats=False)
    assert (await unchecked(make_candidate('"2024-13-45"'))).vote is Vote.ACCEPT


async def test_json_schema_draft_from_dollar_schema() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "integer",
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    assert (await JsonSchemaRule(schema)(make_candidate("0"))).vote is Vote.REJECT


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "nonsense"}, "invalid JSON schema"),
        ("{not json", "not valid JSON"),
        ("/nonexistent/schema.json", "cannot read"),
        ("[1]", "cannot read"),
    ],
)
def test_json_schema_rule_rejects_bad_config(schema: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        JsonSchemaRule(schema)


async def test_rules_have_versions() -> None:
    for cls in (RegexRule, LengthBounds, JsonSchemaRule):
        assert isinstance(cls.version, str)
        assert cls.version
