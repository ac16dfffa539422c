"""What a platform sees: a burst of uploads through a real ``celery -A project worker`` (solo pool,
``gpu`` queue) on PostgreSQL + Redis, against ``Captioner.suggest()`` on batches of 32 in the same
run; then upload → suggestions-stored latency of single uploads on the idle, warm worker.

Each upload is a ``project.posts`` Post saved with a JPEG (the save signal enqueues the analysis,
as in production). Throughput counts from the first save to the last analysis stored; the burst
also checks that every upload got exactly one finished analysis (none lost, none duplicated).

Needs a database and Redis of its own: it creates and deletes its own posts, user and analyses and
purges the queue it uses.

    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://.../N \\
        python benchmarks/worker.py [--n 200] [--singles 20] [--model DIR]

The last line printed is one JSON object (see README "Benchmarks").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from _timing import images_per_second  # noqa: E402  (benchmarks/ is on sys.path)


def jpeg(seed: int) -> bytes:
    """A distinct photo-sized JPEG per upload (identical content would be reused, not analysed)."""
    from PIL import Image  # lazy: only the benchmark needs it

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def start_worker(env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "worker", "--pool=solo", "-Q", "gpu",
         "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"bench-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_done(posts: list, timeout: float) -> float:
    """Monotonic time at which every post's analysis is finished (done or failed)."""
    from hashtags.models import AnalysisStatus, ImageAnalysis  # lazy: after django.setup()

    ids = [str(p.pk) for p in posts]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = ImageAnalysis.objects.filter(
            object_id__in=ids, status__in=[AnalysisStatus.DONE, AnalysisStatus.FAILED]).count()
        if finished >= len(ids):
            return time.monotonic()
        time.sleep(0.005 if len(ids) == 1 else 0.05)
    raise SystemExit(f"timed out: analyses of {len(ids)} uploads not finished after {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="uploads in the burst")
    parser.add_argument("--singles", type=int, default=20, help="single uploads timed on the idle worker")
    parser.add_argument("--model", default=None, help="artifact (default: the shipped model)")
    args = parser.parse_args()

    media = tempfile.mkdtemp(prefix="bench-worker-media-")
    os.environ.update({"MEDIA_ROOT": media, "HASHTAGS_EXECUTOR": "celery", "HASHTAGS_QUEUE": "gpu",
                       "HASHTAGS_MODEL_DIR": args.model or ""})
    import django  # lazy: settings come from the environment set just above

    django.setup()
    from django.contrib.auth import get_user_model  # lazy: after django.setup()
    from django.core.files.base import ContentFile  # lazy: after django.setup()

    from hashtags.inference import get_captioner  # lazy: after django.setup()
    from hashtags.models import ImageAnalysis  # lazy: after django.setup()
    from project.celery import app  # lazy: after django.setup()
    from project.posts.models import Post  # lazy: after django.setup()

    # The model alone, in this process, before the worker competes for the cores.
    captioner = get_captioner()
    blobs = [jpeg(i) for i in range(32)]  # suggest() takes files, as the worker reads them
    model_ips = images_per_second(lambda: captioner.suggest([BytesIO(b) for b in blobs]), len(blobs), repeats=2)

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("gpu")
    user, _ = get_user_model().objects.get_or_create(username="bench-worker")
    payloads = [jpeg(1000 + i) for i in range(args.n + args.singles + 1)]
    worker = start_worker({**os.environ, "PYTHONPATH": str(ROOT)}, Path(media) / "worker.log")
    posts: list = []

    def upload(i: int):
        post = Post(owner=user, text=f"bench {i}")
        post.image.save(f"bench-{i}.jpg", ContentFile(payloads[i]), save=False)
        post.save()
        posts.append(post)
        return post

    try:
        wait_done([upload(args.n + args.singles)], timeout=600)  # the worker is up and its model warm
        started = time.monotonic()
        burst = [upload(i) for i in range(args.n)]
        ended = wait_done(burst, timeout=3600)
        worker_ips = args.n / (ended - started)
        per_post = ImageAnalysis.objects.filter(object_id__in=[str(p.pk) for p in burst]).values_list(
            "object_id", flat=True)
        stored = len(set(per_post))
        duplicated = len(per_post) - stored
        latencies = []
        for i in range(args.n, args.n + args.singles):
            time.sleep(0.3)  # idle between uploads
            saved = time.monotonic()
            post = upload(i)
            latencies.append(wait_done([post], timeout=120) - saved)
    finally:
        stop_worker(worker)
        ImageAnalysis.objects.filter(object_id__in=[str(p.pk) for p in posts]).delete()
        for post in posts:
            post.delete()

    p50, p95 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 95))
    result = {"uploads": args.n, "worker_images_per_s": round(worker_ips, 2),
              "suggest_batch32_images_per_s": round(model_ips, 2), "ratio": round(worker_ips / model_ips, 3),
              "lost": args.n - stored, "duplicated": duplicated,
              "single_upload_p50_ms": round(p50, 1), "single_upload_p95_ms": round(p95, 1)}
    print(f"worker: {worker_ips:.1f} images/s over {args.n} uploads; suggest() at batch 32: {model_ips:.1f} "
          f"images/s; ratio {worker_ips / model_ips:.2f}; lost {result['lost']}, duplicated {duplicated}")
    print(f"single upload on an idle warm worker: p50 {p50:.0f} ms, p95 {p95:.0f} ms ({args.singles} uploads)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
