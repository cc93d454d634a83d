"""WHIP/WHEP sessions: answer a publisher's or a viewer's SDP offer with a relay-side peer.

An HTTP handler calls :func:`accept_publisher` with a publisher's offer (WHIP) or
:func:`accept_viewer` with a viewer's (WHEP), returns the answer SDP, keeps the session, and calls
its ``close()`` on DELETE. Sessions also close themselves when their connection fails or closes.
:func:`pull_stream` is the other way round: this side offers, as a WHEP viewer of another process
holding the stream, and what it receives feeds the relay as a publisher's frames would.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.exceptions import InternalError, InvalidAccessError, OperationError

from livecommerce.media.rtc import aiortcseam, srtpseam
from livecommerce.media.rtc.leansender import LeanViewer
from livecommerce.media.rtc.relay import KINDS, Ingest, StreamNotLive, StreamRelay
from livecommerce.media.rtc.sdpoffer import OfferRejected, parse_offer

__all__ = [
    "OfferRejected",
    "PublisherSession",
    "ViewerSession",
    "accept_publisher",
    "accept_viewer",
    "pull_stream",
]

logger = logging.getLogger(__name__)

_SENDING = ("sendonly", "sendrecv")
_RECEIVING = ("recvonly", "sendrecv")

CONNECT_TIMEOUT_S = 10.0
"""How long a session may take to connect (ICE and DTLS) before it is closed."""
SILENT_S = 3.0
"""A connected publisher that sent nothing for this long is taken for gone (crashed, unplugged):
its stream may be taken over by a new publish with the key before ICE consent expires (~30 s)."""


class _Session:
    """A peer connection that must connect within ``connect_timeout`` seconds, or be closed.

    An offer whose candidates cannot be reached (none usable, no ``a=end-of-candidates``) would
    otherwise keep its peer connection, and the relay's place, for ever. ``on_close`` is told
    once, when the session starts closing (whoever closes it); it must return at once.
    """

    def __init__(
        self,
        relay: StreamRelay,
        pc: RTCPeerConnection,
        name: str,
        connect_timeout: float,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.relay = relay
        self.pc = pc
        self._on_close = on_close
        # For the log: publisher or viewer, and the peer's ICE username fragment (in its SDP).
        self.name = name
        self._dtls_failure = ""
        self.connected_at: float | None = None
        """``time.monotonic()`` when the connection (ICE and DTLS) was first established."""
        self._connected = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            connect_timeout, self._connect_deadline
        )
        pc.on("connectionstatechange", self._connection_state_changed)

    @property
    def closed(self) -> bool:
        return self._closing is not None

    @property
    def connected(self) -> bool:
        return not self.closed and self.pc.connectionState == "connected"

    async def wait_connected(self, within: float) -> bool:
        """Whether the session is connected, waiting up to ``within`` s while it connects."""
        if self.connected_at is None and not self.closed:
            try:
                async with asyncio.timeout(within):
                    await self._connected.wait()
            except TimeoutError:
                pass
        return self.connected

    async def close(self) -> None:
        """Close the peer connection and leave the relay. Safe to call twice, or concurrently."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    def _close_soon(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())

    def watch_dtls(self) -> None:
        """Have a failed DTLS handshake logged with OpenSSL's reason. Call before it starts."""
        aiortcseam.on_dtls_failure(self.pc, self._dtls_failed)

    def _dtls_failed(self, reason: str) -> None:
        self._dtls_failure = reason

    def _connection_state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self._cancel_deadline()
            self._connected.set()
        if state == "failed" and not self.closed:
            # Otherwise the session would vanish without a trace (a later DELETE gets 404). Logged
            # once the state change is fully handled: the DTLS reason is told to us after this.
            asyncio.get_running_loop().call_soon(self._log_failure)
        if state in ("failed", "closed"):
            self._close_soon()

    def _log_failure(self) -> None:
        dtls = sorted({t.sender.transport.state for t in self.pc.getTransceivers()})
        reason = f"DTLS {self._dtls_failure}" if self._dtls_failure else f"DTLS {', '.join(dtls)}"
        logger.warning(
            "%s: connection failed (ICE %s; %s), closing it",
            self.name,
            self.pc.iceConnectionState,
            reason,
        )

    def _connect_deadline(self) -> None:
        self._deadline = None
        if self.connected_at is None:
            logger.info("%s: did not connect in time, closing it", self.name)
            self._close_soon()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    async def _close(self) -> None:
        self._cancel_deadline()
        self._connected.set()  # wake anyone waiting: it will not connect now
        self._leave_relay()
        if self._on_close is not None:
            self._on_close()
        try:
            await self.pc.close()
        except Exception:
            # Never seen once offers are checked; the session is over either way.
            logger.exception("closing a peer connection failed")

    def _leave_relay(self) -> None:
        raise NotImplementedError


