#!/usr/bin/python3
"""The benchmark's reference peer: a WHIP publisher built on GStreamer's webrtcbin (Debian's GStreamer 1.22).

Usage: gst-whip-publish.py FILE.mkv WHIP_URL

Publishes the H.264 + Opus of a Matroska file at real-time pace (no re-encoding) to a WHIP endpoint, the way our
replay benchmark does with the plugin's stream engine. It prints `ready` once the pipeline is built; a line `go` on
standard input starts it (offer, POST, answer, media); `stop` (or end of input) sends the WHIP DELETE and exits.
Progress goes to standard error.
"""
import sys
import threading
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = """
webrtcbin name=w bundle-policy=max-bundle
filesrc location="{path}" ! matroskademux name=d
d.video_0 ! queue ! h264parse name=vparse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! identity sync=true ! rtph264pay name=vpay config-interval=-1 aggregate-mode=zero-latency
  ! application/x-rtp,media=video,encoding-name=H264,payload=96 ! w.
d.audio_0 ! queue ! opusparse name=aparse ! identity sync=true ! rtpopuspay name=apay
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w.
"""


def log(*args):
    print("gst-whip:", *args, file=sys.stderr, flush=True)


class Publisher:
    def __init__(self, path, url):
        self.url = url
        self.location = None
        self.loop = GLib.MainLoop()
        self.pipe = Gst.parse_launch(PIPELINE.format(path=path))
        self.webrtc = self.pipe.get_by_name("w")
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::connection-state", self.on_connection)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)
        bus.connect("message::eos", lambda *_: log("end of file"))
        self.offered = False
        # Media waits until the connection is up, like the plugin (OBS begins capture once connected): each
        # payloader's first RTP packets are held (their caps pass, so webrtcbin can make the offer) and released
        # when DTLS is connected; the frames after them are re-timed to the moment of release.
        self.held = []
        for name in ("vpay", "apay"):
            pad = self.pipe.get_by_name(name).get_static_pad("src")
            probe = pad.add_probe(Gst.PadProbeType.BLOCK | Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST,
                                  lambda *_: Gst.PadProbeReturn.OK)
            self.held.append((pad, probe))

    def on_error(self, _bus, msg):
        err, detail = msg.parse_error()
        log("error:", err.message, detail or "")
        self.loop.quit()

    def on_connection(self, *_):
        state = self.webrtc.get_property("connection-state")
        log("connection", state.value_nick)
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            GLib.idle_add(self.release)

    def release(self):
        clock = self.pipe.get_clock()
        now = clock.get_time() - self.pipe.get_base_time() if clock else 0
        for name in ("vparse", "aparse"):
            self.pipe.get_by_name(name).get_static_pad("src").set_offset(now)
        for pad, probe in self.held:
            pad.remove_probe(probe)
        self.held = []
        log("media released")
        return False

    def start(self):
        self.pipe.set_state(Gst.State.PLAYING)
        # Publish only: every transceiver sends.
        i = 0
        while True:
            t = self.webrtc.emit("get-transceiver", i)
            if t is None:
                break
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            i += 1

    def on_negotiation_needed(self, _element):
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.webrtc.emit("create-offer", None, promise)

    def on_offer(self, promise, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, *_):
        state = self.webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.offered:
            self.offered = True
            sdp = self.webrtc.get_property("local-description").sdp.as_text()
            log("offer candidates:", [l for l in sdp.splitlines() if l.startswith("a=candidate")])
            threading.Thread(target=self.post, args=(sdp,), daemon=True).start()

    def post(self, sdp):
        req = urllib.request.Request(self.url, data=sdp.encode(), method="POST",
                                     headers={"Content-Type": "application/sdp"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = resp.read().decode()
                self.location = urllib.parse.urljoin(self.url, resp.headers.get("Location", ""))
        except Exception as e:  # the benchmark reads the error and the missing frames
            body = e.read().decode(errors="replace") if hasattr(e, "read") else ""
            log("WHIP POST failed:", e, body)
            GLib.idle_add(self.loop.quit)
            return
        log("answer received")
        GLib.idle_add(self.apply_answer, answer)

    def apply_answer(self, text):
        ok, msg = GstSdp.SDPMessage.new_from_text(text)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.webrtc.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def stop(self):
        if self.location:
            try:
                urllib.request.urlopen(urllib.request.Request(self.location, method="DELETE"), timeout=2).read()
            except Exception as e:
                log("WHIP DELETE failed:", e)
        self.pipe.set_state(Gst.State.NULL)
        self.loop.quit()


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    Gst.init(None)
    p = Publisher(sys.argv[1], sys.argv[2])

    def commands():
        for line in sys.stdin:
            if line.strip() == "go":
                GLib.idle_add(p.start)
            elif line.strip() == "stop":
                break
        GLib.idle_add(p.stop)

    threading.Thread(target=commands, daemon=True).start()
    print("ready", flush=True)
    p.loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
