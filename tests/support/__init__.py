"""Shared test infrastructure: a scripted fake OpenAI-compatible upstream and the real router
run as a subprocess, both on 127.0.0.1."""
