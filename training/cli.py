"""``python -m training features|train|evaluate|...`` — the training pipeline's command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Only modules without TensorFlow at the top: `python -m training --help` must stay quick. The
# commands import their TensorFlow/Keras modules inside (marked `# lazy:`).
from mlcore.artifact import (DEFAULT_MODEL_DIR, ArtifactError, load_artifact,  # noqa: E402
                             read_info, set_version)
from mlcore.classes import imagenet_classes  # noqa: E402
from mlcore.tag_head import (average_probabilities, check_head_views,  # noqa: E402
                             load_tag_heads)
from tqdm.auto import tqdm  # noqa: E402
from training.config import TagHeadConfig, TrainConfig  # noqa: E402
from training.feature_cache import FeatureCache  # noqa: E402
from training.flickr8k import Flickr8k  # noqa: E402
from training.wordnet_tags import write as write_wordnet_data  # noqa: E402


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset root in the Flickr8k layout")
    parser.add_argument("--cache-dir", default=None,
                        help="feature cache directory (default: .cache/features or "
                             "$HASHTAGS_FEATURE_CACHE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    features = commands.add_parser("features", help="fill the feature cache for a dataset")
    _add_data_arguments(features)
    features.add_argument("--encoder", default="efficientnet_lite0")
    features.add_argument("--splits", default="train,dev", help="comma-separated splits")
    features.add_argument("--flipped", action="store_true", help="also cache mirrored images")

    train = commands.add_parser("train", help="train a decoder and write a model artifact")
    _add_data_arguments(train)
    defaults = _defaults(TrainConfig)
    train.add_argument("--encoder", default=defaults["encoder"])
    train.add_argument("--out", required=True, help="model artifact directory to write")
    train.add_argument("--optimizer", choices=["adam", "rmsprop"], default=defaults["optimizer"])
    for name in ("learning_rate", "dropout", "label_smoothing", "length_penalty"):
        train.add_argument("--" + name.replace("_", "-"), type=float, default=defaults[name])
    for name in ("epochs", "batch_size", "embedding_dim", "units", "min_count", "max_length",
                 "patience", "seed", "beam_width", "tag_head_epochs", "tag_head_units",
                 "tag_min_images"):
        train.add_argument("--" + name.replace("_", "-"), type=int, default=defaults[name])
    train.add_argument("--attention-units", type=int, default=defaults["attention_units"],
                       help="attend over the encoder's spatial map with this many attention "
                            "units (0: the pooled feature only; default: %(default)s)")
    train.add_argument("--strategy", choices=["default", "mirrored", "multiworker"],
                       default="default")
    train.add_argument("--extra-data", action="append", default=[], metavar="DIR",
                       help="more data in the same layout (e.g. the feedback export); repeatable")
    train.add_argument("--init", default=None, metavar="MODEL_DIR",
                       help="fine-tune from this artifact (keeps its vocabulary)")
    train.add_argument("--flip-augment", action="store_true",
                       help="also train on features of mirrored images")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run")
    train.add_argument("--version", default=None, help="version string of the new model")
    train.add_argument("--no-evaluate", dest="evaluate_dev", action="store_false")

    evaluate = commands.add_parser("evaluate", help="BLEU-1..4 and hashtag P/R@5 on a split")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--split", choices=["dev", "test", "train"], default="dev")
    evaluate.add_argument("--model", default=None, help="artifact directory (default: shipped)")
    evaluate.add_argument("--beam", type=int, default=None, help="beam width (1 = greedy)")
    evaluate.add_argument("--limit", type=int, default=None, help="only the first N images")
    evaluate.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                          help="decoder matrix products (auto = bfloat16 where native)")
    evaluate.add_argument("--human", action="store_true",
                          help="also report the human level of the hashtag and caption measures")
    evaluate.add_argument("--tag-views", default=None, metavar="VIEWS",
                          help="comma-separated image views the tag head averages "
                               "(default: the model's own)")
    evaluate.add_argument("--no-extra-heads", dest="extra_heads", action="store_false",
                          help="only the tag head on the captioner's encoder "
                               "(HASHTAGS['EXTRA_TAG_HEADS'] = False)")
    evaluate.add_argument("--no-classifier", dest="classifier", action="store_false",
                          help="leave the encoders' ImageNet classes out of the hashtags "
                               "(HASHTAGS['CLASSIFIER_TAGS'] = False)")
    head = commands.add_parser("tag-head", help="(re)train the tag head of an existing artifact")
    _add_data_arguments(head)
    head.add_argument("--model", required=True)
    head_defaults = _defaults(TagHeadConfig)
    head.add_argument("--encoder", default=None,
                      help="train an extra head on this encoder (e.g. efficientnet_lite2), kept "
                           "in tag_head_<encoder>/ and averaged with the model's own head; "
                           "default: replace the head on the captioner's encoder")
    head.add_argument("--epochs", type=int, default=head_defaults["epochs"],
                      help="passes over all training views with the encoder frozen "
                           "(default: %(default)s)")
    head.add_argument("--units", type=int, default=head_defaults["units"])
    head.add_argument("--seed", type=int, default=head_defaults["seed"])
    head.add_argument("--min-images", type=int, default=head_defaults["min_images"],
                      help="tags used on fewer training images are not learned")
    head.add_argument("--finetune-tap", default=None, metavar="LAYER",
                      help="then fine-tune the encoder's layers after LAYER with the head "
                           "(the shipped model: block14_add, EfficientNet-Lite0's last block)")
    head.add_argument("--copy-from", default=None, metavar="MODEL_DIR",
                      help="copy this artifact's tag heads (same encoder; they read the encoder, "
                           "not the decoder) instead of training, e.g. onto a newly trained "
                           "decoder; then measure them on dev as usual")
    head.add_argument("--finetune-epochs", type=int, default=head_defaults["finetune_epochs"])
    head.add_argument("--finetune-learning-rate", type=float,
                      default=head_defaults["finetune_learning_rate"])
    head.add_argument("--train-views", default=",".join(head_defaults["train_views"]),
                      metavar="VIEWS",
                      help="comma-separated image views to train on (mlcore.views; default: "
                           "%(default)s)")
    head.add_argument("--views", default=",".join(head_defaults["views"]), metavar="VIEWS",
                      help="image views the head averages at test time (default: %(default)s)")
    head.add_argument("--version", default=None,
                      help="the artifact's new version (its weights change); default: its "
                           "version plus -th and a digest of the tag heads' files")

    card = commands.add_parser("card", help="write MODEL_CARD.md from an artifact's metadata")
    card.add_argument("--model", required=True)
    card.add_argument("--notes", default="", help="a Markdown file with extra notes to include")

    ood = commands.add_parser("evaluate-ood", help="hashtag hit@1/hit@5 on everyday photos named "
                                                   "<wnid>_<name>.jpg (one ImageNet class each)")
    ood.add_argument("--images", required=True, help="folder of photos, e.g. ../shared/imagenet_samples")
    ood.add_argument("--model", default=None, help="artifact directory (default: shipped)")
    ood.add_argument("--beam", type=int, default=None, help="beam width (1 = greedy)")
    ood.add_argument("--no-classifier", dest="classifier", action="store_false",
                     help="leave the encoders' ImageNet classes out of the hashtags")
    ood.add_argument("--no-extra-heads", dest="extra_heads", action="store_false")

    calibrate = commands.add_parser("calibrate", help="fit the fusion of captions, tag heads and "
                                                      "classifier into the artifact's fusion.json")
    _add_data_arguments(calibrate)
    calibrate.add_argument("--model", required=True, help="artifact directory to calibrate")
    calibrate.add_argument("--imagenet", required=True, metavar="DIR",
                           help="ImageNet-style photos named <wnid>_<name>.jpg")
    calibrate.add_argument("--train-images", type=int, default=2000,
                           help="Flickr8k training photos to use (0 = all; default %(default)s)")
    calibrate.add_argument("--folds", type=int, choices=[0, 2], default=2,
                           help="2: also report ImageNet hit@k cross-fitted over two halves of the classes")
    calibrate.add_argument("--flickr8k-share", type=float, default=0.5,
                           help="the Flickr8k photos' share of the fit (the rest: the ImageNet-style "
                                "ones; more favours scene/action tags, less everyday objects)")
    calibrate.add_argument("--version", required=True,
                           help="the artifact's new version (its hashtags change)")

    wordnet = commands.add_parser("wordnet-data", help="regenerate mlcore's ImageNet class tags "
                                                       "and verb forms from WordNet 3.0")
    wordnet.add_argument("--wordnet", default="/usr/share/wordnet",
                         help="WordNet database directory (Debian: wordnet-base + "
                              "wordnet-sense-index; default: %(default)s)")
    return parser


def _defaults(config_class) -> dict:
    """A settings dataclass's defaults, so that the options and the API never disagree."""
    return {f.name: f.default for f in dataclasses.fields(config_class)
            if f.default is not dataclasses.MISSING}


