"""What the tag head's test-time views cost: ``Captioner.suggest`` with the model's views vs plain.

The shipped tag head averages its probabilities over six views of each upload (mlcore.views);
``HASHTAGS["TAG_VIEWS"] = ["plain"]`` reads the plain image only. Same model, same images, one
run, side by side: images/s at batch 1 and 32 for both, and their ratio. Images are real photos
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
from _timing import images_per_second  # noqa: E402  (benchmarks/ is on sys.path)


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

    results = {}
    for name, views in (("model_views", None), ("plain", ["plain"])):
        captioner = Captioner.load(args.model, tag_views=views)
        head = captioner.tag_head
        label = ",".join(head.views) if head is not None else "no tag head"
        batch1 = images_per_second(lambda: [captioner.suggest([blob]) for blob in blobs[:16]], 16)
        batch32 = images_per_second(
            lambda: [captioner.suggest(blobs[start:start + 32])
                     for start in range(0, len(blobs), 32)], len(blobs))
        results[name] = {"views": label, "batch1_img_s": round(batch1, 1),
                         "batch32_img_s": round(batch32, 1)}
        print(f"suggest, tag views {label}: batch 1 {batch1:6.1f} img/s "
              f"({1000 / batch1:5.0f} ms/image), batch 32 {batch32:6.1f} img/s")
    ratio = {key: round(results["plain"][key] / results["model_views"][key], 2)
             for key in ("batch1_img_s", "batch32_img_s")}
    print(f"plain-only / model views: {ratio['batch1_img_s']}x at batch 1, "
          f"{ratio['batch32_img_s']}x at batch 32")
    print(json.dumps({**results, "plain_over_model_views": ratio}))


if __name__ == "__main__":
    main()
