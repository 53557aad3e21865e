#!/usr/bin/env python3
"""Tiny HTTP backend for tests/deploy/nginx_sticky.sh: answers every request with its own name
(and the Upgrade/Connection headers it received); a WebSocket handshake gets a real 101 with
Sec-WebSocket-Accept, after which the backend writes one unmasked text frame with its name.
Usage: sticky_backend.py NAME PORT   (binds 127.0.0.1 only)"""
import base64
import hashlib
import http.server
import socketserver
import sys

NAME, PORT = sys.argv[1], int(sys.argv[2])
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        self.rfile.read(n)
        self.do_GET()

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            payload = NAME.encode()
            self.wfile.write(bytes([0x81, len(payload)]) + payload)
            self.wfile.flush()
            self.close_connection = True
            return
        body = ("%s upgrade=%s connection=%s xff=%s\n" % (
            NAME, self.headers.get("Upgrade", "-"), self.headers.get("Connection", "-"),
            self.headers.get("X-Forwarded-For", "-"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
