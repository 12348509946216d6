"""Loading without processes: the C-library booster, the package fallback and XGBoost's own predict
agree (binary and multi-class, missing values, the large-batch path); which file is the model, and
what is refused before anything is loaded."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xgboost as xgb

from tallymark.serving import formats, model


def _mf(fmt: str = "ubj") -> formats.ModelFile:
    return formats.ModelFile("m." + fmt, "0" * 64, None, fmt)


@pytest.mark.parametrize("objective", ["binary:logistic", "multi:softprob"])
def test_native_and_package_boosters_equal_xgboost(objective: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 5))
    y = rng.integers(0, 3 if objective.startswith("multi") else 2, 600)
    params = {
        "objective": objective,
        "max_depth": 3,
        **({"num_class": 3} if objective.startswith("multi") else {}),
    }
    b = xgb.train(params, xgb.DMatrix(x, label=y), 6)
    data = bytes(b.save_raw("ubj"))
    x[3, 2] = np.nan  # XGBoost's missing value: the default branch
    want_small, want_large = b.predict(xgb.DMatrix(x[:7])), b.predict(xgb.DMatrix(x))
    native = model.from_bytes(data, _mf(), None, workspace="w", name="m", version="1")
    package = model.Loaded(model._PackageBooster(data, _mf()), native.schema, "w", "m", "1", _mf())
    for loaded in (native, package):
        assert np.array_equal(loaded.predict(x[:7]), want_small)
        assert np.array_equal(loaded.predict(x), want_large)  # ≥ LARGE_BATCH rows: every core
    assert native.objective == objective and native.schema.names == [f"f{i}" for i in range(5)]


def test_a_signature_that_disagrees_with_the_booster_is_refused() -> None:
    b = xgb.train({"max_depth": 2}, xgb.DMatrix(np.eye(3), label=[0, 1, 0], feature_names=["a", "b", "c"]), 2)
    data = bytes(b.save_raw("json"))
    sig = {"inputs": [{"name": "a"}, {"name": "c"}, {"name": "b"}]}
    with pytest.raises(model.LoadError, match="wrong order"):
        model.from_bytes(data, _mf("json"), sig, workspace="w", name="m", version="1")
    with pytest.raises(model.LoadError, match="lists 2 inputs but the booster takes 3"):
        model.from_bytes(
            data, _mf("json"), {"inputs": sig["inputs"][:2]}, workspace="w", name="m", version="1"
        )
    with pytest.raises(model.LoadError, match="string column"):
        model.from_bytes(
            data,
            _mf("json"),
            {"inputs": [{"name": "a", "type": "string"}]},
            workspace="w",
            name="m",
            version="1",
        )
    with pytest.raises(model.LoadError, match="not an XGBoost JSON model"):
        model.from_bytes(b'{"nope": 1}', _mf("json"), None, workspace="w", name="m", version="1")


def test_pickles_are_refused_however_they_are_named() -> None:
    b = xgb.train({"max_depth": 2}, xgb.DMatrix(np.eye(3), label=[0, 1, 0]), 2)
    raw = pickle.dumps(b)
    # bytes that start like a pickle, whatever the name or declared format says
    with pytest.raises(model.LoadError, match="stored as a pickle"):
        model.from_bytes(raw, _mf("ubj"), None, workspace="w", name="m", version="1")
    f = {"sha256": "a" * 64, "size": 1}
    assert formats.choose(None, [{"logicalPath": "m.joblib", **f}]).unpickles
    assert formats.choose({"format": "cloudpickle"}, [{"logicalPath": "model.bin", **f}]).unpickles
    assert formats.choose(None, [{"logicalPath": "out/xgboost-model", **f}]).format == "ubj"
    sig = {"logicalPath": "out/signature.json", **f}
    assert formats.choose(None, [sig, {"logicalPath": "out/m.json", **f}]).logical_path == "out/m.json"
    with pytest.raises(formats.ModelFormatError, match="several model files"):
        formats.choose(None, [{"logicalPath": "a.ubj", **f}, {"logicalPath": "b.json", **f}])
    with pytest.raises(formats.ModelFormatError, match="remote reference"):
        formats.choose(
            None, [{"logicalPath": "m.ubj", "sha256": None, "uri": "s3://b/m.ubj", "remote": True}]
        )
    with pytest.raises(formats.ModelFormatError, match="framework 'sklearn'"):
        formats.choose({"framework": "sklearn"}, [{"logicalPath": "m.ubj", **f}])
    with pytest.raises(formats.ModelFormatError, match="format 'onnx'"):
        formats.choose({"format": "onnx"}, [{"logicalPath": "m.onnx", **f}])
