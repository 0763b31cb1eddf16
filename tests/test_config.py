"""The typed config loader: every annotation kind is checked, errors name file, key and value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from triggerad import config
from triggerad.errors import ConfigError


@dataclass
class Inner:
    size: int = 1
    mode: Literal["log", "linear"] = "log"


@dataclass
class Section:
    pair: tuple[int, str] = (1, "a")
    widths: tuple[float, ...] = ()
    seed: int | None = None
    files: list[str] | str = "all"
    inner: Inner = field(default_factory=Inner)
    layers: dict[str, Inner] = field(default_factory=dict)
    either: Inner | list[int] = field(default_factory=list)


@dataclass
class Top:
    section: Section = field(default_factory=Section)


def load(tmp_path, section: dict) -> Section:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"section": section}))
    return config.load(Top, path).section


def test_values_of_every_kind_are_converted(tmp_path):
    got = load(tmp_path, {"pair": [3, "b"], "widths": [1, 2.5], "seed": 7, "files": ["x.h5"],
                          "inner": {"size": 2}, "layers": {"d1": {"mode": "linear"}, 4: {}},
                          "either": {"size": 5}})
    assert got.pair == (3, "b") and got.widths == (1.0, 2.5)
    assert isinstance(got.widths[0], float) and got.seed == 7 and got.files == ["x.h5"]
    assert got.inner == Inner(2) and got.layers == {"d1": Inner(1, "linear"), "4": Inner()}
    assert got.either == Inner(5)
    assert load(tmp_path, {"either": [1, 2], "files": "some"}).either == [1, 2]
    assert load(tmp_path, {"seed": None}).seed is None


@pytest.mark.parametrize(("section", "message"), [
    ({"pair": [1, 2]}, r"c\.yaml\.section\.pair\[1\]: expected str, found 2$"),
    ({"pair": [1]}, r"section\.pair: expected 2 items \(tuple\[int, str\]\), found 1: \[1\]$"),
    ({"pair": "1,a"}, r"section\.pair: expected a list \(tuple\[int, str\]\), found '1,a'$"),
    ({"widths": [1, "x"]}, r"section\.widths\[1\]: expected a number, found 'x'$"),
    ({"seed": "four"}, r"section\.seed: expected int or null, found 'four' \(as int: expected an "
                       r"integer, found 'four'; as null: expected null, found 'four'\)$"),
    ({"files": [1]}, r"section\.files: expected list\[str\] or str, found \[1\] \(as list\[str\]: "
                     r"\[0\]: expected str, found 1; as str: expected str, found \[1\]\)$"),
    ({"either": {"sise": 2}}, r"section\.either: expected Inner or list\[int\], found \{'sise': 2\} "
                              r"\(as Inner: unknown key 'sise'; did you mean 'size'\? Valid: 'size', "
                              r"'mode'; as list\[int\]: expected a list \(list\[int\]\), found "
                              r"\{'sise': 2\}\)$"),
    ({"inner": {"mode": "lin"}}, r"section\.inner\.mode: expected one of 'log', 'linear', found "
                                 r"'lin'; did you mean 'linear'\?"),
    ({"inner": {"size": True}}, r"section\.inner\.size: expected an integer, found True$"),
    ({"inner": 3}, r"section\.inner: expected a mapping of keys, found 3$"),
    ({"layers": {"d1": {"size": 1.5}}}, r"section\.layers\.d1\.size: expected an integer, found 1\.5$"),
    ({"layers": [1]}, r"section\.layers: expected a mapping \(dict\[str, Inner\]\), found \[1\]$"),
    ({"pairs": [1, "a"]}, r"c\.yaml\.section: unknown key 'pairs'; did you mean 'pair'\?"),
])
def test_errors_name_file_key_expected_and_found(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, section)


def test_load_section_reads_one_section(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump({"inner": {"size": 4}, "other": {"anything": 1}}))
    assert config.load_section(Inner, path, "inner") == Inner(4)
    assert config.load_section(Inner, path, "absent") == Inner()
    path.write_text(yaml.safe_dump({"inner": {"siz": 4}}))
    with pytest.raises(ConfigError, match=r"shared\.yaml\.inner: unknown key 'siz'"):
        config.load_section(Inner, path, "inner")
