"""Accessibility checks for browser tests: axe-core (npm) in the page, and the keyboard.

`assert_accessible` injects axe-core from node_modules and fails on any violation of impact
"serious" or "critical", naming the rule and the elements. `assert_keyboard_reachable` presses Tab
through the page and fails on any visible, enabled control that never takes the focus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"

_RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
}"""

_CONTROLS = """() => {
  const visible = el => {
    // checkVisibility: also false inside a closed <details> (content-visibility: hidden)
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && !el.closest('[inert]')
      && el.checkVisibility({visibilityProperty: true, contentVisibilityAuto: true});
  };
  const selector = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]),'
    + ' select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
  let n = 0;
  for (const el of document.querySelectorAll(selector)) {
    if (visible(el) && !el.dataset.a11yId) el.dataset.a11yId = String(++n);
  }
  return [...document.querySelectorAll('[data-a11y-id]')]
    .filter(visible).map(el => el.dataset.a11yId);
}"""

_FOCUSED = "() => document.activeElement && document.activeElement.dataset.a11yId || null"

_DESCRIBE = """id => { const el = document.querySelector(`[data-a11y-id="${id}"]`);
  return el ? el.outerHTML.slice(0, 160) : id; }"""


async def assert_accessible(page: Any, label: str) -> None:
    """No serious or critical axe-core violation on ``page`` as it is now."""
    assert AXE.exists(), "axe-core is missing: run scripts/setup (npm ci)"
    if not await page.evaluate("() => typeof axe !== 'undefined'"):
        # Through DevTools, not a <script>: the pages' Content-Security-Policy refuses inline code.
        await page.evaluate(AXE.read_text() + "\n;undefined")
    violations = await page.evaluate(_RUN_AXE)
    assert not violations, f"{label}: accessibility violations: {violations}"


async def assert_keyboard_reachable(page: Any, label: str, max_tabs: int = 200) -> None:
    """Every visible, enabled control on ``page`` takes the focus by pressing Tab."""
    controls = set(await page.evaluate(_CONTROLS))
    reached: set[str] = set()
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(max_tabs):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUSED)
        if focused is not None:
            reached.add(focused)
        if controls <= reached:
            break
    missing = [await page.evaluate(_DESCRIBE, control) for control in sorted(controls - reached)]
    assert not missing, f"{label}: not reachable by keyboard: {missing}"
