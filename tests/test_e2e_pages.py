"""What the pages tell people, in Debian's Chromium at a desktop size and at 390x844.

- One show status everywhere: scheduled, LIVE, Paused (the creator's browser closed mid-show),
  Ended, with the same words and badge on home, watch, studio and console; End works while
  paused; an ended show reads "Ended" in the creator's list.
- Unknown shows and paths: a 404 page for browsers, "This show does not exist" on the page.
- Moderation: a mute notice names the person, is not styled as an error, and Unmute works;
  viewer counts leave out the team.
- The phone layout: the whole picture (letterboxed), the countdown above the payment sheet,
  readable chat names, the purchase toast clear of the title.
- A hold's countdown never reads longer than the hold, on a device whose clock is slow by less
  than the pages correct.

Screenshots go to ``test-artifacts/e2e/`` (``status-*``, ``missing-*``, ``mute-*``, ``phone-*``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.browsing import VIEWPORTS, Shop, open_page, screenshot

SIZES = pytest.mark.parametrize("size", list(VIEWPORTS))

BADGE = "() => { const b = document.getElementById('status'); return b && b.textContent; }"


async def _badge_reads(page: Any, text: str, within_ms: int = 15000) -> None:
    await page.wait_for_function(f"() => ({BADGE})() === {text!r}", timeout=within_ms)


async def _card_badge(page: Any, grid: str, stream_id: int) -> str | None:
    """The badge of the show's card in one of the home page's grids (None: not listed there)."""
    return await page.evaluate(  # type: ignore[no-any-return]
        "([grid, id]) => { const a = document.querySelector("
        "`#${grid} a.stream-card[href='/watch/${id}']`);"
        " return a ? a.querySelector('.badge').textContent : null; }",
        [grid, stream_id],
    )


async def _home_shows(page: Any, grid: str, stream_id: int, text: str | None) -> None:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        await page.goto("/")
        await page.wait_for_selector("#main[aria-busy=false]")
        seen = await _card_badge(page, grid, stream_id)
        if seen == text:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"home's #{grid} shows {seen!r}, not {text!r}")
        await asyncio.sleep(0.5)


async def _badge_class(page: Any) -> str:
    return await page.evaluate("() => document.getElementById('status').className")  # type: ignore[no-any-return]


@SIZES
async def test_one_status_on_every_page_through_a_show(
    people: Shop, browser: Any, size: str
) -> None:
    viewport = VIEWPORTS[size]
    sid = people.stream_id

    # Scheduled: home says so in the creator's list and under "Coming up"; so does the watch page.
    home = await open_page(browser, people, "creator", viewport)
    await _home_shows(home, "my-streams", sid, "Scheduled")
    assert await _card_badge(home, "upcoming", sid) == "Scheduled"
    watch = await open_page(browser, people, "viewer", viewport)
    await watch.goto(f"/watch/{sid}")
    await _badge_reads(watch, "Scheduled")
    assert "offline" in (await watch.text_content("#overlay") or "")
    await screenshot(watch, f"status-{size}-1-watch-scheduled")

    # The creator goes live from the studio (Chromium's fake camera, real WHIP).
    studio = await open_page(browser, people, "creator", viewport)
    await studio.goto(f"/studio/{sid}")
    await studio.wait_for_function(
        "() => document.getElementById('on-air').textContent.includes('Camera ready')"
    )
    assert not await studio.is_disabled("#end"), "a scheduled show can be ended too"
    await studio.click("#go-live")
    await studio.wait_for_function(
        "() => document.getElementById('on-air').textContent === 'You are live.'"
    )
    console = await open_page(browser, people, "moderator", viewport)
    await console.goto(f"/console/{sid}")
    for page in (watch, studio, console):
        await _badge_reads(page, "LIVE", within_ms=20000)
    await _home_shows(home, "live", sid, "LIVE")
    classes = {await _badge_class(page) for page in (watch, studio, console)}
    assert classes == {"badge live"}
    assert (
        await home.evaluate(
            f"() => document.querySelector(\"#live a[href='/watch/{sid}'] .badge\").className"
        )
        == "badge live"
    )
    await watch.wait_for_function(
        "() => { const v = document.getElementById('video'); return v && v.videoWidth > 0; }",
        timeout=20000,
    )
    await screenshot(home, f"status-{size}-2-home-live")
    await screenshot(watch, f"status-{size}-3-watch-live")
    await screenshot(studio, f"status-{size}-4-studio-live")

    # The creator's browser closes mid-show: paused everywhere, still under "Live now".
    await studio.context.close()
    for page in (watch, console):
        await _badge_reads(page, "Paused", within_ms=45000)
    assert "not over" in (await watch.text_content("#overlay") or "")
    await _home_shows(home, "live", sid, "Paused")
    assert await _card_badge(home, "my-streams", sid) == "Paused"
    studio = await open_page(browser, people, "creator", viewport)
    await studio.goto(f"/studio/{sid}")
    await _badge_reads(studio, "Paused")
    await studio.wait_for_function("() => !document.getElementById('end').disabled")
    assert "Paused" in (await studio.text_content("#on-air") or "")
    classes = {await _badge_class(page) for page in (watch, studio, console)}
    assert classes == {"badge paused"}
    await screenshot(home, f"status-{size}-5-home-paused")
    await screenshot(watch, f"status-{size}-6-watch-paused")
    await screenshot(studio, f"status-{size}-7-studio-paused")
    await screenshot(console, f"status-{size}-8-console-paused")

    # The creator ends the paused show: ended everywhere; "Ended" in the creator's list.
    await studio.click("#end")
    for page in (studio, watch, console):
        await _badge_reads(page, "Ended")
    assert await studio.is_disabled("#end") and await studio.is_disabled("#go-live")
    assert "ended" in (await watch.text_content("#overlay") or "")
    await _home_shows(home, "my-streams", sid, "Ended")
    assert await _card_badge(home, "live", sid) is None
    assert await _card_badge(home, "upcoming", sid) is None
    classes = {await _badge_class(page) for page in (watch, studio, console)}
    assert classes == {"badge ended"}
    await screenshot(home, f"status-{size}-9-home-ended")
    await screenshot(studio, f"status-{size}-10-studio-ended")
    for page in (home, watch, studio, console):
        assert page.errors == [], page.errors


@SIZES
async def test_unknown_shows_and_paths_say_so(people: Shop, browser: Any, size: str) -> None:
    page = await open_page(browser, people, "viewer", VIEWPORTS[size])
    for path in ("/watch/999999", "/studio/999999", "/console/999999"):
        response = await page.goto(path)
        assert response.status == 404, path
        assert await page.text_content("h1") == "This show does not exist"
    await screenshot(page, f"missing-{size}-1-show-404")
    response = await page.goto("/no/such/page")
    assert response.status == 404
    assert await page.text_content("h1") == "Page not found"
    await page.click("text=See the shows that are live and coming up")
    await page.wait_for_url(f"{people.url}/")
    await screenshot(page, f"missing-{size}-2-home-after-404")

    # A watch page that meets an unknown show anyway (a page kept from before, a cached copy):
    # it says so instead of "Loading…" for ever.
    async def stale_page(route: Any) -> None:
        # The server's watch page, as it was served for a show that existed.
        await route.continue_(url=f"{people.url}/watch/{people.stream_id}")

    await page.route("**/watch/424242", stale_page)
    await page.goto("/watch/424242")
    await page.wait_for_function(
        "() => document.getElementById('overlay').textContent.includes('This show does not exist')",
        timeout=15000,
    )
    assert await page.text_content("#title") == "This show does not exist"
    assert await page.get_attribute("#stage", "aria-busy") == "false"
    await screenshot(page, f"missing-{size}-3-watch-unknown-show")
    assert page.errors == [], page.errors


@SIZES
async def test_mute_notice_names_the_person_unmute_and_counts_without_the_team(
    people: Shop, browser: Any, size: str
) -> None:
    viewport = VIEWPORTS[size]
    sid = people.stream_id
    studio = await open_page(browser, people, "creator", viewport)
    await studio.goto(f"/studio/{sid}")
    console = await open_page(browser, people, "moderator", viewport)
    await console.goto(f"/console/{sid}")
    await console.wait_for_selector("#main[aria-busy=false]")
    watch = await open_page(browser, people, "viewer", viewport)
    await watch.goto(f"/watch/{sid}")
    await _badge_reads(watch, "Scheduled")

    # One viewer, whatever the team has open.
    await watch.wait_for_function("() => document.getElementById('viewers').textContent === '👁 1'")
    await console.wait_for_function(
        "() => document.getElementById('viewers').textContent === '1 watching'", timeout=10000
    )
    await studio.wait_for_function(
        "() => document.getElementById('fig-viewers').textContent === '1'", timeout=10000
    )

    await watch.fill("#chat-text", "hello from the crowd")
    await watch.click("#chat-form button")
    await console.wait_for_selector("#chat .msg")
    await console.click("#chat button[data-mute]")
    notice = console.locator("#mutes .notice")
    await notice.wait_for()
    text = await notice.text_content() or ""
    assert "Viewer is muted until" in text, text
    assert "User " not in text
    assert await console.is_hidden("#chat-error"), "a mute is not an error"
    color = await notice.evaluate("n => getComputedStyle(n).color")
    assert color == "rgb(244, 244, 246)", color  # the page's text colour, not the error red
    assert await console.text_content("#chat button[data-mute]") == "Unmute"
    await screenshot(console, f"mute-{size}-1-console-muted")
    # A console opened after the mute shows it too, with the same Unmute.
    late = await open_page(browser, people, "creator", viewport)
    await late.goto(f"/console/{sid}")
    await late.wait_for_selector("#mutes .notice")
    assert "Viewer is muted until" in (await late.text_content("#mutes .notice") or "")
    await late.wait_for_function(
        "() => document.querySelector('#chat button[data-mute]')?.textContent === 'Unmute'"
    )

    await watch.fill("#chat-text", "still here?")
    await watch.click("#chat-form button")
    await watch.wait_for_selector("#chat-error:not(.hidden)")
    assert "muted" in (await watch.text_content("#chat-error") or "")

    await notice.locator("button").click()
    await console.wait_for_selector("#mutes .notice", state="detached")
    await late.wait_for_selector("#mutes .notice", state="detached")
    assert await console.text_content("#chat button[data-mute]") == "Mute 10 min"
    await asyncio.sleep(0.8)  # one message per 0.7 s: "hello" was moments ago
    await watch.fill("#chat-text", "thanks!")
    await watch.click("#chat-form button")
    try:
        await console.wait_for_function(
            "() => document.getElementById('chat').textContent.includes('thanks!')",
            timeout=10000,
        )
    except Exception:
        await screenshot(watch, f"mute-{size}-failed-watch")
        await screenshot(console, f"mute-{size}-failed-console")
        raise AssertionError(await watch.text_content("#chat-error")) from None
    await screenshot(console, f"mute-{size}-2-console-unmuted")
    await screenshot(watch, f"mute-{size}-3-watch-count")
    for page in (studio, console, late, watch):
        assert page.errors == [], page.errors


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@SIZES
async def test_the_watch_page_layout_shows_what_matters(
    people: Shop, browser: Any, size: str
) -> None:
    viewport = VIEWPORTS[size]
    sid = people.stream_id
    studio = await open_page(browser, people, "creator", viewport)
    await studio.goto(f"/studio/{sid}")
    await studio.wait_for_function(
        "() => document.getElementById('on-air').textContent.includes('Camera ready')"
    )
    await studio.click("#go-live")
    watch = await open_page(browser, people, "viewer", viewport)
    await watch.goto(f"/watch/{sid}")
    await _badge_reads(watch, "LIVE", within_ms=20000)
    await watch.wait_for_function(
        "() => { const v = document.getElementById('video'); return v && v.videoWidth > 0; }",
        timeout=20000,
    )

    # The whole picture: the video is scaled to fit, never cropped.
    fit = await watch.evaluate(
        "() => { const v = document.getElementById('video');"
        " return {fit: getComputedStyle(v).objectFit, w: v.videoWidth, h: v.videoHeight,"
        " cw: v.clientWidth, ch: v.clientHeight}; }"
    )
    assert fit["fit"] == "contain"
    scale = min(fit["cw"] / fit["w"], fit["ch"] / fit["h"])
    assert fit["w"] * scale <= fit["cw"] + 1 and fit["h"] * scale <= fit["ch"] + 1

    # Chat names readable: each line on a dark backdrop of at least 70% opacity.
    await watch.fill("#chat-text", "what a picture")
    await watch.click("#chat-form button")
    line = watch.locator("#chat .msg").first
    await line.wait_for()
    backdrop = await line.evaluate("n => getComputedStyle(n).backgroundColor")
    alpha = float(backdrop.rsplit(",", 1)[1].rstrip(")")) if backdrop.count(",") == 3 else 1.0
    assert backdrop.startswith("rgba(0, 0, 0") and alpha >= 0.7, backdrop

    # A purchase toast: clear of the title and of the product card.
    await people.call(
        "moderator", "POST", f"/api/streams/{sid}/pin", {"product_id": people.product_id}
    )
    await watch.wait_for_selector("#product:not(.hidden)")
    await watch.evaluate(
        "() => { const node = document.createElement('div');"
        " node.textContent = '🛍 Someone just bought 1 x Hoodie';"
        " document.getElementById('feed').append(node); }"
    )
    toast = await watch.locator("#feed div").first.bounding_box()
    title = await watch.locator("#title").bounding_box()
    card = await watch.locator("#product").bounding_box()
    assert toast is not None and title is not None and card is not None
    assert not _overlap(toast, title), (toast, title)
    assert not _overlap(toast, card), (toast, card)
    await screenshot(
        watch, f"phone-{size}-1-watch-live" if size == "phone" else f"layout-{size}-1-watch-live"
    )

    # A flash sale, and the payment sheet open: the countdown stays in sight above it.
    await people.call(
        "moderator",
        "POST",
        f"/api/streams/{sid}/sales",
        {"sku_id": people.sku_id, "sale_price": 2900, "quantity": 5, "duration_s": 60},
    )
    await watch.wait_for_function(
        "() => document.getElementById('countdown').textContent.startsWith('Flash sale ends in')"
    )
    # The page's estimate of the server's clock running 5 s behind (a slow first round trip):
    # the countdown still never shows more than the sale's own 60 s.
    await watch.evaluate(
        "() => { window.__realNow = Date.now; Date.now = () => window.__realNow() - 5000; }"
    )
    await watch.wait_for_timeout(600)
    assert await watch.text_content("#countdown") == "Flash sale ends in 1:00"
    await watch.evaluate("() => { Date.now = window.__realNow; }")
    await watch.click("#buy")
    await watch.wait_for_selector("#sheet:not(.hidden)")
    clock = watch.locator("#sale-clock")
    await clock.wait_for(state="visible")
    assert (await clock.text_content() or "").startswith("Flash sale ends in")
    box = await clock.bounding_box()
    sheet = await watch.locator("#sheet").bounding_box()
    assert box is not None and sheet is not None
    assert not _overlap(box, sheet), (box, sheet)
    on_top = await watch.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.id",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert on_top == "sale-clock"
    await screenshot(
        watch,
        f"phone-{size}-2-sheet-countdown"
        if size == "phone"
        else f"layout-{size}-2-sheet-countdown",
    )
    await watch.click("#sheet-actions button")
    await clock.wait_for(state="hidden")
    for page in (studio, watch):
        assert page.errors == [], page.errors


async def test_a_fresh_holds_countdown_never_reads_longer_than_the_hold(
    people: Shop, browser: Any
) -> None:
    """A device clock 1.5 s slow is left alone (the pages correct a skew over two seconds, read
    off whole-second Date headers), so a hold placed a moment ago would count down from up to
    1.5 s more than its length: the countdown is capped at the hold's length."""
    page = await open_page(browser, people, "viewer", VIEWPORTS["desktop"])
    await page.clock.set_system_time(time.time() - 1.5)
    order = (
        await people.call(
            "viewer",
            "POST",
            "/api/purchases",
            {"sku_id": people.sku_id, "qty": 1, "pay_with_saved_card": False},
            **{"Idempotency-Key": uuid.uuid4().hex},
        )
    )["order"]
    assert order["status"] == "reserved"
    placed, expires = (datetime.fromisoformat(order[k]) for k in ("created_at", "expires_at"))
    length = round((expires - placed).total_seconds())
    await page.goto(f"/orders/{order['id']}")
    countdown = page.locator(".order-detail[data-status='reserved'] .hold-countdown")
    await page.wait_for_function(
        "() => /^[0-9]+ seconds left$/.test("
        "document.querySelector('.hold-countdown')?.getAttribute('aria-label') ?? '')"
    )
    label = await countdown.get_attribute("aria-label") or ""
    seconds = int(label.split()[0])
    assert 0 < seconds <= length, (label, length)
    shown = await countdown.text_content() or ""
    minutes, rest = shown.split(":")
    assert 0 < int(minutes) * 60 + int(rest) <= length, (shown, length)
    assert page.errors == []
