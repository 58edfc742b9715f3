"""Scripted peers on 127.0.0.1 for behaviour no local server shows.

ScriptedEndpoint, an HTTP endpoint:
Microsoft's and Google's documented token responses (REFERENCE.md), proxies
that answer HTML, servers that misbehave.  These replay documented shapes;
they are not the providers.

    with ScriptedEndpoint() as ep:
        ep.script('/token', Reply(400, {'error': 'invalid_grant', ...}))
        ... token_url = ep.url('/token') ...
        assert ep.requests[0].form['grant_type'] == ['refresh_token']

ScriptedMailServer, an IMAP, POP3 or SMTP server that plays a script (below).
"""

import contextlib
import json
import socket
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


# Mail servers -----------------------------------------------------------------

class MailPeer:
    """One connection to a ScriptedMailServer, as its script sees it: send
    exactly the bytes named, read the client's lines, close."""

    def __init__(self, conn, server):
        self.conn = conn
        self.server = server
        self.buf = b''
        self.received = b''

    def send(self, data, split=0, pause=0.02):
        """Sends data (str or bytes) as it is; split=N sends it in pieces of
        N bytes, each in its own segment."""
        data = data.encode() if isinstance(data, str) else data
        if not split:
            self.conn.sendall(data)
            return
        for i in range(0, len(data), split):
            self.conn.sendall(data[i:i + split])
            time.sleep(pause)

    def readline(self, timeout=10):
        """The client's next line with its line end, b'' at end of stream."""
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no line from the client; got {self.buf!r}')
            self.conn.settimeout(left)
            chunk = self.conn.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b''
                return line
            self.received += chunk
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b'\n')
        return line + b'\n'

    def read_to_end(self, timeout=10):
        """Everything the client sends until it closes."""
        deadline = time.monotonic() + timeout
        rest = self.buf
        self.buf = b''
        while time.monotonic() < deadline:
            self.conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.conn.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            self.received += chunk
            rest += chunk
        return rest


class ScriptedMailServer:
    """A TCP server on 127.0.0.1 for IMAP, POP3 and SMTP clients, in the
    style of curl's test servers: each connection runs script(peer), which
    sends exactly the bytes the test names (split packets, odd case, missing
    line ends, over-long lines, bytes after the final reply) and reads what
    the client sends.  Everything received is kept per connection.

        def script(peer):
            peer.send(b'* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready\\r\\n')
            tag = peer.readline().split()[0]
            ...
        with ScriptedMailServer(script) as srv:
            ... srv.port ...; srv.connections[0].received
    """

    def __init__(self, script):
        self.script = script
        self.connections = []
        self.errors = []
        self.lock = threading.Lock()
        self.sock = socket.create_server(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.closed = False

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = MailPeer(conn, self)
            with self.lock:
                self.connections.append(peer)
            threading.Thread(target=self._run, args=(peer,), daemon=True).start()

    def _run(self, peer):
        try:
            self.script(peer)
        except Exception as e:  # noqa: BLE001 - kept for the test to show
            with self.lock:
                self.errors.append(repr(e))
        finally:
            with contextlib.suppress(OSError):
                peer.conn.close()

    def received(self):
        """All that clients sent, every connection joined."""
        with self.lock:
            return b''.join(p.received for p in self.connections)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.closed = True
        # Wakes the accept() in progress, which would keep the port open.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