def run_features(args) -> int:
    dataset = Flickr8k.load(args.data)
    examples = []
    for name in args.splits.split(","):
        split = dataset.split(name.strip())
        print(f"{name}: {len(split)} images, {len(split.missing_images)} missing", file=sys.stderr)
        examples.extend(split.examples)
    for view in ("plain", "flipped") if args.flipped else ("plain",):
        cache = FeatureCache(args.encoder, args.cache_dir, view=view)
        _, errors = cache.features_for([example.image_path for example in examples])
        failed = sum(error is not None for error in errors)
        print(json.dumps({"encoder": args.encoder, "view": view, "images": len(examples),
                          "cached": cache.hits, "computed": cache.computed, "failed": failed,
                          "cache_dir": str(cache.directory)}))
    return 0


def run_train(args) -> int:
    from training.train import train  # lazy: TensorFlow start-up

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{key: value for key, value in vars(args).items() if key in fields})
    out = train(config)
    info = read_info(out)
    print(json.dumps({"model": str(out), "model_version": info.version,
                      "dev_metrics": info.training.get("dev_metrics", {})}))
    return 0


def run_evaluate(args) -> int:
    from mlcore.decoding import StepDecoder  # lazy: TensorFlow start-up
    from mlcore.fusion import load_fusion_config  # lazy: TensorFlow start-up (mlcore.decoding)
    from training.evaluate import (evaluate_caption_sets, human_caption_scores,  # lazy: TensorFlow
                                   human_tag_scores)
    from training.train import (class_probabilities, decoder_features,  # lazy: TensorFlow
                                heads_inputs)

    model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    try:
        info, decoder, vocabulary = load_artifact(model_dir)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    split = Flickr8k.load(args.data).split(args.split)
    if not split.examples:
        print(f"error: none of the {len(split.missing_images)} images of the {args.split} split "
              f"is present under {args.data}; evaluate on another split", file=sys.stderr)
        return 1
    examples = split.examples[: args.limit] if args.limit else split.examples
    cache = FeatureCache(info.encoder["name"], args.cache_dir)
    features, errors = cache.features_for([example.image_path for example in examples])
    keep = [index for index, error in enumerate(errors) if error is None]
    beam = args.beam or int(info.decoding.get("beam_width", 3))
    step_decoder = StepDecoder(decoder, vocabulary,
                               length_penalty=float(info.decoding.get("length_penalty", 0.7)),
                               precision=args.precision)
    decoder_inputs = features
    if decoder.config.attends:
        decoder_inputs, _ = decoder_features(decoder.config, info.encoder["name"],
                                             [example.image_path for example in examples],
                                             args.cache_dir)
    caption_sets = step_decoder.decode(decoder_inputs[keep], beam_width=beam)
    try:
        tag_heads = load_tag_heads(model_dir)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.extra_heads:
        tag_heads = tag_heads[:1]
    tag_head = tag_heads[0] if tag_heads else None
    heads = None
    if tag_head is not None:
        if args.tag_views:
            try:
                for member in tag_heads:
                    member.views = check_head_views(args.tag_views.split(","))
            except ValueError as error:
                print(f"error: --tag-views: {error}", file=sys.stderr)
                return 2
        head_inputs = heads_inputs(tag_heads, features[keep],
                                   [examples[i].image_path for i in keep], info.encoder["name"],
                                   args.cache_dir)
        heads = average_probabilities(tag_heads, head_inputs)
    encoders = [info.encoder["name"]] + [member.encoder for member in tag_heads[1:]]
    classes = (class_probabilities(encoders, features[keep], [examples[i].image_path for i in keep],
                                   args.cache_dir) if args.classifier else None)
    try:
        fusion = load_fusion_config(model_dir)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scores = evaluate_caption_sets([examples[i].captions for i in keep], caption_sets,
                                   tag_probabilities=heads, class_probabilities=classes,
                                   fusion=fusion)
    result = {"images": len(keep), **{k: round(v, 4) for k, v in scores.items()}, "beam": beam,
              "model_version": info.version, "split": args.split,
              "missing_images": len(split.missing_images), "precision": step_decoder.precision,
              "tag_views": list(tag_head.views) if tag_head is not None else [],
              "tag_head_encoders": [member.encoder or info.encoder["name"]
                                    for member in tag_heads],
              "classifier": classes is not None, "fusion_fitted": fusion.weights is not None}
    if args.human:
        precision, recall = human_tag_scores([examples[i].captions for i in keep])
        result["human_tag_precision_at_5"] = round(precision, 4)
        result["human_tag_recall_at_5"] = round(recall, 4)
        result.update({key: round(value, 4) for key, value in
                       human_caption_scores([examples[i].captions for i in keep]).items()})
    print(json.dumps(result))
    return 0


