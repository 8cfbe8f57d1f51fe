"""Tool JSON Schemas cleaned to the OpenAPI 3.0 subset Gemini accepts.

Gemini (direct, via OpenRouter or via LiteLLM) answers 400 to function parameters that use
keywords outside its `Schema` object: `$ref`/`$defs`, `additionalProperties`, `const`,
`exclusiveMinimum`, most `format`s, type arrays and more. Claude Code's own tools use several
of these (`$schema`, `additionalProperties: false`, `exclusiveMinimum`, `propertyNames`).
LiteLLM's `_build_vertex_schema` and claude-code-router's Gemini transformer make the same
kind of repairs; this one reports each keyword it removes or approximates.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

# Keywords kept as they are (Gemini's Schema fields). Anything else is dropped and reported,
# except the ones rewritten below.
_KEPT = frozenset(
    {
        "type", "description", "title", "enum", "properties", "required", "items", "nullable",
        "minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "pattern",
        "minProperties", "maxProperties", "anyOf", "propertyOrdering",
    }
)  # fmt: skip
_REWRITTEN = frozenset(
    {
        "$ref", "$defs", "definitions", "const", "exclusiveMinimum", "exclusiveMaximum",
        "oneOf", "allOf", "format", "prefixItems",
    }
)  # fmt: skip
_STRING_FORMATS = frozenset({"enum", "date-time"})
_NUMBER_FORMATS = frozenset({"int32", "int64", "float", "double"})
_MAX_REF_DEPTH = 1  # a reference may expand once on a path; deeper recursion is cut


def clean_schema_for_gemini(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return a new schema Gemini accepts (the input is never mutated) and the sorted,
    de-duplicated names of the keywords removed or approximated."""
    report: set[str] = set()
    definitions = _definitions(schema)
    cleaned = _clean(schema, definitions, (), report)
    if cleaned.get("type") is None and "anyOf" not in cleaned:
        cleaned["type"] = "object"  # function parameters must be an object
    return cleaned, sorted(report)


def _definitions(schema: JSON) -> JSON:
    found: JSON = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), dict):
            found.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
    return found


def _clean(node: Any, definitions: JSON, refs: tuple[str, ...], report: set[str]) -> JSON:
    if not isinstance(node, dict):
        return {}
    if "$ref" in node:
        return _inline(node, definitions, refs, report)
    out: JSON = {}
    for key, value in node.items():
        if key in _KEPT:
            out[key] = value
        elif key not in _REWRITTEN:
            report.add(key)
    _type(out, report)
    _const(node, out, report)
    _exclusive_bounds(node, out, report)
    _format(node, out, report)
    _enum(out, report)
    _combinators(node, out, definitions, refs, report)
    _children(node, out, definitions, refs, report)
    _required(out, report)
    return out


def _inline(node: JSON, definitions: JSON, refs: tuple[str, ...], report: set[str]) -> JSON:
    ref = node["$ref"]
    report.add("$ref")
    target = definitions.get(ref) if isinstance(ref, str) else None
    if target is None:
        return {"type": "object", **_description(node)}  # remote or unknown: unresolvable
    if refs.count(ref) >= _MAX_REF_DEPTH:
        report.add("$ref:recursive")
        return {"type": "object", **_description(node)}
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _clean(merged, definitions, (*refs, ref), report)


def _description(node: JSON) -> JSON:
    text = node.get("description")
    return {"description": text} if isinstance(text, str) else {}


def _type(out: JSON, report: set[str]) -> None:
    kind = out.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        if len(types) < len(kind):
            out["nullable"] = True
        if len(types) == 1:
            out["type"] = types[0]
        elif types:
            del out["type"]
            out["anyOf"] = [{"type": t} for t in types]
            report.add("type:array")
        else:
            out["type"] = "string"
            report.add("type:null")
    elif kind == "null":
        out["type"], out["nullable"] = "string", True
        report.add("type:null")


