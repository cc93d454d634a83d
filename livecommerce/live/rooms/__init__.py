"""Room domain: pins, flash sales, chat moderation, presence and broadcast; state in Redis.

Nothing here speaks Socket.IO or HTTP: the transport (live/transport/) turns events and
requests into calls on ``LiveRooms`` and sends what it returns.
"""
