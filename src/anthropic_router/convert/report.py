"""What a conversion dropped or approximated, for the response header and the log."""

from __future__ import annotations


class Report:
    """Collects names of dropped features (deduplicated, in first-seen order) and notes."""

    __slots__ = ("dropped", "notes")

    def __init__(self) -> None:
        self.dropped: dict[str, None] = {}
        self.notes: list[str] = []

    def drop(self, name: str) -> None:
        self.dropped[name] = None

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def dropped_names(self) -> list[str]:
        return list(self.dropped)