def _const(node: JSON, out: JSON, report: set[str]) -> None:
    if "const" not in node:
        return
    report.add("const")
    value = node["const"]
    if isinstance(value, str):
        out["enum"] = [value]
        out.setdefault("type", "string")
    elif isinstance(value, bool):
        out.setdefault("type", "boolean")
    elif isinstance(value, int | float):
        out.setdefault("type", "integer" if isinstance(value, int) else "number")


def _exclusive_bounds(node: JSON, out: JSON, report: set[str]) -> None:
    """Draft 6+ numbers become inclusive bounds (an approximation); draft 4 booleans go."""
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if exclusive not in node:
            continue
        report.add(exclusive)
        value = node[exclusive]
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.setdefault(inclusive, value)


def _format(node: JSON, out: JSON, report: set[str]) -> None:
    fmt = node.get("format")
    if not isinstance(fmt, str):
        return
    allowed = _STRING_FORMATS if out.get("type") == "string" else _NUMBER_FORMATS
    if out.get("type") in ("string", "number", "integer") and fmt in allowed:
        out["format"] = fmt
    else:
        report.add(f"format:{fmt}")


def _enum(out: JSON, report: set[str]) -> None:
    """Gemini enums are strings only."""
    values = out.get("enum")
    if values is None:
        return
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        del out["enum"]
        report.add("enum:non-string")
    else:
        out.setdefault("type", "string")


def _combinators(
    node: JSON, out: JSON, definitions: JSON, refs: tuple[str, ...], report: set[str]
) -> None:
    branches = []
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            branches += node[key]
            if key == "oneOf":
                report.add("oneOf")
    out.pop("anyOf", None)
    if branches:
        _any_of(branches, out, definitions, refs, report)
    if isinstance(node.get("allOf"), list):
        report.add("allOf")
        for part in node["allOf"]:
            _merge(out, _clean(part, definitions, refs, report))


def _any_of(
    branches: list[Any], out: JSON, definitions: JSON, refs: tuple[str, ...], report: set[str]
) -> None:
    """`{"anyOf": [X, {"type": "null"}]}` is Gemini's `X` with `nullable: true`."""
    schemas = [b for b in branches if isinstance(b, dict)]
    real = [b for b in schemas if not _is_null(b)]
    if len(real) < len(schemas):
        out["nullable"] = True
    cleaned = [_clean(b, definitions, refs, report) for b in real]
    if len(cleaned) == 1:
        _merge(out, cleaned[0])
    elif cleaned:
        out["anyOf"] = cleaned


def _is_null(branch: Any) -> bool:
    return isinstance(branch, dict) and branch.get("type") == "null"


def _merge(out: JSON, part: JSON) -> None:
    for key, value in part.items():
        if key == "properties" and isinstance(out.get("properties"), dict):
            out["properties"] = {**out["properties"], **value}
        elif key == "required" and isinstance(out.get("required"), list):
            out["required"] = list(dict.fromkeys([*out["required"], *value]))
        else:
            out.setdefault(key, value)


def _children(
    node: JSON, out: JSON, definitions: JSON, refs: tuple[str, ...], report: set[str]
) -> None:
    properties = node.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            str(name): _clean(child, definitions, refs, report)
            for name, child in properties.items()
        }
        if not out["properties"]:
            del out["properties"]  # Gemini rejects an empty `properties` object
    items = node.get("items")
    if isinstance(items, list):  # tuple form: Gemini has one item schema
        report.add("items:tuple")
        items = items[0] if items else None
    if items is None and isinstance(node.get("prefixItems"), list) and node["prefixItems"]:
        report.add("prefixItems")
        items = node["prefixItems"][0]
    elif "prefixItems" in node:
        report.add("prefixItems")
    if isinstance(items, dict):
        out["items"] = _clean(items, definitions, refs, report)
    elif "items" in out:
        del out["items"]


def _required(out: JSON, report: set[str]) -> None:
    """Gemini 400s on required names that are not properties."""
    required = out.get("required")
    if required is None:
        return
    properties = out.get("properties") or {}
    names = required if isinstance(required, list) else []
    kept = [name for name in names if isinstance(name, str) and name in properties]
    if len(kept) != len(names) or not isinstance(required, list):
        report.add("required:unknown")
    if kept:
        out["required"] = kept
    else:
        del out["required"]
