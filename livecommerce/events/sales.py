"""What happens to flash sales that the live rooms act on."""

from __future__ import annotations

import dataclasses

from livecommerce.events.event import Event


@dataclasses.dataclass(frozen=True)
class SaleEnded(Event):
    """A flash sale ended (its time was up, or it was stopped). Published once, by the one
    process that closed it, whichever noticed first."""

    name = "sale.ended"

    stream_id: int
    sale_id: str
