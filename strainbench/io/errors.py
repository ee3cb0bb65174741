"""The one error type of the data contract."""

from __future__ import annotations

import os


class ContractError(ValueError):
    """A file does not follow the data contract; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
