"""Issue 5: fault injection, fuzzing and shutdown, through the real server."""
