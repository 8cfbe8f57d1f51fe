"""anthropic-router: the Anthropic Messages API, served from OpenAI-compatible upstreams."""

__version__ = "0.1.0"
