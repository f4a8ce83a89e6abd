"""User-facing errors. Messages name the field, column, file or value.

Imports nothing heavy (every ``biasaudit`` command and the API import it): a text shared
with ``probes`` is repeated here, and tests/probes/test_model_safety.py keeps the two equal.
"""

from __future__ import annotations

import difflib
from typing import Any


def did_you_mean(word: Any, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a misspelt ``word``, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class AuditInputError(ValueError):
    """The spec, dataset or model is invalid: the CLI exits 2, the API answers 4xx."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SpecError(AuditInputError):
    """The audit spec failed validation; ``errors`` lists (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        items = [f"{path}: {msg}" if path else msg for path, msg in errors]
        text = (
            items[0]
            if len(items) == 1
            else f"{len(items)} errors:\n" + "\n".join(f"  - {i}" for i in items)
        )
        super().__init__(f"invalid audit spec: {text}", field=errors[0][0] if errors else None)


class AuditCancelled(RuntimeError):
    """The audit was cancelled between batches."""


# Message templates asserted on by tests.
MSG_FILE_NOT_FOUND = "dataset.path: file not found: {path}"
MSG_MISSING_COLUMN = (
    "dataset.{field}: column {column!r} not found in {file}{hint}; columns are: {columns}"
)
MSG_ONE_GROUP = (
    "dataset.protected: column {column!r} has only one group ({group!r}); "
    "a fairness audit needs at least two"
)
MSG_FAVORABLE_NOT_IN_LABELS = (
    "dataset.favorable_label: value {value!r} does not occur in column {column!r} "
    "(values seen: {seen}); the label column must contain the favorable value"
)
MSG_NAN_PREDICTIONS = (
    "dataset.prediction: column {column!r} has {count} missing value(s) (first at row {row}); "
    "every row needs a prediction"
)
MSG_NONFINITE_SCORES = (
    "dataset.score: column {column!r} has {count} non-finite value(s) (inf, -inf, or a number "
    "too large for a float such as 1e400; first at row {row}); scores must be finite numbers"
)
# the text of probes.models.safety.PICKLE_REFUSED (importing it would import every probe)
MSG_PICKLE_REFUSED = (
    "model.path: {path} is a pickle/joblib file; unpickling runs arbitrary code, so it is "
    "refused. Save the model with skops (.skops), or set model.trusted: true if you "
    "created this file yourself"
)
