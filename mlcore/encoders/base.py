"""The encoders' shared types: the spec, the built ``Encoder``, its ImageNet head and the weights
error. Apart from the registry (``mlcore.encoders``) so that the builders (``efficientnet_lite``,
``resnet50``) can use them while the registry imports the builders. TensorFlow and Keras are
imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    import keras

__all__ = [
    "EncoderSpec",
    "Encoder",
    "EncoderWeightsError",
    "ImageNetHead",
    "preprocess",
]


class EncoderWeightsError(RuntimeError):
    """Weights for an encoder are missing or unreadable; the message names the setting to fix."""


@dataclass(frozen=True)
class EncoderSpec:
    """What a caller must know about an encoder without building it.

    ``preprocessing`` names the input scaling: ``"lite"`` = (x - 127) / 128 on RGB 0..255;
    ``"caffe"`` = RGB→BGR minus the ImageNet channel means (``keras.applications.resnet50``).
    ``spatial_layer``: the layer whose output map the pooled features average (``feature_dim``
    channels), which an attention decoder attends over.
    """

    name: str
    input_size: int
    feature_dim: int
    preprocessing: str
    spatial_layer: str


@dataclass(frozen=True)
class ImageNetHead:
    """The encoder's own 1,000-way ImageNet classifier: one dense layer on the pooled features.

    Why apart from the Keras network: the pooled features are what the captioner computes anyway,
    so class probabilities cost one small matrix product, not a second CNN pass."""

    kernel: np.ndarray  # (feature_dim, 1000)
    bias: np.ndarray  # (1000,)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(N, feature_dim)`` pooled features → ``(N, 1000)`` softmax probabilities.

        In TensorFlow, on the encoder's own thread pool: a NumPy product would start the BLAS
        library's threads, which keep spinning afterwards and slow the encoder and decoder down
        on a small machine."""
        import tensorflow as tf  # lazy: TensorFlow start-up only when an encoder runs

        kernel, bias = self._tensors
        logits = tf.linalg.matmul(np.asarray(features, np.float32), kernel) + bias
        return tf.nn.softmax(logits, axis=-1).numpy()

    @cached_property
    def _tensors(self) -> tuple[Any, Any]:
        """The weights as TensorFlow constants, converted once (not 5 MB per call)."""
        import tensorflow as tf  # lazy: TensorFlow start-up only when an encoder runs

        return tf.constant(self.kernel, tf.float32), tf.constant(self.bias, tf.float32)


def _preprocess_tensor(preprocessing: str, images: Any) -> Any:
    """The spec's preprocessing on a uint8 tensor, inside the compiled graph (no NumPy copy)."""
    import tensorflow as tf  # lazy: TensorFlow start-up only when an encoder runs

    pixels = tf.cast(images, tf.float32)
    if preprocessing == "lite":
        return (pixels - 127.0) / 128.0
    if preprocessing == "caffe":
        bgr = pixels[..., ::-1]
        return bgr - tf.constant([103.939, 116.779, 123.68], dtype=tf.float32)
    raise ValueError(f"unknown preprocessing {preprocessing!r}")


def preprocess(spec: EncoderSpec, images_uint8: np.ndarray) -> np.ndarray:
    """NumPy version of the spec's preprocessing, for callers that feed ``Encoder.model`` directly."""
    return np.asarray(_preprocess_tensor(spec.preprocessing, images_uint8))


