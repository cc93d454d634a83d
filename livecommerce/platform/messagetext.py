"""The rule every person-to-person text obeys, in a live room's chat or an order's conversation:
1 to ``MAX_MESSAGE`` characters once trimmed, and none of a blocked-word list.

Blocked words are matched case-insensitively, inside words too ("spam" blocks "spammer"). Each
domain keeps its own list (a stream's chat keeps it in its room state) and asks here whether a
text passes.
"""

from __future__ import annotations

from collections.abc import Iterable

from livecommerce.errors import ErrorCode, LiveCommerceError

MAX_MESSAGE = 300


def message_text(text: str) -> str:
    """``text`` trimmed; raises ``invalid_input`` unless it has 1 to ``MAX_MESSAGE`` characters."""
    text = text.strip()
    if not 1 <= len(text) <= MAX_MESSAGE:
        raise LiveCommerceError(
            ErrorCode.INVALID_INPUT, f"a message has 1 to {MAX_MESSAGE} characters"
        )
    return text


def check_blocked(text: str, blocked: Iterable[str]) -> None:
    """Raises ``invalid_input`` if ``text`` holds any of the (already cleaned) ``blocked`` words."""
    lowered = text.casefold()
    if any(word in lowered for word in blocked):
        raise LiveCommerceError(ErrorCode.INVALID_INPUT, "that message is not allowed here")


def clean_blocked_words(words: Iterable[str]) -> list[str]:
    """A list as it is kept: trimmed, case-folded, without blanks or repeats, sorted."""
    return sorted({w.strip().casefold() for w in words} - {""})
