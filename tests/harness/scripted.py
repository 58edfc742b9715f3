"""A scripted HTTP endpoint on 127.0.0.1 for behaviour no local server shows:
Microsoft's and Google's documented token responses (REFERENCE.md), proxies
that answer HTML, servers that misbehave.  These replay documented shapes;
they are not the providers.

    with ScriptedEndpoint() as ep:
        ep.script('/token', Reply(400, {'error': 'invalid_grant', ...}))
        ... token_url = ep.url('/token') ...
        assert ep.requests[0].form['grant_type'] == ['refresh_token']
"""

import json
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: object = b''            # dict/list -> JSON; str/bytes sent as is
    headers: dict = field(default_factory=dict)
    delay: float = 0.0            # seconds before answering
    trickle: float = 0.0          # seconds between body bytes
    close_after: int = -1         # close the connection after N body bytes

    def payload(self):
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), 'application/json'
        if isinstance(self.body, str):
            return self.body.encode(), 'text/html; charset=utf-8'
        return self.body, 'application/octet-stream'


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes

    @property
    def form(self):
        return urllib.parse.parse_qs(self.body.decode(errors='replace'))


class ScriptedEndpoint:
    """tls: (cert_file, key_file) to serve https.  A scripted reply may be a
    callable taking the Request and returning a Reply."""

    def __init__(self, tls=None):
        self.replies = {}
        self.requests = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                path = self.path.split('?')[0]
                with endpoint.lock:
                    endpoint.requests.append(
                        Request(self.command, self.path, dict(self.headers), body))
                    queue = endpoint.replies.get(path)
                    reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Reply(404, 'nothing scripted')
                if callable(reply):
                    reply = reply(endpoint.requests[-1])
                endpoint._answer(self, reply)

            do_GET = do_POST = _serve

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.scheme = 'http'
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = 'https'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, h, reply):
        if reply.delay:
            time.sleep(reply.delay)
        data, ctype = reply.payload()
        try:
            h.send_response(reply.status)
            headers = {'Content-Type': ctype, 'Content-Length': str(len(data))}
            headers.update(reply.headers)
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            if reply.close_after >= 0:
                h.wfile.write(data[:reply.close_after])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)
                return
            if reply.trickle:
                for i in range(len(data)):
                    h.wfile.write(data[i:i + 1])
                    h.wfile.flush()
                    time.sleep(reply.trickle)
            else:
                h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def url(self, path):
        return f'{self.scheme}://127.0.0.1:{self.port}{path}'

    def script(self, path, *replies):
        """Queue replies for path; the last one repeats."""
        with self.lock:
            self.replies[path] = list(replies)

    def last(self, path):
        with self.lock:
            return [r for r in self.requests if r.path.split('?')[0] == path][-1]

    def count(self, path):
        with self.lock:
            return sum(1 for r in self.requests if r.path.split('?')[0] == path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
