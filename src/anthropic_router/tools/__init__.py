"""Server tools run by the router: the loop (loop.py), web search providers (search.py),
the SSRF-safe web fetch (fetch.py) and the MCP connector (mcp.py)."""
