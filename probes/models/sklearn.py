"""scikit-learn models: load safely (skops), predict "selected" and the favorable-class score.

``.skops`` files are loaded with :func:`skops.io.load`, trusting only the types
that :func:`skops.io.get_untrusted_types` reports *and* that belong to an
allowlist (scikit-learn, NumPy, SciPy, skops, plain builtins and collections),
minus a denylist of functions that touch files, the network or evaluate code
(``builtins.eval``, ``numpy.load``, ``sklearn.datasets`` ...). Anything else is
refused with the list of offending types. Pickle/joblib files are loaded only
with ``model.trusted: true`` (see :mod:`probes.models.safety`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probes.base import ProbeError
from probes.models.safety import PICKLE_REFUSED, ModelLoadError, UnsafeModelError, is_pickle_file
from probes.util import canonical_label, file_sha256

_ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "skops.")
_ALLOWED_EXACT = frozenset(
    {
        f"builtins.{n}"
        for n in (
            "bool",
            "bytes",
            "bytearray",
            "complex",
            "dict",
            "float",
            "frozenset",
            "int",
            "list",
            "object",
            "range",
            "set",
            "slice",
            "str",
            "tuple",
            "NoneType",
        )
    }
    | {f"collections.{n}" for n in ("OrderedDict", "defaultdict", "Counter", "deque")}
)
# Members of allowed packages that read/write files, download, or run code.
_DENIED_PREFIXES = (
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.memmap",
    "numpy.genfromtxt",
    "numpy.loadtxt",
    "numpy.savetxt",
    "numpy.fromregex",
    "numpy.lib.npyio",
    "numpy.lib.format",
    "numpy.ctypeslib",
    "numpy.f2py",
    "numpy.testing",
    "numpy.distutils",
    "scipy.io",
    "scipy.datasets",
    "scipy.misc",
    "scipy.weave",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
    "sklearn.utils._show_versions",
    "skops.io._persist",
    "skops.io._audit",
)
SKLEARN_EXTENSIONS = ".skops (or, with model.trusted: true, .joblib/.pkl)"


def _allowed(type_name: str) -> bool:
    if type_name in _ALLOWED_EXACT:
        return True
    if any(
        type_name == d or type_name.startswith(d + ".") or type_name.startswith(d + "_")
        for d in _DENIED_PREFIXES
    ):
        return False
    return type_name.startswith(_ALLOWED_PREFIXES)


def allowed_type(type_name: str) -> bool:
    """Whether a type a .skops file names is on the allowlist (also the API's upload check)."""
    return _allowed(type_name)


def _load_skops(path: Path, *, trusted: bool) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - corrupt file: any skops/zip error
        raise ModelLoadError(f"model.path: {path} is not a valid .skops file ({exc})") from None
    refused = [t for t in untrusted if not _allowed(t)]
    if refused and not trusted:
        raise UnsafeModelError(
            f"model.path: {path} contains types outside the trusted allowlist "
            f"(scikit-learn, NumPy, SciPy, skops, builtins): {', '.join(sorted(refused))}. "
            "Rebuild the model from standard scikit-learn components, or set "
            "model.trusted: true if you created this file yourself"
        )
    return sio.load(path, trusted=list(untrusted))


def _is_skops_zip(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return "schema.json" in names and not any(n.endswith((".pkl", ".pickle")) for n in names)


def load_sklearn_estimator(path: Path, *, trusted: bool = False) -> Any:
    """Load the estimator in ``path`` (.skops always; pickle/joblib only when trusted)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model.path: file not found: {path} (expected {SKLEARN_EXTENSIONS})")
    if path.suffix.lower() == ".skops" or _is_skops_zip(path):
        return _load_skops(path, trusted=trusted)
    if is_pickle_file(path):
        if not trusted:
            raise UnsafeModelError(PICKLE_REFUSED.format(path=path))
        import joblib

        return joblib.load(path)  # trusted by the spec author: joblib reads plain pickles too
    raise ModelLoadError(
        f"model.path: {path} is not a scikit-learn model file; expected {SKLEARN_EXTENSIONS}"
    )


def to_model_values(col: pd.Series) -> pd.Series:
    """Undo the engine's typing of protected columns (string category) for the model.

    Protected columns arrive as string categories with an ``unknown`` level; a
    model trained on the raw column saw numbers when every known level is numeric
    text (CSV ``0``/``1`` codes), so those become numbers again; ``unknown`` (a
    missing value in the source) becomes NaN again.
    """
    if not isinstance(col.dtype, pd.CategoricalDtype):
        return col
    values = col.astype(object).where(col != "unknown", np.nan)
    levels = [c for c in col.cat.categories if c != "unknown"]
    numeric = pd.to_numeric(pd.Series(levels, dtype=object), errors="coerce")
    if levels and not numeric.isna().any():
        return pd.to_numeric(values, errors="coerce")
    return values


class ModelPredictionError(ProbeError):
    """The model raised while predicting on the dataset (wrong columns, unseen values ...)."""


class SklearnAdapter:
    """A fitted scikit-learn classifier behind the :class:`probes.base.ModelAdapter` protocol.

    ``predict`` says whether each row is *selected* (predicted label equals the
    favorable label); ``score`` is the predicted probability of the favorable
    class (None without ``predict_proba``). With ``threshold`` other than 0.5,
    selection is ``score >= threshold`` instead of the estimator's own ``predict``.
    """

    kind = "sklearn"

    def __init__(
        self,
        *,
        estimator: Any,
        sha256: str,
        features: Sequence[str] | None = None,
        favorable_label: Any = 1,
        threshold: float = 0.5,
    ) -> None:
        self.estimator = estimator
        self.sha256 = sha256
        names = getattr(estimator, "feature_names_in_", None)
        self._named = names is not None
        if names is not None:
            self.features: tuple[str, ...] = tuple(str(n) for n in names)
        elif features:
            self.features = tuple(features)
        else:
            raise ModelLoadError(
                "model.features: the model does not record its input columns "
                "(no feature_names_in_; it was fitted on an array); list them in model.features"
            )
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise ModelLoadError(
                "model.path: the model is not a fitted classifier (no classes_); "
                "model.kind sklearn needs a classifier"
            )
        self.classes = list(classes)
        hits = [i for i, c in enumerate(self.classes) if c == favorable_label]
        if not hits:
            target = canonical_label(favorable_label)
            hits = [i for i, c in enumerate(self.classes) if canonical_label(c) == target]
        if not hits:
            raise ModelLoadError(
                f"dataset.favorable_label: {favorable_label!r} is not one of the model's "
                f"classes {self.classes!r}"
            )
        self.favorable_index = hits[0]
        self.favorable_class = self.classes[hits[0]]
        self.threshold = float(threshold)
        self.has_proba = hasattr(estimator, "predict_proba")
        if self.threshold != 0.5 and not self.has_proba:
            raise ModelLoadError(
                f"model.threshold: {threshold} needs a model with predict_proba; "
                "this one has none (leave threshold at 0.5 to use its predict)"
            )

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame | np.ndarray:
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ModelLoadError(
                f"model.features: column(s) {missing} not found in the dataset; the model "
                f"needs {list(self.features)}; dataset columns are {list(frame.columns)}"
            )
        x = pd.DataFrame({f: to_model_values(frame[f]) for f in self.features})
        # A model fitted on an array (no feature_names_in_) gets an array, in model.features order.
        return x if self._named else x.to_numpy()

    def _call(self, method: str, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        try:
            return np.asarray(getattr(self.estimator, method)(x))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ModelPredictionError(
                f"model.path: the model's {method} failed on dataset columns "
                f"{list(self.features)}: {exc} (missing values in protected columns reach "
                "the model as NaN; the model must accept the dataset as audited)"
            ) from exc

    def predict_with_score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Selected (bool) and favorable-class probability (or None) in one pass."""
        x = self._inputs(frame)
        score = None
        if self.has_proba:
            score = self._call("predict_proba", x).astype(float)[:, self.favorable_index]
        if self.threshold != 0.5 and score is not None:
            return score >= self.threshold, score
        return np.asarray(self._call("predict", x) == self.favorable_class, dtype=bool), score

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean array: True where the predicted label is the favorable label."""
        return self.predict_with_score(frame)[0]

    def score(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Probability of the favorable class, or None if the model has no predict_proba."""
        if not self.has_proba:
            return None
        x = self._inputs(frame)
        return self._call("predict_proba", x).astype(float)[:, self.favorable_index]


def load_sklearn(
    *,
    path: Path,
    trusted: bool = False,
    features: Sequence[str] | None = None,
    favorable_label: Any = 1,
    threshold: float = 0.5,
) -> SklearnAdapter:
    """Load a scikit-learn classifier from ``path`` and wrap it (see :class:`SklearnAdapter`)."""
    estimator = load_sklearn_estimator(path, trusted=trusted)
    return SklearnAdapter(
        estimator=estimator,
        sha256=file_sha256(path),
        features=features,
        favorable_label=favorable_label,
        threshold=threshold,
    )
