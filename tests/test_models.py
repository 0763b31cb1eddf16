"""The model-folder contract: artifact.json checks, the model-kind registry (entry points)."""

from __future__ import annotations

import json

import pytest

from triggerad import models
from triggerad.cli import main
from triggerad.errors import ConfigError, InputFileError
from triggerad.models import ModelFolderError, ModelKind


def folder(tmp_path, **meta):
    path = tmp_path / "model"
    path.mkdir()
    (path / models.ARTIFACT_FILE).write_text(json.dumps(meta))
    return path


class Toy(ModelKind):
    name = "toy_kind"
    format_versions = (2, 3)
    required_keys = ("input_names",)

    def load(self, path, meta):
        return ("toy", path.name, meta["input_names"])


@pytest.fixture
def toy():
    models.register_kind(Toy())
    yield
    models._RUNTIME.pop("toy_kind")


def test_anomaly_kinds_are_registered_through_entry_points():
    assert {"hlf_vae", "l1_vae"} <= set(models.kind_names())
    l1 = models.get_kind("l1_vae")
    assert l1.name == "l1_vae" and l1.input_fields == ("objects",) and l1.format_versions == (1,)
    assert "hlf" in models.get_kind("hlf_vae").input_fields


def test_not_a_model_folder(tmp_path):
    with pytest.raises(InputFileError, match=r"model: not a model folder \(no artifact.json\)"):
        models.load_model(tmp_path / "model")
    bad = folder(tmp_path)
    (bad / "artifact.json").write_text("{not json")
    with pytest.raises(InputFileError, match="artifact.json: cannot read model description"):
        models.load_model(bad)


def test_missing_format_version_says_what_is_missing(tmp_path):
    path = folder(tmp_path, kind="l1_vae", input_names=["a"])
    with pytest.raises(ModelFolderError, match=r"artifact.json: missing 'format_version': not a "
                       r"trigger-ad model folder, .* found keys \['input_names', 'kind'\]"):
        models.load_model(path)


def test_foreign_format_version_and_unknown_kind(tmp_path, toy):
    newer = folder(tmp_path, kind="toy_kind", format_version=4, input_names=[])
    with pytest.raises(ModelFolderError, match=r"format_version 4 of toy_kind models; this "
                       r"trigger-ad reads format_version 2, 3. Upgrade trigger-ad"):
        models.load_model(newer)
    (newer / "artifact.json").write_text(json.dumps({"kind": "toy_kind", "format_version": 1}))
    with pytest.raises(ModelFolderError, match="format_version 1 .* Retrain the model"):
        models.load_model(newer)
    (newer / "artifact.json").write_text(json.dumps({"kind": "l1vae", "format_version": 1}))
    with pytest.raises(ModelFolderError, match=r"kind: unknown model kind 'l1vae'; did you mean "
                       r"'l1_vae'\? Valid: .*'toy_kind'"):
        models.load_model(newer)


def test_kind_loads_the_folder_and_checks_its_keys(tmp_path, toy):
    path = folder(tmp_path, kind="toy_kind", format_version=3, input_names=["x", "y"])
    assert models.load_model(path) == ("toy", "model", ["x", "y"])
    assert isinstance(models.kind_of(path), Toy)
    (path / "artifact.json").write_text(json.dumps({"kind": "toy_kind", "format_version": 3}))
    with pytest.raises(ModelFolderError, match="toy_kind model without 'input_names'"):
        models.load_model(path)
    with pytest.raises(ConfigError, match="toy_kind models cannot be scored on a stream"):
        Toy().stream_scorer(path)


def test_score_refuses_a_foreign_folder_before_touching_anything(tmp_path, capsys):
    path = folder(tmp_path, kind="l1_vae", normalisation={})
    data = tmp_path / "data.h5"
    data.write_bytes(b"")
    out = tmp_path / "out"
    assert main(["score", str(path), str(data), "--out", str(out), "--no-progress"]) == 2
    assert "missing 'format_version'" in capsys.readouterr().err
    assert not out.exists()
