"""What happens to accounts that other processes must hear of at once."""

from __future__ import annotations

from dataclasses import dataclass

from livecommerce.events.event import Event


@dataclass(frozen=True)
class TokensRevoked(Event):
    """These bearer tokens (by SHA-256 hex digest) stopped working: a log-out, or a password
    change that ended every session of ``user_id``. Token caches forget them and the sockets
    authenticated with them are disconnected, on every process."""

    name = "accounts.tokens_revoked"

    user_id: int
    token_hashes: tuple[str, ...]

    def __post_init__(self) -> None:
        # From the wire the hashes come as a JSON list.
        object.__setattr__(self, "token_hashes", tuple(self.token_hashes))
