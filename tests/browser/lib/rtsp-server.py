#!/usr/bin/python3
"""A gst-rtsp-server (Debian's gir1.2-gst-rtsp-server-1.0) serving a live
VP8 test stream at rtsp://127.0.0.1:<port>/test for the player tests.
Prints "READY <port>" once it listens; runs until killed."""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1] if len(sys.argv) > 1 else "0"
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    "! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay name=pay0 pt=96 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/test", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen")
print("READY", server.get_bound_port(), flush=True)
GLib.MainLoop().run()
