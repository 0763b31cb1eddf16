"""Keras training helpers shared by the model kinds: device choice and the epoch progress bar."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def distribution_strategy():
    """``MirroredStrategy`` with more than one visible GPU, else the default strategy (one GPU
    if TensorFlow sees one, else the CPU)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    log.info("training on %s", "GPU" if gpus else "CPU")
    return tf.distribute.get_strategy()


def progress_callback(total: int, desc: str, keys: tuple[str, ...] | None = None):
    """A Keras callback showing a tqdm bar over epochs (stderr) with the latest losses.

    Parameters
    ----------
    total : int
        Epochs.
    desc : str
        Bar label.
    keys : tuple of str, optional
        Log entries shown; default every entry whose name contains ``loss``.
    """
    from tensorflow import keras
    from tqdm.auto import tqdm

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False)

        def on_epoch_end(self, epoch, logs=None):
            shown = {k: f"{v:.4g}" for k, v in (logs or {}).items()
                     if (k in keys if keys is not None else "loss" in k)}
            self.bar.set_postfix(shown)
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochProgress()
