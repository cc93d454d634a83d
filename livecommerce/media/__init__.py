"""WebRTC media for WHIP ingest and WHEP playback: encoded frames in, the same frames out.

Three layers, each importing only the ones below it:

- :mod:`~livecommerce.media.signal`: WHIP / WHEP over HTTP, and the internal endpoints other
  processes use; :mod:`~livecommerce.media.internal`: the client of those (the media modules
  on aiohttp);
- :mod:`~livecommerce.media.hub`: this process's streams (relays, publishers and viewers,
  the per-address quota, the pulls of streams other processes hold), telling the event bus
  when a stream it holds goes on or off air;
- :mod:`~livecommerce.media.routing`: which process holds a stream, its public and internal
  addresses, the internal secret (no aiortc, no aiohttp);
- :mod:`~livecommerce.media.rtc`: sessions, relay, tracks and queues on aiortc, nothing decoded
  or re-encoded; :mod:`~livecommerce.media.rtc.aiortcseam` is the only module touching aiortc
  or aioice internals.
"""
