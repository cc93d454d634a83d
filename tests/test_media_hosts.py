"""The edge pull between two machines: two test hosts made of network namespaces joined by a
veth pair (10.231.N.1 and 10.231.N.2), nothing else reachable from either. The origin host runs
Redis and the server the creator publishes to; the edge host runs a second server. A viewer on
the edge host plays the show by WHEP from the edge, which pulls one copy from the origin over the
link, and the picture arrives whole, starting on a keyframe.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.mediapeers import strictly_increasing

REDIS_SERVER = shutil.which("redis-server") or shutil.which("valkey-server")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or REDIS_SERVER is None,
    reason="network namespaces need root, iproute2 and a redis-server binary",
)


@dataclass
class Host:
    """A network namespace with one end of the link; processes started in it are kept."""

    name: str
    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Any:
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE if env is None else log.open("w"),
            stderr=log.open("w") if env is None else subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def run(self, argv: list[str], timeout_s: float = 60) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout

    def wait_port(self, port: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        probe = f"exec 3<>/dev/tcp/{self.address}/{port}"
        while subprocess.run(["ip", "netns", "exec", self.name, "bash", "-c", probe],
                             capture_output=True).returncode:  # fmt: skip
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise AssertionError(f"nothing listens on {self.address}:{port} in {self.name}")
            time.sleep(0.2)

    def link_bytes(self, device: str) -> int:
        stats = json.loads(self.run(["ip", "-s", "-j", "link", "show", device]))
        return int(stats[0]["stats64"]["rx"]["bytes"])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def two_hosts() -> Iterator[tuple[Host, Host, str]]:
    tag = uuid.uuid4().hex[:6]
    net = f"10.231.{random.randrange(1, 255)}"
    origin, edge = Host(f"lco{tag}", f"{net}.1"), Host(f"lce{tag}", f"{net}.2")
    link = (f"lvo{tag}", f"lve{tag}")
    try:
        for host in (origin, edge):
            _ip("netns", "add", host.name)
        _ip("link", "add", link[0], "type", "veth", "peer", "name", link[1])
        for host, device in ((origin, link[0]), (edge, link[1])):
            _ip("link", "set", device, "netns", host.name)
            _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", device)
            _ip("-n", host.name, "link", "set", device, "up")
            _ip("-n", host.name, "link", "set", "lo", "up")
        yield origin, edge, link[1]
    finally:
        for host in (origin, edge):
            for process in reversed(host.processes):
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True)


def _server_env(host: Host, port: int, redis_port: int, origin: Host, tmp: Path) -> dict[str, str]:
    data_dir = tmp / host.name
    data_dir.mkdir()
    return {
        "HOST": host.address,
        "PUBLIC_URL": f"http://{host.address}:{port}",
        "INTERNAL_URL": f"http://{host.address}:{port}",
        "ICE_HOSTS": host.address,
        "REDIS_URL": f"redis://{origin.address}:{redis_port}/0",
        "DATABASE_URL": f"sqlite:///{tmp / 'shop.db'}",
        "DATA_DIR": str(data_dir),
        "MEDIA_INTERNAL_SECRET": uuid.uuid4().hex,
        "LOG_JSON": "0",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "1",
    }


def _json_line(stream: IO[bytes] | None, timeout_s: float) -> dict[str, Any]:
    assert stream is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if line.startswith(b"{"):
            return dict(json.loads(line))
        if not line:
            break
    raise AssertionError("the peer printed no result")


def test_a_viewer_on_another_host_plays_the_show_through_that_hosts_pull(
    two_hosts: tuple[Host, Host, str], tmp_path: Path
) -> None:
    origin, edge, edge_device = two_hosts
    assert REDIS_SERVER is not None
    redis_port, port = 6390, 8080  # each host has its own ports: nothing else runs there
    origin.start(
        [REDIS_SERVER, "--bind", origin.address, "--port", str(redis_port), "--save", "",
         "--appendonly", "no", "--protected-mode", "no"],
        tmp_path / "redis.log",
    )  # fmt: skip
    origin.wait_port(redis_port)
    secret = uuid.uuid4().hex
    for host in (origin, edge):  # the origin first: it migrates the shared database
        env = {
            **_server_env(host, port, redis_port, origin, tmp_path),
            "MEDIA_INTERNAL_SECRET": secret,
        }
        host.start(
            [sys.executable, "-m", "livecommerce", "serve", "--port", str(port)],
            tmp_path / f"{host.name}.log",
            env,
        )
        host.wait_port(port)

    publisher = origin.start(
        [sys.executable, "-m", "tests.hostpeer", "publish", f"http://{origin.address}:{port}",
         origin.address],
        tmp_path / "publisher.log",
    )  # fmt: skip
    stream_id = _json_line(publisher.stdout, 60)["stream"]

    before = edge.link_bytes(edge_device)
    result = json.loads(
        edge.run(
            [sys.executable, "-m", "tests.hostpeer", "watch", f"http://{edge.address}:{port}",
             str(stream_id), edge.address, "5"],
            timeout_s=120,
        ).strip().splitlines()[-1]
    )  # fmt: skip
    received = edge.link_bytes(edge_device) - before

    assert result["status"] == 201, result  # served by the edge itself, not sent elsewhere
    assert result["keyframe_first"]
    assert result["frames"] >= 60, result["frames"]  # 5 s of a 30 fps picture, with slack
    assert strictly_increasing(result["numbers"])
    # The picture crossed the link from the origin host: the edge pulled it (at least what its
    # viewer decoded came in over the link, besides RTP headers, RTCP and Redis).
    assert received > result["video_bytes"] > 0, (received, result["video_bytes"])
    log = (tmp_path / f"{edge.name}.log").read_text()
    assert "Traceback" not in log, log[-3000:]
