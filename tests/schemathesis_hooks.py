"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``): SDP bodies for WHIP/WHEP.

Schemathesis cannot make ``application/sdp`` by itself; these are offers broken in many ways,
around a real-looking skeleton, so the handlers' refusals are fuzzed, never a 500.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

SKELETON = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 VP8/90000\r\n"
)

sdp = st.one_of(
    st.text(max_size=300),
    st.builds(lambda junk: "v=0\r\n" + junk, st.text(max_size=300)),
    st.builds(lambda cut: SKELETON[:cut], st.integers(0, len(SKELETON))),
    st.builds(lambda junk: SKELETON + junk, st.text(max_size=200)),
).map(lambda text: text.encode("utf-8", "surrogatepass"))

schemathesis.openapi.media_type("application/sdp", sdp)
