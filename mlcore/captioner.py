"""Images in, captions and hashtags out: the one object the Django app and the CLI use."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mlcore.artifact import DEFAULT_MODEL_DIR, ArtifactError, ArtifactInfo, load_artifact
from mlcore.decoding import CaptionSet, StepDecoder
from mlcore.encoders import EncoderWeightsError, build_encoder
from mlcore.extractor import ExtractorConfig, ScoredTag
from mlcore.fusion import (FusionConfig, ImageEvidence, caption_confidence, fuse_hashtags,
                           gather_evidence, load_fusion_config)
from mlcore.images import ImageError, load_image
from mlcore.tag_head import (TagHead, average_probabilities, check_head_views, load_tag_head,
                             load_tag_heads)
from mlcore.views import apply_view

__all__ = ["Captioner", "CaptionSet", "CaptionResult", "ArtifactError", "ImageError"]


@dataclass
class CaptionResult:
    """What one image gets: the best caption, the beam's captions and the ranked hashtags.

    ``caption_confidence`` in [0, 1]: how far the caption agrees with what the classifier and
    tag heads see (:func:`mlcore.fusion.caption_confidence`); below
    :data:`mlcore.fusion.LOW_CAPTION_CONFIDENCE` the caption should not be shown as fact.
    ``caption_words``: every tag word of the beam's captions (:func:`mlcore.extractor.caption_words`),
    kept so that the re-ranker need not extract them again.
    ``attention``: with an attention decoder, the best caption's attention, one row per word over
    the encoder map's positions (``attention_grid`` rows x columns, row-major); None otherwise."""

    caption: str
    captions: list[str]
    log_probs: list[float]
    hashtags: list[ScoredTag]
    model_version: str
    timings: dict[str, float] = field(default_factory=dict)
    caption_confidence: float = 1.0
    caption_words: tuple[str, ...] = ()
    attention: np.ndarray | None = None
    attention_grid: tuple[int, int] | None = None

    def as_dict(self) -> dict:
        data = {"caption": self.caption, "captions": self.captions,
                "caption_confidence": self.caption_confidence,
                "hashtags": [tag.as_dict() for tag in self.hashtags],
                "model_version": self.model_version}
        if self.attention_map is not None:
            data["attention"] = self.attention_map
        return data

    @property
    def attention_map(self) -> dict | None:
        """The best caption's attention as stored and served: ``{"grid": [rows, columns],
        "words": [[weight per position] per word]}`` (weights to 3 decimals), or None."""
        if self.attention is None or self.attention_grid is None:
            return None
        return {"grid": [int(side) for side in self.attention_grid],
                "words": [[round(float(weight), 3) for weight in row] for row in self.attention]}


