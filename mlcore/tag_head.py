"""The captioner's tag head: image feature → probability that people would use each tag.

A small multi-label classifier trained next to the LSTM on the same cached CNN features (the
"semantic attributes" of Wu et al., 2016, and Yao et al., 2017). Its target for a tag is the
share of the image's human captions that use it (after the product's own extractor), so its
output estimates directly what a beam of one model's captions only approximates: how likely a
person is to describe the image with that word. On the Flickr8k dev split it lifts hashtag
precision/recall@5 from the caption beam's ~0.34 to ~0.41, and to ~0.42/0.44 when the head also
fine-tunes its own copy of the encoder's last block (``tap``: it then reads that block's input
map, which the captioner takes from the same forward pass), and to ~0.43/0.45 when it is trained
on random crops too and averages its probabilities over ``views`` of the upload
(:mod:`mlcore.views`). An artifact may add heads on other encoders (``tag_head_<encoder>/``,
:func:`load_tag_heads`): averaging the shipped Lite0 head with one on EfficientNet-Lite2 gives
~0.45/0.47 from the plain image alone; see the model card. The caption itself still comes from
the LSTM.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlcore.encoders import build_encoder_top
from mlcore.errors import ArtifactError
from mlcore.views import check_views

HEAD_FILE = "tag_head.json"
HEAD_WEIGHTS_FILE = "tag_head_weights.npz"
#: 1: a head over pooled features; 2: with an encoder tap; 3: kernels stored as int8 + scales.
FORMATS = ("mlcore.tag_head/1", "mlcore.tag_head/2", "mlcore.tag_head/3")
SCALE_SUFFIX = "__int8_scale"
#: Extra heads on other encoders live in ``tag_head_<encoder>/`` subdirectories of the artifact.
MEMBER_PREFIX = "tag_head_"


@dataclass
class TagHead:
    """``tap`` None: the input is the pooled CNN feature. ``tap`` a layer name: the input is that
    layer's output map, and the head holds its own fine-tuned copy of ``encoder``'s layers after
    it (the captioner keeps the original ones, so its captions do not change).

    ``views``: the image views (:mod:`mlcore.views`) whose probabilities are averaged; the first
    is always ``"plain"``, which the captioner encodes anyway."""

    tags: list[str]  # canonical tag names, without "#"
    model: object  # keras.Model: (N, feature_dim) or (N, *map) → (N, len(tags)) probabilities
    hidden_units: int
    dropout: float
    encoder: str | None = None
    tap: str | None = None
    views: tuple[str, ...] = ("plain",)
    _forward: object = field(default=None, init=False, repr=False, compare=False)

    @property
    def feature_dim(self) -> int:
        """Width of the pooled feature the classifier reads (after the tapped block, if any)."""
        return int(self.model.get_layer("feature_dropout").input.shape[-1])

    def __post_init__(self) -> None:
        self.views = check_head_views(self.views)

    def predict(self, features: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities per image; ``features`` may be a list of one array per view (averaged)."""
        if isinstance(features, (list, tuple)):
            if not features:
                raise ValueError("predict needs at least one view's features")
            return np.mean([self.predict(view) for view in features], axis=0)
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return np.zeros((0, len(self.tags)), np.float32)
        if self._forward is None:  # traced once: eager calls of ~30 layers cost more than the math
            import tensorflow as tf  # lazy: TensorFlow start-up only when a head predicts

            self._forward = tf.function(lambda inputs: self.model(inputs, training=False),
                                        reduce_retracing=True)
        return self._forward(features).numpy()

    def probabilities(self, features: np.ndarray | Sequence[np.ndarray], top: int = 30,
                      ) -> list[dict[str, float]]:
        """The ``top`` most likely tags per image as ``{tag: probability}`` (see :meth:`predict`)."""
        return top_probabilities(self.predict(features), self.tags, top)


def top_probabilities(rows: np.ndarray, tags: Sequence[str], top: int = 30,
                      ) -> list[dict[str, float]]:
    best = np.argsort(-rows, axis=1)[:, :top]
    return [{tags[j]: float(row[j]) for j in order} for row, order in zip(rows, best)]


