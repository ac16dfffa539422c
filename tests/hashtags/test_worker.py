"""End to end: a real ``celery -A tests.celery_app worker`` process on the ``gpu`` queue, Redis as the broker,
the test database shared with the worker, a real photo saved as a post, suggestions stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hashtags.models import ImageAnalysis
from tests.hashtags import support
from tests.hashtags.workers import REDIS_URL, ROOT, database_url, redis_reachable

TIMEOUT = 300


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@pytest.fixture
def celery_broker(settings):
    """Point this process' Celery app at the test Redis DB and empty the gpu queue there."""
    from tests.celery_app import app

    def use(url):
        app.conf.broker_url = url
        app._pool = None  # connection pools are made lazily from broker_url
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    use(REDIS_URL)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("gpu")  # leftovers of an interrupted run
    yield app
    use(old)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not redis_reachable(), reason=f"Redis is not reachable at {REDIS_URL}")
def test_real_worker_stores_suggestions_for_an_uploaded_photo(
    celery_broker, hashtags_config, tiny_artifact, make_post, settings, tmp_path
):
    hashtags_config(EXECUTOR="celery", QUEUE="gpu", MODEL_DIR=str(tiny_artifact), MIN_SCORE=0.0)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "HASHTAGS_MODEL_DIR": str(tiny_artifact),
        "HASHTAGS_MIN_SCORE": "0",
        "HASHTAGS_QUEUE": "gpu",
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "HASHTAGS_DATA_DIR": settings.HASHTAGS["DATA_DIR"],
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo", "-Q", "gpu",
             "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"e2e-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        saved = time.monotonic()
        post = make_post(data=support.jpeg_bytes(support.real_photo()), text="a real photo")  # commits: autocommit
        analysis = None
        while time.monotonic() - saved < TIMEOUT:
            assert worker.poll() is None, f"worker exited early:\n{log_path.read_text()[-4000:]}"
            analysis = ImageAnalysis.objects.for_object(post).filter(status__in=["done", "failed"]).first()
            if analysis is not None:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - saved
        assert analysis is not None, f"no analysis after {TIMEOUT}s; worker log:\n{log_path.read_text()[-4000:]}"
        assert analysis.status == "done", analysis.error
        assert analysis.model_version.startswith("tiny-") and len(analysis.captions) == 3
        assert analysis.suggestions.exists() and all(s.state == "pending" for s in analysis.suggestions.all())
        memory = rss_mib(worker.pid)
        print(f"\nupload → stored suggestions: {elapsed:.1f} s (cold worker: imports + model load); "
              f"worker peak RSS: {memory:.0f} MiB" if memory else f"\nupload → stored: {elapsed:.1f} s")
        # the same worker keeps its model: a second post is fast
        second_saved = time.monotonic()
        second = make_post(data=support.jpeg_bytes(seed=4))
        while time.monotonic() - second_saved < 60:
            if ImageAnalysis.objects.for_object(second).filter(status="done").exists():
                break
            time.sleep(0.2)
        assert ImageAnalysis.objects.for_object(second).filter(status="done").exists()
        print(f"second upload (warm worker): {time.monotonic() - second_saved:.1f} s")
        assert "hashtags.analyze_image" in log_path.read_text()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