class Captioner:
    """A loaded artifact: encoder, decoder and vocabulary, ready for batches of images.

    Loading is expensive (TensorFlow graphs, encoder weights): build one per process and reuse it.
    """

    def __init__(self, info: ArtifactInfo, encoder, step_decoder: StepDecoder,
                 model_dir: Path | None = None, tag_head: TagHead | None = None,
                 extra_heads: Sequence[tuple[TagHead, object]] = (), classifier: bool = True,
                 fusion: FusionConfig | None = None):
        self.info = info
        #: use the encoders' ImageNet classifiers (when their weights have one) for hashtags
        self.classifier = classifier
        self.fusion = fusion or FusionConfig()
        self.tag_head = tag_head
        #: ``(head, its encoder)`` for the artifact's extra heads on other backbones
        self.extra_heads = list(extra_heads)
        self.encoder = encoder
        self.step_decoder = step_decoder
        self.model_dir = model_dir

    @classmethod
    def load(cls, model_dir: str | Path | None = None, encoder_weights: str | None = "default",
             precision: str | None = "auto", tag_views: Sequence[str] | None = None,
             extra_tag_heads: bool = True, classifier: bool = True,
             resnet50_weights: str | os.PathLike | None = None) -> Captioner:
        """``precision``: the decoder's matrix-product float type (:mod:`mlcore.precision`).

        ``tag_views``: the image views the tag head averages (:mod:`mlcore.views`); None = the
        artifact's own. ``["plain"]`` costs one encoder pass per image instead of one per view,
        at some hashtag quality (model card).

        ``extra_tag_heads``: also run the artifact's tag heads on other encoders (each costs its
        encoder's passes); False keeps the head that shares the captioner's encoder.

        ``classifier``: fuse the encoders' ImageNet classes into the hashtags (no extra CNN
        pass); the fusion's calibration is the artifact's ``fusion.json`` (:mod:`mlcore.fusion`).

        ``resnet50_weights``: a local ResNet50 weights file for every ResNet50 this builds with
        default weights (the captioner's encoder, an extra head's); None = the default
        (``$MLCORE_RESNET50_WEIGHTS`` if set, else Keras' ImageNet download).
        """

        if model_dir is None:
            model_dir = DEFAULT_MODEL_DIR
            if not (Path(model_dir) / "model.json").is_file():
                raise ArtifactError(
                    f"no shipped model found at {model_dir}; train one with "
                    "`python -m training train` and pass its directory (--model / MODEL_DIR)")
        info, decoder, vocabulary = load_artifact(model_dir)
        try:
            encoder = build_encoder(info.encoder["name"], weights=encoder_weights,
                                    resnet50_weights=resnet50_weights)
        except ValueError as error:
            raise ArtifactError(f"{model_dir}: {error}") from None
        length_penalty = float(info.decoding.get("length_penalty", 0.7))
        step_decoder = StepDecoder(decoder, vocabulary, length_penalty=length_penalty,
                                   precision=precision)
        if extra_tag_heads:
            heads = load_tag_heads(model_dir)
        else:  # not even read: the extra heads' networks cost memory and load time
            heads = [head for head in [load_tag_head(model_dir)] if head is not None]
        tag_head = heads[0] if heads else None
        if tag_head is not None and tag_head.tap and tag_head.encoder != info.encoder["name"]:
            raise ArtifactError(f"{model_dir}: the tag head continues encoder {tag_head.encoder!r} "
                                f"but the model's encoder is {info.encoder['name']!r}")
        extra_heads = []
        for head in heads[1:]:
            try:  # an extra head runs its own encoder (e.g. EfficientNet-Lite2's weights package)
                extra_heads.append((head, build_encoder(
                    head.encoder, weights=None if encoder_weights is None else "default",
                    resnet50_weights=resnet50_weights)))
            except (ValueError, EncoderWeightsError) as error:
                raise ArtifactError(f"{model_dir}: extra tag head: {error}") from None
        if tag_views is not None:
            for head in heads:
                head.views = check_head_views(tag_views)
        return cls(info, encoder, step_decoder, Path(model_dir), tag_head, extra_heads,
                   classifier=classifier, fusion=load_fusion_config(model_dir))

    @property
    def model_version(self) -> str:
        return self.info.version

    @property
    def encoder_name(self) -> str:
        return self.info.encoder["name"]

    @property
    def default_beam_width(self) -> int:
        return int(self.info.decoding.get("beam_width", 3))

    @property
    def attention_layer(self) -> str:
        """The encoder layer whose map the decoder attends over; empty without attention."""
        return self.step_decoder.decoder.config.attention_layer

    def caption_features(self, features: np.ndarray, beam_width: int | None = None,
                         ) -> list[CaptionSet]:
        """Captions of encoded images: pooled features ``(N, feature_dim)``, or for an attention
        decoder the maps ``(N, positions, feature_dim)``."""
        beam_width = beam_width or self.default_beam_width
        return self.step_decoder.decode(features, beam_width=beam_width)

    def caption_images(self, images: Sequence, beam_width: int | None = None,
                       ) -> list[CaptionSet | ImageError]:
        """Caption many images in one batch; a bad image yields its ImageError, others succeed."""
        return [item[0] if isinstance(item, tuple) else item
                for item in self._caption_with_timings(images, beam_width)]

    def _caption_with_timings(self, images: Sequence, beam_width: int | None):
        started = time.perf_counter()
        size = self.encoder.spec.input_size
        loaded: list[np.ndarray] = []
        outcome: list[ImageError | int] = []
        for image in images:
            try:
                loaded.append(load_image(image, size=size))
                outcome.append(len(loaded) - 1)
            except ImageError as error:
                outcome.append(error)
        decoded_at = time.perf_counter()
        caption_sets: list[CaptionSet] = []
        grid = None
        head_probabilities: list[dict[str, float] | None] = [None] * len(loaded)
        class_probabilities: list[np.ndarray | None] = [None] * len(loaded)
        encode_seconds = decode_seconds = 0.0
        if loaded:
            features, head_inputs, classes = self._encode(loaded)
            if classes is not None:
                class_probabilities = list(classes)
            encoded_at = time.perf_counter()
            if features.ndim == 4:  # an attention decoder's maps: positions in one axis
                grid = features.shape[1:3]
                features = features.reshape(len(features), -1, features.shape[-1])
            caption_sets = self.caption_features(features, beam_width)
            if self.tag_head is not None:
                head_probabilities = average_probabilities(
                    [self.tag_head] + [head for head, _ in self.extra_heads], head_inputs)
            encode_seconds = encoded_at - decoded_at
            decode_seconds = time.perf_counter() - encoded_at
        per_image = max(len(loaded), 1)
        timings = {"load_s": (decoded_at - started) / max(len(images), 1),
                   "encode_s": encode_seconds / per_image, "decode_s": decode_seconds / per_image}
        return [item if isinstance(item, ImageError)
                else (caption_sets[item], head_probabilities[item], class_probabilities[item],
                      timings, grid)
                for item in outcome]

    def _encode(self, loaded: list[np.ndarray],
                ) -> tuple[np.ndarray, list[list[np.ndarray]] | None, np.ndarray | None]:
        """What the decoder reads (the pooled features, or an attention decoder's maps), per tag
        head and view what the head reads, and the ImageNet class probabilities (None without
        classifier).

        All views of the first head go through the captioner's encoder as one batch; the plain
        view's forward pass is the captioner's own (with a ``tap``, the head continues from an
        inner layer of it). Extra heads then run their own encoders. The class probabilities
        average the ImageNet heads of every encoder that ran, each on the plain view's pooled
        features of its own pass: no encoder runs twice.
        """
        layer = self.attention_layer
        if self.tag_head is None:
            if layer:
                pooled, (maps,) = self.encoder.encode_layers(np.stack(loaded), (layer,))
            else:
                pooled = maps = self.encoder.encode(np.stack(loaded))
            return maps, None, self._classify([(self.encoder, pooled)])
        pooled, per_view, maps = _encode_views(self.encoder, self.tag_head, loaded, layer)
        pooled = pooled[:len(loaded)]
        extra = [self._encode_for(head, encoder, loaded) for head, encoder in self.extra_heads]
        classified = [(self.encoder, pooled)] + [(encoder, extra_pooled) for (_, encoder), (extra_pooled, _)
                                                 in zip(self.extra_heads, extra)]
        decoder_inputs = pooled if maps is None else maps[:len(loaded)]
        return decoder_inputs, [per_view] + [views for _, views in extra], self._classify(classified)

    def _classify(self, encoded: list[tuple[object, np.ndarray]]) -> np.ndarray | None:
        if not self.classifier:
            return None
        rows = [encoder.classify(pooled) for encoder, pooled in encoded
                if encoder.imagenet_head is not None]
        return np.mean(rows, axis=0) if rows else None

    @staticmethod
    def _encode_for(head: TagHead, encoder, loaded: list[np.ndarray],
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """An extra head's encoder on the images: its plain-view pooled features and what the
        head reads (its tap or pooled features) for each of its views.

        The images are resized from the captioner's input size to the encoder's, which is how
        the training photos (224x224 files) reached it too.
        """
        size = encoder.spec.input_size
        resized = [image if image.shape[0] == size else
                   np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
                   for image in loaded]
        pooled, per_view, _ = _encode_views(encoder, head, resized)
        return pooled[:len(loaded)], per_view

    def evidence(self, images: Sequence, beam_width: int | None = None,
                 config: ExtractorConfig | None = None) -> list[ImageEvidence | ImageError]:
        """What :meth:`suggest` ranks: each image's candidate tags with the captions', heads' and
        classifier's numbers (:mod:`mlcore.fusion`; calibration and evaluation read it too)."""
        return [item if isinstance(item, ImageError) else item[0]
                for item in self._evidence_with_timings(images, beam_width, config)]

    def _evidence_with_timings(self, images: Sequence, beam_width: int | None,
                               config: ExtractorConfig | None):
        config = config or ExtractorConfig()
        results = []
        for item in self._caption_with_timings(images, beam_width):
            if isinstance(item, ImageError):
                results.append(item)
                continue
            caption_set, head, classes, timings, grid = item
            started = time.perf_counter()
            evidence = gather_evidence(caption_set, head, classes, config)
            results.append((evidence, caption_set, {**timings, "extract_s": time.perf_counter() - started},
                            grid))
        return results

    def suggest(self, images: Sequence, beam_width: int | None = None,
                config: ExtractorConfig | None = None) -> list[CaptionResult | ImageError]:
        """Captions, tag heads and classifier → ranked hashtags for each image (the product's
        main call)."""
        config = config or ExtractorConfig()
        results: list[CaptionResult | ImageError] = []
        for item in self._evidence_with_timings(images, beam_width, config):
            if isinstance(item, ImageError):
                results.append(item)
                continue
            evidence, caption_set, timings, grid = item
            started = time.perf_counter()
            hashtags = fuse_hashtags(evidence, config, self.fusion)
            confidence = caption_confidence(evidence, self.fusion)
            timings["extract_s"] += time.perf_counter() - started
            results.append(CaptionResult(caption_set.caption, caption_set.captions,
                                      caption_set.log_probs, hashtags, self.model_version, timings,
                                      caption_confidence=confidence, caption_words=evidence.caption_words,
                                      attention=caption_set.attention,
                                      attention_grid=None if grid is None else tuple(grid)))
        return results


def _encode_views(encoder, head: TagHead, images: list[np.ndarray], decoder_layer: str = "",
                  ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    """One encoder batch over every view of ``head``: the pooled features of all rows (view-major,
    so the first ``len(images)`` are the plain view), per view what the head reads, and the
    output maps of ``decoder_layer`` for all rows (None without one) from the same pass."""
    batch = np.stack([apply_view(image, view) for view in head.views for image in images])
    taps = tuple(dict.fromkeys(tap for tap in (head.tap, decoder_layer) if tap))
    decoder_maps = None
    if taps:
        pooled, layer_maps = encoder.encode_layers(batch, taps)
        by_tap = dict(zip(taps, layer_maps))
        maps = by_tap[head.tap] if head.tap else pooled
        decoder_maps = by_tap.get(decoder_layer)
    else:
        pooled = maps = encoder.encode(batch)
    count = len(images)
    return pooled, [maps[start:start + count] for start in range(0, len(batch), count)], decoder_maps
