#!/usr/bin/python3
"""A WHIP receiver built on GStreamer's webrtcbin (Debian's GStreamer 1.22), with retransmission requests (NACK)
on: the tests' second, independent receiver.

Usage: gst-whip-receive.py --http ADDR:PORT [--timeout SECS] [--twcc]

Prints `whip-url http://ADDR:PORT/whip` once listening; answers one WHIP offer (POST) with webrtcbin, NACKs and
takes RTX as webrtcbin does (`do-nack` on every transceiver), depayloads H.264 waiting for a keyframe after any
loss (so every frame decoded is whole) and decodes it with avdec_h264. With --twcc each transceiver's codec
preferences are the offer's own caps with its header extensions (as a GStreamer server configures it to take
transport-wide congestion control): webrtcbin then answers with the transport-cc extension and its RTP session
sends transport-wide feedback; without, webrtcbin leaves the extension out. On the publisher's DELETE (or the timeout)
it prints one JSON line: frames decoded, freezes (pauses between decoded frames longer than max(3 frames, 1 frame +
150 ms)), and rtpjitterbuffer's own counters (lost, retransmission requests and successes).
Progress goes to standard error.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402


def log(*args):
    print("gst-whip-receive:", *args, file=sys.stderr, flush=True)


class Receiver:
    def __init__(self):
        self.twcc = False
        self.offer = None
        self.pipeline = None
        self.webrtc = None
        self.jitterbuffers = []
        self.frames = 0
        self.frame_times = []
        self.audio_buffers = 0
        self.done = threading.Event()
        self.answered = threading.Event()
        self.answer = None
        self.lock = threading.Lock()

    # ---- signalling -------------------------------------------------------------------------------------------

    def take_offer(self, sdp_text):
        self.pipeline = Gst.Pipeline.new("receiver")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "w")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipeline.add(self.webrtc)
        self.webrtc.connect("on-new-transceiver", self.on_new_transceiver)
        self.webrtc.connect("pad-added", self.on_pad_added)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        rtpbin = self.webrtc.get_by_name("rtpbin")
        if rtpbin is not None:
            rtpbin.connect("new-jitterbuffer", self.on_jitterbuffer)
        self.pipeline.set_state(Gst.State.PLAYING)
        _, sdp = GstSdp.SDPMessage.new_from_text(sdp_text)
        self.offer = sdp
        offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, sdp)
        promise = Gst.Promise.new_with_change_func(self.on_offer_set, None)
        self.webrtc.emit("set-remote-description", offer, promise)
        if not self.answered.wait(10):
            return None
        return self.answer

    def on_new_transceiver(self, _webrtc, transceiver):
        transceiver.set_property("do-nack", True)
        if self.twcc:
            transceiver.set_property("codec-preferences", self.offered_caps(transceiver.get_property("mlineindex")))

    def offered_caps(self, mline):
        """Codec preferences for m-line `mline`: each payload type the offer has (media, name, clock rate) with
        the offer's transport-wide-cc header extension, which webrtcbin then puts in its answer."""
        media = self.offer.get_media(mline)
        extmap = None
        for i in range(media.attributes_len()):
            attr = media.get_attribute(i)
            if attr.key == "extmap" and TWCC_URI in (attr.value or ""):
                extmap = attr.value.split()[0].split("/")[0]
        caps = Gst.Caps.new_empty()
        for i in range(media.formats_len()):
            pt = int(media.get_format(i))
            offered = media.get_caps_from_media(pt)
            if offered is None:
                continue
            have = offered.get_structure(0)
            one = Gst.Structure.new_empty("application/x-rtp")
            one.set_value("media", media.get_media())
            one.set_value("payload", pt)
            one.set_value("clock-rate", have.get_value("clock-rate"))
            one.set_value("encoding-name", have.get_value("encoding-name"))
            if extmap is not None:
                one.set_value(f"extmap-{extmap}", TWCC_URI)
            caps.append_structure(one)
        return caps

    def on_offer_set(self, promise, _data):
        promise.wait()
        promise = Gst.Promise.new_with_change_func(self.on_answer_created, None)
        self.webrtc.emit("create-answer", None, promise)

    def on_answer_created(self, promise, _data):
        promise.wait()
        reply = promise.get_reply()
        answer = reply.get_value("answer") if reply is not None else None
        if answer is None:
            log("no answer:", reply.to_string() if reply is not None else "no reply")
            self.answered.set()
            return
        self.webrtc.emit("set-local-description", answer, Gst.Promise.new())

    def on_gathering(self, webrtc, _pspec):
        if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            self.answer = webrtc.get_property("local-description").sdp.as_text()
            self.answered.set()

    # ---- media ------------------------------------------------------------------------------------------------

    def on_jitterbuffer(self, _rtpbin, jitterbuffer, _session, _ssrc):
        with self.lock:
            self.jitterbuffers.append(jitterbuffer)

    def on_pad_added(self, _webrtc, pad):
        caps = pad.get_current_caps().get_structure(0)
        if caps.get_string("media") == "video":
            chain = (
                "queue ! rtph264depay wait-for-keyframe=true request-keyframe=true ! h264parse ! avdec_h264 "
                "! fakesink name=vsink signal-handoffs=true sync=false"
            )
        else:
            chain = "queue ! rtpopusdepay ! opusdec ! fakesink name=asink signal-handoffs=true sync=false"
        bin_ = Gst.parse_bin_from_description(chain, True)
        self.pipeline.add(bin_)
        bin_.sync_state_with_parent()
        pad.link(bin_.get_static_pad("sink"))
        sink = bin_.get_by_name("vsink") or bin_.get_by_name("asink")
        sink.connect("handoff", self.on_video if sink.get_name() == "vsink" else self.on_audio)

    def on_video(self, _sink, _buffer, _pad):
        with self.lock:
            self.frames += 1
            self.frame_times.append(time.monotonic())

    def on_audio(self, _sink, _buffer, _pad):
        with self.lock:
            self.audio_buffers += 1

    # ---- the report -------------------------------------------------------------------------------------------

    def report(self):
        with self.lock:
            times = list(self.frame_times)
            frames = self.frames
            audio = self.audio_buffers
            jitterbuffers = list(self.jitterbuffers)
        freezes, freeze_s = 0, 0.0
        if len(times) > 2:
            frame = (times[-1] - times[0]) / (len(times) - 1)
            limit = max(3 * frame, frame + 0.150)
            for a, b in zip(times, times[1:]):
                if b - a > limit:
                    freezes += 1
                    freeze_s += b - a
        jb = {}
        for j in jitterbuffers:
            stats = j.get_property("stats")
            for key in ("num-pushed", "num-lost", "num-late", "num-duplicates", "rtx-count", "rtx-success-count"):
                ok, value = stats.get_uint64(key)
                if ok:
                    jb[key] = jb.get(key, 0) + value
        return {
            "video_frames_decoded": frames,
            "audio_buffers": audio,
            "freezes": freezes,
            "freeze_ms": round(freeze_s * 1000, 1),
            "jitterbuffer": jb,
        }


