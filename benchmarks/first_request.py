"""First ``POST tag-image/`` after a server starts vs the steady latency, with the model warmed at
start-up (``HASHTAGS["WARM_AT_STARTUP"]``, the default) and without (issue 14).

Each round starts the demo site as a real process (``manage.py runserver --noreload`` on a free
127.0.0.1 port, SQLite in a temporary directory), waits until it accepts connections, then sends
one request and ``--steady`` more of the same photo. Warm-on and warm-off servers alternate round
by round, so a load from other processes slows both alike. Printed per setting: seconds from
process start to accepting connections, the first request, the steady median and p95, and the
first/steady ratio. The last line is one JSON object (see README "Benchmarks").

    python benchmarks/first_request.py [--rounds 2] [--steady 10] [--image PHOTO]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 120


def photo_bytes(path: str | None) -> bytes:
    """The photo to send: ``--image``, else scikit-image's coffee cup (shipped with the package)."""
    if path:
        return Path(path).read_bytes()
    from PIL import Image  # lazy: only the default photo needs Pillow + scikit-image
    from skimage import data  # lazy: see above

    buffer = io.BytesIO()
    Image.fromarray(data.coffee()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(var_dir: Path, warm: bool) -> dict[str, str]:
    env = dict(os.environ, DJANGO_DEBUG="1", HASHTAGS_VAR_DIR=str(var_dir), HASHTAGS_EXECUTOR="thread",
               HASHTAGS_WARM_AT_STARTUP="1" if warm else "0", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("CELERY_BROKER_URL", None)
    env.pop("DATABASE_URL", None)  # the demo's default: SQLite under HASHTAGS_VAR_DIR
    return env


def wait_until_listening(port: int, process: subprocess.Popen, started: float) -> float:
    while time.perf_counter() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen within {START_TIMEOUT_S} s")


def post_photo(port: int, photo: bytes) -> float:
    """One multipart ``POST tag-image/``; seconds until the whole answer is read."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/hashtags/tag-image/", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        answer = json.loads(response.read())
    elapsed = time.perf_counter() - started
    if not answer.get("hashtags"):
        raise RuntimeError(f"tag-image answered without hashtags: {answer}")
    return elapsed


def one_round(warm: bool, photo: bytes, steady: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="first-request-") as tmp:
        var_dir = Path(tmp)
        env = server_env(var_dir, warm)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)
        port = free_port()
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            listening = wait_until_listening(port, process, started)
            first = post_photo(port, photo)
            rest = [post_photo(port, photo) for _ in range(steady)]
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {"listening_s": listening, "first_s": first, "steady": rest,
            "start_to_first_answer_s": listening + first}


def summarise(rounds: list[dict]) -> dict[str, float]:
    steady = sorted(t for r in rounds for t in r["steady"])
    median = statistics.median(steady)
    first = statistics.median(r["first_s"] for r in rounds)
    return {
        "listening_s": round(statistics.median(r["listening_s"] for r in rounds), 2),
        "first_ms": round(first * 1000, 1),
        "steady_p50_ms": round(median * 1000, 1),
        "steady_p95_ms": round(steady[min(len(steady) - 1, int(0.95 * len(steady)))] * 1000, 1),
        "first_over_steady": round(first / median, 2),
        "start_to_first_answer_s": round(statistics.median(r["start_to_first_answer_s"] for r in rounds), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="server starts per setting")
    parser.add_argument("--steady", type=int, default=10, help="requests after the first, per start")
    parser.add_argument("--image", help="photo to send (default: scikit-image's coffee cup)")
    args = parser.parse_args()
    photo = photo_bytes(args.image)
    results: dict[str, list[dict]] = {"warm_on": [], "warm_off": []}
    for index in range(args.rounds):
        for name in results:
            results[name].append(one_round(name == "warm_on", photo, args.steady))
            print(f"round {index + 1}/{args.rounds} {name}: first {results[name][-1]['first_s']:.2f} s", flush=True)
    summary = {name: summarise(rounds) for name, rounds in results.items()}
    for name, row in summary.items():
        print(f"{name:9s} listening {row['listening_s']:6.2f} s  first {row['first_ms']:8.1f} ms  "
              f"steady p50 {row['steady_p50_ms']:6.1f} ms p95 {row['steady_p95_ms']:6.1f} ms  "
              f"first/steady {row['first_over_steady']:6.2f}  start→first answer {row['start_to_first_answer_s']:.2f} s")
    summary["first_request_off_over_on"] = round(summary["warm_off"]["first_ms"] / summary["warm_on"]["first_ms"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
