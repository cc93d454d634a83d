"""What viewers hear, whatever the publisher's video codec; DTLS with RSA-certificate peers.

Real aiortc peers on 127.0.0.1: the publisher sends a 440 Hz tone as Opus next to its video, the
viewers decode the relayed audio and measure its pitch and level. An independent stack too, when
Debian's GStreamer packages are installed: a webrtcbin publisher run by ``tests/gstpeer.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from pathlib import Path

import pytest
from aiortc import RTCCertificate, RTCRtpCodecParameters
from cryptography.hazmat.primitives.asymmetric import rsa

from livecommerce.media.rtc import aiortcseam
from livecommerce.media.rtc.encodedframe import EncodedFrame
from livecommerce.media.rtc.relay import StreamRelay
from livecommerce.media.rtc.sessions import accept_publisher
from tests.mediapeers import (
    CONFIG,
    Peers,
    Viewer,
    decode_failures,
    encode,
    pitch,
    rms,
    strictly_increasing,
    tone_share,
    until,
)

pytestmark = pytest.mark.usefixtures("loopback_only")

TONE_HZ = 440.0
# Tone()'s amplitude is 8000; aiortc's encoder makes it stereo at -3 dB per channel.
TONE_RMS = 8000 / 2**0.5 / 2**0.5
START_CODE = b"\x00\x00\x00\x01"
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def rsa_certificate() -> RTCCertificate:
    return aiortcseam.dtls_certificate(rsa.generate_private_key(65537, 2048))


async def assert_hears_the_tone(viewer: Viewer, level: float = TONE_RMS) -> None:
    """The last second of what ``viewer`` decoded is the publisher's tone, at about its level."""
    await viewer.wait_audio(1.5)
    last_second = viewer.audio[-48000:]
    assert abs(pitch(last_second) - TONE_HZ) < TONE_HZ * 0.03, pitch(last_second)
    assert level * 0.7 < rms(last_second) < level * 1.3, rms(last_second)
    assert tone_share(last_second, TONE_HZ) > 0.6, tone_share(last_second, TONE_HZ)
    assert not any(frame.startswith(START_CODE) for frame in viewer.encoded_audio)


async def no_request() -> None:
    pass


# --- audio beside H.264 and VP8 ----------------------------------------------------------------


@pytest.mark.parametrize("video", ["video/H264", "video/VP8"])
async def test_viewers_hear_the_publishers_tone_beside_its_video(
    peers: Peers, caplog: pytest.LogCaptureFixture, video: str
) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc")
    relay = StreamRelay()
    await peers.publish(relay, codec=video)
    viewer = await peers.view(relay)
    await viewer.wait_frames(15)
    await assert_hears_the_tone(viewer)
    assert viewer.encoded[0].mime_type == video and strictly_increasing(viewer.numbers)
    assert not decode_failures(caplog)


