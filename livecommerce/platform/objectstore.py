"""Object storage for files the app makes (product photos' thumbnails): one interface, two homes.

Without settings the objects are files under ``DATA_DIR/objects`` and the app serves them itself.
With ``OBJECT_STORAGE_BUCKET`` they go to an S3-compatible service (AWS S3, MinIO, R2, ...) through
boto3; boto3 blocks, so every call runs in a thread, never on the event loop. Browsers then fetch
them from the bucket: from ``OBJECT_STORAGE_PUBLIC_URL`` when the bucket is public, or through a
presigned URL the app redirects to.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
PRESIGNED_TTL_S = 3600


def check_key(key: str) -> str:
    """Object names are made by the app; this refuses anything that could leave the store."""
    if not _KEY.match(key) or ".." in key or "//" in key:
        raise ValueError(f"not an object key: {key!r}")
    return key


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def read(self, key: str) -> bytes | None:
        """The object's bytes, None if there is none."""

    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing one is not an error."""

    async def public_url(self, key: str) -> str | None:
        """Where a browser fetches the object, or None: the app serves it from ``read``."""

    async def close(self) -> None: ...


class LocalObjectStore:
    """Objects as files under ``root`` (the default install, tests)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
            partial.write_bytes(data)
            os.replace(partial, path)  # readers never see half a file

        await asyncio.to_thread(write)

    async def read(self, key: str) -> bytes | None:
        path = self._path(key)

        def load() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(load)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def public_url(self, key: str) -> str | None:
        return None

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class S3Location:
    bucket: str
    endpoint_url: str = ""  # empty: AWS's own endpoints
    region: str = "us-east-1"
    key_id: str = ""  # empty: boto3's usual credential chain (environment, instance role)
    secret: str = ""
    public_url: str = ""  # the bucket's public base URL; empty: presigned URLs


class S3ObjectStore:
    """Objects in an S3-compatible bucket, through boto3 in threads."""

    def __init__(self, location: S3Location) -> None:
        import boto3
        from botocore.config import Config

        self.location = location
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=location.endpoint_url or None,
            region_name=location.region,
            aws_access_key_id=location.key_id or None,
            aws_secret_access_key=location.secret or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    async def check(self) -> None:
        """Fail at start-up, not on the first upload, when the bucket is unreachable."""
        await asyncio.to_thread(self._client.head_bucket, Bucket=self.location.bucket)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.location.bucket,
            Key=check_key(key),
            Body=data,
            ContentType=content_type,
            CacheControl="public, max-age=31536000, immutable",
        )

    async def read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        def load() -> bytes | None:
            try:
                reply = self._client.get_object(Bucket=self.location.bucket, Key=check_key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = reply["Body"].read()
            return body

        return await asyncio.to_thread(load)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(
            self._client.delete_object, Bucket=self.location.bucket, Key=check_key(key)
        )

    async def public_url(self, key: str) -> str | None:
        check_key(key)
        if self.location.public_url:
            return f"{self.location.public_url.rstrip('/')}/{key}"
        url: str = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.location.bucket, "Key": key},
            ExpiresIn=PRESIGNED_TTL_S,
        )
        return url

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


OBJECTS = web.AppKey("objects", ObjectStore)
