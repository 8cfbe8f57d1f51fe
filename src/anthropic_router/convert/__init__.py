"""Pure conversion between the Anthropic Messages API and OpenAI chat completions.

Nothing here does I/O, reads settings or logs: every function takes plain data and returns
plain data, so every rule is testable with literal dicts.
"""
