"""`clean_schema_for_gemini`: literal schemas in, literal schemas and reports out, plus a
property test that no keyword Gemini rejects survives anywhere."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anthropic_router.convert.schema import clean_schema_for_gemini

JSON = dict[str, Any]

S = {"type": "string"}


def obj(properties: JSON, **extra: Any) -> JSON:
    return {"type": "object", "properties": properties, **extra}


# (id, schema in, schema out, reported keywords)
CASES: list[tuple[str, JSON, JSON, list[str]]] = [
    ("plain schema unchanged", obj({"a": S}, required=["a"]), obj({"a": S}, required=["a"]), []),
    (
        "Claude Code's header keywords",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            **obj({"a": S}),
            "additionalProperties": False,
        },
        obj({"a": S}),
        ["$schema", "additionalProperties"],
    ),
    (
        "$id, $comment, examples, default, title kept",
        {
            "$id": "x",
            "$comment": "c",
            "title": "T",
            **obj({"a": {**S, "default": "d", "examples": ["e"]}}),
        },
        {"title": "T", **obj({"a": S})},
        ["$comment", "$id", "default", "examples"],
    ),
    (
        "local $ref inlined from $defs, sibling description kept",
        {
            **obj({"p": {"$ref": "#/$defs/Point", "description": "where"}}),
            "$defs": {"Point": obj({"x": {"type": "number"}})},
        },
        obj({"p": {**obj({"x": {"type": "number"}}), "description": "where"}}),
        ["$ref"],
    ),
    (
        "definitions (draft 4) inlined too",
        {**obj({"p": {"$ref": "#/definitions/P"}}), "definitions": {"P": S}},
        obj({"p": S}),
        ["$ref"],
    ),
    (
        "recursive $ref cut after one expansion",
        {**obj({"n": {"$ref": "#/$defs/N"}}), "$defs": {"N": obj({"next": {"$ref": "#/$defs/N"}})}},
        obj({"n": obj({"next": {"type": "object"}})}),
        ["$ref", "$ref:recursive"],
    ),
    (
        "unresolvable $ref becomes an object",
        obj({"r": {"$ref": "https://example.com/schema.json"}}),
        obj({"r": {"type": "object"}}),
        ["$ref"],
    ),
    (
        "const string -> enum",
        obj({"k": {"const": "fixed"}}),
        obj({"k": {"enum": ["fixed"], "type": "string"}}),
        ["const"],
    ),
    (
        "const number keeps only the type",
        obj({"k": {"const": 3}}),
        obj({"k": {"type": "integer"}}),
        ["const"],
    ),
    (
        "non-string enum dropped, type kept",
        obj({"e": {"type": "integer", "enum": [1, 2]}}),
        obj({"e": {"type": "integer"}}),
        ["enum:non-string"],
    ),
    (
        "exclusive bounds approximated by inclusive ones",
        obj({"n": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10}}),
        obj({"n": {"type": "number", "minimum": 0, "maximum": 10}}),
        ["exclusiveMaximum", "exclusiveMinimum"],
    ),
    (
        "draft 4 boolean exclusive bounds dropped",
        obj({"n": {"type": "number", "minimum": 1, "exclusiveMinimum": True}}),
        obj({"n": {"type": "number", "minimum": 1}}),
        ["exclusiveMinimum"],
    ),
    (
        "formats: date-time and int64 kept, uri dropped",
        obj(
            {
                "d": {**S, "format": "date-time"},
                "u": {**S, "format": "uri"},
                "i": {"type": "integer", "format": "int64"},
            }
        ),
        obj(
            {"d": {**S, "format": "date-time"}, "u": S, "i": {"type": "integer", "format": "int64"}}
        ),
        ["format:uri"],
    ),
    (
        "type with null -> nullable",
        obj({"n": {"type": ["string", "null"]}}),
        obj({"n": {"type": "string", "nullable": True}}),
        [],
    ),
    (
        "anyOf with a null branch -> the branch, nullable",
        obj({"n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "count"}}),
        obj({"n": {"description": "count", "nullable": True, "type": "integer"}}),
        [],
    ),
    (
        "oneOf -> anyOf",
        obj({"v": {"oneOf": [S, {"type": "number"}]}}),
        obj({"v": {"anyOf": [S, {"type": "number"}]}}),
        ["oneOf"],
    ),
    (
        "allOf of objects merged",
        obj(
            {
                "m": {
                    "allOf": [
                        obj({"a": S}, required=["a"]),
                        {"properties": {"b": S}, "required": ["b"]},
                    ]
                }
            }
        ),
        obj({"m": obj({"a": S, "b": S}, required=["a", "b"])}),
        ["allOf"],
    ),
    (
        "propertyNames, patternProperties, uniqueItems, if/then/else dropped",
        obj(
            {
                "m": {
                    "type": "object",
                    "propertyNames": {"pattern": "^x"},
                    "patternProperties": {"^x": S},
                },
                "l": {"type": "array", "items": S, "uniqueItems": True},
            },
            **{"if": {"required": ["m"]}, "then": {"required": ["l"]}, "else": {}},
        ),
        obj({"m": {"type": "object"}, "l": {"type": "array", "items": S}}),
        ["else", "if", "patternProperties", "propertyNames", "then", "uniqueItems"],
    ),
    (
        "required names without a property removed",
        obj({"a": S}, required=["a", "ghost"]),
        obj({"a": S}, required=["a"]),
        ["required:unknown"],
    ),
    (
        "empty properties removed (Gemini rejects them)",
        obj({}),
        {"type": "object"},
        [],
    ),
    (
        "tuple items -> first schema",
        obj({"t": {"type": "array", "items": [S, {"type": "number"}]}}),
        obj({"t": {"type": "array", "items": S}}),
        ["items:tuple"],
    ),
    (
        "prefixItems -> items",
        obj({"t": {"type": "array", "prefixItems": [S]}}),
        obj({"t": {"type": "array", "items": S}}),
        ["prefixItems"],
    ),
    (
        "missing top-level type becomes object",
        {"properties": {"a": S}},
        {"properties": {"a": S}, "type": "object"},
        [],
    ),
]


@pytest.mark.parametrize(
    ("schema", "expected", "reported"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cleaner_table(schema: JSON, expected: JSON, reported: list[str]) -> None:
    before = copy.deepcopy(schema)
    cleaned, removed = clean_schema_for_gemini(schema)
    assert cleaned == expected
    assert removed == reported
    assert schema == before  # the input is never mutated


FORBIDDEN = frozenset(
    {
        "$schema", "$id", "$ref", "$defs", "definitions", "additionalProperties",
        "propertyNames", "patternProperties", "const", "exclusiveMinimum", "exclusiveMaximum",
        "uniqueItems", "oneOf", "allOf", "if", "then", "else", "default", "examples",
        "prefixItems", "contains", "dependentSchemas", "unevaluatedProperties",
    }
)  # fmt: skip


def _keys(node: Any) -> set[str]:
    """Every keyword used in a schema tree (walking schema positions only)."""
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for name in ("items", "not"):
        found |= _keys(node.get(name))
    for child in (node.get("properties") or {}).values():
        found |= _keys(child)
    for branch in node.get("anyOf") or []:
        found |= _keys(branch)
    return found


KEYWORDS = sorted(FORBIDDEN | {"type", "description", "enum", "format", "required", "nullable"})
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["string", "null", "uri", "x"])
)
REFS = st.sampled_from(["#/$defs/A", "#/definitions/B", "#/$defs/missing", "http://x/y"])


def _schemas(children: Any) -> Any:
    return st.dictionaries(
        st.sampled_from(KEYWORDS),
        st.one_of(SCALARS, st.lists(SCALARS, max_size=3), children, st.lists(children, max_size=3)),
        max_size=5,
    ).flatmap(
        lambda node: st.fixed_dictionaries(
            {},
            optional={
                "properties": st.dictionaries(st.sampled_from("abc"), children, max_size=3),
                "items": children,
                "$ref": REFS,
            },
        ).map(lambda extra: {**node, **extra})
    )


SCHEMAS = st.recursive(st.just({}), _schemas, max_leaves=12).map(
    lambda root: {**root, "$defs": {"A": {"$ref": "#/$defs/A"}}, "definitions": {"B": root}}
)


@settings(max_examples=300, deadline=None)
@given(SCHEMAS)
def test_no_forbidden_keyword_survives(schema: JSON) -> None:
    before = copy.deepcopy(schema)
    cleaned, removed = clean_schema_for_gemini(schema)
    assert not (_keys(cleaned) & FORBIDDEN)
    assert cleaned.get("type") is not None or "anyOf" in cleaned
    assert removed == sorted(set(removed))
    assert schema == before
