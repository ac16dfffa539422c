"""Train the LSTM decoder on cached CNN features (the paper's recipe, plus careful training).

Teacher forcing over whole captions with a masked loss, adam or RMSProp, learning rate halved on
a dev-loss plateau, early stopping with the best weights restored, checkpoints that ``--resume``
continues from, fixed seeds, and a ``tf.distribute`` strategy chosen by name.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mlcore.artifact import load_artifact, save_artifact
from mlcore.decoder import DecoderConfig, build_decoder
from mlcore.decoding import StepDecoder
from mlcore.encoders import EncoderWeightsError, build_encoder, get_encoder_spec
from mlcore.tag_head import average_probabilities
from mlcore.vocabulary import Vocabulary
from training.config import TrainConfig  # defined without TensorFlow for the CLI's --help
from training.datasets import caption_dataset, encode_captions
from training.evaluate import evaluate_caption_sets
from training.feature_cache import FeatureCache
from training.flickr8k import Example, Flickr8k
from training.tag_head import train_tag_head

logger = logging.getLogger(__name__)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """TensorFlow's own distribution: one device, all local GPUs, or several machines (TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; use default, mirrored or multiworker")


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, clipnorm=5.0)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, clipnorm=5.0)
    raise ValueError(f"unknown optimizer {name!r}; use adam or rmsprop")


def masked_loss(label_smoothing: float) -> keras.losses.Loss:
    """Cross-entropy that ignores padding (id 0), averaged over real tokens only."""
    if label_smoothing:
        def loss(targets, logits):
            targets = tf.cast(targets, tf.int32)
            mask = tf.cast(targets != 0, logits.dtype)
            one_hot = tf.one_hot(targets, tf.shape(logits)[-1], dtype=logits.dtype)
            per_token = keras.losses.categorical_crossentropy(
                one_hot, logits, from_logits=True, label_smoothing=label_smoothing)
            return tf.reduce_sum(per_token * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        return loss
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)


def load_examples(config: TrainConfig) -> tuple[list[Example], list[Example], dict]:
    dataset = Flickr8k.load(config.data)
    train_split, dev_split = dataset.split("train"), dataset.split("dev")
    train = list(train_split.examples)
    stats = {"train_images": len(train), "dev_images": len(dev_split),
             "missing_images": len(train_split.missing_images) + len(dev_split.missing_images),
             "malformed_lines": len(dataset.malformed_lines), "extra_images": 0}
    for extra in config.extra_data:
        extra_split = Flickr8k.load(extra).split("train")
        train.extend(extra_split.examples)
        stats["extra_images"] += len(extra_split)
    if not train:
        raise RuntimeError(f"no training images found under {config.data}")
    return train, dev_split.examples, stats


def cached_features(encoder_name: str, image_paths, cache_dir=None, view: str = "plain",
                    attention_layer: str = "") -> tuple[np.ndarray, list[str | None]]:
    """The feature cache's rows for these images: pooled features, or with ``attention_layer``
    that layer's output maps flattened to ``(N, positions, channels)``, kept in float16 (a
    split's maps take gigabytes as float32). Plus an error message per unreadable image."""
    tap = attention_layer or None
    matrix, errors = FeatureCache(encoder_name, cache_dir, view=view, tap=tap).features_for(
        list(image_paths), dtype=np.float16 if tap else np.float32)
    if tap and matrix.ndim == 4:
        matrix = matrix.reshape(len(matrix), -1, matrix.shape[-1])
    return matrix, errors


def decoder_features(decoder_config: DecoderConfig, encoder_name: str, image_paths,
                     cache_dir=None) -> tuple[np.ndarray, list[str | None]]:
    """What ``decoder_config``'s decoder reads for these images (plain view), from the cache."""
    return cached_features(encoder_name, image_paths, cache_dir,
                           attention_layer=decoder_config.attention_layer)


def compute_features(config: TrainConfig, examples: list[Example], views: tuple[str, ...],
                     attention_layer: str = ""):
    """Feature matrices per view (see :func:`cached_features`), plus the examples whose image
    could be read."""
    matrices, keep = [], np.ones(len(examples), bool)
    paths = [example.image_path for example in examples]
    for view in views:
        matrix, errors = cached_features(config.encoder, paths, config.cache_dir, view,
                                         attention_layer)
        for index, error in enumerate(errors):
            if error:
                logger.warning("%s: %s (skipped)", examples[index].image_path, error)
                keep[index] = False
        matrices.append(matrix)
    kept = [example for example, ok in zip(examples, keep) if ok]
    return [matrix[keep] for matrix in matrices], kept