def average_probabilities(heads: Sequence[TagHead], inputs: Sequence, top: int = 30,
                          ) -> list[dict[str, float]]:
    """The heads' probabilities averaged; ``inputs[k]`` is what head ``k`` reads (per view).

    Why several heads: a head on a second backbone (EfficientNet-Lite2 next to the captioner's
    Lite0) makes different mistakes; on the plain image the pair scored dev P/R@5 0.451/0.466,
    the Lite0 head alone 0.426/0.440 (model card).
    """
    if len(heads) != len(inputs):
        raise ValueError(f"{len(heads)} tag heads but inputs for {len(inputs)}")
    rows = np.mean([head.predict(head_inputs) for head, head_inputs in zip(heads, inputs)], axis=0)
    return top_probabilities(rows, heads[0].tags, top)


def check_head_views(views) -> tuple[str, ...]:
    """Valid view names starting with ``"plain"`` (``ValueError`` otherwise)."""
    views = check_views(views)
    if views[0] != "plain":
        raise ValueError(f"a tag head's first view must be 'plain', got {', '.join(views)}")
    return views


def build_tag_head_model(feature_dim: int, tag_count: int, hidden_units: int = 1024,
                         dropout: float = 0.5, encoder: str | None = None, tap: str | None = None,
                         encoder_weights: str | None = None):
    """The head's network; with ``tap``, ``encoder``'s layers after ``tap`` come first."""
    import keras  # lazy: TensorFlow start-up only when a head is built (hashtags' checks import us)
    from keras import layers  # lazy: as above

    if tap:
        top = build_encoder_top(encoder, tap, weights=encoder_weights)
        inputs = keras.Input(shape=tuple(top.inputs[0].shape[1:]), name="encoder_map")
        image_features = top(inputs)
    else:
        inputs = image_features = keras.Input(shape=(feature_dim,), name="image_features")
    x = layers.Dropout(dropout, name="feature_dropout")(image_features)
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", name="tag_hidden")(x)
        x = layers.Dropout(dropout, name="hidden_dropout")(x)
    probabilities = layers.Dense(tag_count, activation="sigmoid", name="tag_probabilities")(x)
    return keras.Model(inputs, probabilities, name="tag_head")


def tag_targets(caption_tag_lists: Sequence[Sequence[Sequence[str]]], min_images: int = 5,
                ) -> tuple[list[str], np.ndarray]:
    """Per image, the share of its captions using each tag; tags seen on ≥ ``min_images`` images.

    ``caption_tag_lists[i][j]`` are the canonical tags of caption ``j`` of image ``i``.
    """
    shares = []
    for captions in caption_tag_lists:
        votes = Counter(tag for tags in captions for tag in set(tags))
        shares.append({tag: count / max(len(captions), 1) for tag, count in votes.items()})
    images_per_tag = Counter(tag for share in shares for tag in share)
    tags = sorted(tag for tag, count in images_per_tag.items() if count >= min_images)
    index = {tag: position for position, tag in enumerate(tags)}
    targets = np.zeros((len(shares), len(tags)), np.float32)
    for row, share in enumerate(shares):
        for tag, value in share.items():
            if tag in index:
                targets[row, index[tag]] = value
    return tags, targets