async def test_a_vp8_publisher_after_an_h264_one_gives_viewers_decodable_keyframes(
    peers: Peers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc")
    relay = StreamRelay()
    h264 = await peers.publish(relay, codec="video/H264")
    watching = await peers.view(relay)
    await watching.wait_frames(10)
    await h264.pc.close()
    await until(lambda: not relay.live)

    await peers.publish(relay, codec="video/VP8", start=5000)
    await until(lambda: watching.session is not None and watching.session.closed)  # was H.264
    viewer = await peers.view(relay)
    await viewer.wait_frames(15)

    keyframes = [frame for frame in viewer.encoded if frame.keyframe]
    assert viewer.encoded[0].keyframe and keyframes, "starts on a VP8 keyframe, as it was sent"
    assert all(f.mime_type == "video/VP8" for f in viewer.encoded)
    assert not any(f.data.startswith(START_CODE) for f in viewer.encoded)
    assert viewer.numbers[0] >= 5000 and strictly_increasing(viewer.numbers)
    await assert_hears_the_tone(viewer)
    assert not decode_failures(caplog)


async def test_h264_parameter_sets_go_to_that_publishers_video_keyframes_only() -> None:
    relay = StreamRelay()
    h264_keyframe = EncodedFrame.parse("video/H264", 90000, encode("libx264", 1)[0], 0)
    bare_idr = b"\x00" + h264_keyframe.data[h264_keyframe.data.index(b"\x00\x00\x01\x65") :]
    opus = b"\xfc\xff\xfe"

    first = relay.attach_publisher({"video": H264, "audio": OPUS}, no_request)
    audio = relay.add_viewer("audio")
    first.push(H264, h264_keyframe.data, 0)
    first.push(OPUS, opus, 0)
    assert bytes(await audio.recv()) == opus  # audio frames are never touched

    # The next publisher of H.264 has its own encoder: the old SPS/PPS must not be put in front
    # of its keyframes (a viewer would decode them with the wrong picture size or profile).
    first.detach()
    second = relay.attach_publisher({"video": H264, "audio": OPUS}, no_request)
    video = relay.add_viewer("video")
    second.push(H264, bare_idr, 0)
    assert bytes(await video.recv()) == bare_idr

    # Nor in front of a VP8 publisher's keyframes.
    second.detach()
    vp8_keyframe = encode("libvpx", 1)[0]
    third = relay.attach_publisher({"video": VP8}, no_request)
    vp8_viewer = relay.add_viewer("video")
    third.push(VP8, vp8_keyframe, 0)
    assert bytes(await vp8_viewer.recv()) == vp8_keyframe

    # A publisher that switches codec on the way (H.264, VP8, H.264 again) starts over too.
    third.push(H264, h264_keyframe.data, 3000)
    third.push(VP8, vp8_keyframe, 6000)
    third.push(H264, encode("libx264", 2)[1], 9000)  # not a keyframe
    h264_viewer = relay.add_viewer("video")
    third.push(H264, bare_idr, 12000)
    assert bytes(await h264_viewer.recv()) == bare_idr
    relay.close()


# --- DTLS with RSA certificates ----------------------------------------------------------------


@pytest.mark.parametrize("rsa_peer", ["publisher", "viewer"])
async def test_peers_with_an_rsa_certificate_are_relayed(
    peers: Peers, caplog: pytest.LogCaptureFixture, rsa_peer: str
) -> None:
    # As GStreamer's webrtcbin: our answer says a=setup:active, so the relay is the DTLS client
    # and must offer a cipher suite that the peer's RSA certificate can serve.
    caplog.set_level(logging.WARNING, logger="aiortc")
    relay = StreamRelay()
    certificate = rsa_certificate()
    publisher_certificate = certificate if rsa_peer == "publisher" else None
    publisher = await peers.publish(relay, certificate=publisher_certificate)
    viewer_certificate = certificate if rsa_peer == "viewer" else None
    viewer = await peers.view(relay, certificate=viewer_certificate)
    await viewer.wait_frames(15)
    await assert_hears_the_tone(viewer)

    rsa_pc = publisher.pc if rsa_peer == "publisher" else viewer.pc
    assert "a=setup:active" in rsa_pc.remoteDescription.sdp
    fingerprint = certificate.getFingerprints()[-1].value  # the RSA one, not aiortc's own
    assert fingerprint in rsa_pc.localDescription.sdp
    assert strictly_increasing(viewer.numbers) and not decode_failures(caplog)


def corrupt_fingerprint(sdp: str) -> str:
    return re.sub(r"(a=fingerprint:sha-256 )(\w\w)", lambda m: m[1] + "00", sdp)


@pytest.mark.parametrize(
    ("ciphers", "corrupt", "reason"),
    [
        # A peer whose only suite the relay does not offer answers its hello with a fatal alert.
        (
            b"ECDHE-ECDSA-AES256-GCM-SHA384",
            False,
            "handshake failed: fatal alert handshake_failure received from the peer",
        ),
        # A peer whose SDP does not match its certificate (a man in the middle, or a bug).
        (
            aiortcseam.DTLS_CIPHERS,
            True,
            "certificate check failed: it does not match the a=fingerprint of the peer's SDP",
        ),
    ],
    ids=["no-shared-cipher", "fingerprint-mismatch"],
)
async def test_a_failed_dtls_handshake_is_logged_with_its_reason_and_the_session(
    peers: Peers, caplog: pytest.LogCaptureFixture, ciphers: bytes, corrupt: bool, reason: str
) -> None:
    caplog.set_level(logging.INFO, logger="livecommerce.media")
    relay = StreamRelay()
    publisher = await peers.publish(
        relay, ciphers=ciphers, offer=corrupt_fingerprint if corrupt else str, live=False
    )
    await until(lambda: publisher.session.closed)
    assert not relay.live
    ufrag = re.search(r"a=ice-ufrag:(\S+)", publisher.pc.localDescription.sdp)
    assert ufrag is not None
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    session = f"publisher session (ice-ufrag {ufrag[1]})"
    assert [m for m in logged if m.startswith(session)] == [
        f"{session}: connection failed (ICE completed; DTLS {reason}), closing it"
    ]


def test_check_aiortc_fails_loudly_when_the_dtls_internals_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def create_ssl_context(self: RTCCertificate, srtp_profiles: list[object]) -> None:
        return None

    monkeypatch.setattr(RTCCertificate, "_create_ssl_context", create_ssl_context)
    with pytest.raises(aiortcseam.AiortcIncompatible, match="sets the cipher list"):
        aiortcseam.check_aiortc()


# --- an independent stack: GStreamer's webrtcbin -----------------------------------------------

# Debian's Python has gi; the project's virtualenv does not, so the peer runs as a script.
GST_PYTHON = "/usr/bin/python3"
GST_PEER = Path(__file__).with_name("gstpeer.py")
GST_PACKAGES = (
    "python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0"
    " gir1.2-nice-0.1 gstreamer1.0-nice gstreamer1.0-plugins-base gstreamer1.0-plugins-good"
    " gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly"
)


async def gstreamer_missing() -> str:
    """Why the GStreamer peer cannot run here ("" if it can)."""
    try:
        probe = await asyncio.create_subprocess_exec(
            GST_PYTHON,
            str(GST_PEER),
            "--probe",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return f"no {GST_PYTHON}"
    out, _ = await probe.communicate()
    return "" if probe.returncode == 0 else out.decode().strip() or "no gi / GStreamer"


@pytest.mark.parametrize("video", ["h264", "vp8"])
async def test_a_gstreamer_webrtcbin_publisher_is_relayed_with_its_audio(
    peers: Peers, caplog: pytest.LogCaptureFixture, tmp_path: Path, video: str
) -> None:
    # The reported setup: webrtcbin 1.22 (RSA certificate, libnice, libsrtp), x264 as OBS uses it.
    missing = await gstreamer_missing()
    if missing:
        why = f"GStreamer webrtcbin unavailable ({missing}); apt-get install {GST_PACKAGES}"
        if os.environ.get("LC_REQUIRE_GSTREAMER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    caplog.set_level(logging.WARNING)
    relay = StreamRelay()
    with (tmp_path / "gstpeer.log").open("wb") as log:
        peer = await asyncio.create_subprocess_exec(
            GST_PYTHON,
            str(GST_PEER),
            video,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    assert peer.stdin is not None and peer.stdout is not None

    async def stop() -> None:
        assert peer.stdin is not None
        peer.stdin.close()
        try:
            await asyncio.wait_for(peer.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                peer.kill()
            await peer.wait()

    peers.closers.append(stop)
    offer = json.loads(await asyncio.wait_for(peer.stdout.readline(), 20))["offer"]
    answer, session = await accept_publisher(relay, offer, CONFIG)
    peers.closers.append(session.close)
    peer.stdin.write(json.dumps({"answer": answer}).encode() + b"\n")
    await peer.stdin.drain()
    await until(lambda: session.live, 20)

    viewer = await peers.view(relay)
    await viewer.wait_frames(30)
    assert viewer.encoded[0].keyframe and viewer.encoded[0].mime_type.lower() == f"video/{video}"
    await assert_hears_the_tone(viewer, level=0.25 * 32767 / 2**0.5)  # mono, both channels
    assert not decode_failures(caplog)
    assert not [r for r in caplog.records if r.name.startswith("livecommerce")], caplog.text
