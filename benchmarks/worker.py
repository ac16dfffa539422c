"""What a platform sees: a burst of uploads through a real ``celery -A project worker`` (``gpu``
queue) on PostgreSQL + Redis, against ``Captioner.suggest()`` on batches of 32 in the same run; then
upload → suggestions-stored latency of single uploads on the idle, warm worker. Each pool in
``--pools`` gets its own fresh worker, one after the other: ``solo`` (one task at a time, batch 1)
and ``threads`` (``--pool=threads --concurrency=BATCH_MAX``: cross-task batching, hashtags.batching).

Each upload is a ``project.posts`` Post saved with a JPEG (the save signal enqueues the analysis,
as in production). Throughput counts from the first save to the last analysis stored; the burst
also checks that every upload got exactly one finished analysis (none lost, none duplicated).
Then the same number of uploads is queued while the worker is told not to consume (Celery's
``cancel_consumer``) and drained (``add_consumer``): the worker's rate without the uploads
competing for the same cores, as when the web servers are other machines.

Needs a database and Redis of its own: it creates and deletes its own posts, user and analyses and
purges the queue it uses.

    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://.../N \\
        python benchmarks/worker.py [--n 200] [--singles 20] [--model DIR] [--pools solo,threads]
            [--batch-max 16]

The last line printed is one JSON object (see README "Benchmarks").
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
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


POOL_OPTIONS = {"solo": lambda batch_max: ["--pool=solo"],
                "threads": lambda batch_max: ["--pool=threads", f"--concurrency={batch_max}"]}


def start_worker(env: dict, log_path: Path, pool: list[str]) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "worker", *pool, "-Q", "gpu",
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
    parser.add_argument("--pools", default="solo,threads", help="worker pools to measure, in order")
    parser.add_argument("--batch-max", type=int, default=16, help="HASHTAGS BATCH_MAX (and the threads' concurrency)")
    args = parser.parse_args()
    pools = [pool.strip() for pool in args.pools.split(",") if pool.strip()]
    unknown = sorted(set(pools) - set(POOL_OPTIONS))
    if unknown:
        parser.error(f"unknown pool(s) {unknown}; choose from {sorted(POOL_OPTIONS)}")

    media = tempfile.mkdtemp(prefix="bench-worker-media-")
    # Measured as deployed: DEBUG off (with DEBUG on, Django keeps every SQL query of the worker in
    # memory, a cost per query that no production worker pays); a throwaway key for this run.
    os.environ["DJANGO_DEBUG"] = "0"
    if not os.environ.get("DJANGO_SECRET_KEY"):
        os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    os.environ.update({"MEDIA_ROOT": media, "HASHTAGS_EXECUTOR": "celery", "HASHTAGS_QUEUE": "gpu",
                       "HASHTAGS_MODEL_DIR": args.model or "", "HASHTAGS_BATCH_MAX": str(args.batch_max)})
    import django  # lazy: settings come from the environment set just above

    django.setup()
    from hashtags.inference import get_captioner  # lazy: after django.setup()

    # The model alone, in this process, before the worker competes for the cores.
    captioner = get_captioner()
    blobs = [jpeg(i) for i in range(32)]  # suggest() takes files, as the worker reads them
    model_ips = images_per_second(lambda: captioner.suggest([BytesIO(b) for b in blobs]), len(blobs), repeats=2)

    results = {}
    for number, pool in enumerate(pools):
        measured = measure_worker(pool, POOL_OPTIONS[pool](args.batch_max), args.n, args.singles,
                                  Path(media), first_payload=1000 + number * 10_000)
        measured["ratio"] = round(measured["worker_images_per_s"] / model_ips, 3)
        measured["backlog_ratio"] = round(measured["backlog_images_per_s"] / model_ips, 3)
        # The model alone at the batch size the worker ran: what batching lost vs what the rest of
        # the worker (database, Celery, JPEG decoding, the uploads) took from the model's cores.
        size = max(1, round(measured["mean_batch"]))
        at_batch = images_per_second(lambda: captioner.suggest([BytesIO(b) for b in blobs[:size]]), size, repeats=2)
        measured["suggest_at_mean_batch_images_per_s"] = round(at_batch, 2)
        measured["ratio_at_mean_batch"] = round(measured["worker_images_per_s"] / at_batch, 3)
        results[pool] = measured
        print(f"{pool}: worker {measured['worker_images_per_s']:.1f} images/s over {args.n} uploads; "
              f"suggest() at batch 32: {model_ips:.1f} images/s; ratio {measured['ratio']:.2f}; "
              f"lost {measured['lost']}, duplicated {measured['duplicated']}; mean batch {measured['mean_batch']}")
        print(f"{pool}: suggest() alone at the worker's mean batch: {at_batch:.1f} images/s; "
              f"worker / that: {measured['ratio_at_mean_batch']:.2f}")
        print(f"{pool}: a backlog of {args.n} queued uploads drained at {measured['backlog_images_per_s']:.1f} "
              f"images/s; ratio {measured['backlog_ratio']:.2f}")
        print(f"{pool}: single upload on an idle warm worker: p50 {measured['single_upload_p50_ms']:.0f} ms, "
              f"p95 {measured['single_upload_p95_ms']:.0f} ms ({args.singles} uploads)")
    if "solo" in results and "threads" in results:
        print(f"threads (batching) / solo: {results['threads']['worker_images_per_s'] / results['solo']['worker_images_per_s']:.2f}x")
    print(json.dumps({"uploads": args.n, "batch_max": args.batch_max,
                      "suggest_batch32_images_per_s": round(model_ips, 2), "pools": results}))


def lost_and_duplicated(posts: list, analysed_ids: list[str]) -> tuple[int, int]:
    """Uploads without an analysis, and analyses beyond one per upload."""
    analysed = set(analysed_ids)
    return len(posts) - len(analysed), len(analysed_ids) - len(analysed)


def measure_worker(pool: str, options: list[str], n: int, singles: int, media: Path, first_payload: int) -> dict:
    """One fresh worker with ``options``: the burst's throughput (none lost or duplicated), the
    batch sizes it ran, then the single uploads' latency."""
    from django.contrib.auth import get_user_model  # lazy: after django.setup()
    from django.core.files.base import ContentFile  # lazy: after django.setup()

    from hashtags.models import ImageAnalysis  # lazy: after django.setup()
    from project.celery import app  # lazy: after django.setup()
    from project.posts.models import Post  # lazy: after django.setup()

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("gpu")
    user, _ = get_user_model().objects.get_or_create(username="bench-worker")
    payloads = [jpeg(first_payload + i) for i in range(2 * n + singles + 1)]
    worker = start_worker({**os.environ, "PYTHONPATH": str(ROOT)}, media / f"worker-{pool}.log", options)
    posts: list = []

    def upload(i: int):
        post = Post(owner=user, text=f"bench {i}")
        post.image.save(f"bench-{i}.jpg", ContentFile(payloads[i]), save=False)
        post.save()
        posts.append(post)
        return post

    try:
        wait_done([upload(n + singles)], timeout=600)  # the worker is up and its model warm
        started = time.monotonic()
        burst = [upload(i) for i in range(n)]
        ended = wait_done(burst, timeout=3600)
        worker_ips = n / (ended - started)
        analyses = list(ImageAnalysis.objects.filter(object_id__in=[str(p.pk) for p in burst]).values_list(
            "object_id", "timings"))
        lost, duplicated = lost_and_duplicated(burst, [object_id for object_id, _ in analyses])
        batches = [(timings or {}).get("batch", 1) for _, timings in analyses]
        stages = sorted({key for _, timings in analyses for key, value in (timings or {}).items()
                         if key.endswith("_s") and isinstance(value, (int, float))})
        mean_stage_ms = {key: round(1000 * float(np.mean([(t or {}).get(key, 0.0) for _, t in analyses])), 1)
                         for key in stages}
        latencies = []
        for i in range(n, n + singles):
            time.sleep(0.3)  # idle between uploads
            saved = time.monotonic()
            post = upload(i)
            latencies.append(wait_done([post], timeout=120) - saved)
        # The same number of uploads queued while the worker does not consume, then drained: the
        # worker's own rate, without the uploads (the web side) on the same cores.
        name = [f"bench-{os.getpid()}@{socket.gethostname()}"]
        app.control.cancel_consumer("gpu", destination=name, reply=True, timeout=10)
        backlog = [upload(n + singles + 1 + i) for i in range(n)]
        app.control.add_consumer("gpu", destination=name, reply=True, timeout=10)
        resumed = time.monotonic()
        backlog_ips = n / (wait_done(backlog, timeout=3600) - resumed)
        backlog_lost, backlog_duplicated = lost_and_duplicated(backlog, list(
            ImageAnalysis.objects.filter(object_id__in=[str(p.pk) for p in backlog]).values_list("object_id", flat=True)))
    finally:
        stop_worker(worker)
        ImageAnalysis.objects.filter(object_id__in=[str(p.pk) for p in posts]).delete()
        for post in posts:
            post.delete()
    p50, p95 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 95))
    return {"worker_images_per_s": round(worker_ips, 2), "lost": lost, "duplicated": duplicated,
            "mean_batch": round(float(np.mean(batches)), 1), "max_batch": max(batches),
            "mean_stage_ms": mean_stage_ms,
            "backlog_images_per_s": round(backlog_ips, 2), "backlog_lost": backlog_lost,
            "backlog_duplicated": backlog_duplicated,
            "single_upload_p50_ms": round(p50, 1), "single_upload_p95_ms": round(p95, 1)}


if __name__ == "__main__":
    main()
