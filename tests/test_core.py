"""Core: typed configs, atomic writes, provenance, the event record and the CLI front end."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest
import yaml

from triggerad import atomic, config
from triggerad.cli import build_parser, main
from triggerad.errors import ConfigError, ShapeError
from triggerad.events import EventBatch
from triggerad.provenance import write_provenance


@dataclass
class Model:
    hidden: list[int] = field(default_factory=lambda: [50, 50])
    latent_dim: int = 4
    beta: float = 0.3
    kind: Literal["hlf_vae", "l1_vae"] = "hlf_vae"


@dataclass
class Data:
    background: str
    seed: int | None = None


@dataclass
class Top:
    data: Data
    model: Model = field(default_factory=Model)


def write(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_loads_and_converts(tmp_path):
    cfg = config.load(Top, write(tmp_path, {"data": {"background": "b.h5"},
                                            "model": {"beta": 1, "hidden": [8]}}))
    assert cfg.model.beta == 1.0 and isinstance(cfg.model.beta, float)
    assert cfg.model.hidden == [8] and cfg.data.seed is None
    assert yaml.safe_load(config.dump(cfg))["model"]["latent_dim"] == 4


def test_config_unknown_key_names_file_path_and_nearest(tmp_path):
    path = write(tmp_path, {"data": {"background": "b"}, "model": {"latnt_dim": 3}})
    with pytest.raises(ConfigError, match=r"c\.yaml\.model: unknown key 'latnt_dim'; did you mean 'latent_dim'"):
        config.load(Top, path)


def test_config_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'modle'; did you mean 'model'"):
        config.load(Top, write(tmp_path, {"data": {"background": "b"}, "modle": {}}))


def test_config_wrong_type_and_missing_key(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.latent_dim: expected an integer, found 'four'"):
        config.load(Top, write(tmp_path, {"data": {"background": "b"}, "model": {"latent_dim": "four"}}))
    with pytest.raises(ConfigError, match=r"model\.kind: expected one of 'hlf_vae', 'l1_vae', found 'l1vae'; did you mean 'l1_vae'"):
        config.load(Top, write(tmp_path, {"data": {"background": "b"}, "model": {"kind": "l1vae"}}))
    with pytest.raises(ConfigError, match=r"c\.yaml\.data: missing required key 'background'"):
        config.load(Top, write(tmp_path, {"data": {}}))
    with pytest.raises(ConfigError, match=r"hidden\[1\]: expected an integer, found 2\.5"):
        config.load(Top, write(tmp_path, {"data": {"background": "b"}, "model": {"hidden": [1, 2.5]}}))


def test_config_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        config.load(Top, bad)
    with pytest.raises(ConfigError, match="nope.yaml: no such config file"):
        config.resolve_config(tmp_path / "nope.yaml")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    atomic.write_text(target, "done")
    assert target.read_text() == "done" and len(list(tmp_path.iterdir())) == 1


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "model"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic.atomic_dir(target) as tmp:
            (tmp / "a").write_text("2")
            raise ValueError
    assert (target / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_provenance_written(tmp_path):
    write_provenance(tmp_path, "unit", Top(data=Data(background="x")), {"seed": 3})
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["command"] == "unit" and prov["seed"] == 3
    assert set(prov) >= {"trigger_ad_version", "git_hash", "python"}
    assert yaml.safe_load((tmp_path / "config.resolved.yaml").read_text())["data"]["background"] == "x"


def test_event_batch_validate_take_concatenate():
    a = EventBatch.empty(3, weight=np.array([1.0, 2.0, 3.0]))
    b = EventBatch.empty(2)
    both = EventBatch.concatenate([a, b])
    assert len(both) == 5
    np.testing.assert_array_equal(both.weight, [1, 2, 3, 1, 1])
    np.testing.assert_array_equal(both.take(both.weight > 1.5).weight, [2, 3])
    with pytest.raises(ShapeError, match=r"field 'jet_mass' expected shape \(3, 10\), found \(3, 9\)"):
        EventBatch.empty(3, jet_mass=np.zeros((3, 9), np.float32))


def test_cli_help_has_examples_for_every_command(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        assert "example:" in text and f"trigger-ad {name}" in text, name
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_cli_without_command_returns_nonzero(capsys):
    assert main([]) == 2
