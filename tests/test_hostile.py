"""What a hostile user hits (issue 9): every bad input exits 2 with a message, never a traceback,
never loses data, never silently accepts a value that cannot be right."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import stream_samples as ss

from triggerad import lockfile
from triggerad.cli import main
from triggerad.errors import ConfigError
from triggerad.provenance import check_output_dir, check_output_file, write_provenance


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> list[Path]:
    return ss.write_stream(tmp_path_factory.mktemp("stream"), 1, 400)


def score(model, inputs, out, *extra) -> list[str]:
    return ["score", str(model), *map(str, inputs), "--out", str(out), "--no-progress", *extra]


def refused(argv, capsys, match: str) -> str:
    """Run the CLI: exit 2, ``match`` in stderr, no traceback."""
    assert main(list(map(str, argv))) == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert "Traceback" not in err
    return err


def usage_error(argv, capsys, match: str) -> None:
    """An argparse refusal (exit 2) naming the option."""
    with pytest.raises(SystemExit) as exc:
        main(list(map(str, argv)))
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def edited(model: Path, tmp_path: Path, file: str, change) -> Path:
    """A copy of ``model`` whose JSON ``file`` went through ``change(dict)`` (or is raw text)."""
    copy = tmp_path / "edited_model"
    shutil.copytree(model, copy)
    path = copy / file
    if isinstance(change, str):
        path.write_text(change)
    else:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return copy


# Data loss: --out ---------------------------------------------------------------------------------
def foreign_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    return folder


@pytest.mark.parametrize("argv", [
    ["evaluate", "{model}", "--data", "{data}", "--out", "{out}"],
    ["firmware", "{model}", "--out", "{out}"],
    ["train", "train-l1-fast", "--data", "{data}", "--out", "{out}"],
    ["generate", "generate-fast", "--events", "10", "--workers", "1", "--out", "{out}"],
    ["tagger", "generate", "tagger-generate-fast", "--events", "10", "--workers", "1",
     "--out", "{out}"],
    ["tagger", "train", "tagger-train-fast", "--data", "{folder}", "--out", "{out}"],
    ["tagger", "evaluate", "{model}", "--data", "{folder}", "--out", "{out}"],
    ["score", "{model}", "{data}", "--out", "{out}"],
], ids=lambda a: " ".join(a[:2]))
def test_out_refuses_a_folder_the_command_did_not_write(argv, model, stream, tmp_path, capsys):
    out = foreign_folder(tmp_path)
    fill = {"model": model, "data": stream[0], "folder": stream[0].parent, "out": out}
    argv = [a.format(**fill) for a in argv]
    command = argv[0] if argv[0] != "tagger" else f"tagger {argv[1]}"
    refused(argv, capsys, f"--out {out}: exists, is not empty and was not written by "
            f"'trigger-ad {command}' (it has no provenance.json of trigger-ad); its content "
            "would be lost. Choose another folder, or pass --force to replace it")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_evaluate_into_the_model_folder_keeps_the_model(model, stream, tmp_path, capsys):
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    before = sorted(p.name for p in copy.iterdir())
    refused(["evaluate", copy, "--data", stream[0], "--out", copy], capsys,
            "was not written by 'trigger-ad evaluate'")
    assert sorted(p.name for p in copy.iterdir()) == before


def test_train_into_a_folder_of_models_refused(tmp_path, capsys):
    models = tmp_path / "models"
    write_provenance(models / "old_model", "train")
    refused(["train", "train-l1-fast", "--out", models], capsys,
            f"--out {models}: exists, is not empty and was not written by 'trigger-ad train'")
    assert (models / "old_model" / "provenance.json").is_file()


def test_output_guard_recognises_own_output_force_and_markers(tmp_path):
    own = tmp_path / "report"
    write_provenance(own, "evaluate")
    check_output_dir(own, "evaluate")  # ours: may be replaced
    with pytest.raises(ConfigError, match=r"its provenance.json names 'trigger-ad evaluate'"):
        check_output_dir(own, "firmware")
    check_output_dir(own, "firmware", force=True)
    check_output_dir(tmp_path / "missing", "score")
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "score")
    unfinished = foreign_folder(tmp_path)
    (unfinished / "run.json").write_text("{}")
    check_output_dir(unfinished, "score", own_markers=("run.json",))
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / lockfile.LOCK_FILE).write_text("trigger-ad score, PID 1\n")
    check_output_dir(stale, "score")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out .*file: exists and is a file, expected a folder"):
        check_output_dir(tmp_path / "file", "score", force=True)


def test_output_file_guard(tmp_path):
    target = tmp_path / "f.parquet"
    check_output_file(target, "features")
    target.write_text("not ours")
    with pytest.raises(ConfigError, match=r"f.parquet: exists and was not written by "
                       r"'trigger-ad features'; its content would be lost"):
        check_output_file(target, "features")
    check_output_file(target, "features", force=True)
    (tmp_path / "f.provenance.json").write_text(json.dumps({"command": "features"}))
    check_output_file(target, "features")
    with pytest.raises(ConfigError, match=r"--out .*: is a folder, expected a file name"):
        check_output_file(tmp_path, "features", force=True)


def test_features_out_folder_or_foreign_file_refused_before_work(stream, tmp_path, capsys):
    folder = foreign_folder(tmp_path)
    refused(["features", stream[0], "--out", folder], capsys,
            f"--out {folder}: is a folder, expected a file name")
    target = folder / "thesis.tex"
    refused(["features", stream[0], "--out", target], capsys,
            f"--out {target}: exists and was not written by 'trigger-ad features'")
    assert target.read_text() == "years of work"


def test_score_out_is_a_file_or_foreign_folder(model, stream, tmp_path, capsys):
    file = tmp_path / "out.txt"
    file.write_text("x")
    refused(score(model, stream, file), capsys,
            f"--out {file}: exists and is a file, expected a folder")
    data = foreign_folder(tmp_path)
    (data / "summary.json").write_text('{"mine": 1}')
    refused(score(model, stream, data), capsys, "was not written by 'trigger-ad score'")
    assert (data / "summary.json").read_text() == '{"mine": 1}'


def test_score_force_and_own_rerun(model, stream, tmp_path):
    out = foreign_folder(tmp_path)
    assert main(score(model, stream, out, "--force")) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["events"] == 400
    assert (out / "thesis.tex").read_text() == "years of work"  # --force writes alongside
    assert main(score(model, stream, out)) == 0  # its own finished run: recognised, resumed
    again = json.loads((out / "summary.json").read_text())
    assert (again["events"], again["accepted"], again["events_this_run"]) == (
        400, first["accepted"], 0)
    assert first["events_dropped"] == 0
    assert not (out / lockfile.LOCK_FILE).exists()


# No lock ------------------------------------------------------------------------------------------
def test_second_score_into_the_same_out_refused_naming_the_pid(model, stream, tmp_path, capsys):
    out = tmp_path / "out"
    with lockfile.exclusive(out, "trigger-ad score"):
        refused(score(model, stream, out), capsys,
                f"{out}: another run is writing into this folder (trigger-ad score, PID "
                f"{os.getpid()} on ")
        assert not (out / "manifest.jsonl").exists()
    assert not (out / lockfile.LOCK_FILE).exists()
    assert main(score(model, stream, out)) == 0  # released: the next run goes ahead


# threshold.json -----------------------------------------------------------------------------------
def _set(key, value):
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize(("change", "match"), [
    (_set("value", float("nan")), "value must be a finite number, found nan"),
    (_set("value", float("inf")), "value must be a finite number, found inf"),
    (_set("value", "3.0"), "value must be a finite number, found '3.0'"),
    (lambda d: d.pop("value"), "missing 'value' (found keys ['input_rate_hz', 'score', "
     "'target_rate_hz'])"),
    (lambda d: d.pop("score"), "missing 'score'"),
    ('{\n  "score": "mu2_q",\n  "val', "unreadable or truncated"),
    ("[1, 2]", "expected a JSON object, found list"),
    (_set("selection", "score < value"), "selection 'score < value'; trigger-ad applies only "
     "'score > value' (the file was edited)"),
    (_set("score", "mu3_q"), "score 'mu3_q' is not a score of this model; did you mean 'mu2_q'?"),
], ids=["nan", "inf", "string", "no-value", "no-score", "truncated", "list", "selection",
        "unknown-score"])
def test_bad_threshold_json_refused_before_any_output(change, match, model, stream, tmp_path,
                                                      capsys):
    bad = edited(model, tmp_path, "threshold.json", change)
    out = tmp_path / "out"
    err = refused(score(bad, stream, out), capsys, match)
    assert f"{bad / 'threshold.json'}: " in err
    assert not out.exists()  # no run.json / manifest.jsonl left behind


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("command", ["firmware", "evaluate"])
def test_nonfinite_threshold_refused_by_firmware_and_evaluate(command, value, model, stream,
                                                              tmp_path, capsys):
    """No parameters.h with threshold_units = INT64_MIN, no report on 0 selected events."""
    bad = edited(model, tmp_path, "threshold.json", _set("value", value))
    out = tmp_path / "out"
    data = ["--data", stream[0]] if command == "evaluate" else []
    refused([command, bad, *data, "--out", out], capsys,
            f"{bad / 'threshold.json'}: value must be a finite number, found {value!r}; set it "
            "again with `trigger-ad threshold`")
    assert not out.exists()


def test_float_threshold_refused_by_the_firmware_command(model, tmp_path, capsys):
    """A cut on the float mu2 is not applied to mu2_q: exit 2 with the command that re-derives it."""
    bad = edited(model, tmp_path, "threshold.json", _set("score", "mu2"))
    out = tmp_path / "prj"
    refused(["firmware", bad, "--out", out], capsys,
            f"{bad}/threshold.json: the cut is on 'mu2', but the firmware computes 'mu2_q' "
            f"(anomaly encoder (score = sum of mu^2)); the same cut on another score gives another "
            f"rate than the one recorded. Set the threshold on the firmware score at the same "
            f"target: `trigger-ad threshold {bad} --rate 5000 --input-rate 100000 --score mu2_q`")
    assert not out.exists()


# artifact.json and weights ------------------------------------------------------------------------
def _scale(index, value):
    def change(d):
        d["normalisation"]["scale"][index] = value
    return change


@pytest.mark.parametrize(("file", "change", "match"), [
    ("artifact.json", _scale(0, 0.0), "normalisation.scale of 'MET_pT' is 0.0, must be finite "
     "and > 0 (1 bad values)"),
    ("artifact.json", _scale(3, float("nan")), "normalisation.scale of 'Electron0_pT' is nan"),
    ("artifact.json", lambda d: d["normalisation"].__setitem__("mean", [0.0] * 5),
     "normalisation.mean has shape (5,), expected (57,) (one per input name)"),
    ("artifact.json", lambda d: d["normalisation"].pop("scale"), "normalisation.scale missing"),
    ("artifact.json", _set("latent_dim", 5), "latent_dim 5 differs from config.model.latent_dim "
     "3 the weights were trained with"),
    ("artifact.json", _set("format_version", 99), "format_version 99 of l1_vae models; this "
     "trigger-ad reads format_version 1. Upgrade trigger-ad"),
    ("artifact.json", _set("kind", "l1_vea"), "unknown model kind 'l1_vea'; did you mean "
     "'l1_vae'?"),
    ("artifact.json", '{"format_version": 1, "kind": "l1_', "cannot read model description"),
    ("artifact.json", lambda d: d.__setitem__("input_names", d["input_names"][:5]),
     "normalisation.mean has shape (57,), expected (5,) (one per input name)"),
    ("artifact.json", lambda d: d["normalisation"].__setitem__("scale", [1.0] * 56),
     "normalisation.scale has shape (56,), expected (57,)"),
    ("artifact.json", lambda d: d.pop("normalisation"), "l1_vae model without 'normalisation'"),
])
def test_bad_artifact_json_refused(file, change, match, model, stream, tmp_path, capsys):
    bad = edited(model, tmp_path, file, change)
    refused(score(bad, stream, tmp_path / "out"), capsys, match)
    assert not (tmp_path / "out").exists()


def test_missing_or_corrupt_weights_refused(model, stream, tmp_path, capsys):
    bad = edited(model, tmp_path, "artifact.json", lambda d: None)
    (bad / "vae.weights.h5").unlink()
    refused(score(bad, stream, tmp_path / "out"), capsys,
            f"{bad}: weight file vae.weights.h5 missing; the folder is incomplete")
    shutil.rmtree(bad)
    bad = edited(model, tmp_path, "quantized_encoder.weights.h5", "not hdf5")
    refused(score(bad, stream, tmp_path / "out2"), capsys,  # the TensorFlow-free score file
            f"{bad / 'fastpath.json'}: built from another quantized_encoder.weights.h5 than the "
            "folder holds now (a weights file replaced or corrupt")
    refused(score(bad, stream, tmp_path / "out3", "--score", "all"), capsys,
            f"{bad / 'quantized_encoder.weights.h5'}: cannot load the weights")


# Impossible option values -------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "match"), [
    (["score", "M", "F", "--out", "o", "--chunk-size", "0"],
     "argument --chunk-size: expected a positive integer, found '0'"),
    (["score", "M", "F", "--out", "o", "--chunk-size=-3"],
     "argument --chunk-size: expected a positive integer, found '-3'"),
    (["score", "M", "F", "--out", "o", "--workers", "0"],
     "argument --workers: expected a positive integer, found '0'"),
    (["firmware", "M", "--out", "o", "--events", "-1"],
     "argument --events: expected an integer >= 0 (0: all), found '-1'"),
    (["evaluate", "M", "--data", "D", "--out", "o", "--max-signal-events", "-1"],
     "argument --max-signal-events: expected a positive integer, found '-1'"),
    (["features", "F", "--out", "o.parquet", "--chunk-size", "0"],
     "argument --chunk-size: expected a positive integer, found '0'"),
    (["generate", "generate-fast", "--out", "o", "--events", "-1"],
     "argument --events: expected a positive integer, found '-1'"),
    (["quickstart", "--events", "0"], "argument --events: expected a positive integer, found '0'"),
    (["quickstart", "--workers", "0"],
     "argument --workers: expected a positive integer, found '0'"),
    (["tagger", "quickstart", "--workers", "0"],
     "argument --workers: expected a positive integer, found '0'"),
])
def test_impossible_counts_refused_by_the_parser(argv, match, capsys):
    usage_error(argv, capsys, match)


@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("=-1e34", "-1e+34"),
                                               ("-1e34", "-1e+34"), ("1e300", "1e+300"),
                                               ("nan", "nan")])
def test_threshold_luminosity_must_be_physical(value, shown, model, capsys):
    option = ["--luminosity" + value] if value.startswith("=") else ["--luminosity", value]
    err = refused(["threshold", model, "--rate", "1kHz", *option], capsys,
                  "--luminosity: expected an instantaneous luminosity in cm^-2 s^-1 in "
                  f"(0, 1e+37) (LHC: ~2e34), found {shown}")
    assert len(err) < 300  # no 300-digit number


def test_empty_train_yaml_refused(tmp_path, capsys):
    empty = tmp_path / "train.yaml"
    empty.write_text("# nothing yet\n")
    refused(["train", empty, "--out", tmp_path / "m"], capsys,
            f"{empty}: the config is empty; expected the sections data, model, training, "
            "quantization")


@pytest.mark.parametrize(("key", "value"), [("learning_rate", -0.001), ("learning_rate", 0),
                                            ("min_lr", -1)])
def test_negative_learning_rate_refused(key, value, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"training:\n  {key}: {value}\n")
    refused(["train", cfg, "--out", tmp_path / "m"], capsys,
            f"{key} must be a positive finite number, found {value!r}")


def test_negative_pid_gain_and_missing_control_section(model, stream, tmp_path, capsys):
    gains = tmp_path / "rc.yaml"
    gains.write_text("control:\n  kp: -0.3\n")
    refused(score(model, stream, tmp_path / "o1", "--rate-control", gains), capsys,
            "kp must be >= 0 (a negative gain drives the rate away from the target), found -0.3")
    section = tmp_path / "rc2.yaml"
    section.write_text("kp: 0.3\nki: 0.6\n")
    refused(score(model, stream, tmp_path / "o2", "--rate-control", section), capsys,
            f"{section}: no 'control' section (found ['ki', 'kp'])")


# Physically impossible inputs ---------------------------------------------------------------------
def impossible_file(folder: Path, problem: str) -> Path:
    from triggerad.io.adc2021 import write_h5

    batch = ss.drifting_batch(50, seed=5)
    if problem == "negative pT":
        batch.objects[3, 9, 0] = -20.0
    elif problem == "huge pT":
        batch.objects[[3, 7], 0, 0] = 1e30
    else:
        batch.objects[3, 9, :3] = (50.0, 0.0, 4.0)
    path = folder / f"{problem.replace(' ', '_')}.h5"
    write_h5(path, batch)
    return path


@pytest.mark.parametrize(("problem", "found", "n_bad"), [
    ("negative pT", "pT < 0 (1 events)", 1),
    ("huge pT", "pT > 14000 GeV (2 events)", 2),
    ("phi", "|phi| > pi (1 events)", 1),
])
def test_unphysical_inputs_error_or_drop_counted(problem, found, n_bad, tmp_path, capsys):
    import pandas as pd

    path = impossible_file(tmp_path, problem)
    out = tmp_path / "f.parquet"
    refused(["features", path, "--out", out], capsys,
            f"{path}: {n_bad} of 50 events in entries [0, 50) hold physically impossible "
            f"objects: {found}; to skip them (counted) use --unphysical drop")
    assert not out.exists()
    assert main(["features", str(path), "--out", str(out), "--unphysical", "drop"]) == 0
    assert len(pd.read_parquet(out)) == 50 - n_bad
    prov = json.loads((tmp_path / "f.provenance.json").read_text())
    assert (prov["events_dropped_unphysical"], prov["events_dropped_nonfinite"]) == (n_bad, 0)


def test_unphysical_inputs_in_score(model, tmp_path, capsys):
    path = impossible_file(tmp_path, "negative pT")
    refused(score(model, [path], tmp_path / "o1", "--on-error", "fail"), capsys,
            "hold physically impossible objects: pT < 0 (1 events)")
    assert main(score(model, [path], tmp_path / "o2", "--unphysical", "drop")) == 0
    summary = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert (summary["events"], summary["events_dropped"]) == (49, 1)


def test_nan_hint_names_options_that_exist(tmp_path, capsys):
    from triggerad.io.adc2021 import write_h5

    batch = ss.drifting_batch(20, seed=2)
    batch.objects[4, 0, 0] = np.nan
    path = tmp_path / "nan.h5"
    write_h5(path, batch)
    refused(["features", path, "--out", tmp_path / "f.parquet"], capsys,
            "to skip them (counted) use --nonfinite drop (trigger-ad features, score)")
    assert main(["features", str(path), "--out", str(tmp_path / "f.parquet"),
                 "--nonfinite", "drop"]) == 0


def test_threshold_without_rates_refused_for_score(model, stream, tmp_path, capsys):
    bad = edited(model, tmp_path, "threshold.json", lambda d: d.pop("input_rate_hz"))
    refused(score(bad, stream, tmp_path / "out"), capsys,
            "threshold.json lacks 'input_rate_hz' (a cut set by hand?)")
    assert not (tmp_path / "out").exists()


# Rate monitor -------------------------------------------------------------------------------------
def test_one_block_is_not_plotted(model, stream, tmp_path, capsys):
    """400 events without lumi information: one block, no one-point plot on a [-0.05, 0.05] axis."""
    out = tmp_path / "out"
    assert main(score(model, stream, out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["monitor"]["blocks"], summary["monitor"]["plots"]) == (1, False)
    assert not (out / "rate_vs_block.png").exists()
    assert f"{out}: one block (no lumi-block information" in capsys.readouterr().err
    assert len((out / "blocks.csv").read_text().splitlines()) == 2


def test_particles_stored_as_strings_refused(stream, tmp_path, capsys):
    import h5py

    path = tmp_path / "strings.h5"
    with h5py.File(stream[0]) as src, h5py.File(path, "w") as dst:
        for name in src:
            data = src[name][:]
            if name == "Particles":
                data = np.char.mod("%.1f", data).astype("S8")  # b"12.5": numpy would convert it
            dst.create_dataset(name, data=data)
    refused(["features", path, "--out", tmp_path / "f.parquet"], capsys,
            f"{path}: dataset 'Particles' holds |S8 values (kind 'S'); expected numbers")


# Write errors: read-only folder, full disk ---------------------------------------------------------
def test_read_only_output_folder_is_a_message(stream, tmp_path, monkeypatch, capsys):
    import errno
    import tempfile

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    refused(["features", stream[0], "--out", tmp_path / "f.parquet"], capsys,
            f"trigger-ad features: error: cannot write {tmp_path}: Permission denied (outputs are "
            "written atomically: nothing half-written is left; re-run once it is fixed)")


def test_full_disk_during_features_and_score(model, stream, tmp_path, monkeypatch, capsys):
    import errno

    import pyarrow.parquet as pq

    from triggerad.stream import runner

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    refused(["features", stream[0], "--out", tmp_path / "f.parquet"], capsys,
            "cannot write the output: No space left on device (outputs are written atomically")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.setattr(runner, "write_part", full)
    refused(score(model, stream, tmp_path / "out"), capsys,
            "cannot write the output: No space left on device")
    assert (tmp_path / "out" / "run.json").is_file()
    monkeypatch.undo()  # space again: the unfinished run is recognised as score's and resumed
    assert main(score(model, stream, tmp_path / "out")) == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["events"] == 400


# Generation config --------------------------------------------------------------------------------
def test_invalid_pythia_setting_refused_before_generation(tmp_path, capsys):
    import yaml

    from triggerad.config import resolve_config

    cfg = yaml.safe_load(resolve_config("generate-fast").read_text())
    cfg["processes"]["W"]["settings"].append("WeakSingleBoson:ffbar2Wprime = on")
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    refused(["generate", path, "--events", "10", "--workers", "1", "--out", out], capsys,
            f"{path}: processes.W: Pythia rejects the setting 'WeakSingleBoson:ffbar2Wprime = on' "
            "(unknown name, or a value that is not meaningful for it)")
    assert not out.exists()


def test_invalid_pythia_setting_refused_before_tagger_generation(tmp_path, capsys):
    import yaml

    from triggerad.config import resolve_config

    cfg = yaml.safe_load(resolve_config("tagger-generate-fast").read_text())
    cfg["signals"]["HSS_m40_bb"]["settings"] = ["HiggsSM:gg2HH = on"]
    path = tmp_path / "llp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    refused(["tagger", "generate", path, "--events", "10", "--workers", "1", "--out", out],
            capsys, f"{path}: signals.HSS_m40_bb: Pythia rejects the setting "
            "'HiggsSM:gg2HH = on' (unknown name, or a value that is not meaningful for it)")
    assert not out.exists()
    # the packaged config's settings (signal models included) are all accepted
    cfg["signals"]["HSS_m40_bb"]["settings"] = []
    path.write_text(yaml.safe_dump(cfg))
    from tagger.samples import load_config
    from triggerad.cli.tagger.generate import pythia_groups
    from triggerad.generation.pythia import check_settings

    groups = pythia_groups(load_config(path), str(path))
    assert set(groups) == {"beam", "signals.HSS_m15_bb", "signals.HSS_m40_bb",
                           "signals.HSS_m55_bb", "signals.HSS_m40_qq", "processes.QCD",
                           "processes.ttbar", "processes.shifted:QCD", "processes.shifted:ttbar"}
    check_settings(groups, str(path))


# Executor -----------------------------------------------------------------------------------------
def test_unreachable_or_malformed_scheduler(model, stream, tmp_path, monkeypatch, capsys):
    import dask.distributed

    refused(score(model, stream, tmp_path / "o1", "--executor", "dask", "--scheduler",
                  "tcp://host:abc"), capsys,
            "--scheduler 'tcp://host:abc': cannot connect (invalid literal for int() with base "
            "10: 'abc'); expected the address of a running Dask scheduler, e.g. tcp://host:8786")

    def unreachable(address, timeout):
        raise OSError(f"Timed out trying to connect to {address} after {timeout}")

    monkeypatch.setattr(dask.distributed, "Client", unreachable)
    refused(score(model, stream, tmp_path / "o2", "--executor", "dask", "--scheduler",
                  "tcp://127.0.0.1:1"), capsys,
            "--scheduler 'tcp://127.0.0.1:1': cannot connect (Timed out trying to connect to "
            "tcp://127.0.0.1:1 after 30s)")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_folder_given_to_features_without_reader(stream, tmp_path, capsys):
    refused(["features", stream[0].parent, "--out", tmp_path / "f.parquet"], capsys,
            f"{stream[0].parent}: cannot tell the reader from the suffix '' (known: .h5, .hdf5, "
            ".parquet, .pq, .root); pass --reader explicitly")


def test_diverged_training_is_not_saved():
    from anomaly.train import check_converged
    from triggerad.errors import TriggerADError

    check_converged([5.0, 3.0, 2.5, 2.6])
    check_converged([-40.0, -60.0, -55.0])  # a negative log-likelihood may be negative
    with pytest.raises(TriggerADError, match=r"validation loss rose from 12 \(epoch 1\) to "
                       r"1\.5e\+06 \(epoch 3\); lower training.learning_rate"):
        check_converged([12.0, 900.0, 1.5e6])
    with pytest.raises(TriggerADError, match=r"validation loss nan at epoch 2"):
        check_converged([12.0, float("nan")])


def test_evaluate_threshold_without_fpr_refused(model, stream, tmp_path, capsys):
    bad = edited(model, tmp_path, "threshold.json", lambda d: None)  # the test model has no fpr
    refused(["evaluate", bad, "--data", stream[0].parent, "--out", tmp_path / "r"], capsys,
            f"{bad / 'threshold.json'}: lacks 'fpr' (a cut set by hand?)")
    assert not (tmp_path / "r").exists()


def test_model_without_its_training_sample_is_a_message(model, stream, tmp_path, capsys):
    """A model whose data_info records no training sample (edited, or not from `trigger-ad
    train`, like the test model): threshold / evaluate without --data say so, no KeyError."""
    lacks = ("data_info lacks 'background', 'reader', 'fingerprint', 'n_events', 'fractions', "
             "'split_seed' (found keys ['files']), so the {!r} split of the training sample cannot "
             "be reloaded")
    copy = edited(model, tmp_path, "threshold.json", lambda d: d.__setitem__("fpr", 0.05))
    refused(["threshold", copy, "--rate", "1kHz", "--input-rate", "100kHz"], capsys,
            f"{copy}/artifact.json: " + lacks.format("val"))
    refused(["evaluate", copy, "--data", stream[0].parent, "--out", tmp_path / "r"], capsys,
            f"{copy}/artifact.json: " + lacks.format("test"))
    assert not (tmp_path / "r").exists()
    assert main(["threshold", str(copy), "--fpr", "0.05", "--data", str(stream[0])]) == 0
