"""Captions + cached features → ``tf.data`` pipelines for teacher-forced training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mlcore.text import clean_caption
from mlcore.vocabulary import Vocabulary
from training.flickr8k import Example


def encode_captions(examples: Sequence[Example], vocabulary: Vocabulary, max_length: int,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """All captions as ``(image_index (C,), ids (C, max_length + 1))``, start/end added.

    ``max_length`` counts the generated tokens (the words and ``<end>``), so a row holds
    ``<start>`` plus at most ``max_length`` ids; longer captions are cut (rare in Flickr8k).
    """
    image_index, rows = [], []
    for index, example in enumerate(examples):
        for caption in example.captions:
            tokens = clean_caption(caption)
            if not tokens:
                continue
            ids = vocabulary.encode(tokens[: max_length - 1])
            rows.append(ids + [vocabulary.pad_id] * (max_length + 1 - len(ids)))
            image_index.append(index)
    return np.asarray(image_index, np.int32), np.asarray(rows, np.int32).reshape(-1, max_length + 1)


def caption_dataset(features: np.ndarray | Sequence[np.ndarray], image_index: np.ndarray,
                    caption_ids: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                    ) -> tf.data.Dataset:
    """Batches of ``((image_features, input_ids), target_ids)``, trimmed to the batch's longest.

    ``features`` may be a list of views of the same images (plain, flipped); when shuffling, each
    caption then draws one view at random, a cheap augmentation that needs no CNN at train time.
    They keep their dtype in memory (float16 spatial maps: half the size) and reach the model as
    float32. The table is a variable, not a constant: a constant is copied into the pipeline's
    graph, which cannot exceed 2 GB (a split's spatial maps do).
    """
    views = np.stack(features if isinstance(features, (list, tuple)) else [features])
    view_table = tf.Variable(views, trainable=False, name="feature_table")
    view_count = views.shape[0]
    dataset = tf.data.Dataset.from_tensor_slices((image_index, caption_ids))
    if shuffle:
        dataset = dataset.shuffle(len(image_index), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def to_model_inputs(indices, ids):
        if shuffle and view_count > 1:
            view = tf.random.uniform(tf.shape(indices), 0, view_count, dtype=tf.int32)
        else:
            view = tf.zeros_like(indices)
        image_features = tf.cast(tf.gather_nd(view_table, tf.stack([view, indices], axis=1)),
                                 tf.float32)
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1))
        ids = ids[:, :longest]
        return (image_features, ids[:, :-1]), ids[:, 1:]

    return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)
