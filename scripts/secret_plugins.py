"""detect-secrets plugins for the credentials this project handles that detect-secrets does
not know by itself: OpenRouter, Anthropic and Databricks keys (its own OpenAI, AWS, GitHub,
Slack, private-key, keyword and entropy detectors cover the rest). Loaded through the
baseline's `plugins_used` (`scripts/security-check.sh`)."""

from __future__ import annotations

import re

from detect_secrets.plugins.base import RegexBasedDetector


class OpenRouterKeyDetector(RegexBasedDetector):  # type: ignore[misc]
    """OpenRouter API keys: `sk-or-v1-` and 64 hex digits."""

    secret_type = "OpenRouter API Key"  # pragma: allowlist secret
    denylist = (re.compile(r"\bsk-or-v1-[0-9a-f]{64}\b"),)


class AnthropicKeyDetector(RegexBasedDetector):  # type: ignore[misc]
    """Anthropic API and admin keys: `sk-ant-api03-...`, `sk-ant-admin01-...`."""

    secret_type = "Anthropic API Key"  # pragma: allowlist secret
    denylist = (re.compile(r"\bsk-ant-[A-Za-z0-9]+-[A-Za-z0-9_-]{32,}"),)


class OpenAIProjectKeyDetector(RegexBasedDetector):  # type: ignore[misc]
    """OpenAI project, service-account and admin keys (the built-in detector knows the
    older `sk-...T3BlbkFJ...` form only)."""

    secret_type = "OpenAI Project Key"  # pragma: allowlist secret
    denylist = (re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{32,}"),)


class DatabricksTokenDetector(RegexBasedDetector):  # type: ignore[misc]
    """Databricks personal access tokens: `dapi` and 32 hex digits."""

    secret_type = "Databricks Token"  # pragma: allowlist secret
    denylist = (re.compile(r"\bdapi[0-9a-f]{32}(?:-\d+)?\b"),)
