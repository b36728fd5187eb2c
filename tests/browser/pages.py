"""A tiny HTTP server on a loopback origin of its own that answers every GET with one page (a relying party, a SPA)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def page_server(title: str, text: str) -> tuple[ThreadingHTTPServer, str]:
    """The running server (``shutdown()`` and ``server_close()`` it) and its origin."""
    body = f"<!doctype html><title>{title}</title><p>{text}</p>".encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True, name=title).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
