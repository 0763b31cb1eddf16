"""Domain-adversarial training step: the class loss on labelled simulation, the domain loss on
both domains, one forward pass per batch (:class:`DomainAdversarialModel`).

Loss of a batch from :func:`tagger.pipeline.assemble`::

    L_class  = sum_i c_i CE(class_i, p_i) / sum_i c_i          (c_i: class-loss weight)
    L_domain = sum_i d_i BCE(domain_i, q_i) / sum_i d_i        (d_i: domain-loss weight)
    L        = L_class + w_domain * L_domain

``w_domain`` (a variable: 0 in phase 1, 1 in phase 2, :mod:`tagger.schedule`) and the
gradient-reversal layer's lambda set the two phases. Keras ``fit`` drives it (callbacks,
``tf.distribute``); the logged metrics are ``loss``, ``class_loss``, ``domain_loss``,
``class_accuracy`` (and ``val_*``). Early stopping watches ``val_class_loss``.
"""

from __future__ import annotations


def domain_adversarial_model(net, *, domain_weight: float = 0.0):
    """Wrap the network of :func:`tagger.model.build_tagger` for training (module docstring).

    The wrapper's ``domain_weight`` is a non-trainable ``tf.Variable``.
    """
    import tensorflow as tf
    from tensorflow import keras

    class DomainAdversarialModel(keras.Model):
        def __init__(self, net, domain_weight):
            super().__init__(name="domain_adversarial")
            self.net = net
            self.domain_weight = tf.Variable(float(domain_weight), trainable=False,
                                             dtype=tf.float32, name="domain_weight")
            self.trackers = {k: keras.metrics.Mean(name=k) for k in
                             ("loss", "class_loss", "domain_loss", "class_accuracy")}

        @property
        def metrics(self):
            return list(self.trackers.values())

        def call(self, x, training=False):
            return self.net(x, training=training)

        def losses_of(self, x, t, training):
            out = self.net(x, training=training)
            cw, dw = t["class_weight"], t["domain_weight"]
            p = tf.clip_by_value(out["class"], 1e-7, 1.0)
            ce = -tf.reduce_sum(t["class"] * tf.math.log(p), axis=-1)
            class_loss = tf.math.divide_no_nan(tf.reduce_sum(cw * ce), tf.reduce_sum(cw))
            bce = keras.losses.binary_crossentropy(t["domain"], out["domain"])
            domain_loss = tf.math.divide_no_nan(tf.reduce_sum(dw * bce), tf.reduce_sum(dw))
            hit = tf.cast(tf.equal(tf.argmax(out["class"], -1), tf.argmax(t["class"], -1)),
                          tf.float32)
            accuracy = tf.math.divide_no_nan(tf.reduce_sum(cw * hit), tf.reduce_sum(cw))
            total = class_loss + self.domain_weight * domain_loss
            return {"loss": total, "class_loss": class_loss, "domain_loss": domain_loss,
                    "class_accuracy": accuracy}

        def _record(self, values):
            for k, v in values.items():
                self.trackers[k].update_state(v)
            return {k: m.result() for k, m in self.trackers.items()}

        def train_step(self, data):
            x, t = data
            # under tf.distribute the replicas' gradients are summed: scale each replica's
            # (per-replica mean) loss so that the update is that of the global mean
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            with tf.GradientTape() as tape:
                values = self.losses_of(x, t, training=True)
                scaled = values["loss"] / tf.cast(replicas, values["loss"].dtype)
            weights = self.net.trainable_weights
            grads = tape.gradient(scaled, weights)
            self.optimizer.apply_gradients(
                [(g, w) for g, w in zip(grads, weights, strict=True) if g is not None])
            return self._record(values)

        def test_step(self, data):
            x, t = data
            return self._record(self.losses_of(x, t, training=False))

    return DomainAdversarialModel(net, domain_weight)


def best_weights_callback(*, patience: int, start_epoch: int, checkpoint: str):
    """Early stopping on ``val_class_loss`` counted from ``start_epoch`` (phase 2 with domain
    adaptation, so that the kept model is a domain-adapted one); the best epoch's network
    weights are restored at the end (also when training runs to its last epoch) and written to
    ``checkpoint`` whenever they improve."""
    import numpy as np
    from tensorflow import keras

    class BestWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best, self.best_epoch, self.wait, self.weights = np.inf, None, 0, None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_class_loss")
            if epoch < start_epoch or value is None:
                return
            if value < self.best:
                self.best, self.best_epoch, self.wait = float(value), epoch, 0
                self.weights = self.model.net.get_weights()
                self.model.net.save_weights(checkpoint)
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.net.set_weights(self.weights)

    return BestWeights()
