"""What happens to the catalog that caches on every process must hear of at once."""

from __future__ import annotations

import dataclasses

from livecommerce.events.event import Event


@dataclasses.dataclass(frozen=True)
class ProductChanged(Event):
    """A product or its variants were edited (price, currency, active, stock on hand...).

    ``sku_ids`` are the product's SKUs whose facts may have changed; caches of SKU facts forget
    them, on every process.
    """

    name = "catalog.product_changed"

    product_id: int
    sku_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        # From the wire the ids come as a JSON list.
        object.__setattr__(self, "sku_ids", tuple(self.sku_ids))
