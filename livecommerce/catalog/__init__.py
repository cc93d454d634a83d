"""Products, their variants (SKUs), prices in minor units, and stock on hand."""
