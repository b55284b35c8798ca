"""Self-organising-map layer living in an autoencoder's latent space (Forest et al. 2019)."""

from __future__ import annotations

import numpy as np
import keras
from keras import ops


def grid_coordinates(map_size: tuple[int, int]) -> np.ndarray:
    """(K, 2) integer (x, y) of every node, node index ``k = y * nx + x`` (docs/ARCHITECTURE.md)."""
    nx, ny = map_size
    k = np.arange(nx * ny)
    return np.stack([k % nx, k // nx], axis=1)


def manhattan_grid(map_size: tuple[int, int]) -> np.ndarray:
    """(K, K) float32 Manhattan distances between map nodes: the topological distance of the SOM."""
    xy = grid_coordinates(map_size)
    return np.abs(xy[:, None, :] - xy[None, :, :]).sum(axis=-1).astype("float32")


def temperature(step, iterations: int, t_max: float, t_min: float):
    """Exponential decay T = T_max (T_min/T_max)^(step/iterations); held at T_min past the schedule."""
    frac = ops.minimum(ops.cast(step, "float32") / float(iterations), 1.0)
    return t_max * ops.power(t_min / t_max, frac)


def neighbourhood_weights(bmu, grid, t):
    """Gaussian kernel w_ik = exp(-d(bmu_i, k)^2 / T^2), d the Manhattan grid distance; (batch, K)."""
    d = ops.take(grid, bmu, axis=0)
    return ops.exp(-ops.square(d) / ops.square(t))


@keras.saving.register_keras_serializable(package="skyqa")
class SOMLayer(keras.layers.Layer):
    """Holds K = nx * ny prototypes and returns squared Euclidean distances (batch, K) to them."""

    def __init__(
        self,
        map_size: tuple[int, int],
        prototype_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.map_size = tuple(int(s) for s in map_size)
        self.n_prototypes = self.map_size[0] * self.map_size[1]
        self.prototype_initializer = keras.initializers.get(prototype_initializer)

    def build(self, input_shape):
        self.prototypes = self.add_weight(
            shape=(self.n_prototypes, int(input_shape[-1])),
            initializer=self.prototype_initializer,
            name="prototypes",
        )

    def call(self, z):
        # ||z||^2 - 2 z.m + ||m||^2: one matmul instead of a (batch, K, latent) broadcast.
        zz = ops.sum(ops.square(z), axis=1, keepdims=True)
        mm = ops.sum(ops.square(self.prototypes), axis=1)
        d = zz - 2.0 * ops.matmul(z, ops.transpose(self.prototypes)) + mm[None, :]
        return ops.maximum(d, 0.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_prototypes)

    def get_config(self):
        config = super().get_config()
        config.update(
            map_size=list(self.map_size),
            prototype_initializer=keras.initializers.serialize(self.prototype_initializer),
        )
        return config
