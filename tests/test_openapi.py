"""The OpenAPI document describes exactly the routes the app serves, and survives schemathesis."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


async def test_document_matches_the_routes(client: TestClient[Any, Any]) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    served = set()
    for route in client.app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        if route.resource.canonical.startswith("/socket.io"):
            continue  # the Socket.IO transport (live rooms), not part of the JSON API
        if not route.resource.canonical.startswith(
            ("/api", "/healthz", "/readyz", "/metrics", "/whip", "/whep", "/internal")
        ):
            continue  # the browser pages and their static files
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", route.resource.canonical)
        served.add((route.method, path))
    assert documented == served
    for path, ops in document["paths"].items():
        for op in ops.values():
            for name in re.findall(r"\{(\w+)\}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def served(tmp_path: Path, redis_url: str) -> Any:
    """The real ``livecommerce serve`` command on a loopback port, stopped with SIGTERM."""
    port = _free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": f"t{port}",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "livecommerce", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _schemathesis(base: str, token: str | None, *selection: str) -> str:
    """Run schemathesis; fail on any 5xx (``not_a_server_error``); return its report."""
    cli = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    auth = ["--header", f"Authorization: Bearer {token}"] if token else []
    result = subprocess.run(
        [
            cli,
            "run",
            f"{base}/api/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            # 25 generated cases per operation beside its examples and coverage cases keeps the
            # suite inside CI's 30 minutes; SCHEMATHESIS_EXAMPLES=200 for a deeper run.
            os.environ.get("SCHEMATHESIS_EXAMPLES", "25"),
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
            "--no-color",
            *auth,
            *selection,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


def _tested(report: str) -> int:
    """How many operations schemathesis says it tested (its summary line)."""
    match = re.search(r"Tested:\s*(\d+)", report) or re.search(r"(\d+) tested", report)
    assert match, report[-3000:]
    return int(match.group(1))


# Operations that end the session they are called with: fuzzed last, on their own.
_ENDS_SESSION = ("delete_session", "post_password")


# As long as schemathesis itself may take (its subprocess timeout): each operation is fuzzed.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("who", ["anonymous", "logged_in"])
def test_schemathesis_finds_no_server_error(served: Any, who: str) -> None:
    base, _process = served
    with urllib.request.urlopen(f"{base}/api/openapi.json") as response:
        paths = json.load(response)["paths"]
    # Every operation but the document itself (schemathesis leaves out the schema it loaded).
    operations = sum(len(ops) for path, ops in paths.items() if path != "/api/openapi.json")
    if who == "anonymous":
        assert _tested(_schemathesis(base, None)) == operations
        return
    # Logged in, so the operations behind authentication are fuzzed too, not just refused.
    request = urllib.request.Request(
        f"{base}/api/accounts",
        data=json.dumps(
            {"email": "fuzz@example.com", "password": "fuzzing-pass", "display_name": "Fuzz"}
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        token = json.load(response)["token"]
    excluded = [arg for op in _ENDS_SESSION for arg in ("--exclude-operation-id", op)]
    tested = _tested(_schemathesis(base, token, *excluded))
    # The token is still good after the run: everything above ran logged in.
    check = urllib.request.Request(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(check) as response:
        assert response.status == 200
    included = [arg for op in _ENDS_SESSION for arg in ("--include-operation-id", op)]
    tested += _tested(_schemathesis(base, token, *included))
    assert tested == operations


def test_serve_with_embedded_defaults_and_stop_gracefully(tmp_path: Path) -> None:
    """No REDIS_URL, no DATABASE_URL: the embedded Valkey and a SQLite file under DATA_DIR."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"PORT": str(port), "DATA_DIR": str(tmp_path)})
    seeded = subprocess.run(
        [sys.executable, "-m", "livecommerce", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    assert "creator@demo.live" in seeded.stdout
    process = subprocess.Popen(
        [sys.executable, "-m", "livecommerce", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/streams") as response:
            assert b"Friday drop" in response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out
    assert (tmp_path / "livecommerce.db").exists()
