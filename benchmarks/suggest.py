"""What the classifier and the tag heads cost: ``Captioner.suggest`` as shipped vs without the
ImageNet classifier vs six views vs one backbone.

The shipped model fuses the encoders' ImageNet classes into the hashtags
(``HASHTAGS["CLASSIFIER_TAGS"] = False`` leaves them out, as before model 1.4); its tag heads
(one on the captioner's EfficientNet-Lite0, one on Lite2) read the plain image;
``HASHTAGS["TAG_VIEWS"]`` = the six views of ``mlcore.views.DEFAULT_TEST_VIEWS`` makes each head
average six views, and ``HASHTAGS["EXTRA_TAG_HEADS"] = False`` drops the Lite2 head. Same model,
same images, one run, side by side (timed in interleaved rounds, best of three): images/s at
batch 1 and 32 for each, and their ratios to the shipped configuration. Images are real photos
from ``--images DIR`` when given (e.g. ../shared/flickr8k/uploads_fullres), else random pixels
(same cost: the network's work does not depend on the pixels).

The last line printed is one JSON object (see README "Benchmarks").

    python benchmarks/suggest.py [--model DIR] [--images DIR] [--count 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from io import BytesIO
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from _timing import interleaved_images_per_second  # noqa: E402  (benchmarks/ is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="artifact (default: the shipped model)")
    parser.add_argument("--images", default=None, help="a folder of photos to use")
    parser.add_argument("--count", type=int, default=64, help="images per measurement")
    args = parser.parse_args()

    from PIL import Image

    from mlcore.captioner import Captioner

    if args.images:
        paths = sorted(Path(args.images).glob("*.jpg"))[: args.count]
        images = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    else:
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (375, 500, 3), dtype=np.uint8) for _ in range(args.count)]
    blobs = []
    for image in images:  # suggest() takes files: encode once, outside the timing
        buffer = BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        blobs.append(buffer.getvalue())

    from mlcore.views import DEFAULT_TEST_VIEWS

    configurations = (("model", None, True, True), ("no_classifier", None, True, False),
                      ("six_views", list(DEFAULT_TEST_VIEWS), True, True),
                      ("no_extra_heads", None, False, True))
    labels, timed = {}, {}
    for name, views, extra_heads, classifier in configurations:
        captioner = Captioner.load(args.model, tag_views=views, extra_tag_heads=extra_heads,
                                   classifier=classifier)
        head = captioner.tag_head
        encoders = [captioner.encoder_name] + [extra.encoder for extra, _ in captioner.extra_heads]
        labels[name] = ((f"{'+'.join(encoders)} x {','.join(head.views)}" if head is not None
                         else "no tag head") + ("" if classifier else ", no classifier"))
        timed[(name, "batch1_img_s")] = (
            lambda c=captioner: [c.suggest([blob]) for blob in blobs[:16]], 16)
        timed[(name, "batch32_img_s")] = (
            lambda c=captioner: [c.suggest(blobs[start:start + 32])
                                 for start in range(0, len(blobs), 32)], len(blobs))
    speeds = interleaved_images_per_second(timed)
    results = {}
    for name, _, _, _ in configurations:
        batch1, batch32 = speeds[(name, "batch1_img_s")], speeds[(name, "batch32_img_s")]
        results[name] = {"views": labels[name], "batch1_img_s": round(batch1, 1),
                         "batch32_img_s": round(batch32, 1)}
        print(f"suggest, tag heads {labels[name]}: batch 1 {batch1:6.1f} img/s "
              f"({1000 / batch1:5.0f} ms/image), batch 32 {batch32:6.1f} img/s")
    ratios = {}
    for name in ("no_classifier", "six_views", "no_extra_heads"):
        ratios[name] = {key: round(results[name][key] / results["model"][key], 2)
                        for key in ("batch1_img_s", "batch32_img_s")}
        print(f"{name} / model: {ratios[name]['batch1_img_s']}x at batch 1, "
              f"{ratios[name]['batch32_img_s']}x at batch 32")
    print(json.dumps({**results, "speedup_over_model": ratios}))


if __name__ == "__main__":
    main()
