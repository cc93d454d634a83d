"""The one module that reaches into aiortc's (and aioice's) private internals.

The relay forwards encoded media without decoding or re-encoding it. aiortc has no public API for
that on the receiving side, so this module uses these seams, all checked by :func:`check_aiortc`:

* **Receiving encoded frames.** ``RTCRtpReceiver._handle_rtp_packet`` depacketizes RTP, reassembles
  frames in its jitter buffer and puts ``(codec, JitterFrame)`` on the name-mangled
  ``__decoder_queue``, which ``decoder_worker`` (a thread started by ``receive()``) drains into a
  decoder. :func:`tap_receiver` swaps that queue, per receiver, for one whose ``put`` hands the
  frame to the relay on the event loop and, unless asked to decode too, never forwards it: the
  decoder thread then idles until the receiver stops, and still ends the remote track as before.
  An audio receiver's ``__jitter_buffer`` is also replaced by one that does not hold frames back
  for a decoder that will never run.
* **Sending encoded frames.** Public: when a track's ``recv()`` returns an ``av.Packet``,
  ``RTCRtpSender._next_encoded_frame`` calls ``encoder.pack(packet)`` (packetize only) instead of
  ``encode``. Nothing to patch; :func:`check_aiortc` only checks the branch is still there.
* **Asking the publisher for a keyframe.** ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)``.
* **Hearing a viewer ask for one.** ``RTCRtpSender._handle_rtcp_packet`` calls
  ``self._send_keyframe()`` on PLI and FIR; :func:`on_keyframe_request` shadows it per instance.

* **Sending without aiortc's sender loop** (the block "Lean sending" below): the relay packetizes
  each frame once and sends it to every viewer itself. :func:`send_path` reads what a connected
  sender's packets need (its SSRCs, RTX payload type, MID, header extension map, the DTLS
  transport's outbound SRTP session and the nominated ICE pair's socket and address);
  :func:`take_sender_reports` stops aiortc's per-sender report task so that the relay sends the
  reports itself (:func:`report_sent` keeps RTT from receiver reports); :func:`on_retransmit` and
  :func:`on_bitrate_estimate` hear a viewer's NACKs and REMB in place of aiortc's own handling.

And one for ICE: aioice gathers host candidates from the module function
``aioice.ice.get_host_addresses`` (which skips 127.0.0.1) and has no per-connection option, so
:func:`pin_host_addresses` replaces that function, process-wide.

And two for DTLS (see the block "DTLS: RSA peers and failed handshakes" below): aiortc offers only
ECDHE-ECDSA cipher suites, so :func:`use_dtls_certificate` widens a connection's cipher list to
the ECDHE-RSA suites too (and can give it another certificate); and aiortc logs a failed handshake
at DEBUG only, so :func:`on_dtls_failure` tells its reason.

And two for the benchmarks only (the block "Benches" below): :func:`filter_datagrams` shows a
connection's UDP datagrams to a counter before aioice gets them, and :func:`set_vp8_start_bitrate`
sets the bit rate aiortc's VP8 encoders start at (a module constant it reads per encoder).

Verified against aiortc 1.16.0 and aioice 0.13.0 only: :data:`AIORTC_VERSIONS` is that range.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import ipaddress
import logging
import os
import queue
import socket
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc
import aiortc.codecs.base
import aiortc.codecs.vpx
import aiortc.jitterbuffer
import aiortc.rtcrtpreceiver
import aiortc.rtp
import pylibsrtp
from aiortc import (
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtcpByePacket
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL

logger = logging.getLogger(__name__)

AIORTC_VERSIONS = (">=1.16.0", "<1.17")
"""The aiortc releases whose internals this module was checked against (1.16.x)."""

_VERIFIED_MINOR = "1.16."
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RECEIVER_STARTED = "_RTCRtpReceiver__started"

FrameSink = Callable[[RTCRtpCodecParameters, bytes, int], None]
"""Called on the event loop with (codec, depacketized frame, timestamp in the codec's clock).

The timestamp is aiortc's: it starts at 0 for each receiver and never wraps.
"""


class AiortcIncompatible(RuntimeError):
    """The installed aiortc/aioice no longer has an internal this module relies on."""


class _DecoderQueueTap(queue.Queue[Any]):
    """Stands in for a receiver's decoder queue: frames go to the relay, not to a decoder.

    ``put`` is called by ``_handle_rtp_packet`` on the event loop, so the sink runs there too; the
    ``None`` sentinel (receiver stopping, RTCP BYE, DTLS closed) still reaches the decoder thread
    so that it exits and ends the remote track, as it would without the tap.
    """

    def __init__(self, on_frame: FrameSink, on_end: Callable[[], None], decode: bool) -> None:
        super().__init__()
        self._on_frame = on_frame
        self._on_end: Callable[[], None] | None = on_end
        self._decode = decode

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            on_end, self._on_end = self._on_end, None
            if on_end is not None:
                _call_safely(on_end)
        else:
            codec, frame = item
            _call_safely(self._on_frame, codec, frame.data, frame.timestamp)
            if not self._decode:
                return
        super().put(item, block, timeout)


def _call_safely(callback: Callable[..., None], *args: Any) -> None:
    # An exception escaping into _handle_rtp_packet would tear down the DTLS receive loop, i.e.
    # the publisher's whole connection; one bad frame is not worth that.
    try:
        callback(*args)
    except Exception:
        logger.exception("encoded frame callback failed")


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_frame: FrameSink,
    on_end: Callable[[], None],
    *,
    decode: bool = False,
) -> None:
    """Route ``receiver``'s encoded frames to ``on_frame`` instead of its decoder.

    Call it before the receiver starts, i.e. after ``setRemoteDescription`` (or ``addTransceiver``)
    and before the connection is established. ``on_end`` is called once when the receiver stops
    (closed, RTCP BYE or transport lost). With ``decode=True`` the frames are also decoded as usual
    (the remote track still yields frames); tests use that to watch what a viewer receives.

    Without decoding, an audio receiver's jitter buffer no longer holds 4 frames back to smooth
    the decoder's input (80 ms of latency; each viewer's own jitter buffer does that job). That
    needs the receiver's track, which exists once the remote description is set.
    """
    if getattr(receiver, _RECEIVER_STARTED):
        raise RuntimeError("tap_receiver() must be called before the receiver starts")
    setattr(receiver, _DECODER_QUEUE, _DecoderQueueTap(on_frame, on_end, decode))
    jitter_buffer = getattr(receiver, _JITTER_BUFFER)
    if not decode and receiver.track is not None and receiver.track.kind == "audio":
        setattr(receiver, _JITTER_BUFFER, JitterBuffer(capacity=jitter_buffer.capacity))


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send an RTCP Picture Loss Indication for ``media_ssrc`` to the remote sender."""
    await receiver._send_rtcp_pli(media_ssrc)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` (instead of forcing an encoder keyframe) when the remote asks for one.

    aiortc's sender reacts to both PLI and FIR by calling ``self._send_keyframe()``; an instance
    attribute of that name takes precedence over the method.
    """
    setattr(sender, "_send_keyframe", callback)  # noqa: B010 - instance attribute, on purpose


_original_get_host_addresses = aioice.ice.get_host_addresses


def pin_host_addresses(addresses: Sequence[str]) -> None:
    """Offer host candidates on exactly ``addresses`` (e.g. ``["127.0.0.1"]``), process-wide.

    An empty sequence restores aioice's default: every non-loopback interface address.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    pinned = [(address, ipaddress.ip_address(address).version) for address in addresses]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a, version in pinned if (use_ipv4 if version == 4 else use_ipv6)]

    aioice.ice.get_host_addresses = get_host_addresses


# --- DTLS: RSA peers and failed handshakes ----------------------------------------------------
#
# aiortc builds each connection's SSL context in ``RTCCertificate._create_ssl_context`` with a
# cipher list of ECDHE-ECDSA suites only. As the DTLS client (aiortc answers ``a=setup:active``)
# it then offers nothing a server with an RSA certificate can accept (GStreamer's webrtcbin, some
# SFUs and gateways): "no shared cipher". The peer connection keeps its certificates in the
# name-mangled ``__certificates`` list, read when a transceiver creates its DTLS transport.

AIORTC_DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)
"""aiortc 1.16's own list: ECDSA peers only."""

DTLS_CIPHERS = AIORTC_DTLS_CIPHERS + (
    b":ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)
"""aiortc's suites, then the same with RSA authentication (browsers and GStreamer offer both)."""

_CERTIFICATES = "_RTCPeerConnection__certificates"
_CREATE_TRANSPORT = "_RTCPeerConnection__createDtlsTransport"
_DTLS_TRANSPORTS = "_RTCPeerConnection__dtlsTransports"

DtlsPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def dtls_certificate(key: DtlsPrivateKey | None = None) -> RTCCertificate:
    """A self-signed certificate for ``key`` (default: a new ECDSA P-256 key, like aiortc's).

    aiortc's ``RTCCertificate`` is typed for EC keys but only hands the key to OpenSSL, which
    takes an RSA key as well.
    """
    if key is None:
        return RTCCertificate.generateCertificate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, os.urandom(16).hex())])
    now = datetime.datetime.now(tz=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return RTCCertificate(key, certificate)  # type: ignore[arg-type]  # RSA works, see above


def use_dtls_certificate(
    pc: RTCPeerConnection,
    certificate: RTCCertificate | None = None,
    *,
    ciphers: bytes = DTLS_CIPHERS,
) -> None:
    """Make ``pc``'s DTLS offer/accept ``ciphers``, with ``certificate`` if given.

    Call it right after creating ``pc``, before any transceiver or description (they create the
    DTLS transports, which take the certificate then).
    """
    if getattr(pc, _DTLS_TRANSPORTS):
        raise RuntimeError("use_dtls_certificate() must be called before pc has a transport")
    if certificate is None:
        certificate = getattr(pc, _CERTIFICATES)[0]
    original = certificate._create_ssl_context

    def create_ssl_context(srtp_profiles: list[Any]) -> SSL.Context:
        context = original(srtp_profiles=srtp_profiles)
        context.set_cipher_list(ciphers)
        context.set_info_callback(_record_alert)
        return context

    # An instance attribute shadows the method, for this certificate (so this connection) only.
    setattr(certificate, "_create_ssl_context", create_ssl_context)  # noqa: B010
    setattr(pc, _CERTIFICATES, [certificate])


# TLS alert descriptions (RFC 8446 6, RFC 5246 7.2), for the log.
_ALERTS = {
    10: "unexpected_message",
    20: "bad_record_mac",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    110: "unsupported_extension",
}
_last_alert: weakref.WeakKeyDictionary[SSL.Connection, str] = weakref.WeakKeyDictionary()


def _record_alert(connection: SSL.Connection, where: int, value: int) -> None:
    # OpenSSL's info callback: for an alert, ``value`` is level << 8 | description. A fatal alert
    # the peer sends often leaves OpenSSL's error queue empty (pyOpenSSL raises ``Error([])``).
    if where & SSL.SSL_CB_ALERT:
        description = _ALERTS.get(value & 0xFF, f"alert {value & 0xFF}")
        level = "fatal" if value >> 8 == 2 else "warning"
        direction = "received from" if where & SSL.SSL_CB_READ else "sent to"
        _last_alert[connection] = f"{level} alert {description} {direction} the peer"


def on_dtls_failure(pc: RTCPeerConnection, callback: Callable[[str], None]) -> None:
    """Call ``callback(reason)`` when one of ``pc``'s DTLS transports fails its handshake.

    Call it once the transports exist (after the transceivers are added, before the local
    description starts the handshake). ``reason`` says which step failed and why: OpenSSL's errors
    ("no shared cipher", ...) and the last TLS alert sent or received (recorded only if ``pc`` went
    through :func:`use_dtls_certificate`), or what aiortc checked after the handshake (the
    certificate's fingerprint, the SRTP profile).
    """
    transports = {t.sender.transport for t in pc.getTransceivers()}
    for transport in transports:
        _watch_dtls(transport, callback)


def _watch_dtls(transport: RTCDtlsTransport, callback: Callable[[str], None]) -> None:
    told = False

    def state_changed() -> None:
        nonlocal told
        if transport.state != "failed" or told:
            return
        told = True
        # aiortc sets the state while handling the exception (RTCDtlsTransport._do_handshake),
        # and pyee calls this listener synchronously: the exception is still the current one.
        try:
            reason = _dtls_failure_reason(transport, sys.exc_info()[1])
        except Exception:  # an escaping exception would become a pyee "error" event
            logger.exception("describing a DTLS failure failed")
            reason = "unknown reason"
        _call_safely(callback, reason)

    transport.on("statechange", state_changed)


def _dtls_failure_reason(transport: RTCDtlsTransport, exc: BaseException | None) -> str:
    connection = getattr(transport, "_ssl", None)
    alert = _last_alert.get(connection) if connection is not None else None
    if isinstance(exc, SSL.Error):
        details = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        reasons = [str(d[-1]) for d in details if isinstance(d, tuple) and d]
        reasons += [alert] if alert else []
        return "handshake failed: " + ("; ".join(reasons) or "no reason given by OpenSSL")
    if isinstance(exc, ConnectionError):
        return f"handshake failed: connection lost ({exc or type(exc).__name__})"
    if not transport.encrypted:
        return "handshake failed" + (f": {alert}" if alert else "")
    profiles = {p.openssl_profile for p in getattr(transport, "_srtp_profiles", ())}
    if connection is not None and connection.get_selected_srtp_profile() not in profiles:
        return "SRTP setup failed: no protection profile in common"
    return "certificate check failed: it does not match the a=fingerprint of the peer's SDP"


def _dtls_checks() -> list[tuple[bool, str]]:
    dtls, certificate, pc = RTCDtlsTransport, RTCCertificate, RTCPeerConnection
    return [
        (
            _signature(certificate, "_create_ssl_context", "self", "srtp_profiles")
            and _uses(certificate, "_create_ssl_context", "set_cipher_list"),
            "RTCCertificate._create_ssl_context(srtp_profiles) sets the cipher list",
        ),
        (
            _uses(pc, "__init__", _CERTIFICATES, _DTLS_TRANSPORTS)
            and _uses(pc, _CREATE_TRANSPORT, _CERTIFICATES, "RTCDtlsTransport"),
            "RTCPeerConnection.__certificates is read when a DTLS transport is created",
        ),
        (
            _uses(dtls, "start", "_create_ssl_context", "_ssl")
            and _uses(dtls, "_do_handshake", "Error", "_set_state", "FAILED")
            and _uses(dtls, "_set_state", "emit")
            and _uses(dtls, "_setup_srtp", "_srtp_profiles", "get_selected_srtp_profile"),
            "RTCDtlsTransport fails the handshake through _set_state, which emits statechange",
        ),
    ]


# --- Benches: counting datagrams, the baseline's encoder bit rate -----------------------------
#
# Used by bench/relay.py, not by the server. aioice keeps a connection's UDP sockets as the
# ``StunProtocol`` objects in ``Connection._protocols`` (``RTCIceTransport._connection``), each fed
# by the event loop through ``datagram_received(data, addr)``. aiortc's ``Vp8Encoder`` starts at
# the module constant ``aiortc.codecs.vpx.DEFAULT_BITRATE``, read when each encoder is created.


def filter_datagrams(transport: RTCDtlsTransport, keep: Callable[[bytes], bool]) -> None:
    """Show ``keep`` every UDP datagram ``transport``'s ICE sockets receive, before aioice does.

    A datagram for which ``keep`` returns False goes no further (no STUN, DTLS, SRTP or RTP
    handling). Call it once the candidates are gathered (after ``setLocalDescription``): sockets
    opened later are not filtered.
    """
    for protocol in transport.transport._connection._protocols:
        # An instance attribute shadows the method, for this socket only.
        filtered = _filtered(protocol.datagram_received, keep)
        setattr(protocol, "datagram_received", filtered)  # noqa: B010


_DatagramReceived = Callable[[bytes | str, tuple[Any, ...]], None]


def _filtered(received: _DatagramReceived, keep: Callable[[bytes], bool]) -> _DatagramReceived:
    def datagram_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
        if not isinstance(data, bytes) or keep(data):
            received(data, addr)

    return datagram_received


def set_vp8_start_bitrate(bitrate: int) -> None:
    """Start every VP8 encoder created from now on at ``bitrate`` bit/s, process-wide."""
    aiortc.codecs.vpx.DEFAULT_BITRATE = bitrate


# --- Lean sending --------------------------------------------------------------------------------
#
# RTCRtpSender.send() records the negotiated MID (``__mid``), RTX payload type
# (``__rtx_payload_type``) and header extension IDs (``__rtp_header_extensions_map``), then runs
# ``_run_rtp`` (reads the track; ours never yields a frame, so it idles) and ``_run_rtcp``, whose
# sender reports read ``__ntp_timestamp``, ``__rtp_timestamp``, ``__packet_count`` and
# ``__octet_count``. Its ``_handle_rtcp_packet`` calls ``self._retransmit(seq)`` per NACKed
# packet and sets ``self.__encoder.target_bitrate`` on REMB. The DTLS transport protects
# outgoing RTP with ``_tx_srtp`` (a pylibsrtp Session, ``allow_repeat_tx``) and hands it to
# aioice, which sends on ``Connection._nominated[1]``: a CandidatePair's ``protocol.transport``
# (an asyncio datagram transport) to its ``remote_addr``.

_MID = "_RTCRtpSender__mid"
_RTX_PAYLOAD_TYPE = "_RTCRtpSender__rtx_payload_type"
_EXTENSIONS_MAP = "_RTCRtpSender__rtp_header_extensions_map"
_ENCODER = "_RTCRtpSender__encoder"
_SENDER_STARTED = "_RTCRtpSender__started"
_CNAME = "_RTCRtpSender__cname"
_RTCP_STARTED = "_RTCRtpSender__rtcp_started"
_RTCP_EXITED = "_RTCRtpSender__rtcp_exited"
_LSR = "_RTCRtpSender__lsr"
_LSR_TIME = "_RTCRtpSender__lsr_time"


@dataclass(frozen=True, slots=True)
class SendPath:
    """What a connected sender's RTP needs, to be sent without aiortc's sender loop.

    ``sock`` is a duplicate of the ICE socket's descriptor: the caller closes it when done (the
    ICE connection keeps its own).
    """

    ssrc: int
    rtx_ssrc: int
    rtx_payload_type: int | None
    mid: str | None
    extensions: aiortc.rtp.HeaderExtensionsMap
    protect: Callable[[bytes], bytes]
    protect_rtcp: Callable[[bytes], bytes]
    srtp: pylibsrtp.Session
    cname: str | None
    sock: socket.socket
    address: tuple[Any, ...]


def send_path(sender: RTCRtpSender) -> SendPath | None:
    """``sender``'s :class:`SendPath`, or ``None`` while it is not started and connected."""
    if not getattr(sender, _SENDER_STARTED):
        return None
    dtls = sender.transport
    srtp = getattr(dtls, "_tx_srtp", None)
    pair = dtls.transport._connection._nominated.get(1)
    if srtp is None or pair is None or pair.protocol.transport is None:
        return None
    original = pair.protocol.transport.get_extra_info("socket")
    if original is None:
        return None
    sock = socket.socket(original.family, original.type, original.proto, os.dup(original.fileno()))
    sock.setblocking(False)
    return SendPath(
        ssrc=sender._ssrc,
        rtx_ssrc=sender._rtx_ssrc,
        rtx_payload_type=getattr(sender, _RTX_PAYLOAD_TYPE),
        mid=getattr(sender, _MID),
        extensions=getattr(sender, _EXTENSIONS_MAP),
        protect=srtp.protect,
        protect_rtcp=srtp.protect_rtcp,
        srtp=srtp,
        cname=getattr(sender, _CNAME),
        sock=sock,
        address=tuple(pair.remote_addr),
    )


def take_sender_reports(sender: RTCRtpSender) -> None:
    """The caller sends ``sender``'s RTCP sender reports itself (see :func:`report_sent`).

    aiortc runs a task per sender that wakes about once a second to send an SR and SDES through
    asyncio; for hundreds of viewers one loop over them all, on each viewer's own socket, costs a
    fraction of that. Call before the sender starts. The stand-in keeps what ``stop()`` waits
    for, and still says goodbye (RTCP BYE) when the sender stops.
    """

    async def run_rtcp() -> None:
        getattr(sender, _RTCP_STARTED).set()
        # Until stop() cancels it; then, as aiortc's own loop does, the BYE still goes out.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.get_running_loop().create_future()
        await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
        getattr(sender, _RTCP_EXITED).set()

    setattr(sender, "_run_rtcp", run_rtcp)  # noqa: B010 - instance attribute, on purpose


def report_sent(sender: RTCRtpSender, ntp: int) -> None:
    """A sender report with NTP time ``ntp`` went out for ``sender``: its receiver reports'
    LSR/DLSR then give the round-trip time, as for aiortc's own reports."""
    setattr(sender, _LSR, (ntp >> 16) & 0xFFFFFFFF)
    setattr(sender, _LSR_TIME, time.time())


def on_retransmit(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """Call ``callback(sequence_number)`` for each packet a viewer's NACK asks again for.

    aiortc's own retransmission reads a history only its sender loop fills; an instance
    attribute ``_retransmit`` shadows the method.
    """

    async def retransmit(sequence_number: int) -> None:
        callback(sequence_number)

    setattr(sender, "_retransmit", retransmit)  # noqa: B010 - instance attribute, on purpose


class _BitrateTap:
    """Stands in for the sender's encoder, which only REMB handling reaches (the track never
    gives the sender a frame to encode or pack)."""

    def __init__(self, callback: Callable[[int], None]) -> None:
        self._callback = callback
        self._bitrate = 0

    @property
    def target_bitrate(self) -> int:
        return self._bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._bitrate = bitrate
        _call_safely(self._callback, bitrate)


def on_bitrate_estimate(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """Call ``callback(bit/s)`` for each receiver estimated maximum bitrate (REMB) a viewer sends.

    Only for a sender whose track never yields a frame (aiortc would pack it with this "encoder").
    """
    setattr(sender, _ENCODER, _BitrateTap(callback))


def _lean_checks() -> list[tuple[bool, str]]:
    sender, dtls = RTCRtpSender, RTCDtlsTransport
    return [
        (
            _uses(sender, "__init__", _MID, _RTX_PAYLOAD_TYPE, _EXTENSIONS_MAP, _ENCODER)
            and _uses(sender, "__init__", _SENDER_STARTED, "_ssrc", "_rtx_ssrc")
            and _uses(sender, "send", _MID, _RTX_PAYLOAD_TYPE, _EXTENSIONS_MAP, _SENDER_STARTED),
            "RTCRtpSender.send records __mid, __rtx_payload_type, __rtp_header_extensions_map",
        ),
        (
            _uses(sender, "send", "_run_rtcp", _CNAME)
            and _uses(sender, "_run_rtcp", _RTCP_STARTED, _RTCP_EXITED, _LSR, _LSR_TIME)
            and _uses(sender, "stop", _RTCP_STARTED, _RTCP_EXITED)
            and _uses(sender, "_handle_rtcp_packet", _LSR, _LSR_TIME)
            and _signature(sender, "_send_rtcp", "self", "packets"),
            "RTCRtpSender.send starts self._run_rtcp() (__rtcp_started/__rtcp_exited, __lsr, "
            "__cname) and _send_rtcp(packets) sends RTCP",
        ),
        (
            _uses(dtls, "_setup_srtp", "_tx_srtp") and hasattr(pylibsrtp.Session, "protect_rtcp"),
            "RTCDtlsTransport._tx_srtp.protect_rtcp protects outgoing RTCP",
        ),
        (
            _uses(sender, "_handle_rtcp_packet", "_retransmit", _ENCODER, "target_bitrate")
            and _signature(sender, "_retransmit", "self", "sequence_number"),
            "RTCRtpSender._handle_rtcp_packet calls _retransmit(seq) and sets "
            "__encoder.target_bitrate",
        ),
        (
            _uses(sender, "_next_encoded_frame", "recv", _ENCODER),
            "RTCRtpSender._next_encoded_frame reads the track before touching __encoder",
        ),
        (
            _uses(dtls, "_setup_srtp", "_tx_srtp", "allow_repeat_tx")
            and _uses(dtls, "_send_rtp", "_tx_srtp", "protect"),
            "RTCDtlsTransport._tx_srtp protects outgoing RTP (repeats allowed)",
        ),
        (
            _uses(RTCIceTransport, "__init__", "_connection")
            and _uses(aioice.ice.Connection, "sendto", "_nominated", "remote_addr", "protocol")
            and _uses(aioice.ice.StunProtocol, "send_data", "transport", "sendto"),
            "aioice sends on Connection._nominated[component].protocol.transport to remote_addr",
        ),
    ]


def _bench_checks() -> list[tuple[bool, str]]:
    connection, vpx = aioice.ice.Connection, aiortc.codecs.vpx
    return [
        (
            _uses(RTCIceTransport, "__init__", "_connection")
            and _uses(connection, "__init__", "_protocols")
            and _uses(connection, "get_component_candidates", "_protocols")
            and _signature(aioice.ice.StunProtocol, "datagram_received", "self", "data", "addr"),
            "RTCIceTransport._connection._protocols: StunProtocol.datagram_received(data, addr)",
        ),
        (
            isinstance(getattr(vpx, "DEFAULT_BITRATE", None), int)
            and _uses(vpx.Vp8Encoder, "__init__", "DEFAULT_BITRATE"),
            "Vp8Encoder.__init__ starts at aiortc.codecs.vpx.DEFAULT_BITRATE",
        ),
    ]


def check_aiortc() -> None:
    """Raise :class:`AiortcIncompatible` unless every internal used here is still as expected.

    It checks the version, names and signatures, and, in the compiled code of the aiortc functions
    involved, that they still use the attributes this module swaps or calls. The end-to-end tests
    in ``tests/test_media.py`` check the behaviour.
    """
    receiver, sender = RTCRtpReceiver, RTCRtpSender
    worker = aiortc.rtcrtpreceiver
    version = str(getattr(aiortc, "__version__", "?"))
    checks = [
        (version.startswith(_VERIFIED_MINOR), f"aiortc {version} is not in {AIORTC_VERSIONS}"),
        (
            _uses(receiver, "__init__", _DECODER_QUEUE, _RECEIVER_STARTED),
            "RTCRtpReceiver.__init__ sets __decoder_queue and __started",
        ),
        (
            _uses(receiver, "receive", _DECODER_QUEUE, _RECEIVER_STARTED, "decoder_worker"),
            "RTCRtpReceiver.receive starts decoder_worker on __decoder_queue",
        ),
        (
            _uses(receiver, "_handle_rtp_packet", _DECODER_QUEUE, "put", "depayload"),
            "RTCRtpReceiver._handle_rtp_packet puts depayloaded frames on __decoder_queue",
        ),
        (
            _signature(worker, "decoder_worker", "loop", "input_q", "output_q", "decode_error")
            and _uses(worker, "decoder_worker", "get", "decode"),
            "decoder_worker(loop, input_q, output_q, decode_error) decodes what it gets",
        ),
        (
            _signature(aiortc.jitterbuffer, "JitterFrame", "data", "timestamp"),
            "JitterFrame(data, timestamp)",
        ),
        (
            _uses(receiver, "__init__", _JITTER_BUFFER, "JitterBuffer")
            and _uses(receiver, "_handle_rtp_packet", _JITTER_BUFFER, "add")
            and _signature(aiortc.jitterbuffer, "JitterBuffer", "capacity", "prefetch", "is_video")
            and isinstance(getattr(JitterBuffer, "capacity", None), property),
            "RTCRtpReceiver.__jitter_buffer is a JitterBuffer(capacity, prefetch, is_video)",
        ),
        (
            _signature(receiver, "_send_rtcp_pli", "self", "media_ssrc")
            and inspect.iscoroutinefunction(receiver._send_rtcp_pli),
            "async RTCRtpReceiver._send_rtcp_pli(media_ssrc)",
        ),
        (_signature(sender, "_send_keyframe", "self"), "RTCRtpSender._send_keyframe()"),
        (
            _uses(sender, "_handle_rtcp_packet", "_send_keyframe"),
            "RTCRtpSender._handle_rtcp_packet calls _send_keyframe on PLI/FIR",
        ),
        (
            _uses(sender, "_next_encoded_frame", "Frame", "encode", "pack"),
            "RTCRtpSender._next_encoded_frame packs what is not a Frame (av.Packet)",
        ),
        (
            _signature(aiortc.codecs.base.Encoder, "pack", "self", "packet"),
            "Encoder.pack(packet)",
        ),
        (
            _signature(aioice.ice, "get_host_addresses", "use_ipv4", "use_ipv6")
            and _uses(aioice.ice.Connection, "gather_candidates", "get_host_addresses"),
            "aioice Connection.gather_candidates calls get_host_addresses(use_ipv4, use_ipv6)",
        ),
    ]
    checks += _dtls_checks()
    checks += _lean_checks()
    checks += _bench_checks()
    problems = [what for ok, what in checks if not ok]
    if problems:
        raise AiortcIncompatible(
            "livecommerce.media relies on aiortc internals that changed: " + "; ".join(problems)
        )


def _uses(owner: object, name: str, *names: str) -> bool:
    """Whether ``owner.name`` exists and its code uses ``names`` (globals, attributes, methods).

    Private attributes appear in the code mangled (``_RTCRtpReceiver__decoder_queue``).
    """
    code = getattr(getattr(owner, name, None), "__code__", None)
    return code is not None and set(names) <= set(code.co_names)


def _signature(owner: object, name: str, *parameters: str) -> bool:
    function = getattr(owner, name, None)
    if function is None:
        return False
    try:
        return list(inspect.signature(function).parameters) == list(parameters)
    except (TypeError, ValueError):
        return False
