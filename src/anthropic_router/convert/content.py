"""Anthropic content blocks (text, image, document, search_result) to OpenAI content parts."""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

from anthropic_router.convert.options import RequestOptions
from anthropic_router.convert.report import Report

JSON = dict[str, Any]

IMAGE_PLACEHOLDER = "[Image content could not be processed: {reason}]"
PDF_PLACEHOLDER = "[PDF document {title!r} omitted: the upstream model does not accept files]"


def cache_control_of(block: JSON, options: RequestOptions, report: Report) -> JSON | None:
    """Only `type` and `ttl` survive: Claude Code adds keys (`scope`) upstreams reject."""
    control = block.get("cache_control")
    if not isinstance(control, dict):
        return None
    if not options.cache_control:
        report.drop("cache_control")
        return None
    kept = {"type": control.get("type", "ephemeral")}
    if "ttl" in control:
        kept["ttl"] = control["ttl"]
    return kept


def text_part(text: str, block: JSON, options: RequestOptions, report: Report) -> JSON:
    part: JSON = {"type": "text", "text": text}
    control = cache_control_of(block, options, report)
    if control:
        part["cache_control"] = control
    return part


def image_part(block: JSON, options: RequestOptions, report: Report) -> JSON:
    """An image_url part, or a text placeholder when the image cannot be sent (seed rule)."""
    url, reason = _image_url(block.get("source"), options)
    if url is None:
        report.drop("image")
        report.note(f"image replaced by a placeholder: {reason}")
        return text_part(IMAGE_PLACEHOLDER.format(reason=reason), block, options, report)
    part: JSON = {"type": "image_url", "image_url": {"url": url}}
    control = cache_control_of(block, options, report)
    if control:
        part["cache_control"] = control
    return part


def _image_url(source: Any, options: RequestOptions) -> tuple[str | None, str]:
    if not options.multimodal:
        return None, "multi-modal input is disabled"
    if not options.capabilities.vision:
        return None, "the upstream model does not accept images"
    if not isinstance(source, dict):
        return None, "missing source"
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url, ""
        return None, "the image URL must be http or https"
    if kind != "base64":
        return None, f"image source type {kind!r} is not supported"
    return _base64_image_url(source, options)


def _base64_image_url(source: JSON, options: RequestOptions) -> tuple[str | None, str]:
    media_type = str(source.get("media_type", ""))
    fmt = media_type.removeprefix("image/").replace("jpg", "jpeg")
    if not media_type.startswith("image/") or fmt not in options.image_formats:
        return None, f"unsupported image format {media_type or 'unknown'}"
    data = source.get("data")
    if not isinstance(data, str) or not data:
        return None, "empty image data"
    size = len(data) * 3 // 4
    if size > options.image_max_bytes:
        return None, f"image of {size} bytes exceeds the {options.image_max_bytes}-byte limit"
    try:
        b64decode(data[:64].ljust(4 * ((min(len(data), 64) + 3) // 4), "="), validate=True)
    except (binascii.Error, ValueError):
        return None, "image data is not valid base64"
    return f"data:{media_type};base64,{data}", ""


def document_parts(block: JSON, options: RequestOptions, report: Report) -> list[JSON]:
    """PDFs become OpenRouter `file` parts; text and content sources become text parts."""
    source = block.get("source")
    if not isinstance(source, dict):
        report.drop("document")
        return []
    kind = source.get("type")
    title = block.get("title")
    if kind == "text":
        text = str(source.get("data", ""))
        return [text_part(_titled(title, text), block, options, report)] if text.strip() else []
    if kind == "content":
        return _content_source_parts(source, title, options, report)
    file_data = _file_data(source)
    if file_data is None:
        report.drop(f"document:{kind}")
        return []
    if not options.capabilities.pdf or not options.multimodal:
        report.drop("document:pdf")
        report.note("a PDF document was replaced by a placeholder: the upstream takes no files")
        return [text_part(PDF_PLACEHOLDER.format(title=title or "untitled"), {}, options, report)]
    name = title if isinstance(title, str) and title else "document.pdf"
    part: JSON = {"type": "file", "file": {"filename": name, "file_data": file_data}}
    control = cache_control_of(block, options, report)
    if control:
        part["cache_control"] = control
    return [part]


def _file_data(source: JSON) -> str | None:
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media_type = source.get("media_type") or "application/pdf"
        return f"data:{media_type};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    return None


def _content_source_parts(
    source: JSON, title: Any, options: RequestOptions, report: Report
) -> list[JSON]:
    content = source.get("content")
    if isinstance(content, str):
        return [text_part(_titled(title, content), {}, options, report)] if content else []
    parts: list[JSON] = []
    for item in content if isinstance(content, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "text" and str(item.get("text", "")).strip():
            parts.append(text_part(str(item["text"]), item, options, report))
        elif item.get("type") == "image":
            parts.append(image_part(item, options, report))
    return parts


def _titled(title: Any, text: str) -> str:
    return f"{title}\n\n{text}" if isinstance(title, str) and title else text


def search_result_part(block: JSON, options: RequestOptions, report: Report) -> JSON | None:
    content = block.get("content")
    items = content if isinstance(content, list) else [{"type": "text", "text": str(content or "")}]
    texts = [
        str(item.get("text", ""))
        for item in items
        if isinstance(item, dict) and item.get("type") == "text"
    ]
    header = f"[Search result: {block.get('title', '')} ({block.get('source', '')})]"
    body = "\n".join(text for text in texts if text)
    return text_part(f"{header}\n{body}", block, options, report)


def flatten_text(content: Any) -> str:
    """Text of a string or a list of text blocks; other blocks are skipped."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        str(block.get("text", ""))
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    return "\n\n".join(text for text in texts if text)
