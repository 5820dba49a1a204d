"""moto's S3 in server mode, in its own process (its CPU and memory stay out of the client's).

Prints ``{"ready": true, "endpoint_url": ...}`` once listening; stops when stdin closes or on
SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys

from moto.server import ThreadedMotoServer


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        print(json.dumps({"ready": True, "endpoint_url": f"http://{host}:{port}"}), flush=True)
        # Block until the parent closes our stdin (it exits, crashes or is interrupted).
        sys.stdin.read()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
