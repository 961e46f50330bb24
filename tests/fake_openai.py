"""A local HTTP server that speaks the chat-completions protocol, for tests.

It answers from a script: each entry is a status code with content, ("sleep", seconds) to
make the client time out, ("raw", status, content_type, body) to answer any body at all,
("drip", seconds) for a body that comes one byte every few seconds and never ends, or
("huge",) for an endless body sent as fast as it is read.
:class:`SilentServer` accepts connections and never answers.  Only 127.0.0.1 is used.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    def __init__(self, script: list, port: int = 0) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.stopped = threading.Event()  # ends the endless answers
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                step = server.script.pop(0) if server.script else (200, "[f0 f1 +]")
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = (200, "[f0 sqrt]")
                if step[0] == "drip":  # a 200 whose body comes one byte every `seconds`, for ever
                    self._drip(step[1])
                    return
                if step[0] == "huge":  # a 200 whose body never ends (as fast as the client reads)
                    self._drip(0.0, block=b"[f0 f1 +] " * 10_000)
                    return
                if step[0] == "raw":
                    _, status, content_type, body = step
                    self._send(status, content_type, body if isinstance(body, bytes) else body.encode())
                    return
                status, content = step
                if status == 200:
                    payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}],
                               "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
                else:
                    payload = {"error": {"message": content, "type": "error"}}
                self._send(status, "application/json", json.dumps(payload).encode())

            def _drip(self, seconds: float, block: bytes = b" ") -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(1 << 40))
                    self.end_headers()
                    self.wfile.write(b'{"choices": [{"message": {"content": "')
                    while not server.stopped.is_set():
                        self.wfile.write(block)
                        self.wfile.flush()
                        time.sleep(seconds)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (nor closes them until it stops)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections.append(connection)

    def __enter__(self) -> "SilentServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()
        for connection in self.connections:
            connection.close()
        self.sock.close()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
