"""What one ``POST tag-image/`` costs on the worst inputs it accepts, and what a tiny request waits
behind five of them (issue 17).

Worst cases: small files that decode to many pixels — a 16-bit greyscale PNG, a float32 TIFF and
an RGBA PNG just under tag-image's 24 MP limit (4895x4895, 6000x3995), and the issue's 16-bit PNG
of 6300x6300 (39.7 MP, just under mlcore's 40 MP limit for stored images; tag-image refuses it by
its header). One run, side by side:

(a) *decode peak*: extra resident memory (peak RSS above the RSS before, Linux ``VmHWM`` reset
    through ``/proc/self/clear_refs``) of decoding each file to the 224x224 input, the old way
    (convert at full size, float64 copies: :func:`old_load_image`, the code before issue 17) vs
    ``mlcore.images.load_image`` now; each in a fresh process;
(b) *request peak*: the same measure for a whole ``POST tag-image/`` through Django's test client
    with the shipped model (fresh process per file; the model is loaded and warmed first);
(c) *queueing*: one tiny JPEG sent while five worst-case requests run in threads, with decoding
    inside the process-wide inference lock (before) vs outside it (now): the tiny request's latency.

The last line printed is one JSON object (see README "Benchmarks").

    python benchmarks/tag_image_memory.py [--side 4895]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def make_cases(directory: Path, side: int) -> dict[str, Path]:
    """The worst-case files: flat images with a few bars compress to ~100 KB and decode to full size."""
    def bars(height: int, width: int, dtype, high) -> np.ndarray:
        pixels = np.full((height, width), high // 4, dtype)
        pixels[::97, :] = high
        pixels[:, ::89] = high // 2
        return pixels

    cases = {}
    for name, edge in (("png16_grey", side), ("png16_grey_40mp", 6300)):
        cases[name] = directory / f"{name}.png"
        Image.fromarray(bars(edge, edge, np.uint16, 65535)).save(cases[name], optimize=True)
    cases["tiff_float"] = directory / "float.tif"
    Image.fromarray(bars(side, side, np.float32, 1.0)).save(cases["tiff_float"], compression="tiff_adobe_deflate")
    rgba = np.repeat(bars(3995, 6000, np.uint8, 255)[..., None], 4, axis=2)
    rgba[..., 3] = 200
    cases["png_rgba"] = directory / "rgba.png"
    Image.fromarray(rgba).save(cases["png_rgba"], optimize=True)
    return cases


def tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


# The decoding of mlcore.images before issue 17, kept here to measure against ---------------------

def old_load_image(data: bytes, size: int = 224) -> np.ndarray:
    from PIL import ImageOps

    image = Image.open(io.BytesIO(data))
    image.draft(None, (size, size))
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            peak = float(np.nanmax(pixels))
            scale = 255.0 if peak <= 1.0 else 255.0 / 65535.0 if peak > 255.0 else 1.0
        else:
            scale = 255.0 / 65535.0
        scaled = np.clip(np.nan_to_num(pixels * scale), 0, 255)
        image = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L").convert("RGB")
    elif image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image).convert("RGB")
    else:
        image = image.convert("RGB")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8).copy()


# Peak memory -------------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def extra_peak_mb(function) -> float:
    """Peak RSS above the RSS before, while ``function()`` runs (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kb("VmRSS")
    function()
    return round((_status_kb("VmHWM") - before) / 1024, 1)


def child(mode: str, path: str) -> None:
    """One measurement in this (fresh) process; prints the number of MB."""
    data = Path(path).read_bytes()
    if mode == "decode_old":
        print(extra_peak_mb(lambda: old_load_image(data)))
        return
    if mode == "decode_new":
        from mlcore.images import load_image

        print(extra_peak_mb(lambda: load_image(data, size=224)))
        return
    client, post = _django_client()
    post(client, tiny_jpeg())  # model loaded and warm
    response = {}
    peak = extra_peak_mb(lambda: response.update(r=post(client, data)))
    print(json.dumps({"mb": peak, "status": response["r"].status_code}))


def _django_client():
    os.environ.update(DJANGO_SETTINGS_MODULE="project.settings", DJANGO_DEBUG="1",
                      HASHTAGS_VAR_DIR=tempfile.mkdtemp(prefix="bench-var-"))
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings

    override_settings(HASHTAGS={**settings.HASHTAGS, "TAG_IMAGE_THROTTLE": None, "API_THROTTLE": None,
                                "MODEL_CHECK_INTERVAL": 10**9}).enable()

    def post(client, data: bytes):
        from django.core.files.uploadedfile import SimpleUploadedFile

        return client.post("/api/hashtags/tag-image/", {"image": SimpleUploadedFile("x.png", data)})

    return Client(), post


def measure(mode: str, path: Path) -> str:
    result = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                            cwd=ROOT, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return result.stdout.strip().splitlines()[-1]


# Queueing ------------------------------------------------------------------------------------------

def queueing(cases: dict[str, Path]) -> dict[str, float]:
    """Latency of one tiny request started while five worst-case requests run, decode inside vs
    outside the inference lock (same captioner, same threads)."""
    from mlcore.captioner import Captioner

    from hashtags import inference

    captioner = Captioner.load(None)
    worst = cases["png16_grey"].read_bytes()
    tiny = tiny_jpeg()

    def before(data):  # decoding inside the lock, as before
        with inference.inference_lock:
            return captioner.suggest([data])[0]

    def now(data):
        return inference.suggest(data, captioner)

    result = {}
    for name, run in (("before", before), ("now", now)):
        run(tiny)  # warm
        started = time.perf_counter()
        run(tiny)
        alone = time.perf_counter() - started
        with ThreadPoolExecutor(6) as pool:
            heavy = [pool.submit(run, worst) for _ in range(5)]
            time.sleep(0.05)  # the five are decoding (or holding the lock) when the tiny one comes
            started = time.perf_counter()
            pool.submit(run, tiny).result()
            waited = time.perf_counter() - started
            for future in heavy:
                future.result()
        result[f"tiny_alone_s_{name}"] = round(alone, 3)
        result[f"tiny_behind_five_s_{name}"] = round(waited, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4895)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = make_cases(Path(tmp), args.side)
        for name, path in cases.items():
            old, new = float(measure("decode_old", path)), float(measure("decode_new", path))
            request = json.loads(measure("request", path))
            report[name] = {"file_kb": round(path.stat().st_size / 1024, 1), "decode_peak_mb_before": old,
                            "decode_peak_mb_now": new, "ratio": round(old / max(new, 0.1), 1),
                            "request_peak_mb_now": request["mb"], "request_status": request["status"]}
            print(f"{name:14s} {report[name]['file_kb']:8.1f} KB  decode peak {old:7.1f} MB before, "
                  f"{new:6.1f} MB now ({report[name]['ratio']}x); whole request now {request['mb']:6.1f} MB "
                  f"(HTTP {request['status']})", flush=True)
        os.environ.update(DJANGO_SETTINGS_MODULE="project.settings", DJANGO_DEBUG="1")
        import django

        django.setup()
        report["queueing"] = queueing(cases)
        print("tiny request behind five 16-bit worst cases: {tiny_behind_five_s_before:.2f} s before, "
              "{tiny_behind_five_s_now:.2f} s now (alone {tiny_alone_s_now:.2f} s)".format(**report["queueing"]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
