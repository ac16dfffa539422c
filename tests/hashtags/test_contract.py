"""The API contract, tested as an integrator would: schemathesis (pinned in requirements-dev.txt)
runs every check against a live server, every operation, ``tag-image/`` with the real (tiny)
model included, as staff and as an anonymous caller, with a fixed seed and a 10 s request limit.
The settings it reads are in the repository's ``schemathesis.toml``."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from hashtags.inference import warm_up

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed (pip install -r requirements-dev.txt)"),
]


@pytest.fixture
def contract_server(live_server, model, hashtags_config, make_post):
    hashtags_config(TAG_IMAGE_THROTTLE=None, API_THROTTLE=None)
    make_post(seed=1)  # one real post, so the object routes meet data as well as 404s
    warm_up()  # as wsgi.py does: the first tag-image/ request is not a cold one
    return live_server


def run_schemathesis(url: str, *headers: str) -> subprocess.CompletedProcess:
    command = [SCHEMATHESIS, "--config-file", str(ROOT / "schemathesis.toml"), "run", f"{url}/api/schema/",
               "--checks", "all", "--seed", "1", "--max-examples", "12", "--request-timeout", "10",
               "--include-path-regex", "^/api/hashtags/"]
    for header in headers:
        command += ["-H", header]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def assert_no_failures(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert " passed" in output and "failure" not in output.split("SUMMARY")[-1].lower(), output[-3000:]


def test_the_api_keeps_its_schema_for_staff(contract_server, staff_user):
    token = Token.objects.create(user=staff_user)
    staff_user.is_superuser = True
    staff_user.save()
    assert_no_failures(run_schemathesis(contract_server.url, f"Authorization: Token {token.key}"))


def test_the_api_keeps_its_schema_for_anonymous_callers(contract_server):
    assert_no_failures(run_schemathesis(contract_server.url))
