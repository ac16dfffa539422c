"""ResNet50, the paper's encoder: ``keras.applications.ResNet50(include_top=False, pooling="avg")``.

Why the weights are fetched here rather than by ``weights="imagenet"``: Keras would download inside
the constructor and fail with a generic "URL fetch failure" on the many machines that are offline.
Fetching through ``keras.utils.get_file`` ourselves (same URL, hash and cache as Keras) lets an
offline user get an error that names the setting to use instead - a local weights file given by the
``MLCORE_RESNET50_WEIGHTS`` environment variable or Django's ``HASHTAGS["RESNET50_WEIGHTS"]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlcore.encoders.base import EncoderWeightsError, ImageNetHead

if TYPE_CHECKING:
    import keras

__all__ = [
    "INPUT_SIZE",
    "FEATURE_DIM",
    "WEIGHTS_ENV_VAR",
    "IMAGENET_WEIGHTS_URL",
    "preprocess",
    "build_resnet50",
    "resolve_weights_path",
]

INPUT_SIZE = 224
FEATURE_DIM = 2048
WEIGHTS_ENV_VAR = "MLCORE_RESNET50_WEIGHTS"
# The file with the top: the ImageNet classifier comes from the same download as the features.
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
IMAGENET_WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{IMAGENET_WEIGHTS_FILE}"
IMAGENET_WEIGHTS_MD5 = "2cb95161c43110f7111970584f804107"  # Keras' own hash for that file
CLASSIFIER_LAYER = "predictions"
HOW_TO_FIX = (
    f'set {WEIGHTS_ENV_VAR} (or HASHTAGS["RESNET50_WEIGHTS"] in Django) to a local weights file'
)


def preprocess(images: np.ndarray) -> np.ndarray:
    """Caffe-style ImageNet preprocessing (RGB→BGR, minus the per-channel mean), as Keras does."""
    import keras  # lazy: TensorFlow start-up only when a network is built

    return keras.applications.resnet50.preprocess_input(np.asarray(images, dtype=np.float32))


def resolve_weights_path(weights: str | os.PathLike | None) -> Path | None:
    """Turn the ``weights`` argument into a local file (downloading the ImageNet file if needed).

    ``"default"`` → ``$MLCORE_RESNET50_WEIGHTS`` if set, else Keras' ImageNet download (cached under
    ``$KERAS_HOME/models``); ``"imagenet"`` → the download; ``None`` → no file (random init).
    """
    if weights is None:
        return None
    if weights == "default":
        from_environment = os.environ.get(WEIGHTS_ENV_VAR, "").strip()
        if from_environment:
            return _existing_file(from_environment, source=f"${WEIGHTS_ENV_VAR}")
        weights = "imagenet"
    if weights == "imagenet":
        import keras  # lazy: TensorFlow start-up only for the ImageNet download

        try:
            downloaded = keras.utils.get_file(
                IMAGENET_WEIGHTS_FILE,
                IMAGENET_WEIGHTS_URL,
                cache_subdir="models",
                file_hash=IMAGENET_WEIGHTS_MD5,
            )
        except Exception as error:  # urllib, hash and disk errors all mean "not available"
            raise EncoderWeightsError(
                f"ResNet50 ImageNet weights could not be downloaded ({error}); {HOW_TO_FIX}"
            ) from error
        return Path(downloaded)
    return _existing_file(weights, source="weights")


def _existing_file(path: str | os.PathLike, source: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise EncoderWeightsError(f"ResNet50 weights file not found: {resolved} (from {source}); {HOW_TO_FIX}")
    return resolved


def _has_classifier(path: Path) -> bool:
    """Whether a Keras weights file holds the top: a legacy ``.h5`` names its layers
    (``predictions``); a Keras 3 ``.weights.h5`` names them by class, and only the top is ``dense``."""
    import h5py  # lazy: h5py is part of Keras' start-up cost; `import mlcore.encoders` stays light
    try:
        with h5py.File(path, "r") as handle:
            legacy_names = set(handle.keys())
            keras3_names = set(handle["layers"].keys()) if "layers" in handle else set()
    except OSError:
        return False  # not HDF5: load_weights below says so with the setting to fix
    return CLASSIFIER_LAYER in legacy_names or "dense" in keras3_names


def build_resnet50(weights: str | os.PathLike | None = "default",
                   ) -> tuple["keras.Model", "ImageNetHead | None"]:
    """Preprocessed ``(N, 224, 224, 3)`` float32 → ``(N, 2048)`` average-pooled features, and the
    ImageNet classifier when the weights file has the top (Keras' ImageNet download does)."""
    import keras  # lazy: TensorFlow start-up only when a network is built

    path = resolve_weights_path(weights)
    with_top = path is not None and _has_classifier(path)
    if with_top:
        full = keras.applications.ResNet50(include_top=True, weights=None,
                                           input_shape=(INPUT_SIZE, INPUT_SIZE, 3))
        model = keras.Model(full.inputs, full.get_layer("avg_pool").output, name="resnet50")
    else:
        full = model = keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=(INPUT_SIZE, INPUT_SIZE, 3), pooling="avg")
    if path is None:
        return model, None
    try:
        full.load_weights(path)
    except Exception as error:
        raise EncoderWeightsError(
            f"cannot load ResNet50 weights from {path}: {error}; {HOW_TO_FIX} "
            "(a ResNet50 .h5 or .weights.h5 file, with or without its top)"
        ) from error
    if not with_top:
        return model, None
    kernel, bias = full.get_layer(CLASSIFIER_LAYER).get_weights()
    return model, ImageNetHead(np.asarray(kernel, np.float32), np.asarray(bias, np.float32))
