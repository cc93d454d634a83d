"""A WHIP publisher made of GStreamer's webrtcbin (libnice, libsrtp, RSA DTLS certificate).

Run by the tests with Debian's Python (``/usr/bin/python3``, which has ``gi``), not the project's:

    /usr/bin/python3 tests/gstpeer.py --probe          exit 0 if every element is there
    /usr/bin/python3 tests/gstpeer.py h264|vp8         publish

It publishes a test picture (x264 as OBS sets it up: baseline, zerolatency, no B-frames; or VP8)
and a 440 Hz sine at a quarter of full scale as Opus. It writes one JSON line ``{"offer": sdp}``
once ICE gathering is complete (no trickle, as WHIP), reads one line ``{"answer": sdp}``, and
runs until its standard input closes. Progress goes to standard error. This file is a script, not
a module of the test suite: it never imports anything from the project.
"""

from __future__ import annotations

import json
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

ELEMENTS = ("webrtcbin", "nicesrc", "dtlssrtpenc", "x264enc", "vp8enc", "opusenc", "rtpopuspay")

VIDEO = {
    "h264": (
        "x264enc tune=zerolatency speed-preset=veryfast bframes=0 key-int-max=30 bitrate=600"
        " ! video/x-h264,profile=constrained-baseline ! h264parse"
        " ! rtph264pay config-interval=-1 aggregate-mode=zero-latency"
        " ! application/x-rtp,media=video,encoding-name=H264,payload=102"
    ),
    "vp8": (
        "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay"
        " ! application/x-rtp,media=video,encoding-name=VP8,payload=96"
    ),
}


def main() -> int:
    Gst.init(None)
    if sys.argv[1:] == ["--probe"]:
        missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
        print("missing: " + " ".join(missing) if missing else Gst.version_string())
        return 1 if missing else 0
    pipeline = Gst.parse_launch(
        "webrtcbin name=send bundle-policy=max-bundle"
        " videotestsrc is-live=true pattern=ball"
        " ! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert ! queue"
        f" ! {VIDEO[sys.argv[1]]} ! send."
        " audiotestsrc is-live=true wave=sine freq=440 volume=0.25"
        " ! audioconvert ! audioresample ! queue ! opusenc ! rtpopuspay"
        " ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! send."
    )
    webrtc = pipeline.get_by_name("send")
    # Keep a reference: PyGObject would drop one it does not own when the wrapper goes.
    ice = webrtc.get_property("ice-agent")
    agent = ice.get_property("agent")
    # Loopback only, in tests: libnice would gather on every other interface (and skip the
    # loopback one), and look for a UPnP gateway on the LAN.
    agent.set_property("upnp", False)
    agent.set_property("ice-tcp", False)
    loopback = Nice.Address.new()
    loopback.set_from_string("127.0.0.1")
    agent.add_local_address(loopback)
    loop = GLib.MainLoop()
    offered = threading.Event()

    def log(*what: object) -> None:
        print("gstpeer:", *what, file=sys.stderr, flush=True)

    def on_offer(promise: Gst.Promise) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply.has_field("offer") else None
        if offer is None:
            log("no offer:", reply.to_string() if reply else promise.wait())
            loop.quit()
            return
        webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_negotiation_needed(element: Gst.Element) -> None:
        index = 0
        while (transceiver := element.emit("get-transceiver", index)) is not None:
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            index += 1
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer))

    def on_gathering(element: Gst.Element, _spec: object) -> None:
        state = element.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not offered.is_set():
            offered.set()
            sdp = element.get_property("local-description").sdp.as_text()
            print(json.dumps({"offer": sdp}), flush=True)

    def on_state(element: Gst.Element, _spec: object) -> None:
        log("connection", element.get_property("connection-state").value_nick)

    def set_answer(sdp: str) -> bool:
        _result, message = GstSdp.SDPMessage.new_from_text(sdp)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        return False

    def read_stdin() -> None:
        for line in sys.stdin:
            answer = json.loads(line).get("answer")
            if answer:
                GLib.idle_add(set_answer, answer)
        GLib.idle_add(loop.quit)

    def on_message(_bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.ERROR:
            log("error", message.parse_error())
            loop.quit()

    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect("notify::ice-gathering-state", on_gathering)
    webrtc.connect("notify::connection-state", on_state)
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    threading.Thread(target=read_stdin, daemon=True).start()
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    finally:
        pipeline.set_state(Gst.State.NULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
