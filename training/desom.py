"""DESOM: an autoencoder jointly trained with a SOM on its latent space (Forest et al. 2019).

The whole iteration (forward pass, BMUs and neighbourhood weights with the current model, joint loss,
temperature decay) lives in ``compute_loss`` so it is compiled into one step on every Keras backend;
there is no host round trip per batch and no backend-specific ``train_step``.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import ops

from skyqa.training.som import SOMLayer, manhattan_grid, neighbourhood_weights, temperature


@keras.saving.register_keras_serializable(package="skyqa")
class DESOM(keras.Model):
    """Encoder -> SOM distances, encoder -> decoder; ``call`` returns ``(reconstruction, distances)``.

    Loss: MSE(x, x_hat) + gamma * mean_i sum_k w_ik ||z_i - m_k||^2 with w from the BMU under the
    current weights (gradient stopped) and T decayed per iteration from a non-trainable step counter
    that is saved with the model, so a reloaded model resumes its schedule.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        map_size: tuple[int, int],
        gamma: float = 0.0075,
        t_max: float = 10.0,
        t_min: float = 0.5,
        iterations: int = 100_000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.map_size = tuple(int(s) for s in map_size)
        self.gamma = float(gamma)
        self.t_max = float(t_max)
        self.t_min = float(t_min)
        self.iterations = int(iterations)
        self.som = SOMLayer(self.map_size, name="som")
        self._grid = manhattan_grid(self.map_size)
        self.rec_tracker = keras.metrics.Mean(name="rec_loss")
        self.som_tracker = keras.metrics.Mean(name="som_loss")
        self.t_tracker = keras.metrics.Mean(name="T")

    @property
    def n_prototypes(self) -> int:
        return self.map_size[0] * self.map_size[1]

    def build(self, input_shape):
        input_shape = (None, *tuple(input_shape)[1:])
        latent_shape = self.encoder.compute_output_shape(input_shape)
        self.decoder.build(latent_shape)
        self.som.build(latent_shape)
        # float32 counter: exact up to 2^24 steps and int64 is not available on every backend.
        self.step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="step")
        self.built = True

    def call(self, x, training=False):
        z = self.encoder(x, training=training)
        return self.decoder(z, training=training), self.som(z)

    def current_temperature(self):
        return temperature(self.step, self.iterations, self.t_max, self.t_min)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        x_hat, dist = y_pred
        rec = ops.mean(ops.square(ops.cast(x, x_hat.dtype) - x_hat))
        t = self.current_temperature()
        w = ops.stop_gradient(neighbourhood_weights(ops.argmin(dist, axis=1), self._grid, t))
        som = ops.mean(ops.sum(w * dist, axis=1))
        if training:
            self.step.assign_add(1.0)
        self.rec_tracker.update_state(rec)
        self.som_tracker.update_state(som)
        self.t_tracker.update_state(t)
        return rec + self.gamma * som

    def init_prototypes(self, x_sample: np.ndarray, seed: int | None = None) -> None:
        """Set the prototypes to the encodings of K random samples (with replacement if fewer)."""
        if not self.built:
            self.build(x_sample.shape)
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(x_sample), self.n_prototypes, replace=len(x_sample) < self.n_prototypes)
        # A direct call, not predict(): under a data-parallel distribution predict's last partial batch
        # must divide by the device count, which K samples need not.
        z = ops.convert_to_numpy(self.encoder(np.asarray(x_sample, dtype="float32")[idx], training=False))
        self.som.prototypes.assign(z.astype("float32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            map_size=list(self.map_size),
            gamma=self.gamma,
            t_max=self.t_max,
            t_min=self.t_min,
            iterations=self.iterations,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