def tag_head_inputs(tap: str | None, features: np.ndarray, image_paths, encoder_name: str,
                    cache_dir=None, view: str = "plain") -> np.ndarray:
    """What a tag head reads for one ``view`` of these images: the pooled ``features`` (those of
    the plain view; None = from the cache too) or, for a head that fine-tuned the encoder's layers
    after ``tap``, the (cached) output maps of that layer."""
    if not tap and view == "plain" and features is not None:
        return features
    inputs, errors = FeatureCache(encoder_name, cache_dir, view=view,
                                  tap=tap).features_for(list(image_paths))
    failed = [str(path) for path, error in zip(image_paths, errors) if error]
    if failed:
        raise ValueError(f"unreadable images for the tag head: {', '.join(failed[:3])}")
    return inputs


def head_view_inputs(tag_head, features: np.ndarray, image_paths, encoder_name: str,
                     cache_dir=None) -> list[np.ndarray]:
    """:func:`tag_head_inputs` for every view the head averages, in the head's order."""
    return [tag_head_inputs(tag_head.tap, features, image_paths, encoder_name, cache_dir, view)
            for view in tag_head.views]


def heads_inputs(tag_heads, features: np.ndarray, image_paths, encoder_name: str,
                 cache_dir=None) -> list[list[np.ndarray]]:
    """:func:`head_view_inputs` for the artifact's head (on ``encoder_name``, the captioner's,
    whose pooled ``features`` it may reuse) and each extra head (on its own encoder)."""
    return [head_view_inputs(head, features if index == 0 else None, image_paths,
                             encoder_name if index == 0 else head.encoder, cache_dir)
            for index, head in enumerate(tag_heads)]


def class_probabilities(encoder_names: Sequence[str], features: np.ndarray, image_paths,
                        cache_dir=None) -> np.ndarray | None:
    """ImageNet class probabilities averaged over the encoders (the captioner's first, whose
    pooled ``features`` are given; the others' from the feature cache), as
    :class:`mlcore.captioner.Captioner` computes them; None when no encoder has a classifier."""
    rows = []
    for index, name in enumerate(encoder_names):
        try:
            head = build_encoder(name).imagenet_head
        except EncoderWeightsError:
            head = None
        if head is None:
            continue
        pooled = features if index == 0 else tag_head_inputs(None, None, image_paths, name, cache_dir)
        rows.append(head.probabilities(pooled))
    return np.mean(rows, axis=0) if rows else None


def evaluate_decoder(decoder, vocabulary, tag_heads, features, examples, config,
                     head_inputs: Sequence | None = None, decoder_inputs=None) -> dict:
    """Dev metrics for greedy and the configured beam, with the tag heads when there are any.

    ``tag_heads``: the artifact's head and its extra heads (:func:`mlcore.tag_head.load_tag_heads`;
    empty: none). ``features``: the pooled features. ``head_inputs``: what each head reads
    (:func:`heads_inputs`); default ``features`` for each. ``decoder_inputs``: what the decoder
    reads (:func:`decoder_features`); default ``features``.
    """
    step_decoder = StepDecoder(decoder, vocabulary, length_penalty=config.length_penalty)
    references = [example.captions for example in examples]
    head_inputs = [features] * len(tag_heads) if head_inputs is None else head_inputs
    decoder_inputs = features if decoder_inputs is None else decoder_inputs
    heads = average_probabilities(tag_heads, head_inputs) if tag_heads else None
    # The decoder's precision is "auto" (bfloat16 products on hardware that has them), so the
    # recorded metrics say which one produced them.
    return {f"beam{width}": {**evaluate_caption_sets(references,
                                                     step_decoder.decode(decoder_inputs, width),
                                                     tag_probabilities=heads),
                             "precision": step_decoder.precision}
            for width in sorted({1, config.beam_width})}


