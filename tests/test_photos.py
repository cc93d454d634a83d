"""Product photos: real images checked and thumbnailed by Pillow, refusals of everything else,
and the thumbnails kept on disk (DATA_DIR) or in a real S3-compatible server (moto)."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import FormData
from PIL import Image

from livecommerce.app import create_app
from livecommerce.catalog.photos import MAX_PHOTO_BYTES, make_thumbnails
from livecommerce.config import ConfigError, Settings
from livecommerce.platform.objectstore import S3Location, S3ObjectStore
from livecommerce.platform.resources import SETTINGS
from tests.conftest import Account, hoodie, sign_up
from tests.imagefiles import big_but_quiet, bomb, jpeg, png
from tests.objectstorage import KEY_ID, SECRET, S3Server


async def upload(
    account: Account, product_id: int, data: bytes, name: str = "p.jpg", ctype: str = "image/jpeg"
) -> tuple[int, Any]:
    form = FormData()
    form.add_field("photo", data, filename=name, content_type=ctype)
    response = await account.client.post(
        f"/api/products/{product_id}/photos", data=form, headers=account.headers
    )
    return response.status, await response.json()


def test_thumbnails_are_webp_upright_and_without_metadata() -> None:
    thumbs = make_thumbnails(jpeg())
    assert (thumbs.width, thumbs.height) == (1200, 1600)  # the EXIF orientation applied
    for side, data in thumbs.webp.items():
        image = Image.open(io.BytesIO(data))
        assert image.format == "WEBP"
        assert max(image.size) == side and image.size == (side * 3 // 4, side)
        assert "exif" not in image.info and "icc_profile" not in image.info
        assert b"SecretCamera" not in data


async def test_upload_thumbnails_serves_and_sets_the_cover(client: Any) -> None:
    seller = await sign_up(client, "seller")
    product = (await seller.call("POST", "/api/products", hoodie("PH-1"), status=201))["product"]
    status, body = await upload(seller, product["id"], jpeg())
    assert status == 201, body
    photo = body["product"]["photos"][0]
    assert body["product"]["image_url"] == photo["url"] == f"/api/photos/{photo['id']}/800"
    assert (photo["width"], photo["height"]) == (1200, 1600)
    for url, side in ((photo["url"], 800), (photo["thumbnail_url"], 200)):
        response = await client.get(url)
        assert response.status == 200 and response.content_type == "image/webp"
        assert max(Image.open(io.BytesIO(await response.read())).size) == side
    # A PNG with transparency is taken too, and goes after the cover.
    status, body = await upload(seller, product["id"], png(), "p.png", "image/png")
    assert status == 201, body
    second = body["product"]["photos"][1]
    assert body["product"]["image_url"] == photo["url"]
    # The card the rooms pin reads the product's image_url: the cover's.
    card = await seller.call("GET", f"/api/products/{product['id']}", status=200)
    assert card["product"]["image_url"] == photo["url"]
    # Reordered: the PNG is the cover now; deleted: the JPEG is again.
    body = await seller.call(
        "PUT", f"/api/products/{product['id']}/photos", {"photos": [second["id"], photo["id"]]}
    )
    assert body["product"]["image_url"] == second["url"]
    body = await seller.call(
        "DELETE", f"/api/products/{product['id']}/photos/{second['id']}", status=200
    )
    assert body["product"]["image_url"] == photo["url"]
    assert (await client.get(second["url"])).status == 404
    kept = sorted(p.name for p in (client.app[SETTINGS].data_dir / "objects").rglob("*.webp"))
    assert kept == ["200.webp", "800.webp"]  # the deleted photo's files are gone


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"just some text, not a picture\n", "not an image"),
        (jpeg(exif=False)[:3000], "truncated or damaged"),
        (png()[:-40], "damaged"),
        (bomb(), "pixels"),
        (big_but_quiet(), "pixels"),
        (b"", "empty"),
        (b"GIF89a" + b"\x00" * 40, "not an image"),
    ],
    ids=["text", "truncated-jpeg", "truncated-png", "bomb", "too-many-pixels", "empty", "junk"],
)
async def test_what_is_not_a_photo_is_refused(client: Any, data: bytes, problem: str) -> None:
    seller = await sign_up(client, "seller")
    product = (await seller.call("POST", "/api/products", hoodie("PH-X"), status=201))["product"]
    status, body = await upload(seller, product["id"], data)
    assert status == 422, body
    assert body["error"]["code"] == "invalid_input" and problem in body["error"]["message"]
    again = await seller.call("GET", f"/api/products/{product['id']}", status=200)
    assert again["product"]["photos"] == [] and again["product"]["image_url"] is not None


async def test_size_type_and_owner_are_checked(client: Any) -> None:
    seller = await sign_up(client, "seller")
    other = await sign_up(client, "other")
    product = (await seller.call("POST", "/api/products", hoodie("PH-O"), status=201))["product"]
    status, body = await upload(seller, product["id"], b"\xff" * (MAX_PHOTO_BYTES + 1))
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    status, body = await upload(other, product["id"], jpeg())
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await upload(seller, 999_999, jpeg())
    assert status == 404
    response = await client.post(
        f"/api/products/{product['id']}/photos", data=jpeg(), headers=seller.headers
    )
    assert response.status == 415
    form = FormData()
    form.add_field("other", b"x", filename="x.txt")
    response = await client.post(
        f"/api/products/{product['id']}/photos", data=form, headers=seller.headers
    )
    assert response.status == 422 and "'photo'" in (await response.json())["error"]["message"]
    status, _ = await upload(seller, product["id"], jpeg(400, 300))
    assert status == 201
    photo_id = (await seller.call("GET", f"/api/products/{product['id']}"))["product"]["photos"][0]
    await other.call("DELETE", f"/api/products/{product['id']}/photos/{photo_id['id']}", status=403)
    assert (await client.get(f"/api/photos/{photo_id['id']}/123")).status == 404


async def test_s3_store_against_moto(s3_server: S3Server) -> None:
    store = S3ObjectStore(
        S3Location(s3_server.bucket, s3_server.endpoint_url, key_id=KEY_ID, secret=SECRET)
    )
    await store.check()
    await store.put("photos/1/abc/200.webp", b"RIFF-data", "image/webp")
    assert await store.read("photos/1/abc/200.webp") == b"RIFF-data"
    assert await store.read("photos/1/missing.webp") is None
    url = await store.public_url("photos/1/abc/200.webp")
    assert url is not None and url.startswith(s3_server.endpoint_url)
    async with httpx.AsyncClient() as http:
        fetched = await http.get(url)
    assert fetched.status_code == 200 and fetched.content == b"RIFF-data"
    assert fetched.headers["content-type"] == "image/webp"
    await store.delete("photos/1/abc/200.webp")
    assert await store.read("photos/1/abc/200.webp") is None
    with pytest.raises(ValueError):
        await store.put("../escape", b"x", "text/plain")
    await store.close()


async def test_the_app_keeps_photos_in_s3_when_configured(
    aiohttp_client: Any, settings: Settings, s3_server: S3Server
) -> None:
    app = create_app(
        replace(
            settings,
            object_storage_bucket=s3_server.bucket,
            object_storage_url=s3_server.endpoint_url,
            object_storage_key_id=KEY_ID,
            object_storage_secret=SECRET,
        )
    )
    client = await aiohttp_client(app)
    seller = await sign_up(client, "seller")
    product = (await seller.call("POST", "/api/products", hoodie("PH-S3"), status=201))["product"]
    status, body = await upload(seller, product["id"], jpeg())
    assert status == 201, body
    photo = body["product"]["photos"][0]
    listed = s3_server.client().list_objects_v2(Bucket=s3_server.bucket)  # type: ignore[attr-defined]
    keys = sorted(o["Key"] for o in listed["Contents"])
    assert [k.rsplit("/", 1)[1] for k in keys] == ["200.webp", "800.webp"]
    assert not (settings.data_dir / "objects").exists()
    # The app answers with a presigned URL of the bucket; the browser fetches the bytes there.
    response = await client.get(photo["url"], allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(s3_server.endpoint_url)
    async with aiohttp.ClientSession() as session, session.get(location) as fetched:
        assert fetched.status == 200
        assert Image.open(io.BytesIO(await fetched.read())).size == (600, 800)
    await seller.call("DELETE", f"/api/products/{product['id']}/photos/{photo['id']}", status=200)
    listed = s3_server.client().list_objects_v2(Bucket=s3_server.bucket)  # type: ignore[attr-defined]
    assert listed.get("KeyCount") == 0


def test_object_storage_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="OBJECT_STORAGE_URL"):
        Settings.from_env({"OBJECT_STORAGE_BUCKET": "b-1", "OBJECT_STORAGE_URL": "ftp://x"})
    with pytest.raises(ConfigError, match="BUCKET"):
        Settings.from_env({"OBJECT_STORAGE_URL": "http://127.0.0.1:9000"})
    settings = Settings.from_env({"OBJECT_STORAGE_BUCKET": "shop-photos"})
    assert settings.object_storage_bucket == "shop-photos"
