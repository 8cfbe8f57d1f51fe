"""`clean_schema_for_gemini`: literal schemas in, literal schemas and reports out, plus
property tests that whatever comes in, what goes out is a schema Gemini accepts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anthropic_router.convert.schema import clean_schema_for_gemini

JSON = dict[str, Any]

S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
OBJECT = {"type": "object"}


def obj(properties: JSON, **extra: Any) -> JSON:
    return {"type": "object", "properties": properties, **extra}


# (id, schema in, schema out, reported keywords)
CASES: list[tuple[str, JSON, JSON, list[str]]] = [
    ("plain schema unchanged", obj({"a": S}, required=["a"]), obj({"a": S}, required=["a"]), []),
    # --- keywords Gemini has no field for -------------------------------------------------
    (
        "Claude Code's header keywords",
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            **obj({"a": S}),
            "additionalProperties": False,
        },
        obj({"a": S}),
        ["$schema", "additionalProperties"],
    ),
    (
        "$id, $comment, examples, default dropped; title kept",
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
        obj({"m": OBJECT, "l": {"type": "array", "items": S}}),
        ["else", "if", "patternProperties", "propertyNames", "then", "uniqueItems"],
    ),
    (
        "dependent*, unevaluated*, content*, contains, not dropped",
        obj(
            {
                "l": {
                    "type": "array",
                    "items": S,
                    "contains": S,
                    "minContains": 1,
                    "maxContains": 2,
                },
                "b": {**S, "contentEncoding": "base64", "contentMediaType": "image/png"},
                "n": {**I, "not": {"const": 3}},
            },
            unevaluatedProperties=False,
            dependentRequired={"l": ["b"]},
            dependentSchemas={"l": {"required": ["b"]}},
        ),
        obj({"l": {"type": "array", "items": S}, "b": S, "n": I}),
        [
            "contains",
            "contentEncoding",
            "contentMediaType",
            "dependentRequired",
            "dependentSchemas",
            "maxContains",
            "minContains",
            "not",
            "unevaluatedProperties",
        ],
    ),
    (
        "Claude Code's free-form metadata object",
        obj(
            {
                "metadata": {
                    "type": "object",
                    "propertyNames": S,
                    "additionalProperties": {},
                }
            }
        ),
        obj({"metadata": OBJECT}),
        ["additionalProperties", "propertyNames"],
    ),
    (
        "keywords with a value of the wrong JSON type dropped",
        obj({"s": {**S, "description": 5, "maxLength": "10", "enum": "a", "nullable": "yes"}}),
        obj({"s": S}),
        ["description", "enum", "maxLength"],
    ),
    # --- references ---------------------------------------------------------------------
    (
        "local $ref inlined from $defs, sibling description kept",
        {
            **obj({"p": {"$ref": "#/$defs/Point", "description": "where"}}),
            "$defs": {"Point": obj({"x": {"type": "number"}}, description="a point")},
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
        "any local JSON pointer resolves, ~1 and %25 decoded",
        {
            **obj(
                {
                    "a": {**S, "maxLength": 5},
                    "b": {"$ref": "#/properties/a"},
                    "c": {"$ref": "#/$defs/x~1y%25"},
                },
                required=["b"],
            ),
            "$defs": {"x/y%": I},
        },
        obj({"a": {**S, "maxLength": 5}, "b": {**S, "maxLength": 5}, "c": I}, required=["b"]),
        ["$ref"],
    ),
    (
        "root $ref (pydantic) inlined",
        {"$ref": "#/$defs/Args", "$defs": {"Args": obj({"q": S}, required=["q"])}},
        obj({"q": S}, required=["q"]),
        ["$ref"],
    ),
    (
        "allOf of a $ref (pydantic) inlined and merged",
        obj({"cfg": {"allOf": [{"$ref": "#/$defs/Cfg"}], "description": "config"}})
        | {"$defs": {"Cfg": obj({"k": S})}},
        obj({"cfg": {**obj({"k": S}), "description": "config"}}),
        ["$ref", "allOf"],
    ),
    (
        "recursive $ref cut after one expansion",
        {**obj({"n": {"$ref": "#/$defs/N"}}), "$defs": {"N": obj({"next": {"$ref": "#/$defs/N"}})}},
        obj({"n": obj({"next": OBJECT})}),
        ["$ref", "$ref:recursive"],
    ),
    (
        "recursive reference to the root cut after one expansion",
        obj({"name": S, "children": {"type": "array", "items": {"$ref": "#"}}}),
        obj(
            {
                "name": S,
                "children": {
                    "type": "array",
                    "items": obj({"name": S, "children": {"type": "array", "items": OBJECT}}),
                },
            }
        ),
        ["$ref", "$ref:recursive"],
    ),
    (
        "mutually recursive $refs cut",
        {
            **obj({"a": {"$ref": "#/$defs/A"}}),
            "$defs": {
                "A": obj({"b": {"$ref": "#/$defs/B"}}),
                "B": obj({"a": {"$ref": "#/$defs/A"}}),
            },
        },
        obj({"a": obj({"b": obj({"a": OBJECT})})}),
        ["$ref", "$ref:recursive"],
    ),
    (
        "unresolvable $ref becomes an object, its description kept",
        obj(
            {"r": {"$ref": "https://example.com/s.json", "description": "d"}, "m": {"$ref": "#/x"}}
        ),
        obj({"r": {"type": "object", "description": "d"}, "m": OBJECT}),
        ["$ref", "$ref:unresolved"],
    ),
    # --- type ---------------------------------------------------------------------------
    (
        "type with null -> nullable",
        obj({"n": {"type": ["string", "null"]}}),
        obj({"n": {"type": "string", "nullable": True}}),
        [],
    ),
    (
        "type null alone -> a nullable string",
        obj({"n": {"type": "null"}}),
        obj({"n": {"type": "string", "nullable": True}}),
        ["type:null"],
    ),
    (
        "several types -> anyOf, other keywords in each branch",
        obj({"id": {"type": ["string", "integer", "null"], "description": "id"}}),
        obj(
            {
                "id": {
                    "anyOf": [
                        {"type": "string", "description": "id", "nullable": True},
                        {"type": "integer", "description": "id", "nullable": True},
                    ]
                }
            }
        ),
        ["type:array"],
    ),
    (
        "upper-case types lowered, unknown types dropped and inferred",
        obj({"u": {"type": "STRING"}, "f": {"type": "file", "description": "upload"}}),
        obj({"u": S, "f": {"type": "object", "description": "upload"}}),
        ["type:any", "type:file"],
    ),
    (
        "missing types inferred from the other keywords",
        obj(
            {
                "o": {"properties": {"a": S}},
                "l": {"items": S},
                "s": {"maxLength": 3},
                "n": {"minimum": 0},
                "e": {"enum": ["a"]},
            }
        ),
        obj(
            {
                "o": obj({"a": S}),
                "l": {"type": "array", "items": S},
                "s": {**S, "maxLength": 3},
                "n": {"type": "number", "minimum": 0},
                "e": {**S, "enum": ["a"]},
            }
        ),
        [],
    ),
    (
        "an unconstrained value (Claude Code's Workflow args) is approximated by an object",
        obj({"args": {"description": "any JSON value"}, "t": True}),
        obj({"args": {"type": "object", "description": "any JSON value"}, "t": OBJECT}),
        ["type:any"],
    ),
    # --- const and enum -----------------------------------------------------------------
    (
        "const string -> enum",
        obj({"k": {"const": "fixed"}}),
        obj({"k": {"enum": ["fixed"], "type": "string"}}),
        ["const"],
    ),
    (
        "const number and boolean keep only their type",
        obj({"k": {"const": 3}, "f": {"const": 0.5}, "b": {"const": True}}),
        obj({"k": I, "f": {"type": "number"}, "b": {"type": "boolean"}}),
        ["const"],
    ),
    (
        "string-enum branches (Claude Code's TaskUpdate status) -> one enum",
        obj(
            {
                "status": {
                    "description": "New status",
                    "anyOf": [
                        {"type": "string", "enum": ["pending", "completed"]},
                        {"type": "string", "const": "deleted"},
                    ],
                }
            }
        ),
        obj(
            {
                "status": {
                    "description": "New status",
                    "type": "string",
                    "enum": ["pending", "completed", "deleted"],
                }
            }
        ),
        ["const"],
    ),
    (
        "non-string enum dropped, type kept",
        obj({"e": {"type": "integer", "enum": [1, 2]}, "m": {"enum": ["a", 1]}}),
        obj({"e": I, "m": OBJECT}),
        ["enum:non-string", "type:any"],
    ),
    (
        "string enum on a non-string type dropped",
        obj({"e": {"type": "integer", "enum": ["1", "2"]}}),
        obj({"e": I}),
        ["enum:non-string"],
    ),
    (
        "empty string leaves enum, null makes it nullable",
        obj({"e": {"enum": ["", "a", None, "a"]}, "only": {**S, "enum": [""]}}),
        obj({"e": {**S, "enum": ["a"], "nullable": True}, "only": S}),
        ["enum:empty"],
    ),
    # --- numbers ------------------------------------------------------------------------
    (
        "exclusive bounds approximated by inclusive ones",
        obj({"n": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10}}),
        obj({"n": {"type": "number", "minimum": 0, "maximum": 10}}),
        ["exclusiveMaximum", "exclusiveMinimum"],
    ),
    (
        "the tighter of an inclusive and an exclusive bound wins",
        obj({"n": {**I, "minimum": 0, "exclusiveMinimum": 5, "maximum": 3, "exclusiveMaximum": 9}}),
        obj({"n": {**I, "minimum": 5, "maximum": 3}}),
        ["exclusiveMaximum", "exclusiveMinimum"],
    ),
    (
        "draft 4 boolean exclusive bounds dropped",
        obj({"n": {"type": "number", "minimum": 1, "exclusiveMinimum": True}}),
        obj({"n": {"type": "number", "minimum": 1}}),
        ["exclusiveMinimum"],
    ),
    # --- format -------------------------------------------------------------------------
    (
        "formats: date-time, enum, int64, double kept; others dropped",
        obj(
            {
                "d": {**S, "format": "date-time"},
                "e": {**S, "format": "enum", "enum": ["a"]},
                "u": {**S, "format": "uri"},
                "i": {**I, "format": "int64"},
                "x": {"type": "number", "format": "double"},
                "y": {"type": "number", "format": "int32"},
                "z": {**S, "format": "enum"},
            }
        ),
        obj(
            {
                "d": {**S, "format": "date-time"},
                "e": {**S, "format": "enum", "enum": ["a"]},
                "u": S,
                "i": {**I, "format": "int64"},
                "x": {"type": "number", "format": "double"},
                "y": {"type": "number"},
                "z": S,
            }
        ),
        ["format:enum", "format:int32", "format:uri"],
    ),
    # --- combinators --------------------------------------------------------------------
    (
        "anyOf with a null branch -> the branch, nullable",
        obj({"n": {"anyOf": [I, {"type": "null"}], "description": "count"}}),
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
        "keywords beside anyOf move into every branch (Vertex: anyOf must be alone)",
        obj(
            {
                "size": {
                    "description": "size",
                    "anyOf": [I, {**S, "pattern": "^[0-9]+px$"}, {"type": "null"}],
                }
            }
        ),
        obj(
            {
                "size": {
                    "anyOf": [
                        {**I, "description": "size", "nullable": True},
                        {**S, "pattern": "^[0-9]+px$", "description": "size", "nullable": True},
                    ]
                }
            }
        ),
        [],
    ),
    (
        "nested anyOf flattened",
        obj({"v": {"anyOf": [{"anyOf": [S, I]}, {"type": "boolean"}]}}),
        obj({"v": {"anyOf": [S, I, {"type": "boolean"}]}}),
        [],
    ),
    (
        "allOf of objects merged with the node's own properties",
        obj(
            {
                "m": {
                    **obj({"a": S}, required=["a"]),
                    "allOf": [
                        obj({"b": S}, required=["b"]),
                        {"properties": {"c": S}, "required": ["c"]},
                    ],
                }
            }
        ),
        obj({"m": obj({"a": S, "b": S, "c": S}, required=["a", "b", "c"])}),
        ["allOf"],
    ),
    # --- the root -----------------------------------------------------------------------
    (
        "missing root type becomes object",
        {"properties": {"a": S}},
        obj({"a": S}),
        [],
    ),
    (
        "root anyOf of objects -> one object; required only where every branch requires it",
        {
            "anyOf": [
                obj({"a": S, "b": S}, required=["a", "b"]),
                obj({"a": S, "c": I}, required=["a"]),
            ]
        },
        obj({"a": S, "b": S, "c": I}, required=["a"]),
        ["anyOf"],
    ),
    (
        "root 'a or b required' anyOf -> neither required",
        {**obj({"a": S, "b": S}), "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
        obj({"a": S, "b": S}),
        ["anyOf"],
    ),
    (
        "a non-object root becomes an empty object",
        {"type": "string", "description": "d"},
        {"type": "object", "description": "d"},
        ["type:root"],
    ),
    # --- objects and arrays -------------------------------------------------------------
    (
        "required names without a property removed",
        obj({"a": S}, required=["a", "ghost", "a"]),
        obj({"a": S}, required=["a"]),
        ["required:unknown"],
    ),
    (
        "empty properties removed, type object kept (root and nested)",
        obj({"m": {"type": "object", "properties": {}, "required": []}}),
        obj({"m": OBJECT}),
        [],
    ),
    ("empty root properties removed", obj({}), OBJECT, []),
    (
        "propertyOrdering kept for known properties",
        obj({"a": S, "b": S}, propertyOrdering=["b", "x", "a"]),
        obj({"a": S, "b": S}, propertyOrdering=["b", "a"]),
        ["propertyOrdering"],
    ),
    (
        "array without items gets object items (Gemini: items missing field)",
        obj({"l": {"type": "array"}, "e": {"type": "array", "items": {}}}),
        obj({"l": {"type": "array", "items": OBJECT}, "e": {"type": "array", "items": OBJECT}}),
        ["type:any"],
    ),
    (
        "tuple items -> first schema",
        obj({"t": {"type": "array", "items": [S, {"type": "number"}]}}),
        obj({"t": {"type": "array", "items": S}}),
        ["items:tuple"],
    ),
    (
        "prefixItems -> items",
        obj(
            {
                "t": {"type": "array", "prefixItems": [S]},
                "u": {"type": "array", "prefixItems": [S], "items": I},
            }
        ),
        obj({"t": {"type": "array", "items": S}, "u": {"type": "array", "items": I}}),
        ["prefixItems"],
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
    assert clean_schema_for_gemini(cleaned) == (cleaned, [])  # a clean schema stays as it is


# --- limits: any input terminates, quickly ---------------------------------------------------


def test_deep_nesting_is_cut_not_a_recursion_error() -> None:
    schema: JSON = S
    for _ in range(2000):
        schema = obj({"x": schema})
    cleaned, removed = clean_schema_for_gemini(schema)
    assert removed == ["depth"]
    depth = 0
    while "properties" in cleaned:
        cleaned, depth = cleaned["properties"]["x"], depth + 1
    assert cleaned == OBJECT and depth < 40


def test_references_that_fan_out_exponentially_are_bounded() -> None:
    # D0 -> D1 twice -> D2 four times ...: 2**13 - 1 expansions without a budget.
    defs = {
        f"D{i}": obj({"a": {"$ref": f"#/$defs/D{i + 1}"}, "b": {"$ref": f"#/$defs/D{i + 1}"}})
        for i in range(12)
    }
    defs["D12"] = S
    cleaned, removed = clean_schema_for_gemini({"$ref": "#/$defs/D0", "$defs": defs})
    assert removed == ["$ref", "$ref:limit"]
    assert len(repr(cleaned)) < 100_000


def test_result_shares_nothing_mutable_with_the_input() -> None:
    schema = obj({"e": {**S, "enum": ["a"]}}, required=["e"], propertyOrdering=["e"])
    cleaned, _ = clean_schema_for_gemini(schema)
    cleaned["required"].append("x")
    cleaned["propertyOrdering"].append("x")
    cleaned["properties"]["e"]["enum"].append("b")
    assert schema == obj({"e": {**S, "enum": ["a"]}}, required=["e"], propertyOrdering=["e"])


# --- property: whatever comes in, Gemini accepts what goes out ------------------------------

GEMINI_KEYWORDS = frozenset(
    {
        "type", "description", "title", "enum", "properties", "required", "items", "nullable",
        "minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "pattern",
        "minProperties", "maxProperties", "propertyOrdering", "format",
    }
)  # fmt: skip
GEMINI_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
FORMATS = {
    "string": {"date-time", "enum"},
    "integer": {"int32", "int64"},
    "number": {"float", "double"},
}


def gemini_problems(node: Any, path: str = "$") -> list[str]:
    """What Gemini (or Vertex) would reject in a cleaned schema, by path."""
    if not isinstance(node, dict):
        return [f"{path}: not an object"]
    if "anyOf" in node:
        return _any_of_problems(node, path)
    found = [f"{path}: {key}" for key in node if key not in GEMINI_KEYWORDS]
    found += _value_problems(node, path)
    if "items" in node:
        found += gemini_problems(node["items"], f"{path}[]")
    properties = node.get("properties", {"-": S})
    if not isinstance(properties, dict) or not properties:
        return [*found, f"{path}: empty properties"]
    for name in node.get("required", []):
        if name not in properties:
            found.append(f"{path}: required {name!r} is not a property")
    if "properties" in node:
        for name, child in properties.items():
            found += gemini_problems(child, f"{path}.{name}")
    return found


def _any_of_problems(node: JSON, path: str) -> list[str]:
    branches = node["anyOf"]
    found = [] if set(node) == {"anyOf"} else [f"{path}: keywords beside anyOf"]
    if not isinstance(branches, list) or len(branches) < 2:
        return [*found, f"{path}: anyOf needs two branches"]
    return found + [p for i, b in enumerate(branches) for p in gemini_problems(b, f"{path}|{i}")]


def _value_problems(node: JSON, path: str) -> list[str]:
    found = []
    kind, enum, fmt = node.get("type"), node.get("enum"), node.get("format")
    if kind not in GEMINI_TYPES:
        found.append(f"{path}: type {kind!r}")
    if enum is not None and (
        kind != "string" or not enum or not all(isinstance(v, str) and v for v in enum)
    ):
        found.append(f"{path}: enum {enum!r}")
    if fmt is not None and (fmt not in FORMATS.get(kind, ()) or (fmt == "enum" and not enum)):
        found.append(f"{path}: format {fmt!r} on {kind}")
    if kind == "array" and "items" not in node:
        found.append(f"{path}: array without items")
    return found


KEYWORDS = sorted(
    {
        "$schema", "$id", "additionalProperties", "propertyNames", "patternProperties", "const",
        "exclusiveMinimum", "exclusiveMaximum", "uniqueItems", "oneOf", "allOf", "anyOf", "if",
        "then", "default", "examples", "prefixItems", "contains", "dependentSchemas",
        "unevaluatedProperties", "not", "type", "description", "enum", "format", "required",
        "nullable", "minimum", "maxLength", "title", "propertyOrdering",
    }
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from(
        ["string", "null", "object", "array", "integer", "uri", "date-time", "enum", "", "a", "b"]
    ),
)
REFS = st.sampled_from(
    ["#", "#/$defs/A", "#/definitions/B", "#/properties/a", "#/$defs/missing", "http://x/y"]
)


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
                "anyOf": st.lists(children, max_size=3),
                "$ref": REFS,
            },
        ).map(lambda extra: {**node, **extra})
    )


SCHEMAS = st.recursive(st.just({}), _schemas, max_leaves=12).map(
    lambda root: {**root, "$defs": {"A": {"$ref": "#/$defs/A"}}, "definitions": {"B": root}}
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS)
def test_whatever_comes_in_gemini_accepts_what_goes_out(schema: JSON) -> None:
    before = copy.deepcopy(schema)
    cleaned, removed = clean_schema_for_gemini(schema)
    assert gemini_problems(cleaned) == []
    assert cleaned["type"] == "object"
    assert removed == sorted(set(removed))
    assert schema == before
    assert clean_schema_for_gemini(cleaned) == (cleaned, [])
