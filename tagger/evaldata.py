"""The jet sets of ``trigger-ad tagger evaluate``: the signal, background and data-like files of a
sample folder, held out from the training of the models evaluated (:func:`load_jets`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tagger import metrics as tm
from triggerad.errors import InputFileError, StatisticsError
from triggerad.jets import JetBatch

#: Files of a sample folder (``trigger-ad tagger generate``), by role; .h5 preferred over .root.
SAMPLE_FILES = {"signal": "signal", "background": "background", "data_like": "shifted_sim"}


def sample_files(data_dir: str | Path) -> dict[str, Path]:
    """The signal, background and data-like files of a sample folder (jet HDF5 or PFNano ROOT).

    Raises
    ------
    InputFileError
        Naming the folder, the missing file and what the folder holds.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputFileError(f"--data {str(data_dir)!r}: not a folder; expected the output of "
                             "`trigger-ad tagger generate`")
    found = {}
    for role, stem in SAMPLE_FILES.items():
        path = next((data_dir / f"{stem}{s}" for s in (".h5", ".root")
                     if (data_dir / f"{stem}{s}").is_file()), None)
        if path is None:
            held = sorted(p.name for p in data_dir.iterdir())[:10]
            raise InputFileError(f"{data_dir}: no {stem}.h5 or {stem}.root ({role} sample); the "
                                 f"folder holds {held}")
        found[role] = path
    return found


def read_jets(path: Path, max_jets: int | None = None) -> JetBatch:
    """All jets of a jet HDF5 or PFNano file (at most ``max_jets``)."""
    from triggerad.io.registry import detect_reader, make_reader

    reader = make_reader(detect_reader(path, record="jets"), record="jets")
    batches, n = [], 0
    for batch in reader.iter_chunks(str(path)):
        batches.append(batch)
        n += len(batch)
        if max_jets is not None and n >= max_jets:
            break
    jets = JetBatch.concatenate(batches)
    return jets if max_jets is None else jets.take(slice(0, max_jets))


def training_files(model) -> tuple[set[str], float]:
    """Resolved paths of the files ``model`` was trained on, and its validation fraction."""
    info = model.data_info or {}
    files = {f for key in ("simulation", "domain") for f in ((info.get(key) or {}).get("files")
                                                             or [])}
    return files, float(info.get("validation_fraction") or 0.0)


def held_out(batch: JetBatch, path: Path, models: list) -> tuple[JetBatch, str]:
    """The jets of ``path`` that no model in ``models`` trained on, and which split that is.

    A file a model was trained on (or its twin in the other format: ``signal.root`` for
    ``signal.h5`` of the same folder, the same jets) contributes only its validation split (the
    events that :func:`tagger.pipeline.validation_mask` puts there: used for early stopping,
    never for the gradient); any other file all its jets.
    """
    from tagger.reading import validation_mask

    def same_jets(p) -> tuple[Path, str]:  # signal.h5 and signal.root of a folder hold the same
        p = Path(p).resolve()
        return p.parent, p.stem

    key = same_jets(path)
    for model in models:
        files, fraction = training_files(model)
        trained = key in {same_jets(f) for f in files}
        if trained and fraction > 0:
            return batch.take(validation_mask(batch, fraction)), f"validation ({fraction:g})"
        if trained:
            raise StatisticsError(f"{path}: the model {model.path} was trained on every jet of "
                                  "this file (no validation split); evaluate on another sample")
    return batch, "all"


def load_jets(data_dir: str | Path, max_jets: int | None = None, models: list | None = None
              ) -> tuple[dict[str, JetBatch], dict[str, Any]]:
    """The jet sets of :func:`model_numbers` from a sample folder, and their description.

    Files the ``models`` were trained on contribute their validation split only
    (:func:`held_out`).

    Raises
    ------
    StatisticsError
        If the folder holds no LLP jet or no labelled SM jet.
    """
    files = sample_files(data_dir)
    raw, splits = {}, {}
    for role, path in files.items():
        raw[role], splits[role] = held_out(read_jets(path, max_jets), path, models or [])
    labelled = JetBatch.concatenate([raw["signal"], raw["background"]])
    jets = {
        "llp": labelled.take(labelled.label == tm.LLP),
        "sm": labelled.take(labelled.label > tm.LLP),
        "sim_sm": raw["background"].take(raw["background"].domain == 0),
        "data_like": raw["data_like"],
    }
    for name, what in (("llp", "LLP"), ("sm", "labelled SM (b, c, uds, g)"),
                       ("sim_sm", "simulated SM"), ("data_like", "data-like")):
        if len(jets[name]) == 0:
            raise StatisticsError(f"{data_dir}: no {what} jets in {[str(p) for p in files.values()]}")
    info = {"files": {role: str(path) for role, path in files.items()}, "split": splits,
            "jets": {name: len(b) for name, b in jets.items()},
            "class_counts": labelled.class_counts()}
    return jets, info
