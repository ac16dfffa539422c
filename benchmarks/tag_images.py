"""Images per second through the API: ``POST tag-image/`` one image per request vs
``POST tag-images/`` with a batch per request (issue 14.5).

Starts the demo site as a real process (as ``benchmarks/first_request.py`` does: ``runserver
--noreload`` on 127.0.0.1, SQLite in a temporary directory, model warmed at start-up, throttles
off), then sends the same photos both ways in alternating rounds and keeps each way's best round.
The last line is one JSON object (see README "Benchmarks").

    python benchmarks/tag_images.py [--images 32] [--batch 16] [--rounds 3] [--photos DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from first_request import ROOT, free_port, photo_bytes, server_env, wait_until_listening

REQUEST_TIMEOUT_S = 300


def photos(directory: str | None, count: int) -> list[bytes]:
    """``count`` JPEGs: files of ``--photos`` (cycled), else variations of scikit-image's coffee cup."""
    if directory:
        files = sorted(Path(directory).glob("*.jpg"))[:count]
        return [files[i % len(files)].read_bytes() for i in range(count)]
    import io  # lazy: only the default photos need Pillow

    from PIL import Image  # lazy: see above

    base = Image.open(io.BytesIO(photo_bytes(None)))
    out = []
    for index in range(count):
        buffer = io.BytesIO()
        base.rotate(index * 7).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def post(port: int, route: str, field: str, images: list[bytes]) -> dict:
    boundary = uuid.uuid4().hex
    parts = [(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"p{i}.jpg\"\r\n"
              f"Content-Type: image/jpeg\r\n\r\n").encode() + data + b"\r\n" for i, data in enumerate(images)]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/hashtags/{route}", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        return json.loads(response.read())


def one_by_one(port: int, images: list[bytes]) -> float:
    started = time.perf_counter()
    for data in images:
        assert post(port, "tag-image/", "image", [data])["hashtags"]
    return len(images) / (time.perf_counter() - started)


def batched(port: int, images: list[bytes], batch: int) -> float:
    started = time.perf_counter()
    for first in range(0, len(images), batch):
        results = post(port, "tag-images/", "images", images[first:first + batch])["results"]
        assert all(result["ok"] for result in results)
    return len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", help="directory of JPEGs (default: generated from scikit-image's coffee cup)")
    args = parser.parse_args()
    images = photos(args.photos, args.images)
    with tempfile.TemporaryDirectory(prefix="tag-images-") as tmp:
        env = server_env(Path(tmp), warm=True)
        env["HASHTAGS_UNTHROTTLED"] = "1"
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        port = free_port()
        process = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_listening(port, process, time.perf_counter())
            one_by_one(port, images[:2])  # first calls: graph tracing for batch 1 and for the batch size
            batched(port, images[:args.batch], args.batch)
            best = {"one_per_request": 0.0, "batched": 0.0}
            for _ in range(args.rounds):
                best["one_per_request"] = max(best["one_per_request"], one_by_one(port, images))
                best["batched"] = max(best["batched"], batched(port, images, args.batch))
        finally:
            process.terminate()
            process.wait(timeout=30)
    summary = {"images": args.images, "batch": args.batch, **{k: round(v, 1) for k, v in best.items()},
               "batched_over_one_per_request": round(best["batched"] / best["one_per_request"], 2)}
    print(f"one image per request {summary['one_per_request']:6.1f} images/s   batches of {args.batch} "
          f"{summary['batched']:6.1f} images/s   ratio {summary['batched_over_one_per_request']:.2f}x")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
