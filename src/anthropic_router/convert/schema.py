"""Tool JSON Schemas cleaned to the OpenAPI 3.0 subset Gemini accepts.

Gemini (direct, via OpenRouter or via LiteLLM) answers 400 to function parameters that use
keywords outside its `Schema` object: `$ref`/`$defs`, `additionalProperties`, `const`,
`exclusiveMinimum`, most `format`s, type arrays and more. Claude Code's own tools use several
of these (`$schema`, `additionalProperties: false`, `exclusiveMinimum`, `propertyNames`,
`const`, `format: uri`). It also rejects shapes that are valid JSON Schema: `properties: {}`,
an array without `items`, a node without `type`, an empty string in `enum`, and (Vertex) a
node that sets anything beside `anyOf`. LiteLLM's `build_vertex_schema` (litellm
`llms/vertex_ai/common_utils.py`) and claude-code-router's Gemini transformer
(`cleanupParameters` in musistudio/llms) make the same kind of repairs; this one also reports
each keyword it removes or approximates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

JSON = dict[str, Any]

# Gemini `Schema` fields kept when their value has the right JSON type. `default` and
# `example` are in today's Schema too, but not in every Gemini/Vertex version OpenRouter and
# LiteLLM reach, and they never change what the model may send: dropped, to be safe.
_TEXT = frozenset({"description", "title", "pattern", "format"})
_COUNTS = frozenset(
    {
        "minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength",
        "minProperties", "maxProperties",
    }
)  # fmt: skip
_LISTS = frozenset({"enum", "required", "propertyOrdering"})
# Handled by the walk itself (children, combinators, references and rewrites).
_STRUCTURAL = frozenset(
    {
        "type", "nullable", "properties", "items", "prefixItems", "anyOf", "oneOf", "allOf",
        "$ref", "$defs", "definitions", "const", "exclusiveMinimum", "exclusiveMaximum",
    }
)  # fmt: skip
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
# Formats Gemini accepts, by type ("enum" only next to a non-empty string `enum`).
_FORMATS = {
    "string": frozenset({"enum", "date-time"}),
    "integer": frozenset({"int32", "int64"}),
    "number": frozenset({"float", "double"}),
}
# A typeless node's type, guessed from the keywords it does have.
_TYPE_HINTS = (
    ("properties", "object"), ("items", "array"), ("minItems", "array"),
    ("maxItems", "array"), ("minLength", "string"), ("maxLength", "string"),
    ("pattern", "string"), ("minimum", "number"), ("maximum", "number"),
)  # fmt: skip
_MAX_REF_DEPTH = 1  # a reference may expand once on a path; deeper recursion is cut
_MAX_EXPANSIONS = 256  # bounds the output of reference graphs that fan out exponentially
_MAX_DEPTH = 32  # bounds the recursion; real tool schemas nest fewer than ten levels


@dataclass(slots=True)
class _Walk:
    root: JSON
    report: set[str] = field(default_factory=set)
    expansions: int = 0


def clean_schema_for_gemini(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return a new schema Gemini accepts (the input is never mutated, nor shared with the
    result) and the sorted, de-duplicated names of the keywords removed or approximated.

    The result is an object schema in which every node has a `type` or is exactly
    `{"anyOf": [...]}`, with only Gemini `Schema` keywords. It terminates on any input:
    recursive references are cut after one expansion and nesting after `_MAX_DEPTH` levels.
    """
    walk = _Walk(root=schema)
    cleaned = _clean(schema, walk, (), 0)
    return _root(cleaned, walk.report), sorted(walk.report)


def _root(out: JSON, report: set[str]) -> JSON:
    """Function parameters must be one object schema: an `anyOf` of objects becomes their
    union (a property is required only if every branch requires it)."""
    if "anyOf" in out:
        report.add("anyOf")
        objects = [b for b in out["anyOf"] if b.get("type") == "object"]
        out = {"type": "object"}
        for branch in objects:
            _union_into(out, {k: v for k, v in branch.items() if k != "required"})
        shared = [set(b.get("required") or ()) for b in objects]
        required = set.intersection(*shared) if shared else set()
        names = out.get("properties") or {}
        out["required"] = [name for name in names if name in required]
    out.setdefault("type", "object")  # a typeless root is an object, not an approximation
    _finish(out, report)
    if out["type"] != "object":
        report.add("type:root")
        out = {"type": "object", **_description(out)}
    return out


