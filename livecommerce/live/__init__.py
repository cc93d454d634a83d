"""Shopstreams, room state, the Socket.IO namespace, flash sales and chat moderation."""