class PublisherSession(_Session):
    """A publisher's connection: its first audio and first video track feed the relay.

    The relay switches to this publisher when its first frame arrives (so a reconnecting encoder
    replaces its stale connection only once it really sends). If a newer publisher replaces it,
    this session closes.
    """

    def __init__(
        self,
        relay: StreamRelay,
        pc: RTCPeerConnection,
        codecs: dict[str, RTCRtpCodecParameters],
        name: str = "publisher",
        connect_timeout: float = CONNECT_TIMEOUT_S,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(relay, pc, name, connect_timeout, on_close)
        self.codecs = codecs
        self._ingest: Ingest | None = None
        self._video_receivers: list[RTCRtpReceiver] = []
        self._receivers_running = 0
        self._last_frame_at = 0.0

    @property
    def live(self) -> bool:
        """Whether this publisher's frames are what the relay forwards now."""
        return self._ingest is not None and self._ingest.attached

    async def holds_stream(self, connect_wait: float) -> bool:
        """Whether this publisher still holds its stream against a new publish with the key.

        It does while it is connected and sending (or connected less than :data:`SILENT_S`
        ago). One still connecting gets ``connect_wait`` seconds to connect; one that does not,
        or that fell silent, is taken for gone: an encoder that crashed or never reached us
        must not lock its own stream out.
        """
        if not await self.wait_connected(connect_wait) or self.connected_at is None:
            return False
        last_sign = max(self.connected_at, self._last_frame_at)
        return time.monotonic() - last_sign < SILENT_S

    def tap(self, receiver: RTCRtpReceiver, kind: str) -> None:
        if kind == "video":
            self._video_receivers.append(receiver)
        self._receivers_running += 1
        aiortcseam.tap_receiver(receiver, self._on_frame, self._on_receiver_end)

    async def request_keyframe(self) -> None:
        # PLI every SSRC seen lately: the media SSRC is among them (its RTX SSRC may be too, and
        # a sender ignores a PLI for an SSRC that is not its media SSRC).
        for receiver in self._video_receivers:
            for source in receiver.getSynchronizationSources():
                await aiortcseam.send_pli(receiver, source.source)

    def _on_frame(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        if self.closed:
            return
        self._last_frame_at = time.monotonic()
        if self._ingest is None:
            self._ingest = self.relay.attach_publisher(self.codecs, self.request_keyframe)
        elif not self._ingest.attached:
            self._close_soon()  # replaced by a newer publisher
            return
        self._ingest.push(codec, data, timestamp)

    def _on_receiver_end(self) -> None:
        self._receivers_running -= 1
        if self._receivers_running <= 0:
            self._close_soon()

    def _leave_relay(self) -> None:
        if self._ingest is not None:
            self._ingest.detach()


class ViewerSession(_Session):
    """A viewer's connection, sending the relay's tracks; closes when any of them ends."""

    def __init__(
        self,
        relay: StreamRelay,
        pc: RTCPeerConnection,
        name: str = "viewer",
        connect_timeout: float = CONNECT_TIMEOUT_S,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(relay, pc, name, connect_timeout, on_close)
        self.viewers: list[LeanViewer] = []

    def send(self, transceiver: RTCRtpTransceiver, kind: str, payload_type: int) -> None:
        """Send the relay's ``kind`` through ``transceiver``, in the viewer's ``payload_type``."""
        viewer = self.relay.add_lean_viewer(kind, payload_type)
        self.viewers.append(viewer)
        viewer.track.on("ended", self._close_soon)
        viewer.attach(transceiver.sender)

    def _leave_relay(self) -> None:
        for viewer in self.viewers:
            viewer.track.stop()


async def accept_publisher(
    relay: StreamRelay,
    offer_sdp: str,
    config: RTCConfiguration,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    *,
    on_close: Callable[[], None] | None = None,
) -> tuple[str, PublisherSession]:
    """Answer a publisher's offer with a receive-only peer whose frames feed ``relay``.

    The session closes itself unless it connects within ``connect_timeout`` seconds;
    ``on_close`` is told when it closes, however that happens.
    """
    offer = parse_offer(offer_sdp)
    pc = _peer_connection(config)
    session: PublisherSession | None = None
    async with _answering(lambda: session.close() if session is not None else pc.close()):
        # Pre-create the transceivers so that codec preferences apply to the negotiation: a
        # returning publisher is steered to the codecs the viewers already have.
        wanted: dict[str, RTCRtpTransceiver] = {}
        extra: list[RTCRtpTransceiver] = []
        for media in _media(offer):
            transceiver = pc.addTransceiver(media.kind, direction="recvonly")
            if media.kind in wanted or media.direction not in _SENDING:
                extra.append(transceiver)
                continue
            wanted[media.kind] = transceiver
            transceiver.setCodecPreferences(_preferences(media.kind, relay.codec(media.kind)))
        if not wanted:
            raise OfferRejected("the offer sends no audio or video")
        await _set_offer(pc, offer_sdp)
        for transceiver in extra:
            transceiver.direction = "inactive"  # don't decode tracks nobody will see
        answer = await pc.createAnswer()
        codecs = _first_codecs(answer.sdp, wanted)
        session = PublisherSession(
            relay, pc, codecs, _name("publisher", offer), connect_timeout, on_close
        )
        session.watch_dtls()
        for kind, transceiver in wanted.items():
            session.tap(transceiver.receiver, kind)
        await pc.setLocalDescription(answer)
    return pc.localDescription.sdp, session


async def accept_viewer(
    relay: StreamRelay,
    offer_sdp: str,
    config: RTCConfiguration,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    *,
    on_close: Callable[[], None] | None = None,
) -> tuple[str, ViewerSession]:
    """Answer a viewer's offer with a send-only peer carrying ``relay``'s tracks.

    Each kind is negotiated to the codec the publisher sends (so nothing is transcoded). Raises
    :class:`StreamNotLive` if the relay has never had a publisher, :class:`OfferRejected` if the
    viewer cannot receive the publisher's codec. ``on_close`` is told when the session closes.
    """
    offer = parse_offer(offer_sdp)
    if not any(relay.codec(kind) for kind in KINDS):
        raise StreamNotLive("nothing has been published on this stream yet")
    pc = _peer_connection(config)
    session = ViewerSession(relay, pc, _name("viewer", offer), connect_timeout, on_close)
    async with _answering(session.close):
        wanted: dict[str, RTCRtpTransceiver] = {}
        extra: list[RTCRtpTransceiver] = []
        for media in _media(offer):
            transceiver = pc.addTransceiver(media.kind, direction="sendonly")
            codec = relay.codec(media.kind)
            if media.kind in wanted or media.direction not in _RECEIVING or codec is None:
                extra.append(transceiver)
                continue
            wanted[media.kind] = transceiver
            same_codec = [c for c in _preferences(media.kind, codec) if _same_mime(c, codec)]
            transceiver.setCodecPreferences(same_codec + _rtx(media.kind))
        if not wanted:
            raise OfferRejected("the offer receives none of the stream's audio or video")
        await _set_offer(pc, offer_sdp)
        for transceiver in extra:
            transceiver.direction = "inactive"
        answer = await pc.createAnswer()
        codecs = _first_codecs(answer.sdp, wanted)
        for kind, transceiver in wanted.items():
            payload_type = codecs[kind].payloadType if kind in codecs else None
            if payload_type is not None:
                session.send(transceiver, kind, payload_type)
        session.watch_dtls()
        await pc.setLocalDescription(answer)
    return pc.localDescription.sdp, session


async def pull_stream(
    relay: StreamRelay,
    config: RTCConfiguration,
    answer: Callable[[str], Awaitable[str]],
    connect_timeout: float = CONNECT_TIMEOUT_S,
    *,
    name: str = "pull",
    on_close: Callable[[], None] | None = None,
) -> PublisherSession:
    """Receive a stream from the process holding it and feed ``relay`` with it.

    Offers to receive audio and video (steered to the codecs ``relay`` already has), gets the
    holder's answer from ``answer(offer_sdp)`` (a WHEP request), and returns the session: to
    the relay it is a publisher, attached on its first frame, asked upstream for keyframes when
    the relay's viewers want one. Whatever ``answer`` raises is raised, the peer closed.
    """
    pc = _peer_connection(config)
    session = PublisherSession(relay, pc, {}, name, connect_timeout, on_close)
    try:
        transceivers: dict[str, RTCRtpTransceiver] = {}
        for kind in KINDS:
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(_preferences(kind, relay.codec(kind)))
            transceivers[kind] = transceiver
        session.watch_dtls()
        await pc.setLocalDescription(await pc.createOffer())
        answer_sdp = await answer(pc.localDescription.sdp)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except (ValueError, AssertionError, InternalError, InvalidAccessError) as exc:
            raise OfferRejected(f"unusable SDP answer: {exc or type(exc).__name__}") from exc
        session.codecs = _first_codecs(answer_sdp, transceivers)
        if not session.codecs:
            raise OfferRejected("the answer sends no audio or video")
        for kind in session.codecs:
            session.tap(transceivers[kind].receiver, kind)
    except BaseException:
        await session.close()
        raise
    return session


@contextlib.asynccontextmanager
async def _answering(close: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Close the half-made peer connection if answering fails.

    aiortc raising on an offer that passed :func:`parse_offer`'s checks is still the offer's
    fault (a 400, not a 500): it becomes :class:`OfferRejected`, logged so the checks can learn.
    """
    try:
        yield
    except BaseException as exc:
        try:
            await close()
        except Exception:
            logger.exception("closing a half-negotiated peer connection failed")
        if isinstance(exc, Exception) and not isinstance(exc, OfferRejected | StreamNotLive):
            logger.warning("aiortc could not answer an offer that passed the checks", exc_info=True)
            raise OfferRejected(f"unusable SDP offer ({type(exc).__name__})") from exc
        raise


@functools.cache
def _check_aiortc_once() -> None:
    aiortcseam.check_aiortc()
    srtpseam.check()


def _checked(config: RTCConfiguration) -> RTCConfiguration:
    _check_aiortc_once()  # before any internal is touched: fail loudly, not subtly
    if config.iceServers is None:
        # aiortc would fall back to a public STUN server.
        raise ValueError("RTCConfiguration.iceServers must be an explicit list (may be empty)")
    return config


def _peer_connection(config: RTCConfiguration) -> RTCPeerConnection:
    pc = RTCPeerConnection(_checked(config))
    # aiortc alone offers ECDSA cipher suites only: peers with an RSA certificate could not
    # complete the handshake with us (GStreamer's webrtcbin, for one).
    aiortcseam.use_dtls_certificate(pc)
    return pc


def _name(role: str, offer: aiortc_sdp.SessionDescription) -> str:
    fragments = [m.ice.usernameFragment for m in offer.media if m.ice and m.ice.usernameFragment]
    return f"{role} session (ice-ufrag {fragments[0]})" if fragments else f"{role} session"


def _media(offer: aiortc_sdp.SessionDescription) -> list[aiortc_sdp.MediaDescription]:
    return [media for media in offer.media if media.kind in KINDS]


async def _set_offer(pc: RTCPeerConnection, offer_sdp: str) -> None:
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    except OperationError as exc:
        raise OfferRejected(f"no codec in common with the stream: {exc}") from exc
    except (ValueError, AssertionError, InternalError, InvalidAccessError) as exc:
        raise OfferRejected(f"unusable SDP offer: {exc or type(exc).__name__}") from exc


def _first_codecs(
    answer_sdp: str, transceivers: dict[str, RTCRtpTransceiver]
) -> dict[str, RTCRtpCodecParameters]:
    """The codec the publisher will send for each kind: the first one of our answer's m-line."""
    answer = aiortc_sdp.SessionDescription.parse(answer_sdp)
    codecs: dict[str, RTCRtpCodecParameters] = {}
    for kind, transceiver in transceivers.items():
        for media in answer.media:
            if media.rtp.muxId == transceiver.mid and media.rtp.codecs:
                codecs[kind] = media.rtp.codecs[0]
    return codecs


def _preferences(kind: str, codec: RTCRtpCodecParameters | None) -> list[RTCRtpCodecCapability]:
    """aiortc's codecs for ``kind``, ``codec``'s own first, then the same MIME type, then others."""
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    if codec is None:
        return list(capabilities)

    def rank(capability: RTCRtpCodecCapability) -> int:
        if not _same_mime(capability, codec):
            return 2
        return 0 if capability.parameters == codec.parameters else 1

    return sorted(capabilities, key=rank)


def _same_mime(
    capability: RTCRtpCodecCapability, codec: RTCRtpCodecParameters | RTCRtpCodecCapability
) -> bool:
    return capability.mimeType.lower() == codec.mimeType.lower()


def _rtx(kind: str) -> list[RTCRtpCodecCapability]:
    # Keep RTX so that viewers' NACKs are answered with retransmissions.
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in capabilities if c.mimeType.lower().endswith("/rtx")]
