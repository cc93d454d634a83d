"""WebRTC media for WHIP ingest and WHEP playback: encoded frames in, the same frames out.

Three layers, each importing only the ones below it:

- :mod:`~livecommerce.media.signal`: WHIP / WHEP over HTTP (the only media module on aiohttp);
- :mod:`~livecommerce.media.hub`: this process's streams (relays, publishers and viewers,
  the per-address quota), telling the event bus when a stream goes on or off air;
- :mod:`~livecommerce.media.routing`: which process holds a stream, and where another process
  sends its viewers (no aiortc, no aiohttp);
- :mod:`~livecommerce.media.rtc`: sessions, relay, tracks and queues on aiortc, nothing decoded
  or re-encoded; :mod:`~livecommerce.media.rtc.aiortcseam` is the only module touching aiortc
  or aioice internals.
"""
