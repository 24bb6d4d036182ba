#!/usr/bin/env python3
"""Slowloris check for the example servers (issue 10, failure 8).

Opens N connections to 127.0.0.1:PORT that each send a partial request head
and then nothing, and reports how many the server has closed after WAIT
seconds (a 408 answer followed by the close counts as closed).

    cargo build --example server --features axum,sqlite
    KEYWARD_ADDR=127.0.0.1:3000 target/debug/examples/server &
    python3 benches/slowloris.py 3000 1500 15

Loopback only; N is bounded by the open-file limit (ulimit -n).
"""
import selectors
import socket
import sys
import time

port, n, wait = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /openapi.json HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, i)
t0 = time.time()
closed = []
while time.time() - t0 < wait and len(closed) < n:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            d = s.recv(4096)
        except ConnectionResetError:
            d = b""
        if d == b"" or d.startswith(b"HTTP/1.1 408"):
            closed.append(time.time() - t0)
            sel.unregister(s)
            s.close()
last = f", last closed after {max(closed):.1f} s" if closed else ""
print(f"{n} partial-header connections: closed within {wait:.0f} s: "
      f"{len(closed)}, still open: {n - len(closed)}{last}")
