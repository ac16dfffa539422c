"""The ``tag-head`` job: (re)train a tag head of an existing artifact, without retraining the LSTM.

Why a job of its own: the head is cheap to retrain and the recipe that ships (several training
views, the encoder's last block fine-tuned, an extra head on a second backbone) runs after the
decoder's training. The artifact changes only through :func:`mlcore.artifact.revise`: the new
head is written into a copy, measured there as stored, and the copy replaces the artifact under a
new version, so a registered version never points at changed weights and a failure midway leaves
the old artifact intact.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from mlcore.artifact import load_artifact, read_info, revise, tag_head_version
from mlcore.tag_head import check_head_views, load_tag_heads, member_dir
from mlcore.views import check_views
from training.config import TagHeadConfig, TrainConfig
from training.flickr8k import Flickr8k
from training.tag_head import finetune_tag_head, train_tag_head
from training.train import compute_features, evaluate_decoder, heads_inputs, tag_head_inputs

logger = logging.getLogger(__name__)


@dataclass
class TagHeadResult:
    """What the job changed: the artifact's new version and the dev metrics with its heads."""

    version: str
    previous_version: str
    metrics: dict


def run_tag_head_job(config: TagHeadConfig) -> TagHeadResult | None:
    """Train the head ``config`` describes into ``config.model``; None when no tag is used on
    ``config.min_images`` training images (the artifact is then left as it was).

    Raises ``ValueError`` for settings that cannot work (checked before any training) and
    :class:`mlcore.artifact.ArtifactError` for an unreadable artifact.
    """
    train_views = check_views(config.train_views)
    test_views = check_head_views(config.views)
    info, decoder, vocabulary = load_artifact(config.model)
    captioner_encoder = info.encoder["name"]
    extra = bool(config.encoder) and config.encoder != captioner_encoder
    if extra and not config.finetune_tap:
        raise ValueError("an extra head on another encoder needs --finetune-tap")
    features_config = TrainConfig(data=config.data, encoder=config.encoder or captioner_encoder,
                                  cache_dir=config.cache_dir,
                                  beam_width=int(info.decoding.get("beam_width", 3)),
                                  length_penalty=float(info.decoding.get("length_penalty", 0.7)))
    dataset = Flickr8k.load(config.data)
    if config.copy_from:
        copied = load_tag_heads(config.copy_from)
        if not copied or copied[0].encoder not in ("", captioner_encoder):
            raise ValueError(f"{config.copy_from} has no tag head on {captioner_encoder}")
        source = read_info(config.copy_from)
    else:
        head = _train(config, features_config, dataset, train_views)
        if head is None:
            return None
        head.views = test_views
    with revise(config.model) as revision:
        training = revision.manifest.setdefault("training", {})
        if config.copy_from:  # the heads read the encoder, never the decoder: they carry over
            for index, member in enumerate(copied):
                revision.write_tag_head(member, extra=index > 0)
            for key, recipe in source.training.items():
                if key == "tag_head" or key.startswith("tag_head_"):
                    training[key] = {**recipe, "copied_from": source.version}
        else:
            revision.write_tag_head(head, extra=extra)
        heads = load_tag_heads(revision.directory)  # measured as stored (int8 kernels)
        caption_config = dataclasses.replace(features_config, encoder=captioner_encoder)
        (dev_features,), dev_examples = compute_features(caption_config,
                                                         dataset.split("dev").examples, ("plain",))
        dev_inputs = heads_inputs(heads, dev_features, [e.image_path for e in dev_examples],
                                  captioner_encoder, config.cache_dir)
        (decoder_inputs,), _ = compute_features(caption_config, dev_examples, ("plain",),
                                                decoder.config.attention_layer)
        metrics = evaluate_decoder(decoder, vocabulary, heads, dev_features, dev_examples,
                                   caption_config, head_inputs=dev_inputs,
                                   decoder_inputs=decoder_inputs)
        training["dev_metrics"] = metrics
        if not config.copy_from:
            key = member_dir(config.model, features_config.encoder).name if extra else "tag_head"
            training[key] = _recipe(config, head, train_views)
        revision.version = config.version or tag_head_version(info.version, revision.directory)
    logger.info("%s: version %s (was %s)", config.model, revision.version, info.version)
    return TagHeadResult(revision.version, info.version, metrics)


def _train(config: TagHeadConfig, features_config: TrainConfig, dataset: Flickr8k,
           train_views: tuple[str, ...]):
    """The head trained on the frozen features of every view, then fine-tuned after the tap."""
    (plain,), examples = compute_features(features_config, dataset.split("train").examples,
                                          ("plain",))
    paths = [example.image_path for example in examples]
    encoder = features_config.encoder
    map_views = None
    if config.finetune_tap:  # one forward pass per view fills the map cache and the pooled one
        map_views = [tag_head_inputs(config.finetune_tap, plain, paths, encoder,
                                     config.cache_dir, view) for view in train_views]
    views = [tag_head_inputs(None, plain, paths, encoder, config.cache_dir, view)
             for view in train_views]
    head = train_tag_head(views, examples, config.units, epochs=config.epochs, seed=config.seed,
                          min_images=config.min_images)
    del views
    if head is None or map_views is None:
        return head
    return finetune_tag_head(head, map_views, examples, encoder, config.finetune_tap,
                             epochs=config.finetune_epochs,
                             learning_rate=config.finetune_learning_rate,
                             min_images=config.min_images, seed=config.seed)


def _recipe(config: TagHeadConfig, head, train_views: tuple[str, ...]) -> dict:
    """How the head was made, for ``model.json``'s ``training`` (the model card reads it)."""
    return {"epochs": config.epochs, "units": config.units, "tags": len(head.tags),
            "finetune_tap": head.tap, "finetune_epochs": config.finetune_epochs if head.tap else 0,
            "finetune_learning_rate": config.finetune_learning_rate,
            "train_views": list(train_views), "views": list(head.views)}