# --- the walk ------------------------------------------------------------------------------


def _schema(node: Any, walk: _Walk, refs: tuple[str, ...], depth: int) -> JSON:
    """A complete child schema (a property, `items`, an `anyOf` branch)."""
    return _finish(_clean(node, walk, refs, depth), walk.report)


def _clean(node: Any, walk: _Walk, refs: tuple[str, ...], depth: int) -> JSON:
    """One node's keywords cleaned and its children complete; the node itself is finished by
    the caller, after it is merged into whatever contains it (`allOf`, a `$ref` sibling)."""
    if depth > _MAX_DEPTH:
        walk.report.add("depth")
        return {"type": "object"}
    if not isinstance(node, dict):
        return {}  # `true` (anything) or junk: typed by `_finish`
    if "$ref" in node:
        return _inline(node, walk, refs, depth)
    out = _keywords(node, walk.report)
    branches = _type(node, out, walk.report)
    _const(node, out, walk.report)
    _exclusive_bounds(node, out, walk.report)
    _children(node, out, walk, refs, depth)
    _any_of(node, branches, out, walk, refs, depth)
    for part in _list(node, "allOf", walk.report):
        walk.report.add("allOf")
        _union_into(out, _clean(part, walk, refs, depth + 1))
    return _distribute(out, walk.report)


def _keywords(node: JSON, report: set[str]) -> JSON:
    out: JSON = {}
    for key, value in node.items():
        if key in _STRUCTURAL:
            continue
        if _valid(key, value):
            # Lists are copied: the result never shares a mutable value with the input.
            out[key] = list(value) if isinstance(value, list) else value
        else:
            report.add(key)
    if node.get("nullable") is True:
        out["nullable"] = True
    return out


def _valid(key: str, value: Any) -> bool:
    if key in _TEXT:
        return isinstance(value, str)
    if key in _COUNTS:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return key in _LISTS and isinstance(value, list)


def _inline(node: JSON, walk: _Walk, refs: tuple[str, ...], depth: int) -> JSON:
    """A local reference (`#`, `#/$defs/X`, any JSON pointer) is replaced by its target,
    merged with the keywords beside it; remote and recursive ones become objects."""
    ref = node["$ref"]
    walk.report.add("$ref")
    target = _resolve(walk.root, ref)
    cut = {"type": "object", **_description(node)}
    if target is None:
        walk.report.add("$ref:unresolved")
        return cut
    if refs.count(ref) >= _MAX_REF_DEPTH:
        walk.report.add("$ref:recursive")
        return cut
    walk.expansions += 1
    if walk.expansions > _MAX_EXPANSIONS:
        walk.report.add("$ref:limit")
        return cut
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return _clean(_union(siblings, target), walk, (*refs, ref), depth + 1)


def _resolve(root: JSON, ref: Any) -> JSON | None:
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        return None
    target: Any = root
    for token in ref[2:].split("/") if ref != "#" else ():
        name = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and name in target:
            target = target[name]
        elif isinstance(target, list) and name.isdigit() and int(name) < len(target):
            target = target[int(name)]
        else:
            return None
    return target if isinstance(target, dict) else None


def _description(node: JSON) -> JSON:
    text = node.get("description")
    return {"description": text} if isinstance(text, str) else {}


def _list(node: JSON, key: str, report: set[str]) -> list[Any]:
    value = node.get(key)
    if value is None or isinstance(value, list):
        return value or []
    report.add(key)
    return []


# --- keyword rewrites ----------------------------------------------------------------------