def quantize_weights(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(int8 values, float32 scale per output channel)`` of a kernel (last axis = outputs).

    Why: the heads' kernels are most of the artifact, and 8 bits per weight with one scale per
    output column moved the shipped head's dev P/R@5 by less than 0.001 (model card) while
    halving its file against float16.
    """
    array = np.asarray(array, np.float32)
    scale = np.abs(array.reshape(-1, array.shape[-1])).max(axis=0) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    values = np.clip(np.round(array / scale), -127, 127).astype(np.int8)
    return values, scale


def dequantize_weights(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return values.astype(np.float32) * scale.astype(np.float32)


def _quantizable(array: np.ndarray) -> bool:
    """Kernels with several output channels; biases, batch-norm statistics and depthwise
    kernels (one output per channel) stay float16."""
    return array.ndim >= 2 and array.shape[-1] > 1


def save_tag_head(model_dir: str | Path, head: TagHead, metrics: dict | None = None) -> None:
    """Write the head's two files into ``model_dir``, in place (the format: :mod:`mlcore.artifact`).

    A building block: a head in a model people use is written through
    :func:`mlcore.artifact.revise` (atomic, and under a new version)."""
    model_dir = Path(model_dir)
    arrays: dict[str, np.ndarray] = {}
    for variable in head.model.weights:
        key, array = variable.path.replace("/", "__"), np.asarray(variable.numpy())
        if _quantizable(array):
            arrays[key], arrays[key + SCALE_SUFFIX] = quantize_weights(array)
        else:
            arrays[key] = array.astype(np.float16)
    np.savez(model_dir / HEAD_WEIGHTS_FILE, **arrays)
    (model_dir / HEAD_FILE).write_text(json.dumps({
        "format": "mlcore.tag_head/3",
        "tags": head.tags, "hidden_units": head.hidden_units,
        "dropout": head.dropout, "feature_dim": head.feature_dim,
        "encoder": head.encoder, "tap": head.tap, "views": list(head.views),
        "metrics": metrics or {}}), encoding="utf-8")


def member_dir(model_dir: str | Path, encoder: str) -> Path:
    """Where an artifact keeps the extra tag head that reads ``encoder`` (not the captioner's)."""
    return Path(model_dir) / f"{MEMBER_PREFIX}{encoder}"


def load_tag_heads(model_dir: str | Path) -> list[TagHead]:
    """The artifact's tag head followed by its extra heads on other encoders (sorted by name);
    empty when it has none. The heads must rank the same tags, in the same order."""
    first = load_tag_head(model_dir)
    if first is None:
        return []
    heads = [first]
    for directory in sorted(Path(model_dir).glob(f"{MEMBER_PREFIX}*")):
        if not directory.is_dir():
            continue
        head = load_tag_head(directory)
        if head is None:
            raise ArtifactError(f"{directory}: an extra tag head directory without {HEAD_FILE}")
        if head.tags != first.tags:
            raise ArtifactError(f"{directory}: the extra tag head ranks other tags than "
                                f"{Path(model_dir) / HEAD_FILE}")
        if not head.encoder or directory != member_dir(model_dir, head.encoder):
            raise ArtifactError(f"{directory}: the extra tag head's encoder is {head.encoder!r}")
        heads.append(head)
    return heads


def load_tag_head(model_dir: str | Path) -> TagHead | None:
    """The artifact's tag head, or None when it has none (older or caption-only models)."""
    model_dir = Path(model_dir)
    if not (model_dir / HEAD_FILE).is_file():
        return None
    try:
        config = json.loads((model_dir / HEAD_FILE).read_text(encoding="utf-8"))
        if config.get("format") not in FORMATS:
            raise ValueError(f"unknown format {config.get('format')!r}")
        views = check_head_views(config.get("views", ["plain"]))
        with np.load(model_dir / HEAD_WEIGHTS_FILE, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, KeyError) as error:
        raise ArtifactError(f"{model_dir}: the tag head cannot be read: {error}") from None
    try:
        model = build_tag_head_model(config["feature_dim"], len(config["tags"]),
                                     config["hidden_units"], config["dropout"],
                                     encoder=config.get("encoder"), tap=config.get("tap"))
    except ValueError as error:
        raise ArtifactError(f"{model_dir}: the tag head cannot be built: {error}") from None
    for variable in model.weights:
        key = variable.path.replace("/", "__")
        if key not in arrays or tuple(arrays[key].shape) != tuple(variable.shape):
            raise ArtifactError(f"{model_dir}: {HEAD_WEIGHTS_FILE} does not match {HEAD_FILE} "
                                f"({key})")
        array = arrays[key]
        if key + SCALE_SUFFIX in arrays:  # format 3: int8 kernel and its per-column scale
            array = dequantize_weights(array, arrays[key + SCALE_SUFFIX])
        variable.assign(array.astype(variable.dtype))
    return TagHead(config["tags"], model, config["hidden_units"], config["dropout"],
                   encoder=config.get("encoder"), tap=config.get("tap"), views=views)