TWCC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RECEIVER = Receiver()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        log(fmt % args)

    def do_OPTIONS(self):
        self.send_response(204)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        answer = RECEIVER.take_offer(body)
        if answer is None:
            self.send_response(500)
            self.end_headers()
            return
        data = answer.encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/sdp")
        self.send_header("Location", "/whip/session/1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PATCH(self):
        self.send_response(405)
        self.end_headers()

    def do_DELETE(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        RECEIVER.done.set()


def main():
    args = sys.argv[1:]
    http, timeout = "127.0.0.1:0", 60.0
    while args:
        flag = args.pop(0)
        if flag == "--http":
            http = args.pop(0)
        elif flag == "--timeout":
            timeout = float(args.pop(0))
        elif flag == "--twcc":
            RECEIVER.twcc = True
        else:
            sys.exit(f"gst-whip-receive: unknown option {flag}")
    Gst.init(None)
    loop = GLib.MainLoop()
    threading.Thread(target=loop.run, daemon=True).start()
    host, port = http.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"whip-url http://{host}:{server.server_address[1]}/whip", flush=True)
    got_delete = RECEIVER.done.wait(timeout)
    time.sleep(0.3)  # the last frames leave the decoder
    print(json.dumps(RECEIVER.report()), flush=True)
    if RECEIVER.pipeline is not None:
        RECEIVER.pipeline.set_state(Gst.State.NULL)
    sys.exit(0 if got_delete else 1)


if __name__ == "__main__":
    main()