def _type(node: JSON, out: JSON, report: set[str]) -> list[JSON]:
    """Sets `out["type"]` (`null` in a list is `nullable`); several types come back as
    `anyOf` branches."""
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [] if kind is None else [kind]
    names = [k.lower() if isinstance(k, str) else "" for k in kinds]
    for name in names:
        if name != "null" and name not in _TYPES:
            report.add(f"type:{name}" if name else "type")
    types = list(dict.fromkeys(n for n in names if n in _TYPES))
    if "null" in names:
        out["nullable"] = True
        if not types:
            report.add("type:null")  # Gemini has no null type
            types = ["string"]
    if len(types) == 1:
        out["type"] = types[0]
        return []
    if types:
        report.add("type:array")
    return [{"type": t} for t in types]


def _const(node: JSON, out: JSON, report: set[str]) -> None:
    """`const: "x"` is `enum: ["x"]`; other constants keep only their type."""
    if "const" not in node:
        return
    report.add("const")
    value = node["const"]
    if isinstance(value, str) and value:
        out["enum"] = [value]
        out.setdefault("type", "string")
    elif value is None:
        out["nullable"] = True
    elif isinstance(value, bool):
        out.setdefault("type", "boolean")
    elif isinstance(value, int | float):
        out.setdefault("type", "integer" if isinstance(value, int) else "number")
    elif isinstance(value, str):
        out.setdefault("type", "string")


def _exclusive_bounds(node: JSON, out: JSON, report: set[str]) -> None:
    """Draft 6+ numbers become inclusive bounds (an approximation: the bound itself is now
    allowed); draft 4 booleans go. The tighter of two bounds wins."""
    for exclusive, inclusive, tighter in (
        ("exclusiveMinimum", "minimum", max),
        ("exclusiveMaximum", "maximum", min),
    ):
        if exclusive not in node:
            continue
        report.add(exclusive)
        value = node[exclusive]
        if isinstance(value, int | float) and not isinstance(value, bool):
            current = out.get(inclusive)
            out[inclusive] = value if current is None else tighter(current, value)


# --- children and combinators --------------------------------------------------------------


def _children(node: JSON, out: JSON, walk: _Walk, refs: tuple[str, ...], depth: int) -> None:
    properties = node.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            str(name): _schema(child, walk, refs, depth + 1) for name, child in properties.items()
        }
    elif properties is not None:
        walk.report.add("properties")
    items = node.get("items")
    if isinstance(items, list):  # draft 4 tuple form: Gemini has one item schema
        walk.report.add("items:tuple")
        items = items[0] if items else None
    prefix = _list(node, "prefixItems", walk.report)
    if "prefixItems" in node:
        walk.report.add("prefixItems")
        if items is None and prefix:
            items = prefix[0]
    if items is not None:
        out["items"] = _schema(items, walk, refs, depth + 1)


def _any_of(
    node: JSON,
    branches: list[JSON],
    out: JSON,
    walk: _Walk,
    refs: tuple[str, ...],
    depth: int,
) -> None:
    """`anyOf`/`oneOf` (`oneOf` loses only its exclusivity) with null branches folded into
    `nullable`; one remaining branch is merged into the node itself."""
    raw = [*_list(node, "anyOf", walk.report), *_list(node, "oneOf", walk.report)]
    if "oneOf" in node:
        walk.report.add("oneOf")
    if raw:
        branches = raw  # beside `anyOf`, a type list only restates it
    real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
    if len(real) < len(branches):
        out["nullable"] = True
    cleaned: list[JSON] = []
    for branch in real:
        one = _clean(branch, walk, refs, depth + 1)
        cleaned += one["anyOf"] if set(one) == {"anyOf"} else [one]  # nested anyOf flattened
    merged = _string_enum(cleaned, out.get("type"))
    if merged is not None:
        cleaned = [merged]
    if len(cleaned) == 1:
        _union_into(out, cleaned[0])
    elif cleaned:
        out["anyOf"] = cleaned


def _string_enum(branches: list[JSON], kind: Any) -> JSON | None:
    """Branches that are all string enums (`z.enum([...]).or(z.literal("x"))`, as in Claude
    Code's TaskUpdate) are one enum: exact, and easier on the model than `anyOf`."""
    if len(branches) < 2:
        return None
    for branch in branches:
        if "enum" not in branch or not set(branch) <= {"type", "enum"}:
            return None
        if branch.get("type", kind) != "string":
            return None
    return {"type": "string", "enum": _unique([v for b in branches for v in b["enum"]])}


