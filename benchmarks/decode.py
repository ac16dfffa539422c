"""Decoding speed: the tutorials' per-word ``model.predict`` loop vs our compiled step decoder.

Same trained decoder, same image features, one run, side by side:

(a) *tutorial*: one image at a time; for every word, ``model.predict`` on the whole padded
    prefix (what the common Keras captioning tutorials do);
(b) *ours*: :class:`mlcore.decoding.StepDecoder`, greedy and beam 3, at batch 1 and 256, in the
    precision it picks on this machine (bfloat16 products where the CPU/GPU has them) and, at
    batch 256, in float32 too, with how many captions the two precisions agree on;
(c) encoder throughput (images/s) of both encoders at batch 1 and 32;
(d) with ``--compare DIR``, a second artifact's step decoder on the same images (e.g. an
    attention decoder, which reads the encoder's maps), at batch 1 and 256, beside the first.

The last line printed is one JSON object (see README "Benchmarks").

    python benchmarks/decode.py [--model DIR] [--compare DIR] [--tutorial-images 16] [--images 512]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from _timing import images_per_second  # noqa: E402  (benchmarks/ is on sys.path)


def tutorial_decode(decoder, vocabulary, feature: np.ndarray) -> list[int]:
    """The tutorial loop: re-run the full model on the padded prefix for each new word."""
    max_length = decoder.config.max_length
    prefix = [vocabulary.start_id]
    for position in range(max_length):
        padded = np.zeros((1, max_length), np.int32)
        padded[0, :len(prefix)] = prefix
        logits = decoder.model.predict([feature[None], padded], verbose=0)
        word = int(np.argmax(logits[0, position]))
        if word == vocabulary.end_id:
            break
        prefix.append(word)
    return prefix[1:]


def decoder_inputs(encoder, decoder, pixels: np.ndarray) -> np.ndarray:
    """What ``decoder`` reads for these images: pooled features or the attended maps."""
    if not decoder.config.attends:
        return encoder.encode(pixels)
    _, (maps,) = encoder.encode_layers(pixels, (decoder.config.attention_layer,))
    return maps.reshape(len(maps), -1, maps.shape[-1])


def step_speeds(step, inputs: np.ndarray, batch1_images: int) -> tuple[dict, dict]:
    """Greedy and beam-3 images/s of a step decoder at batch 1 and 256."""
    single = inputs[:batch1_images]
    greedy = {"1": images_per_second(lambda: [step.greedy(f[None]) for f in single], len(single)),
              "256": images_per_second(lambda: step.greedy(inputs[:256]), 256)}
    beam = {"1": images_per_second(lambda: [step.beam_search(f[None], 3) for f in single],
                                   len(single)),
            "256": images_per_second(lambda: step.beam_search(inputs[:256], 3), 256)}
    return greedy, beam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="artifact (default: the shipped model)")
    parser.add_argument("--compare", default=None, metavar="DIR",
                        help="a second artifact to time beside the first (same encoder)")
    parser.add_argument("--tutorial-images", type=int, default=16)
    parser.add_argument("--batch1-images", type=int, default=64)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()

    from mlcore.artifact import DEFAULT_MODEL_DIR, load_artifact
    from mlcore.decoding import StepDecoder
    from mlcore.encoders import build_encoder

    info, decoder, vocabulary = load_artifact(args.model or DEFAULT_MODEL_DIR)
    step = StepDecoder(decoder, vocabulary)
    exact = step if step.precision == "float32" else StepDecoder(decoder, vocabulary,
                                                                 precision="float32")
    encoder = build_encoder(info.encoder["name"])
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (args.images, 224, 224, 3), dtype=np.uint8)
    # real encoder output, so captions have real lengths
    features = decoder_inputs(encoder, decoder, pixels)
    print(f"model {info.version}: {len(vocabulary)} words, max length {decoder.config.max_length}"
          f"; decoder precision here: {step.precision}")

    tutorial = images_per_second(
        lambda: [tutorial_decode(decoder, vocabulary, f) for f in features[:args.tutorial_images]],
        args.tutorial_images, repeats=1)
    agree = sum(vocabulary.decode(tutorial_decode(decoder, vocabulary, f)) ==
                step.greedy(f[None])[0].caption.split() for f in features[:8])
    print(f"tutorial predict-per-word loop: {tutorial:8.2f} img/s "
          f"(same captions as ours for {agree}/8 images)")

    greedy, beam = step_speeds(step, features, args.batch1_images)
    for batch in ("1", "256"):
        print(f"step decoder batch {batch:>3}: greedy {greedy[batch]:9.1f} img/s, "
              f"beam-3 {beam[batch]:9.1f} img/s, greedy/tutorial {greedy[batch] / tutorial:7.1f}x")
    float32 = {"greedy": images_per_second(lambda: exact.greedy(features[:256]), 256),
               "beam3": images_per_second(lambda: exact.beam_search(features[:256], 3), 256)}
    same = sum(a.caption == b.caption for a, b in zip(step.beam_search(features[:256], 3),
                                                      exact.beam_search(features[:256], 3)))
    print(f"float32 batch 256: greedy {float32['greedy']:9.1f} img/s, beam-3 "
          f"{float32['beam3']:9.1f} img/s; {step.precision} / float32 beam-3: "
          f"{beam['256'] / float32['beam3']:.2f}x, same best caption for {same}/256 images")

    encoders = {}
    for name in ("efficientnet_lite0", "resnet50"):
        model = encoder if name == info.encoder["name"] else build_encoder(
            name, weights=None if name == "resnet50" else "default")
        encoders[name] = {
            "1": images_per_second(lambda: [model.encode(p[None]) for p in pixels[:16]], 16),
            "32": images_per_second(lambda: model.encode(pixels[:64], batch_size=32), 64),
        }
        print(f"encoder {name:18}: batch 1 {encoders[name]['1']:7.1f} img/s, "
              f"batch 32 {encoders[name]['32']:7.1f} img/s")
    ratio = {batch: greedy[batch] / tutorial for batch in greedy}
    lite0 = encoders["efficientnet_lite0"]["32"]
    print(f"beam-3 @256 / Lite0 encoder @32: {beam['256'] / lite0:.1f}x")
    compared = None
    if args.compare:
        other_info, other, other_vocabulary = load_artifact(args.compare)
        other_step = StepDecoder(other, other_vocabulary)
        other_greedy, other_beam = step_speeds(
            other_step, decoder_inputs(encoder, other, pixels), args.batch1_images)
        compared = {"model": other_info.version, "attention": other.config.attends,
                    "greedy_img_s": {k: round(v, 1) for k, v in other_greedy.items()},
                    "beam3_img_s": {k: round(v, 1) for k, v in other_beam.items()},
                    "beam3_over_lite0_encoder": round(other_beam["256"] / lite0, 1),
                    "beam3_over_first": {k: round(other_beam[k] / beam[k], 2) for k in beam}}
        for batch in ("1", "256"):
            print(f"{other_info.version} batch {batch:>3}: greedy {other_greedy[batch]:9.1f} img/s, "
                  f"beam-3 {other_beam[batch]:9.1f} img/s ({other_beam[batch] / beam[batch]:.2f}x "
                  f"the first model's beam-3)")
        print(f"{other_info.version} beam-3 @256 / Lite0 encoder @32: "
              f"{compared['beam3_over_lite0_encoder']:.1f}x")
    print(json.dumps({"tutorial_img_s": round(tutorial, 3),
                      "greedy_img_s": {k: round(v, 1) for k, v in greedy.items()},
                      "beam3_img_s": {k: round(v, 1) for k, v in beam.items()},
                      "precision": step.precision,
                      "float32_img_s": {k: round(v, 1) for k, v in float32.items()},
                      "beam3_over_lite0_encoder": round(
                          beam["256"] / encoders["efficientnet_lite0"]["32"], 1),
                      "ratio": {k: round(v, 1) for k, v in ratio.items()},
                      "encoder_img_s": {n: {k: round(v, 1) for k, v in r.items()}
                                        for n, r in encoders.items()},
                      "compare": compared}))


if __name__ == "__main__":
    main()
