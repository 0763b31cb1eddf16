"""Bad input: every case gives a clear error naming the file and field, and no output file."""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pandas as pd
import pytest
from io_samples import random_batch, write_flat

from triggerad import schema
from triggerad.cli import main
from triggerad.errors import (
    ConfigError,
    InputFileError,
    MissingFieldError,
    NonFiniteError,
    ShapeError,
)
from triggerad.events import EventBatch
from triggerad.io.adc2021 import Adc2021Reader, write_h5
from triggerad.io.base import ReadOptions
from triggerad.io.flat import FlatReader, ParquetReader, write_parquet
from triggerad.io.nanoaod import NanoAODReader, write_root
from triggerad.io.registry import expand_inputs, make_reader


@pytest.fixture
def h5(tmp_path):
    path = tmp_path / "good.h5"
    write_h5(path, random_batch(40))
    return path


@pytest.fixture
def nano(tmp_path):
    path = tmp_path / "good.root"
    write_root(path, random_batch(40))
    return path


def truncate(path, fraction, tmp_path):
    data = path.read_bytes()
    out = tmp_path / f"trunc{path.suffix}"
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_h5(h5, tmp_path, fraction):
    bad = truncate(h5, fraction, tmp_path)
    with pytest.raises(InputFileError, match=rf"{bad}: not a readable HDF5 file \(truncated"):
        Adc2021Reader().read(bad)


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_root(nano, tmp_path, fraction):
    bad = truncate(nano, fraction, tmp_path)
    with pytest.raises(InputFileError, match=rf"{bad}.*(truncated or corrupt)"):
        NanoAODReader().read(bad)


def test_truncated_parquet(tmp_path):
    frame = pd.DataFrame(np.ones((50, 21), np.float32), columns=list(schema.FEATURE_NAMES))
    write_parquet(tmp_path / "f.parquet", frame)
    bad = truncate(tmp_path / "f.parquet", 0.6, tmp_path)
    with pytest.raises(InputFileError, match=rf"{bad}: not a readable parquet file"):
        ParquetReader().read(bad)


@pytest.mark.parametrize(("suffix", "reader", "kind"), [
    (".h5", Adc2021Reader, "HDF5"), (".root", NanoAODReader, "ROOT"),
    (".parquet", ParquetReader, "parquet"),
])
def test_corrupt_file(tmp_path, suffix, reader, kind):
    bad = tmp_path / f"junk{suffix}"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(InputFileError, match=rf"{bad}: not a readable {kind} file"):
        reader().read(bad)


def test_missing_tree_lists_trees(nano):
    with pytest.raises(MissingFieldError, match=rf"{nano}: no tree 'Delphes'. Available trees "
                       r"\(nearest first\): 'Events'"):
        make_reader("delphes").read(nano)


def test_missing_branch_lists_at_most_ten_nearest_and_the_count(nano):
    reader = NanoAODReader({"electron": {"pt": "Electron_ptt"}})
    with pytest.raises(MissingFieldError) as err:
        reader.read(nano)
    text = str(err.value)
    assert text.startswith(f"{nano}:Events: no branch 'Electron_ptt' (NanoAOD preset 'triggerad', "
                           "trigger-ad NanoAOD-style files (generator output), detected from the "
                           "branches). Available: 34 branches; the nearest: 'Electron_pt', ")
    assert len(text.split("the nearest: ")[1].split(", ")) == 10


def test_garbage_name_gets_no_confident_suggestion():
    from triggerad.errors import did_you_mean, missing_field, nearest

    assert nearest("zzqx", ["Electron_pt", "Muon_pt"]) == []
    assert did_you_mean("zzqx", ["nanoaod", "delphes"]) == "valid: 'nanoaod', 'delphes'"
    assert did_you_mean("nanoaodd", ["nanoaod", "delphes"]).startswith("did you mean 'nanoaod'?")
    many = [f"Branch_{i}" for i in range(1500)]
    assert str(missing_field("branch", "qqqq", "f.root:Events", many)) == (
        "f.root:Events: no branch 'qqqq'. Available: none of the 1500 branches resembles 'qqqq'")
    assert str(missing_field("tree", "Events", "f.root", [])) == (
        "f.root: no tree 'Events'. There are no trees.")