def _distribute(out: JSON, report: set[str]) -> JSON:
    """Vertex 400s on a node that sets anything beside `anyOf` ("When using any_of, it must
    be the only field set", litellm#11164): the other keywords move into every branch."""
    branches = out.pop("anyOf", None)
    if branches is None:
        return out
    return {"anyOf": [_finish(_union(branch, out), report) for branch in branches]}


def _union(base: JSON, extra: JSON) -> JSON:
    merged = dict(base)
    _union_into(merged, extra)
    return merged


def _union_into(out: JSON, extra: JSON) -> None:
    """Both schemas' properties and required names; for any other keyword `out` wins."""
    for key, value in extra.items():
        mine = out.get(key)
        if key == "properties" and isinstance(mine, dict) and isinstance(value, dict):
            out[key] = {**value, **mine}
        elif key == "required" and isinstance(mine, list) and isinstance(value, list):
            out[key] = _unique([*mine, *value])
        else:
            out.setdefault(key, value)


def _unique(values: list[Any]) -> list[Any]:
    """First occurrences, in order (values may be unhashable before they are validated)."""
    kept: list[Any] = []
    for value in values:
        if value not in kept:
            kept.append(value)
    return kept


# --- completing a node ---------------------------------------------------------------------


def _finish(out: JSON, report: set[str]) -> JSON:
    """The rules that need the node's final keywords: enum, type, format, items, required.
    Idempotent: finishing a finished node changes nothing and reports nothing."""
    if "anyOf" in out:
        return out  # its branches are finished by `_distribute`
    _enum(out, report)
    _infer_type(out, report)
    _format(out, report)
    if out["type"] == "array" and "items" not in out:
        out["items"] = _finish({}, report)  # Gemini: "items: missing field"
    _object_fields(out, report)
    return out


def _enum(out: JSON, report: set[str]) -> None:
    """Gemini enums are non-empty strings on string nodes ("enum[0]: cannot be empty")."""
    if "enum" not in out:
        return
    values = out.pop("enum")
    if None in values:
        out["nullable"] = True
    values = [v for v in values if v is not None]
    if not all(isinstance(v, str) for v in values) or out.get("type", "string") != "string":
        report.add("enum:non-string")
        return
    if "" in values:
        report.add("enum:empty")
    values = list(dict.fromkeys(v for v in values if v))
    if values:
        out["enum"] = values
        out.setdefault("type", "string")


def _infer_type(out: JSON, report: set[str]) -> None:
    """Every Gemini node needs a type. An unconstrained one ("any value") is approximated by
    `object`, as LiteLLM's `add_object_type` does."""
    if "type" in out:
        return
    for keyword, kind in _TYPE_HINTS:
        if keyword in out:
            out["type"] = kind
            return
    out["type"] = "object"
    report.add("type:any")


def _format(out: JSON, report: set[str]) -> None:
    fmt = out.get("format")
    if fmt is None:
        return
    allowed = _FORMATS.get(out["type"], frozenset())
    if fmt not in allowed or (fmt == "enum" and "enum" not in out):
        del out["format"]
        report.add(f"format:{fmt}")


def _object_fields(out: JSON, report: set[str]) -> None:
    """Gemini 400s on an empty `properties` ("should be non-empty for OBJECT type"; LiteLLM
    removes it and keeps `type: object`) and on required names that are not properties."""
    properties = out.get("properties")
    if properties == {}:
        del out["properties"]
    names = out.get("properties") or {}
    for key, label in (("required", "required:unknown"), ("propertyOrdering", "propertyOrdering")):
        if key not in out:
            continue
        kept = list(dict.fromkeys(n for n in out[key] if isinstance(n, str) and n in names))
        if len(kept) != len(out[key]):
            report.add(label)
        if kept:
            out[key] = kept
        else:
            del out[key]
