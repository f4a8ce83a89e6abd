"""Pickle-based model files are refused (and never unpickled); paths stay inside their root."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from audit.errors import MSG_PICKLE_REFUSED
from probes.models import (
    PICKLE_REFUSED,
    ModelLoadError,
    UnsafeModelError,
    load_model,
    resolve_within,
)
from probes.models.safety import check_not_pickle, pickle_reason


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def _write(kind: str, target: Path, marker: Path) -> None:
    payload = _Payload(marker)
    if kind == "pickle5":
        target.write_bytes(pickle.dumps(payload, protocol=5))
    elif kind == "pickle0":
        target.write_bytes(pickle.dumps(payload, protocol=0))
    elif kind == "joblib":
        joblib.dump(payload, target)
    elif kind == "joblib-zlib":
        joblib.dump(payload, target, compress=3)
    elif kind == "gzip":
        target.write_bytes(gzip.compress(pickle.dumps(payload, protocol=4)))
    elif kind == "torch":
        import torch

        torch.save(payload, target)
    else:  # pragma: no cover - test table typo
        raise AssertionError(kind)
    assert not marker.exists()


def test_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    # Guard against a toothless payload: plain pickle.loads does create the file.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_refusal_message_matches_audit_constant() -> None:
    assert PICKLE_REFUSED == MSG_PICKLE_REFUSED


CASES = [
    ("pickle5", "model.pkl"),
    ("pickle5", "model"),
    ("pickle0", "model.dat"),
    ("pickle5", "pytorch_model.bin"),
    ("joblib", "model.joblib"),
    ("joblib", "model_no_ext"),
    ("joblib-zlib", "model.z"),
    ("gzip", "model.gz"),
    ("torch", "model.pt"),
    ("torch", "weights.pth"),
    ("torch", "torch_no_ext"),
]


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_pickle_files_refused_and_never_loaded(tmp_path: Path, kind: str, name: str) -> None:
    target, marker = tmp_path / name, tmp_path / "pwned"
    _write(kind, target, marker)
    assert pickle_reason(target) is not None
    with pytest.raises(UnsafeModelError) as err:
        load_model(kind="sklearn", path=target)
    assert str(err.value) == PICKLE_REFUSED.format(path=target)
    with pytest.raises(UnsafeModelError):
        check_not_pickle(target, trusted=False)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle5", "pickle0", "joblib", "joblib-zlib", "torch"])
def test_content_sniffing_without_extension(tmp_path: Path, kind: str) -> None:
    target, marker = tmp_path / "model.skops.txt", tmp_path / "pwned"
    _write(kind, target, marker)
    reason = pickle_reason(target)
    assert reason is not None and "extension" not in reason
    assert not marker.exists()


def test_non_pickle_files_are_not_flagged(tmp_path: Path) -> None:
    import skops.io as sio

    csv = tmp_path / "data.csv"
    csv.write_text("a,b,c\n1,2,3\ncat,dog,(x)\n")
    sk = tmp_path / "m.skops"
    x = np.random.default_rng(0).normal(size=(40, 2))
    sio.dump(LogisticRegression().fit(x, x[:, 0] > 0), sk)
    st = tmp_path / "model.safetensors"
    st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"__metadata__":{}}')
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "bert"}')
    for p in (csv, sk, st, cfg):
        assert pickle_reason(p) is None, p
        check_not_pickle(p, trusted=False)


def test_trusted_joblib_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x1": rng.normal(size=80), "x2": rng.normal(size=80)})
    est = LogisticRegression().fit(frame, (frame.x1 > 0).astype(int))
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    with pytest.raises(UnsafeModelError):
        load_model(kind="sklearn", path=path)
    model = load_model(kind="sklearn", path=path, trusted=True)
    assert model is not None
    np.testing.assert_array_equal(model.predict(frame), est.predict(frame) == 1)  # type: ignore[attr-defined]


def test_huggingface_folder_with_malicious_pickle_weights_refused(tmp_path: Path) -> None:
    folder, marker = tmp_path / "hf", tmp_path / "pwned"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    _write("torch", folder / "pytorch_model.bin", marker)
    # The Hugging Face loader reads *.bin only with torch's restricted unpickler.
    with pytest.raises(UnsafeModelError, match=r"pytorch_model\.bin is a pickle .* refuses"):
        load_model(kind="huggingface", path=folder, task="text-classification")
    assert not marker.exists()


def test_resolve_within(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    (root / "models").mkdir(parents=True)
    outside = tmp_path / "secret.skops"
    outside.write_text("x")
    assert resolve_within("models/a.skops", root) == root.resolve() / "models" / "a.skops"
    assert resolve_within(root / "models" / "a.skops", root) == root.resolve() / "models/a.skops"
    for bad in ("../secret.skops", "models/../../secret.skops", str(outside), "/etc/passwd"):
        with pytest.raises(UnsafeModelError, match="outside the allowed folder"):
            resolve_within(bad, root, field="model.path")
    link = root / "models" / "link.skops"
    os.symlink(outside, link)
    with pytest.raises(UnsafeModelError, match=r"model\.path"):
        resolve_within("models/link.skops", root)
    dirlink = root / "escape"
    os.symlink(tmp_path, dirlink)
    with pytest.raises(UnsafeModelError):
        resolve_within("escape/secret.skops", root)


# --- ONNX: external data must stay beside the model ---------------------------------------


def _onnx_model(folder: Path, *, location: str | None = None, two_outputs: bool = False) -> Path:
    """A logistic model built with the onnx package; W optionally stored as external data."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.array([[1.0, -1.0], [-2.0, 2.0]] if two_outputs else [[1.0], [-2.0]], np.float32)
    init = numpy_helper.from_array(w, "W")
    if location is not None:
        target = Path(location) if Path(location).is_absolute() else folder / location
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(init.raw_data)
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(w.nbytes))):
            init.external_data.add(key=key, value=value)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])
    if two_outputs:
        nodes = [
            helper.make_node("MatMul", ["X", "W"], ["z"]),
            helper.make_node("Softmax", ["z"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ]
        outs = [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ]
    else:
        nodes = [
            helper.make_node("MatMul", ["X", "W"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["probability"]),
        ]
        outs = [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])]
    graph = helper.make_graph(nodes, "g", [x], outs, initializer=[init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


def _onnx_frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})


def test_onnx_model_predicts(tmp_path: Path) -> None:
    frame = _onnx_frame()
    z = frame.a.to_numpy() - 2 * frame.b.to_numpy()
    path = _onnx_model(tmp_path)
    with pytest.raises(ModelLoadError, match=r"model\.features"):
        load_model(kind="onnx", path=path)
    model = load_model(kind="onnx", path=path, features=["a", "b"])
    sel, score = model.predict_with_score(frame)  # type: ignore[union-attr]
    np.testing.assert_allclose(score, 1 / (1 + np.exp(-z)), rtol=1e-5)
    np.testing.assert_array_equal(sel, score >= 0.5)
    (tmp_path / "two").mkdir()
    two = load_model(
        kind="onnx",
        path=_onnx_model(tmp_path / "two", two_outputs=True),
        features=["a", "b"],
        favorable_label=0,
    )
    sel0, score0 = two.predict_with_score(frame)  # type: ignore[union-attr]
    np.testing.assert_array_equal(sel0, z > 0)  # logit0 - logit1 = 2*z
    np.testing.assert_allclose(score0, 1 / (1 + np.exp(-2 * z)), rtol=1e-5)


def test_onnx_external_data_inside_folder_loads(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path, location="weights/w.bin")
    model = load_model(kind="onnx", path=path, features=["a", "b"])
    assert model is not None and model.predict(_onnx_frame()).dtype == bool  # type: ignore[attr-defined]


def test_onnx_external_data_outside_folder_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    for i, location in enumerate(("../secret.bin", str(secret))):
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        path = _onnx_model(folder, location=location)
        with pytest.raises(UnsafeModelError, match=r"model\.path: ONNX tensor 'W'.*outside"):
            load_model(kind="onnx", path=path, features=["a", "b"])
    folder = tmp_path / "link"
    folder.mkdir()
    os.symlink(secret, folder / "w.bin")
    path = _onnx_model(folder, location="w.bin")  # writes through the link, outside the folder
    with pytest.raises(UnsafeModelError, match="outside"):
        load_model(kind="onnx", path=path, features=["a", "b"])
