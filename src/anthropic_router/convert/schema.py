"""TEMPORARY placeholder until the Gemini schema cleaner lands (helper is writing it)."""

from __future__ import annotations

from typing import Any


def clean_schema_for_gemini(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return dict(schema), []
