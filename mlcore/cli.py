"""``python -m mlcore caption|hashtags`` — captions and hashtags from the command line.

``caption`` prints one JSON object per image and line; an unreadable image gets a line with an
``"error"`` and makes the exit status 1, while the other images are still captioned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from mlcore.artifact import ArtifactError
from mlcore.extractor import ExtractorConfig, extract_hashtags
from mlcore.images import ImageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlcore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    caption = commands.add_parser("caption", help="caption images and suggest hashtags")
    caption.add_argument("images", nargs="+", metavar="IMAGE")
    caption.add_argument("--model", default=None, help="model artifact directory "
                                                       "(default: the shipped model)")
    caption.add_argument("--beam", type=int, default=None, help="beam width (1 = greedy)")
    caption.add_argument("--max-tags", type=int, default=10)
    caption.add_argument("--min-score", type=float, default=0.0)
    caption.add_argument("--batch-size", type=int, default=32)
    caption.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                         help="decoder matrix products: auto = bfloat16 where the hardware has it")
    caption.add_argument("--tag-views", default=None, metavar="VIEWS",
                         help="comma-separated image views the tag head averages (default: the "
                              "model's; 'plain' = one encoder pass per image, fastest)")
    caption.add_argument("--no-classifier", dest="classifier", action="store_false",
                         help="leave the encoders' ImageNet classes out of the hashtags")
    hashtags = commands.add_parser("hashtags", help="hashtags for a caption text")
    hashtags.add_argument("caption")
    hashtags.add_argument("--max-tags", type=int, default=10)
    hashtags.add_argument("--min-score", type=float, default=0.0)
    return parser


def run_caption(args) -> int:
    from mlcore.captioner import Captioner  # lazy: TensorFlow start-up, not for --help or `hashtags`

    try:
        config = ExtractorConfig(max_tags=args.max_tags, min_score=args.min_score)
        tag_views = args.tag_views.split(",") if args.tag_views else None
        captioner = Captioner.load(args.model, precision=args.precision, tag_views=tag_views,
                                   classifier=args.classifier)
    except (ArtifactError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = False
    for start in range(0, len(args.images), args.batch_size):
        paths = args.images[start:start + args.batch_size]
        for path, result in zip(paths, captioner.suggest(paths, beam_width=args.beam,
                                                         config=config)):
            if isinstance(result, ImageError):
                failed = True
                print(json.dumps({"image": path, "error": str(result)}), flush=True)
            else:
                print(json.dumps({"image": path, **result.as_dict()}), flush=True)
    return 1 if failed else 0


def run_hashtags(args) -> int:
    try:
        config = ExtractorConfig(max_tags=args.max_tags, min_score=args.min_score)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps([tag.as_dict() for tag in extract_hashtags(args.caption, None, config)]))
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return run_caption(args) if args.command == "caption" else run_hashtags(args)
