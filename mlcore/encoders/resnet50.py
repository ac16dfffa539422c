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
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{IMAGENET_WEIGHTS_FILE}"
IMAGENET_WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"  # Keras' own hash for the no-top file
HOW_TO_FIX = (
    f'set {WEIGHTS_ENV_VAR} (or HASHTAGS["RESNET50_WEIGHTS"] in Django) to a local weights file'
)


def preprocess(images: np.ndarray) -> np.ndarray:
    """Caffe-style ImageNet preprocessing (RGB→BGR, minus the per-channel mean), as Keras does."""
    import keras

    return keras.applications.resnet50.preprocess_input(np.asarray(images, dtype=np.float32))


def resolve_weights_path(weights: str | os.PathLike | None) -> Path | None:
    """Turn the ``weights`` argument into a local file (downloading the ImageNet file if needed).

    ``"default"`` → ``$MLCORE_RESNET50_WEIGHTS`` if set, else Keras' ImageNet download (cached under
    ``$KERAS_HOME/models``); ``"imagenet"`` → the download; ``None`` → no file (random init).
    """
    from mlcore.encoders import EncoderWeightsError

    if weights is None:
        return None
    if weights == "default":
        from_environment = os.environ.get(WEIGHTS_ENV_VAR, "").strip()
        if from_environment:
            return _existing_file(from_environment, source=f"${WEIGHTS_ENV_VAR}")
        weights = "imagenet"
    if weights == "imagenet":
        import keras

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
    from mlcore.encoders import EncoderWeightsError

    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise EncoderWeightsError(f"ResNet50 weights file not found: {resolved} (from {source}); {HOW_TO_FIX}")
    return resolved


def build_resnet50(weights: str | os.PathLike | None = "default") -> "keras.Model":
    """Preprocessed ``(N, 224, 224, 3)`` float32 → ``(N, 2048)`` average-pooled features."""
    import keras

    from mlcore.encoders import EncoderWeightsError

    path = resolve_weights_path(weights)
    model = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(INPUT_SIZE, INPUT_SIZE, 3), pooling="avg"
    )
    if path is not None:
        try:
            model.load_weights(path)
        except Exception as error:
            raise EncoderWeightsError(
                f"cannot load ResNet50 weights from {path}: {error}; {HOW_TO_FIX} "
                "(a no-top ResNet50 .h5 or .weights.h5 file)"
            ) from error
    return model