def run_tag_head(args) -> int:
    """Add or replace a tag head of an artifact whose decoder is already trained."""
    from training.tag_head_job import run_tag_head_job  # lazy: TensorFlow start-up

    config = TagHeadConfig(
        data=args.data, model=args.model, encoder=args.encoder, cache_dir=args.cache_dir,
        epochs=args.epochs, units=args.units, seed=args.seed, min_images=args.min_images,
        finetune_tap=args.finetune_tap, copy_from=args.copy_from,
        finetune_epochs=args.finetune_epochs,
        finetune_learning_rate=args.finetune_learning_rate,
        train_views=tuple(args.train_views.split(",")), views=tuple(args.views.split(",")),
        version=args.version)
    try:
        result = run_tag_head_job(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if result is None:
        print(f"error: no tag is used on {args.min_images} or more training images; no tag head",
              file=sys.stderr)
        return 1
    print(json.dumps({"model": str(args.model), "model_version": result.version,
                      "derived_from": result.previous_version, **result.metrics}))
    return 0


def run_card(args) -> int:
    from training.model_card import write_model_card  # lazy: TensorFlow start-up (mlcore.fusion)

    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else ""
    print(write_model_card(args.model, notes))
    return 0


def run_evaluate_ood(args) -> int:
    from mlcore.captioner import Captioner  # lazy: TensorFlow start-up
    from mlcore.extractor import EVERY_TAG  # lazy: word data, not needed for --help
    from training.calibrate import hits_at, imagenet_photos  # lazy: TensorFlow start-up

    try:
        photos = imagenet_photos(args.images)
        captioner = Captioner.load(args.model, classifier=args.classifier,
                                   extra_tag_heads=args.extra_heads)
    except (ArtifactError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ranked, right, failed = [], [], 0
    for start in tqdm(range(0, len(photos), 32), desc="evaluate-ood", unit="batch", leave=False):
        batch = photos[start:start + 32]
        for (_, index), result in zip(batch, captioner.suggest([str(p) for p, _ in batch],
                                                               beam_width=args.beam, config=EVERY_TAG)):
            if not hasattr(result, "hashtags"):
                failed += 1
                continue
            ranked.append([tag.name for tag in result.hashtags])
            right.append(imagenet_classes()[index].hits)
    scores = hits_at(ranked, right)
    print(json.dumps({"images": len(ranked), "unreadable": failed,
                      **{key: round(value, 4) for key, value in scores.items()},
                      "model_version": captioner.model_version, "classifier": args.classifier,
                      "fusion_fitted": captioner.fusion.weights is not None}))
    return 0


def run_calibrate(args) -> int:
    from mlcore.captioner import Captioner  # lazy: TensorFlow start-up
    from mlcore.fusion import save_fusion_config  # lazy: TensorFlow start-up (mlcore.decoding)
    from training.calibrate import (fit_fusion, flickr8k_images,  # lazy: TensorFlow start-up
                                    fusion_report, imagenet_images, sample)

    try:
        captioner = Captioner.load(args.model)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    data = Flickr8k.load(args.data)
    flickr8k = flickr8k_images(captioner, sample(data.split("train").examples, args.train_images),
                               "flickr8k train")
    imagenet = imagenet_images(captioner, args.imagenet)
    result: dict = {}
    if args.folds:
        held_out = []
        for fold in (0, 1):
            fitted = fit_fusion(flickr8k + [image for image in imagenet if image.group != fold],
                                flickr8k_share=args.flickr8k_share)
            held_out.append(fusion_report(fitted, [], [i for i in imagenet if i.group == fold]))
        result["imagenet_cross_fitted"] = {key: round(sum(r[key] for r in held_out) / 2, 4)
                                           for key in held_out[0]}
    fusion = fit_fusion(flickr8k + imagenet, flickr8k_share=args.flickr8k_share)
    result["fitted"] = fusion_report(fusion, flickr8k, imagenet)
    dev = flickr8k_images(captioner, data.split("dev").examples, "flickr8k dev")
    result["dev"] = fusion_report(fusion, dev, [])
    fusion = dataclasses.replace(fusion, fitted_on={**fusion.fitted_on, "report": result})
    save_fusion_config(args.model, fusion)
    set_version(args.model, args.version)
    print(json.dumps({"model": str(args.model), "model_version": args.version,
                      "weights": dict(zip(fusion.to_json()["features"], fusion.weights)), **result}))
    return 0


def run_wordnet_data(args) -> int:
    for path in write_wordnet_data(Path(args.wordnet)):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    handler = {"features": run_features, "train": run_train, "evaluate": run_evaluate,
               "card": run_card, "tag-head": run_tag_head, "wordnet-data": run_wordnet_data,
               "evaluate-ood": run_evaluate_ood, "calibrate": run_calibrate}
    return handler[args.command](args)
