"""Anthropic's Message Batches API over any backend: api.py (the endpoints), runner.py (the
background work), storage.py (the tables), shapes.py (the wire objects). docs/15-batches.md."""