def test_missing_dataset_lists_available(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["Particle"] = np.zeros((3, 19, 4))
        f["weight"] = np.ones(3)
    with pytest.raises(MissingFieldError, match=r"x.h5: no dataset 'Particles'. Available "
                       r"datasets \(nearest first\): 'Particle', 'weight'"):
        Adc2021Reader().read(tmp_path / "x.h5")


def test_missing_feature_column_lists_available(tmp_path):
    frame = pd.DataFrame(np.ones((3, 21), np.float32), columns=list(schema.FEATURE_NAMES))
    write_parquet(tmp_path / "f.parquet", frame.rename(columns={"METo": "MET_o"}))
    with pytest.raises(MissingFieldError, match=r"f.parquet: no column 'METo'. Available: 21 "
                       r"columns; the nearest: 'MET_o', 'METp', "):
        ParquetReader().read(tmp_path / "f.parquet")


def nan_h5(tmp_path):
    batch = random_batch(10)
    batch.objects[2, 0, 0] = np.nan
    batch.ele_iso[5, 0, 1] = np.inf
    write_h5(tmp_path / "nan.h5", batch)
    return tmp_path / "nan.h5", batch


def test_nonfinite_h5_error_counts(tmp_path):
    path, _ = nan_h5(tmp_path)
    with pytest.raises(NonFiniteError, match=rf"{path}: 2 of 10 events in entries \[0, 10\) hold "
                       r"NaN or inf in objects \(1 events\), ele_iso \(1 events\)"):
        Adc2021Reader().read(path)


def test_nonfinite_h5_drop_keeps_entries(tmp_path, caplog):
    path, batch = nan_h5(tmp_path)
    reader = Adc2021Reader(options=ReadOptions(chunk_size=4, nonfinite="drop"))
    with caplog.at_level(logging.WARNING):
        back = EventBatch.concatenate(list(reader.iter_chunks(path)))
    assert len(back) == 8
    np.testing.assert_array_equal(back.entry, [0, 1, 3, 4, 6, 7, 8, 9])
    np.testing.assert_array_equal(back.event, batch.event[[0, 1, 3, 4, 6, 7, 8, 9]])
    assert "1 of 4 events in entries [0, 4)" in caplog.text and "dropped" in caplog.text


def nan_nano(tmp_path):
    batch = random_batch(12)
    # a NaN pT would look like an empty slot after sorting: the raw branch check must see it
    batch.objects[3, 1, 0] = np.nan
    batch.objects[3, 1, 3] = 2
    write_root(tmp_path / "nan.root", batch)
    return tmp_path / "nan.root", batch


def test_nonfinite_root_error_names_branch(tmp_path):
    path, _ = nan_nano(tmp_path)
    with pytest.raises(NonFiniteError, match=rf"{path}:Events: 1 of 12 events .* hold NaN or inf "
                       r"in branches Electron_pt \(1 events\); to skip them \(counted\) use --nonfinite drop"):
        NanoAODReader().read(path)


def test_nonfinite_root_drop(tmp_path):
    path, batch = nan_nano(tmp_path)
    back = NanoAODReader(options=ReadOptions(nonfinite="drop")).read(path)
    assert len(back) == 11 and 3 not in back.entry
    np.testing.assert_array_equal(back.event, np.delete(batch.event, 3))


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_nonfinite_flat_and_parquet(tmp_path, mode):
    hlf = np.ones((6, 21), np.float32)
    hlf[[1, 4], 12] = [np.inf, np.nan]
    write_flat(tmp_path / "f.root", hlf)
    write_parquet(tmp_path / "f.parquet", pd.DataFrame(hlf, columns=list(schema.FEATURE_NAMES)))
    for reader, path in ((FlatReader, "f.root"), (ParquetReader, "f.parquet")):
        r = reader(options=ReadOptions(nonfinite=mode))
        if mode == "error":
            with pytest.raises(NonFiniteError, match=r"2 of 6 events .* hlf \(2 events\)"):
                r.read(tmp_path / path)
        else:
            np.testing.assert_array_equal(r.read(tmp_path / path).entry, [0, 2, 3, 5])


def test_empty_files(tmp_path):
    write_h5(tmp_path / "empty.h5", EventBatch.empty(0))
    with pytest.raises(InputFileError, match=r"empty.h5: file holds no events"):
        next(Adc2021Reader().iter_chunks(tmp_path / "empty.h5"))
    write_root(tmp_path / "empty.root", EventBatch.empty(0))
    with pytest.raises(InputFileError, match=r"empty.root: file holds no events"):
        next(NanoAODReader().iter_chunks(tmp_path / "empty.root"))
    (tmp_path / "zero.root").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"zero.root: not a readable ROOT file"):
        NanoAODReader().read(tmp_path / "zero.root")