class Encoder:
    """A built encoder: ``model`` takes preprocessed floats, ``encode`` takes uint8 images.

    ``encode`` runs one traced ``tf.function`` (preprocessing + forward pass, fixed batch shape) per
    batch instead of ``model.predict``, which rebuilds a data pipeline on every call and is slow in
    loops. XLA (``jit_compile``) is off by default: measured on a 2-core CPU it did not speed up
    these convolution-bound models and costs a long compile per batch shape.
    """

    def __init__(self, spec: EncoderSpec, model: "keras.Model", jit_compile: bool = False,
                 imagenet_head: ImageNetHead | None = None) -> None:
        import tensorflow as tf  # lazy: TensorFlow start-up only when an encoder runs

        self.spec = spec
        self.model = model
        #: None when the weights had no classifier (random init, a features-only weights file)
        self.imagenet_head = imagenet_head
        size = spec.input_size
        signature = [tf.TensorSpec(shape=(None, size, size, 3), dtype=tf.uint8)]

        def forward(images: Any) -> Any:
            return self.model(_preprocess_tensor(spec.preprocessing, images), training=False)

        self._forward: Callable[[Any], Any] = tf.function(
            forward, input_signature=signature, jit_compile=jit_compile, reduce_retracing=True
        )
        self._signature = signature
        self._tapped: dict[tuple[str, ...], Callable[[Any], Any]] = {}

    def __repr__(self) -> str:
        return f"Encoder({self.spec.name!r}, feature_dim={self.spec.feature_dim})"

    def _checked_batch(self, images_uint8: np.ndarray, batch_size: int) -> np.ndarray:
        images = np.asarray(images_uint8)
        size = self.spec.input_size
        if images.ndim == 3:
            raise ValueError(f"expected a batch (N, {size}, {size}, 3); got one image {images.shape}: add a batch axis")
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"{self.spec.name} expects images of shape (N, {size}, {size}, 3); got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"{self.spec.name}.encode expects uint8 RGB images; got {images.dtype}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        return images

    def encode(self, images_uint8: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 RGB → ``(N, feature_dim)`` float32 features, ``batch_size`` at a time."""
        images = self._checked_batch(images_uint8, batch_size)
        features = np.empty((len(images), self.spec.feature_dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            features[start : start + len(batch)] = self._forward(batch).numpy()
        return features

    def classify(self, features: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities ``(N, 1000)`` of pooled features from :meth:`encode`."""
        if self.imagenet_head is None:
            raise ValueError(f"{self.spec.name} was built without ImageNet classifier weights")
        return self.imagenet_head.probabilities(features)

    def tap_shape(self, tap: str) -> tuple[int, ...]:
        """Shape of one image's output of the layer named ``tap`` (e.g. ``block14_add``)."""
        return tuple(_layer_output(self.model, self.spec.name, tap).shape[1:])

    def encode_tapped(self, images_uint8: np.ndarray, tap: str, batch_size: int = 32,
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Features plus the output of the layer ``tap``, from one forward pass.

        Why: a tag head that fine-tunes the encoder's last block starts from this intermediate
        map, so captions and tags share everything below it.
        """
        features, (maps,) = self.encode_layers(images_uint8, (tap,), batch_size)
        return features, maps

    def encode_layers(self, images_uint8: np.ndarray, taps: Sequence[str], batch_size: int = 32,
                      ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Features plus the outputs of each layer in ``taps``, from one forward pass (a tag
        head's tap and an attention decoder's map, say)."""
        import keras  # lazy: TensorFlow start-up only when an encoder runs
        import tensorflow as tf  # lazy: TensorFlow start-up only when an encoder runs

        taps = tuple(taps)
        if taps not in self._tapped:
            both = keras.Model(self.model.inputs, [self.model.outputs[0]] + [
                _layer_output(self.model, self.spec.name, tap) for tap in taps])
            preprocessing = self.spec.preprocessing
            self._tapped[taps] = tf.function(
                lambda images: both(_preprocess_tensor(preprocessing, images), training=False),
                input_signature=self._signature, reduce_retracing=True)
        images = self._checked_batch(images_uint8, batch_size)
        features = np.empty((len(images), self.spec.feature_dim), np.float32)
        maps = [np.empty((len(images), *self.tap_shape(tap)), np.float32) for tap in taps]
        for start in range(0, len(images), batch_size):
            batch_features, *batch_maps = self._tapped[taps](images[start:start + batch_size])
            features[start:start + len(batch_features)] = batch_features.numpy()
            for matrix, batch_map in zip(maps, batch_maps):
                matrix[start:start + len(batch_map)] = batch_map.numpy()
        return features, maps


def _layer_output(model: "keras.Model", encoder_name: str, layer_name: str) -> Any:
    try:
        return model.get_layer(layer_name).output
    except ValueError:
        raise ValueError(f"{encoder_name} has no layer named {layer_name!r}") from None
