"""Real processes for the worker and fault tests: a ``celery -A tests.celery_app worker`` sharing the test
database, and a TCP proxy in front of PostgreSQL that a test can cut off and restore."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

REDIS_URL = os.environ.get("HASHTAGS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]


def redis_reachable() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


def database_url(port: int | None = None) -> str:
    """The test database as a URL the worker can open (it must see this test's rows); ``port``
    replaces PostgreSQL's (a proxy)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}/{db['NAME']}"
    pytest.skip(f"no worker database URL for {connection.vendor}")


def worker_env(artifact, media_root, **extra: str) -> dict[str, str]:
    """The worker's environment: this test's database, Redis, media and model (``artifact=None``:
    the shipped model)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "HASHTAGS_MODEL_DIR": str(artifact or ""),
        "HASHTAGS_MIN_SCORE": "0",
        "HASHTAGS_QUEUE": "gpu",
        "MEDIA_ROOT": str(media_root),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }
    return env


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (a prefork worker's pool)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


BATCH_CONCURRENCY = 4  # threads of the batching worker in tests: batches of up to 4 form


def start_worker(env: dict, log_path: Path, name: str, *options: str) -> subprocess.Popen:
    """``celery -A tests.celery_app worker -Q gpu`` (``make worker``'s batching pool, ``--pool=threads``,
    unless ``options`` say otherwise), logging to ``log_path`` (appended: a restarted worker
    continues the same log)."""
    pool = (() if any(o.startswith("--pool") or o.startswith("--concurrency") for o in options)
            else ("--pool=threads", f"--concurrency={BATCH_CONCURRENCY}"))
    with open(log_path, "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", *pool, "-Q", "gpu", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}-{os.getpid()}@%h",
             *options],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )


def wait_for_log(log_path: Path, text: str, timeout: float, worker: subprocess.Popen | None = None) -> float:
    """Seconds until ``text`` appears in the log; fails the test after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if text in log_path.read_text():
            return time.monotonic() - started
        if worker is not None and worker.poll() is not None:
            pytest.fail(f"worker exited ({worker.returncode}):\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"{text!r} not in the worker log after {timeout:.0f} s:\n{log_path.read_text()[-4000:]}")


def stop(worker: subprocess.Popen) -> None:
    """Stop the worker and everything it started (its process group)."""
    if worker.poll() is None:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`cut` drops every connection and refuses
    new ones (a database that went away), :meth:`restore` accepts again on the same port."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        sockets = [client, server]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (server if sock is client else client).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass

    def restore(self) -> None:
        if self._listener is None:
            self._open()

    def close(self) -> None:
        self.cut()
