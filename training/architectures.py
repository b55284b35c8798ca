"""DESOM-1 (conv AE on 32x32 cutouts) and DESOM-2 (dense AE on 625-cell histo-vectors), per method.md."""

from __future__ import annotations

import keras
from keras import layers

from skyqa.training.desom import DESOM

INIT = "glorot_uniform"


def _dense(units: int, activation: str | None, name: str) -> layers.Dense:
    return layers.Dense(units, activation=activation, kernel_initializer=INIT, name=name)


def _conv(filters: int, activation: str | None, name: str) -> layers.Conv2D:
    return layers.Conv2D(filters, 3, padding="same", activation=activation, kernel_initializer=INIT, name=name)


def conv_autoencoder(
    input_shape: tuple[int, int, int] = (32, 32, 1),
    filters: tuple[int, ...] = (32, 64, 128),
    dense_units: int = 512,
    latent_dim: int = 160,
    output_activation: str = "sigmoid",
) -> tuple[keras.Sequential, keras.Sequential]:
    """Conv3x3+pool2 blocks -> flatten -> Dense -> latent; decoder mirrors it with upsampling+conv."""
    encoder = keras.Sequential(name="encoder")
    encoder.add(keras.Input(shape=input_shape, name="cutouts"))
    for i, f in enumerate(filters):
        encoder.add(_conv(f, "relu", f"enc_conv{i}"))
        encoder.add(layers.MaxPooling2D(2, name=f"enc_pool{i}"))
    encoder.add(layers.Flatten(name="enc_flatten"))
    encoder.add(_dense(dense_units, "relu", "enc_dense"))
    encoder.add(_dense(latent_dim, None, "latent"))

    side = input_shape[0] // 2 ** len(filters)
    decoder = keras.Sequential(name="decoder")
    decoder.add(keras.Input(shape=(latent_dim,), name="z"))
    decoder.add(_dense(dense_units, "relu", "dec_dense"))
    decoder.add(_dense(side * side * filters[-1], "relu", "dec_dense_map"))
    decoder.add(layers.Reshape((side, side, filters[-1]), name="dec_reshape"))
    for i, f in enumerate(reversed(filters)):
        decoder.add(layers.UpSampling2D(2, name=f"dec_up{i}"))
        decoder.add(_conv(f, "relu", f"dec_conv{i}"))
    decoder.add(_conv(input_shape[-1], output_activation, "reconstruction"))
    return encoder, decoder


def dense_autoencoder(
    input_dim: int = 625, hidden: tuple[int, ...] = (450, 300), latent_dim: int = 100
) -> tuple[keras.Sequential, keras.Sequential]:
    """input -> hidden (ReLU) -> linear latent; mirrored decoder with a linear output (Forest's MLP AE)."""
    encoder = keras.Sequential(name="encoder")
    encoder.add(keras.Input(shape=(input_dim,), name="histovector"))
    for i, h in enumerate(hidden):
        encoder.add(_dense(h, "relu", f"enc_dense{i}"))
    encoder.add(_dense(latent_dim, None, "latent"))
    decoder = keras.Sequential(name="decoder")
    decoder.add(keras.Input(shape=(latent_dim,), name="z"))
    for i, h in enumerate(reversed(hidden)):
        decoder.add(_dense(h, "relu", f"dec_dense{i}"))
    decoder.add(_dense(input_dim, None, "reconstruction"))
    return encoder, decoder


def compile_desom(model: DESOM, learning_rate: float, jit_compile: bool | str = "auto") -> DESOM:
    """Adam on the joint loss (the loss lives in ``DESOM.compute_loss``).

    ``"auto"`` lets Keras use XLA on accelerators and skip it on CPU, where bench/train.py measured the
    XLA step ~25% slower than TensorFlow's oneDNN kernels for DESOM-1.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit_compile)
    return model


def build_desom1(
    map_size: tuple[int, int] = (25, 25),
    latent_dim: int = 160,
    gamma: float = 0.0075,
    t_max: float = 10.0,
    t_min: float = 0.5,
    iterations: int = 100_000,
    learning_rate: float = 1e-3,
    jit_compile: bool | str = "auto",
) -> DESOM:
    """DESOM-1 of the paper: conv AE (latent 160) + 25x25 SOM, gamma 0.0075, T 10 -> 0.5, Adam."""
    encoder, decoder = conv_autoencoder(latent_dim=latent_dim)
    model = DESOM(encoder, decoder, map_size, gamma, t_max, t_min, iterations, name="desom1")
    model.build((None, 32, 32, 1))
    return compile_desom(model, learning_rate, jit_compile)


def build_desom2(
    map_size: tuple[int, int] = (20, 20),
    input_dim: int = 625,
    hidden: tuple[int, ...] = (450, 300),
    latent_dim: int = 100,
    gamma: float = 0.001,
    t_max: float = 10.0,
    t_min: float = 0.5,
    iterations: int = 10_000,
    learning_rate: float = 2e-3,
    jit_compile: bool | str = "auto",
) -> DESOM:
    """DESOM-2: dense AE 625-450-300-100 + 20x20 SOM, gamma 0.001, Adam lr 2e-3 (reference loader).

    The paper gives no DESOM-2 schedule; T 10 -> 0.5 over 10k iterations follows DESOM-1 / Forest.
    """
    encoder, decoder = dense_autoencoder(input_dim, hidden, latent_dim)
    model = DESOM(encoder, decoder, map_size, gamma, t_max, t_min, iterations, name="desom2")
    model.build((None, input_dim))
    return compile_desom(model, learning_rate, jit_compile)
