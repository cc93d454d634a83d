"""Inventory, the only writer of stock: holds in Redis (Lua), stock on hand in SQL, rebuild."""
