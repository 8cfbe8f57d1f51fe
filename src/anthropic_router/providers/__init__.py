"""Upstream providers: one thin module each; differences are data (URL, headers, quirks)."""