def test_wrong_particles_shape(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["Particles"] = np.zeros((5, 19, 3), np.float32)
    with pytest.raises(ShapeError, match=r"x.h5: dataset 'Particles' expected shape \(N, 19, 4\), "
                       r"found \(5, 19, 3\)"):
        Adc2021Reader().read(tmp_path / "x.h5")


def test_wrong_extra_shape(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["Particles"] = np.zeros((5, 19, 4), np.float32)
        f["ele_iso"] = np.zeros((5, 4), np.float32)
    with pytest.raises(ShapeError, match=r"x.h5: dataset 'ele_iso' \(ele_iso\) expected shape "
                       r"\(5, 4, 3\), found \(5, 4\)"):
        Adc2021Reader().read(tmp_path / "x.h5")


def test_unreadable_paths(tmp_path):
    with pytest.raises(InputFileError, match=r"nope.h5: no such file"):
        Adc2021Reader().read(tmp_path / "nope.h5")
    with pytest.raises(InputFileError, match=r"is a folder, expected a file"):
        NanoAODReader().read(tmp_path)
    with pytest.raises(InputFileError, match=r"\*.root: the pattern matches no file"):
        expand_inputs([str(tmp_path / "*.root")])
    (tmp_path / "list.txt").write_text("# inputs\nmissing.h5\n")
    with pytest.raises(InputFileError, match=r"missing.h5: no such file"):
        expand_inputs([f"@{tmp_path / 'list.txt'}"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_permission_denied(h5):
    h5.chmod(0)
    with pytest.raises(InputFileError, match=rf"{h5}: cannot read"):
        Adc2021Reader().read(h5)


def test_unknown_reader_names_nearest():
    with pytest.raises(ConfigError, match=r"unknown reader 'nanoad'; did you mean 'nanoaod'"):
        make_reader("nanoad")


def assert_no_output(folder):
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(("out", ".out"))) == []


def test_failed_features_run_leaves_no_output(tmp_path, h5, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    out = tmp_path / "out" / "f.parquet"
    code = main(["features", str(h5), str(bad), "--reader", "adc2021", "--out", str(out)])
    assert code == 2
    assert "bad.h5: not a readable HDF5 file" in capsys.readouterr().err
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_failure_mid_run_leaves_no_output(tmp_path, h5, capsys):
    path, _ = nan_h5(tmp_path)  # the NaN shows up only while reading, after h5 was written
    out = tmp_path / "out.parquet"
    code = main(["features", str(h5), str(path), "--out", str(out), "--chunk-size", "16"])
    assert code == 2
    assert "hold NaN or inf" in capsys.readouterr().err
    assert_no_output(tmp_path)


def test_features_unknown_reader_is_a_usage_error(tmp_path, h5):
    with pytest.raises(SystemExit) as exc:
        main(["features", str(h5), "--reader", "nano", "--out", str(tmp_path / "o.parquet")])
    assert exc.value.code == 2


def test_jagged_branch_in_flat_ntuple(nano):
    reader = FlatReader({"tree": "Events", "features": {"HT": "Jet_pt"}})
    with pytest.raises(MissingFieldError, match=r"no branch 'allJetMass'"):
        reader.read(nano)  # the first feature branches are checked for presence first
    hlf_map = {f: "MET_pt" for f in schema.FEATURE_NAMES} | {"HT": "Jet_pt"}
    with pytest.raises(ShapeError, match=r"branch 'Jet_pt' \(HT\) is jagged"):
        FlatReader({"tree": "Events", "features": hlf_map}).read(nano)


def test_branch_map_with_mixed_auto_readers(tmp_path, h5, nano, capsys):
    (tmp_path / "map.yaml").write_text("tree: Events\n")
    code = main(["features", str(h5), str(nano), "--branch-map", str(tmp_path / "map.yaml"),
                 "--out", str(tmp_path / "out.parquet")])
    assert code == 2
    assert "the inputs need several readers (adc2021, nanoaod)" in capsys.readouterr().err
    assert_no_output(tmp_path)


@pytest.mark.parametrize("kind", ["adc2021", "nanoaod", "parquet"])
def test_num_entries_of_missing_file(tmp_path, kind):
    with pytest.raises(InputFileError, match=r"gone.dat: no such file"):
        make_reader(kind).num_entries(tmp_path / "gone.dat")
