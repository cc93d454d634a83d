"""Reading a WHIP/WHEP SDP offer, and refusing one aiortc could not negotiate safely.

aiortc trusts offers: a malformed line fails an ``assert`` in its parser, and an offer that parses
but lacks ICE credentials or a DTLS fingerprint, or whose BUNDLE group names no m-line, fails
later with ``AttributeError`` deep inside ``setRemoteDescription``, leaving a peer connection that
cannot even be closed. So offers are checked here first, and refused with :class:`OfferRejected`.
"""

from __future__ import annotations

from aiortc import sdp as aiortc_sdp

from livecommerce.media.rtc.relay import KINDS


class OfferRejected(ValueError):
    """The SDP offer is malformed, carries no usable media, or shares no codec with the relay."""


def parse_offer(offer_sdp: str) -> aiortc_sdp.SessionDescription:
    # Parsing has no side effect, so any failure in it means a malformed offer.
    try:
        offer = aiortc_sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:
        raise OfferRejected(f"malformed SDP offer: {exc or type(exc).__name__}") from exc
    _check(offer)
    return offer


def _check(offer: aiortc_sdp.SessionDescription) -> None:
    mids: list[str] = []
    for index, media in enumerate(offer.media):
        where = f"m-line {index} ({media.kind})"
        if media.kind not in KINDS:
            continue  # answered as rejected (port 0) by aiortc, or ignored
        if not media.rtp.muxId:
            raise OfferRejected(f"{where} has no a=mid")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise OfferRejected(f"{where} has no a=ice-ufrag / a=ice-pwd")
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferRejected(f"{where} has no a=fingerprint or no a=setup")
        if media.direction is None:
            raise OfferRejected(f"{where} has no direction (a=sendonly, a=recvonly, ...)")
        if media.msid is not None and " " in media.msid and len(media.msid.split()) < 2:
            raise OfferRejected(f"{where} has a malformed a=msid (a stream id and a track id)")
        if not media.rtp.codecs:
            raise OfferRejected(f"{where} lists no codec (a=rtpmap)")
        mids.append(media.rtp.muxId)
    if len(set(mids)) != len(mids):
        raise OfferRejected("two m-lines share one a=mid")
    every_mid = {str(media.rtp.muxId) for media in offer.media if media.rtp.muxId}
    for group in offer.group:
        if group.semantic == "BUNDLE" and not {str(item) for item in group.items} <= every_mid:
            raise OfferRejected("a=group:BUNDLE names an m-line the offer does not have")
