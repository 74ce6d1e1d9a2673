"""The one error type for input refused at a named field (admin API, CLI, file imports)."""

from __future__ import annotations


class FieldError(ValueError):
    """``pointer`` is the JSON pointer of the bad field ("" for the whole document);
    ``detail`` says why, in words an operator can act on. The HTTP layer answers 422
    problem+json naming the pointer; the CLI prints ``pointer: detail``."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(f"{pointer}: {detail}")
        self.pointer = pointer
        self.detail = detail