def train(config: TrainConfig) -> Path:
    """Run one training job and write a model artifact to ``config.out``."""
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    spec = get_encoder_spec(config.encoder)
    train_examples, dev_examples, stats = load_examples(config)
    views = ("plain", "flipped") if config.flip_augment else ("plain",)
    train_features, train_examples = compute_features(config, train_examples, views)
    (dev_features,), dev_examples = compute_features(config, dev_examples, ("plain",))

    strategy = make_strategy(config.strategy)
    with strategy.scope():
        if config.init:
            _, decoder, vocabulary = load_artifact(config.init)
            if decoder.config.feature_dim != spec.feature_dim:
                raise ValueError(f"--init model expects {decoder.config.feature_dim}-d features, "
                                 f"encoder {config.encoder} gives {spec.feature_dim}")
            if config.attention_units and not decoder.config.attends:
                raise ValueError("--attention-units cannot add attention to an --init model "
                                 "that has none; train a new model instead")
        else:
            vocabulary = Vocabulary.build(
                (tokens for example in train_examples for tokens in example.tokenized),
                min_count=config.min_count)
            decoder = build_decoder(DecoderConfig(
                vocabulary_size=len(vocabulary), feature_dim=spec.feature_dim,
                embedding_dim=config.embedding_dim, units=config.units, dropout=config.dropout,
                max_length=config.max_length, attention_units=config.attention_units,
                attention_layer=spec.spatial_layer if config.attention_units else ""))
        decoder.model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate),
                              loss=masked_loss(config.label_smoothing))
    max_length = decoder.config.max_length
    train_inputs, dev_inputs = train_features, dev_features
    if decoder.config.attends:  # the same images (all readable), as maps
        train_inputs, _ = compute_features(config, train_examples, views,
                                           decoder.config.attention_layer)
        (dev_inputs,), _ = compute_features(config, dev_examples, ("plain",),
                                            decoder.config.attention_layer)
    train_index, train_ids = encode_captions(train_examples, vocabulary, max_length)
    dev_index, dev_ids = encode_captions(dev_examples, vocabulary, max_length)
    train_data = caption_dataset(train_inputs, train_index, train_ids, config.batch_size,
                                 shuffle=True, seed=config.seed)
    dev_data = caption_dataset(dev_inputs, dev_index, dev_ids, config.batch_size * 4,
                               shuffle=False)

    out = Path(config.out)
    work_dir = out.with_name(out.name + ".checkpoints")
    backup_dir = work_dir / "backup"
    if not config.resume and backup_dir.exists():
        shutil.rmtree(backup_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        keras.callbacks.ModelCheckpoint(str(work_dir / "best.weights.h5"), monitor="val_loss",
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1,
                                          min_lr=1e-5, verbose=1),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                      restore_best_weights=True, verbose=1),
        keras.callbacks.CSVLogger(str(work_dir / "history.csv"), append=config.resume),
        *config.callbacks,
    ]
    logger.info("training on %d captions of %d images (vocabulary %d words)", len(train_index),
                len(train_examples), len(vocabulary))
    history = decoder.model.fit(train_data, validation_data=dev_data, epochs=config.epochs,
                                callbacks=callbacks, shuffle=False,  # tf.data shuffles
                                verbose=1 if sys.stderr.isatty() else 2)
    best_weights = work_dir / "best.weights.h5"
    if best_weights.is_file():
        decoder.model.load_weights(str(best_weights))
    train_seconds = time.time() - started

    metadata = {
        "data": {"root": str(Path(config.data).name), **stats,
                 "train_captions": int(len(train_index))},
        "settings": {key: value for key, value in asdict(config).items()
                     if key not in ("data", "out", "cache_dir", "resume", "evaluate_dev", "callbacks")},
        "epochs_run": len(history.history.get("loss", [])),
        "best_val_loss": float(min(history.history.get("val_loss", [float("nan")]))),
        "train_seconds": round(train_seconds, 1),
        "tensorflow": tf.__version__, "keras": keras.__version__,
    }
    tag_head = None
    if config.tag_head_epochs:
        tag_head = train_tag_head(train_features, train_examples, config.tag_head_units,
                                  epochs=config.tag_head_epochs, min_images=config.tag_min_images,
                                  seed=config.seed)
    if config.evaluate_dev and dev_examples:
        metadata["dev_metrics"] = evaluate_decoder(decoder, vocabulary,
                                                   [tag_head] if tag_head else [], dev_features,
                                                   dev_examples, config, decoder_inputs=dev_inputs)
    encoder = {"name": spec.name, "input_size": spec.input_size, "feature_dim": spec.feature_dim,
               "preprocessing": spec.preprocessing}
    save_artifact(out, decoder=decoder, vocabulary=vocabulary, encoder=encoder,
                  version=config.version,
                  decoding={"beam_width": config.beam_width, "length_penalty": config.length_penalty},
                  training=metadata, tag_head=tag_head)
    logger.info("wrote %s in %.0f s: %s", out, time.time() - started,
                json.dumps(metadata.get("dev_metrics", {})))
    return out
