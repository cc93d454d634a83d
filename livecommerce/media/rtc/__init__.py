"""WebRTC on aiortc: sessions answering offers, the relay fanning encoded frames out to viewers'
tracks and queues, ICE configuration, and the one seam touching aiortc / aioice internals.

Knows nothing of HTTP, Redis or the event bus: benches and tests drive it directly.
"""
