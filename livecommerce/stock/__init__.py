"""Available stock and holds in Redis: atomic Lua scripts, expiry, rebuild from SQL."""
