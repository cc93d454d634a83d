"""The seller's back office in Debian's Chromium (desktop and a 390x844 phone): a product added
with a variant and a photo on the catalog page, its stock adjusted, and a show's lineup
reordered (by dragging on the desktop, with the Up/Down buttons on the phone).
Screenshots go under ``test-artifacts/e2e/``."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.browsing import VIEWPORTS, Shop, open_page, running_shop, screenshot
from tests.conftest import hoodie


@pytest.fixture
async def seller(redis_url: str, tmp_path: Path) -> AsyncIterator[Shop]:
    """A server (emails into ``tmp_path/outbox``) and a signed-up seller."""
    async with running_shop(redis_url, tmp_path, namespace="bo") as shop:
        await shop.person("seller")
        yield shop


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_catalog_page_adds_a_product_with_a_variant_and_a_photo(
    seller: Shop, browser: Any, tmp_path: Path, device: str
) -> None:
    photo = tmp_path / "tee.jpg"
    Image.new("RGB", (900, 1200), (220, 40, 90)).save(photo, "JPEG")
    page = await open_page(browser, seller, "seller", VIEWPORTS[device])
    await page.goto("/studio/catalog")
    await page.wait_for_selector("#main[aria-busy='false']")
    code = f"TEE-{uuid.uuid4().hex[:5].upper()}"
    await page.fill("#np-title", "Summer tee")
    await page.fill("#np-description", "Soft cotton")
    await page.get_by_label("Size").fill("M")
    await page.get_by_label("Colour").fill("Coral")
    await page.get_by_label("SKU code").fill(code)
    await page.get_by_label("Price").fill("24.50")
    await page.get_by_label("Stock", exact=True).fill("8")
    await page.set_input_files("#np-photo", str(photo))
    await page.click("#new-product button[type=submit]")
    item = page.locator(".product-item", has_text="Summer tee")
    await item.wait_for()
    cover = item.locator(".product-head img")
    await page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=await cover.element_handle()
    )
    assert "/api/photos/" in (await cover.get_attribute("src") or "")
    row = item.locator(f"tr:has-text('{code}')")
    assert "8 on hand" in (await row.text_content() or "")
    assert "$24.50" in (await row.text_content() or "")
    # Two damaged: the stock and the history say so.
    await row.get_by_label(f"Units to add or remove for {code}").fill("-2")
    await row.get_by_label(f"Reason for {code}").select_option("damaged")
    await row.locator("form.adjust button").click()
    row = page.locator(".product-item", has_text="Summer tee").locator(f"tr:has-text('{code}')")
    await page.wait_for_function(
        f"() => [...document.querySelectorAll('tr')].some(r => r.textContent.includes('{code}')"
        " && r.textContent.includes('6 on hand'))"
    )
    await row.get_by_role("button", name="History").click()
    await row.locator("ol.audit li", has_text="damaged").wait_for()
    await screenshot(page, f"40-catalog-{device}", full_page=True)
    products = (await seller.call("seller", "GET", "/api/inventory"))["skus"]
    assert [(s["sku"], s["on_hand"]) for s in products] == [(code, 6)]
    assert page.errors == [], page.errors


@pytest.mark.parametrize("device", ["desktop", "phone"])
async def test_lineup_builder_reorders_and_saves(seller: Shop, browser: Any, device: str) -> None:
    ids = []
    for title in ("Alpha", "Bravo", "Charlie"):
        draft = {**hoodie(f"{title[:3].upper()}-{uuid.uuid4().hex[:5]}"), "title": title}
        ids.append((await seller.call("seller", "POST", "/api/products", draft))["product"]["id"])
    stream = (
        await seller.call("seller", "POST", "/api/streams", {"title": "Sunday show", "lineup": ids})
    )["stream"]
    page = await open_page(browser, seller, "seller", VIEWPORTS[device])
    await page.goto(f"/studio/shows?show={stream['id']}")
    await page.wait_for_selector("#builder li[data-product]")
    if device == "desktop":
        await page.drag_and_drop(
            f"#builder li[data-product='{ids[2]}']", f"#builder li[data-product='{ids[0]}']"
        )
    else:
        await page.get_by_role("button", name="Move Charlie up").click()
        # The focus stays on the moved product's Up button: the keyboard can keep going.
        await page.keyboard.press("Enter")
    names = await page.locator("#builder li .name").all_text_contents()
    assert names == ["1. Charlie", "2. Alpha", "3. Bravo"], names
    assert "moved to position 1" in (await page.text_content("#lineup-status") or "")
    await page.click("#save-lineup")
    await page.wait_for_function(
        "() => document.getElementById('lineup-status').textContent === 'Lineup saved.'"
    )
    await screenshot(page, f"41-lineup-{device}", full_page=True)
    saved = (await seller.call("seller", "GET", f"/api/streams/{stream['id']}"))["stream"]
    assert saved["lineup"] == [ids[2], ids[0], ids[1]]
    assert page.errors == [], page.errors


LINK = r"http://127\.0\.0\.1:\d+/invitations/[\w-]+"


def _link_in_outbox(outbox: Path, to: str) -> str | None:
    for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            found = re.search(LINK, body.get_content())
            assert found, body.get_content()
            return found.group(0)
    return None


async def _emailed_link(outbox: Path, to: str) -> str:
    """The invitation link of the email the server wrote to ``outbox`` for ``to``."""
    for _ in range(100):
        link = await asyncio.to_thread(_link_in_outbox, outbox, to)
        if link is not None:
            return link
        await asyncio.sleep(0.1)
    raise AssertionError(f"no invitation email to {to}")


async def test_an_invitation_sent_from_the_shows_page_is_accepted_from_its_email(
    seller: Shop, browser: Any, tmp_path: Path
) -> None:
    stream = (await seller.call("seller", "POST", "/api/streams", {"title": "Night market"}))[
        "stream"
    ]
    page = await open_page(browser, seller, "seller", VIEWPORTS["desktop"])
    await page.goto(f"/studio/shows?show={stream['id']}")
    await page.wait_for_selector("#editor:not(.hidden)")
    invited = f"helper-{uuid.uuid4().hex[:6]}@example.com"
    await page.fill("#invite-address", invited)
    await page.click("#invite-form button")
    await page.wait_for_selector("#ed-invitations li[data-invitation]")
    assert invited in (await page.text_content("#ed-invitations") or "")

    link = await _emailed_link(tmp_path / "outbox", invited)
    context = await browser.new_context(viewport=VIEWPORTS["phone"])
    helper = await context.new_page()
    await helper.goto(link)
    await helper.click("#inv-login")  # not signed in: log in or sign up first
    await helper.fill("#signup-name", "Helper")
    await helper.fill("#signup-email", invited)
    await helper.fill("#signup-password", "correct horse")
    await helper.click("#signup button")
    await helper.wait_for_url(link)
    await helper.wait_for_selector("#inv-actions:not(.hidden)")
    assert "Night market" in (await helper.text_content("#inv-text") or "")
    await screenshot(helper, "42-invitation-phone", full_page=True)
    await helper.click("#inv-accept")
    await helper.wait_for_url(re.compile(rf".*/console/{stream['id']}$"))
    saved = (await seller.call("seller", "GET", f"/api/streams/{stream['id']}"))["stream"]
    assert [m["display_name"] for m in saved["moderators"]] == ["Helper"]
    assert page.errors == [], page.errors
