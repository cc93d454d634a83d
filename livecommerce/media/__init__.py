"""WebRTC media relay for WHIP ingest and WHEP playback: encoded frames in, the same frames out.

Nothing is decoded or re-encoded. :mod:`~livecommerce.media.aiortcseam` is the only module that
touches aiortc internals; :mod:`~livecommerce.media.sessions` answers SDP offers;
:mod:`~livecommerce.media.relay` fans a publisher's frames out to viewers.
"""
