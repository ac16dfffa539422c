"""The training jobs' settings and their defaults, without TensorFlow.

Apart from :mod:`training.train` so that the command line can take its defaults from here and
``python -m training --help`` stays quick (no TensorFlow start-up). Each tag-head default is
defined once here and used by the ``train`` job, the ``tag-head`` job and their trainers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlcore.views import DEFAULT_TEST_VIEWS, DEFAULT_TRAIN_VIEWS

#: Passes over the training views while the tag head's classifier learns on frozen features
#: (the shipped heads' recipe; model card).
TAG_HEAD_EPOCHS = 10
TAG_HEAD_UNITS = 1024
#: A tag enters the head's vocabulary when it is used on this many training images.
TAG_MIN_IMAGES = 5
#: Then, with a tap, passes while the encoder's layers after it train with the head.
TAG_HEAD_FINETUNE_EPOCHS = 6
TAG_HEAD_FINETUNE_LEARNING_RATE = 2e-4


@dataclass
class TrainConfig:
    """One ``python -m training train`` run: the decoder, and the tag head beside it."""

    data: str
    encoder: str = "efficientnet_lite0"
    out: str = "runs/model"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 20
    batch_size: int = 64
    embedding_dim: int = 256
    units: int = 512
    dropout: float = 0.3
    attention_units: int = 0  # > 0: attend over the encoder's spatial map (mlcore.decoder)
    label_smoothing: float = 0.0
    min_count: int = 5
    max_length: int = 32
    patience: int = 3
    seed: int = 42
    strategy: str = "default"
    extra_data: list[str] = field(default_factory=list)
    init: str | None = None
    cache_dir: str | None = None
    flip_augment: bool = False
    resume: bool = False
    beam_width: int = 3
    length_penalty: float = 0.7
    evaluate_dev: bool = True
    version: str | None = None
    tag_head_epochs: int = TAG_HEAD_EPOCHS  # 0: no tag head (hashtags from the captions alone)
    tag_head_units: int = TAG_HEAD_UNITS
    tag_min_images: int = TAG_MIN_IMAGES
    callbacks: list = field(default_factory=list)  # extra Keras callbacks (API only)


@dataclass
class TagHeadConfig:
    """One ``python -m training tag-head`` run: (re)train a head of an existing artifact.

    ``encoder``: None or the captioner's own replaces the artifact's head; another encoder adds
    (or replaces) the extra head in ``tag_head_<encoder>/`` and needs ``finetune_tap``.
    ``version``: the artifact's new version; None derives one from the decoder's version and
    the heads' files (:func:`mlcore.artifact.tag_head_version`).
    """

    data: str
    model: str
    encoder: str | None = None
    cache_dir: str | None = None
    epochs: int = TAG_HEAD_EPOCHS
    units: int = TAG_HEAD_UNITS
    seed: int = 42
    min_images: int = TAG_MIN_IMAGES
    finetune_tap: str | None = None
    #: copy the heads of this artifact (same encoder) instead of training: a new decoder keeps them
    copy_from: str | None = None
    finetune_epochs: int = TAG_HEAD_FINETUNE_EPOCHS
    finetune_learning_rate: float = TAG_HEAD_FINETUNE_LEARNING_RATE
    train_views: tuple[str, ...] = DEFAULT_TRAIN_VIEWS
    views: tuple[str, ...] = DEFAULT_TEST_VIEWS
    version: str | None = None
