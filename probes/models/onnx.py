"""ONNX tabular classifiers run with onnxruntime (CPU), no pickle involved.

An ONNX file is a protobuf graph, so loading it runs no Python code. One risk
remains: tensors stored as *external data* name a file by path, and a crafted
model could point that path at ``/etc/shadow`` or ``../../secrets``. Every
external location must resolve inside the model's own folder
(:func:`probes.models.safety.resolve_within`) or the model is refused.

Inputs: either one 2-D float input (the columns listed in ``model.features``,
in order) or one input per column, named after the column. Outputs: a label
output (1-D) and/or a probability output (2-D matrix, or skl2onnx's ZipMap list
of dicts). Class order of a matrix comes from the ``ai.onnx.ml`` classifier node
(``classlabels_*``); otherwise two columns are read as classes ``[0, 1]`` and a
single column as the probability of the favorable class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probes.models.safety import ModelLoadError, UnsafeModelError, resolve_within
from probes.models.sklearn import canonical_label, file_sha256, to_model_values

_NP_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": object,
    "tensor(bool)": np.bool_,
}


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of a graph: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def check_external_data(model: Any, folder: Path) -> None:
    """Refuse external-data locations outside ``folder`` (``..``, absolute, symlinks)."""
    import onnx

    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        for entry in tensor.external_data:
            if entry.key == "location":
                try:
                    resolve_within(entry.value, folder, field="model.path")
                except UnsafeModelError:
                    raise UnsafeModelError(
                        f"model.path: ONNX tensor {tensor.name!r} reads external data from "
                        f"{entry.value!r}, outside the model's folder {folder.resolve()}; "
                        "external data files must sit beside the .onnx file"
                    ) from None


def _class_labels(model: Any) -> list[Any] | None:
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_int64s" and attr.ints:
                return list(attr.ints)
            if attr.name == "classlabels_strings" and attr.strings:
                return [s.decode() for s in attr.strings]
    return None


class OnnxAdapter:
    """An ONNX classifier behind the :class:`probes.base.ModelAdapter` protocol."""

    kind = "onnx"

    def __init__(
        self, *, path: Path, features: Sequence[str] | None, favorable_label: Any, threshold: float
    ) -> None:
        import onnx
        import onnxruntime as ort

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf decode errors vary
            raise ModelLoadError(f"model.path: {path} is not a valid ONNX model ({exc})") from None
        check_external_data(proto, path.parent)
        self.sha256 = file_sha256(path)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        if len(self.inputs) == 1 and len(self.inputs[0].shape) == 2:
            if not features:
                raise ModelLoadError(
                    "model.features: this ONNX model takes one feature matrix; list its "
                    "columns, in order, in model.features"
                )
            self.features = tuple(features)
            self._matrix = True
        else:
            self.features = tuple(i.name for i in self.inputs)
            self._matrix = False
        self.classes = _class_labels(proto)
        self.favorable = canonical_label(favorable_label)
        self.threshold = float(threshold)

    def _feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ModelLoadError(
                f"model.features: column(s) {missing} not found in the dataset; the model "
                f"needs {list(self.features)}"
            )
        cols = {f: to_model_values(frame[f]) for f in self.features}
        if self._matrix:
            dtype = _NP_TYPES.get(self.inputs[0].type, np.float32)
            x = np.column_stack([np.asarray(cols[f], dtype=float) for f in self.features])
            return {self.inputs[0].name: x.astype(dtype)}
        return {
            i.name: np.asarray(cols[i.name], dtype=_NP_TYPES.get(i.type, np.float32)).reshape(-1, 1)
            for i in self.inputs
        }

    def _favorable_column(self, width: int) -> int:
        classes = (
            self.classes
            if self.classes is not None and len(self.classes) == width
            else ([0, 1] if width == 2 else None)
        )
        if width == 1:
            return 0
        hits = [i for i, c in enumerate(classes or []) if canonical_label(c) == self.favorable]
        if not hits:
            raise ModelLoadError(
                f"dataset.favorable_label: {self.favorable!r} is not one of the ONNX model's "
                f"classes {classes!r}"
            )
        return hits[0]

    def predict_with_score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Selected (bool) and favorable-class probability (or None) in one pass."""
        labels: np.ndarray | None = None
        score: np.ndarray | None = None
        for out in self.session.run(None, self._feed(frame)):
            if isinstance(out, list):  # ZipMap: one {class: probability} per row
                key = (
                    next((k for k in out[0] if canonical_label(k) == self.favorable), None)
                    if out
                    else None
                )
                if key is None:
                    raise ModelLoadError(
                        f"dataset.favorable_label: {self.favorable!r} is not one of the ONNX "
                        f"model's classes {list(out[0]) if out else []}"
                    )
                score = np.array([row[key] for row in out], dtype=float)
            elif out.ndim == 2 and np.issubdtype(out.dtype, np.floating):
                score = out[:, self._favorable_column(out.shape[1])].astype(float)
            elif out.ndim == 1 and np.issubdtype(out.dtype, np.floating) and score is None:
                score = out.astype(float)
            elif out.ndim == 1 and labels is None:
                labels = out
        if labels is not None and (self.threshold == 0.5 or score is None):
            return np.array(
                [canonical_label(v) == self.favorable for v in labels], dtype=bool
            ), score
        if score is None:
            raise ModelLoadError(
                "model.path: the ONNX model has neither a label nor a score output"
            )
        return score >= self.threshold, score

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_with_score(frame)[0]

    def score(self, frame: pd.DataFrame) -> np.ndarray | None:
        return self.predict_with_score(frame)[1]


def load_onnx(
    *,
    path: Path,
    features: Sequence[str] | None = None,
    favorable_label: Any = 1,
    threshold: float = 0.5,
) -> OnnxAdapter:
    """Load an ONNX classifier (see the module docstring for inputs and outputs)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ModelLoadError(
            "model.kind: onnx needs the packages onnx and onnxruntime "
            "(pip install onnxruntime onnx)"
        ) from None
    return OnnxAdapter(
        path=Path(path), features=features, favorable_label=favorable_label, threshold=threshold
    )
