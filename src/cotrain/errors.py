"""The project's error types. The command line prints these as one line (``cotrain CMD: error: ...``);
any other exception is a bug and keeps its traceback.

Each also derives from the built-in type callers would expect (``ValueError`` for bad values,
``RuntimeError`` for a run that cannot go on), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class CotrainError(Exception):
    """Base of every error cotrain raises about its inputs: configs, data, checkpoints, user inputs."""


class InputError(CotrainError, ValueError):
    """An input given to a command or to the inference API is wrong: an unreadable or missing file,
    a file of the wrong kind for the task, an unknown task, a missing argument. The message names
    the input and what was expected."""


__all__ = ["CotrainError", "InputError"]
