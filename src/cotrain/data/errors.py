"""Errors about data that name the file (and record) they concern."""

from __future__ import annotations

from ..errors import CotrainError


class DataError(CotrainError, ValueError):
    """Bad or missing data. The message names the path (and record or field) at fault."""

    def __init__(self, message: str, path: object | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
