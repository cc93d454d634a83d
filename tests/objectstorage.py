"""A real S3-compatible server on loopback (moto in server mode), for object storage tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

from bench.processes import free_port

KEY_ID = "testing-key"
SECRET = "testing-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )


@pytest.fixture
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on 127.0.0.1 with one empty bucket made for the test."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(f"http://127.0.0.1:{port}", f"photos-{uuid.uuid4().hex[:12]}")
        s3.client().create_bucket(Bucket=s3.bucket)  # type: ignore[attr-defined]
        yield s3
    finally:
        server.stop()
