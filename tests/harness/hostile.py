"""Hostile peers for tokend's robustness and secrecy tests.

RawServer: a TCP server on 127.0.0.1 (optionally TLS) that hands every
connection to a behaviour, for what an HTTP server library will not do:
answer nothing, reset mid-body, trickle, stream 100 MB, never finish a TLS
handshake.

    with RawServer(send_forever(), tls=(cert, key)) as srv:
        ... token_url = srv.url('/token') ...
        assert srv.sent < 32 << 20

Also: certificates for the wrong name or from another CA, raw-socket
attackers for the loopback catcher (slowloris, junk), a runner that
measures a child's peak memory, and a recording $BROWSER / notify_cmd.
"""

import fcntl
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import zlib
from pathlib import Path

from harness.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


# Certificates ---------------------------------------------------------------

def make_leaf(ca_dir, out_dir, name, cn=None, san=None):
    """Signs a server certificate with the CA that harness.authserver.make_certs
    left in ca_dir (ca.pem, ca.key); returns (cert_file, key_file)."""
    ca_dir, out_dir = Path(ca_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key, csr, crt, ext = (out_dir / f'{name}.{x}' for x in ('key', 'csr', 'pem', 'ext'))
    ext.write_text(f'subjectAltName={san or "DNS:" + name}\n'
                   'basicConstraints=critical,CA:FALSE\n'
                   'keyUsage=critical,digitalSignature\n'
                   'extendedKeyUsage=serverAuth\n')
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-keyout', str(key), '-out', str(csr),
                    '-subj', f'/CN={cn or name}'], **run)
    subprocess.run(['openssl', 'x509', '-req', '-in', str(csr), '-CA', str(ca_dir / 'ca.pem'),
                    '-CAkey', str(ca_dir / 'ca.key'), '-CAcreateserial', '-days', '2',
                    '-extfile', str(ext), '-out', str(crt)], **run)
    return str(crt), str(key)


def self_signed(out_dir, name='127.0.0.1', san='IP:127.0.0.1,DNS:localhost'):
    """A self-signed certificate for 127.0.0.1: right name, no CA anyone trusts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key, crt = out_dir / 'self.key', out_dir / 'self.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-keyout', str(key), '-out', str(crt),
                    '-days', '2', '-subj', f'/CN={name}', '-addext', f'subjectAltName={san}'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return str(crt), str(key)


# A raw server ---------------------------------------------------------------

class Conn:
    """One accepted connection, as a behaviour sees it."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.raw = sock
        self.request = b''

    def handshake(self):
        if self.server.tls_context is not None:
            # wrap_socket takes over the descriptor: raw is the TLS socket now.
            self.sock = self.raw = self.server.tls_context.wrap_socket(self.raw,
                                                                       server_side=True)

    def read_request(self, limit=1 << 20):
        """Reads the request head and a Content-Length body."""
        data = b''
        while b'\r\n\r\n' not in data and len(data) < limit:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b'\r\n\r\n')
        length = 0
        for line in head.split(b'\r\n')[1:]:
            name, _, value = line.partition(b':')
            if name.strip().lower() == b'content-length':
                length = int(value.strip() or 0)
        while len(body) < min(length, limit):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        self.request = head + b'\r\n\r\n' + body
        with self.server.lock:
            self.server.requests.append(self.request)
        return self.request

    def send(self, data):
        self.sock.sendall(data)
        with self.server.lock:
            self.server.sent += len(data)

    def hold(self, seconds=120):
        """Keep the connection open, saying nothing, until the peer closes
        it or the server stops.  Whatever the peer sends is dropped."""
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            try:
                if self.sock.recv(65536) == b'':
                    return
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                return

    def unacknowledged(self):
        """Bytes sent that the peer's TCP has not acknowledged yet."""
        return struct.unpack('i', fcntl.ioctl(self.raw.fileno(), termios.TIOCOUTQ,
                                              b'\0' * 4))[0]

    def reset(self):
        """Close with a TCP RST instead of a FIN (no TLS close_notify)."""
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        fd = self.raw.detach() if isinstance(self.raw, ssl.SSLSocket) else None
        if fd is not None:
            os.close(fd)
        else:
            self.raw.close()


class RawServer:
    """behaviour(conn) runs in a thread per connection; the server counts
    connections, requests and body bytes it managed to send."""

    def __init__(self, behaviour, tls=None, backlog=64):
        self.behaviour = behaviour
        self.tls_context = None
        if tls:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(*tls)
        self.scheme = 'https' if tls else 'http'
        self.sock = socket.create_server(('127.0.0.1', 0), backlog=backlog)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connections = 0
        self.requests = []
        self.sent = 0
        self.errors = []
        self.handlers = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path='/token'):
        return f'{self.scheme}://127.0.0.1:{self.port}{path}'

    def _accept(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._handle, args=(sock,), daemon=True)
            self.handlers.append(t)
            t.start()

    def _handle(self, sock):
        sock.settimeout(60)
        c = Conn(self, sock)
        try:
            self.behaviour(c)
        except (OSError, ssl.SSLError, ValueError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass

    def join_handlers(self, timeout=10):
        """Waits for the connection threads to finish (after tokend exited)."""
        deadline = time.monotonic() + timeout
        for t in list(self.handlers):
            t.join(max(0, deadline - time.monotonic()))
        return all(not t.is_alive() for t in self.handlers)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.thread.join(2)
        self.sock.close()


# Behaviours -----------------------------------------------------------------

def head(status=200, headers=None, length=None, ctype='application/json'):
    lines = [f'HTTP/1.1 {status} X', f'Content-Type: {ctype}']
    if length is not None:
        lines.append(f'Content-Length: {length}')
    lines += [f'{k}: {v}' for k, v in (headers or {}).items()]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode()


def never_answer():
    """Completes TLS, reads the request, then says nothing."""
    def b(c):
        c.handshake()
        c.read_request()
        c.hold()
    return b


def no_handshake():
    """Accepts the TCP connection and never speaks TLS (or anything)."""
    def b(c):
        c.hold()
    return b


def reset_mid_body(body=b'{"access_token": "new-access-tok', length=400):
    """Promises a body, sends part of it, then resets the connection."""
    def b(c):
        c.handshake()
        c.read_request()
        c.send(head(200, length=length) + body)
        # Mid-body for the client too: the part is in its hands, then the RST.
        wait_until(lambda: c.unacknowledged() == 0, 10, 'the client acknowledged the part')
        c.reset()
    return b


def reset_before_reply():
    def b(c):
        c.handshake()
        c.read_request()
        c.reset()
    return b


def close_before_reply():
    """Reads the request and closes cleanly without a byte of answer."""
    def b(c):
        c.handshake()
        c.read_request()
    return b


def trickle_body(interval=1.0, seconds=120):
    """Headers at once, then one body byte per interval, for ever."""
    def b(c):
        c.handshake()
        c.read_request()
        c.send(head(200, length=1 << 20))
        deadline = time.monotonic() + seconds
        c.send(b'{')
        while time.monotonic() < deadline and not c.server.stopping.is_set():
            time.sleep(interval)
            c.send(b' ')
    return b


def trickle_head(interval=1.0, seconds=120):
    """The status line and headers one byte per interval, for ever."""
    def b(c):
        c.handshake()
        c.read_request()
        data = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ' + b'a' * 10000
        deadline = time.monotonic() + seconds
        for i in range(len(data)):
            if time.monotonic() > deadline or c.server.stopping.is_set():
                return
            c.send(data[i:i + 1])
            time.sleep(interval)
    return b


def send_forever(total=100 << 20, chunked=False, declare_length=True):
    """A 100 MB body: with Content-Length, or without (until close), or
    chunked.  Stops when the peer goes away."""
    def b(c):
        c.handshake()
        c.read_request()
        headers = {'Transfer-Encoding': 'chunked'} if chunked else {'Connection': 'close'}
        c.send(head(200, headers, total if declare_length and not chunked else None))
        piece = b'{"a":"' + b'x' * (65536 - 6)
        filler = b'x' * 65536
        sent = 0
        while sent < total and not c.server.stopping.is_set():
            chunk = piece if sent == 0 else filler
            if chunked:
                c.send(b'%x\r\n' % len(chunk) + chunk + b'\r\n')
            else:
                c.send(chunk)
            sent += len(chunk)
        if chunked:
            c.send(b'0\r\n\r\n')
    return b


def gzip_stream(payload_size=100 << 20, prefix=b''):
    """gzip of prefix followed by payload_size zero bytes, without holding
    the expansion in memory: about 100 KB for 100 MB."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(prefix)]
    block = b'\0' * (1 << 20)
    left = payload_size
    while left > 0:
        out.append(z.compress(block[:min(left, len(block))]))
        left -= len(block)
    out.append(z.flush())
    return b''.join(out)


def syn_blackhole():
    """A listening socket whose accept queue is full: further SYNs are
    dropped, so a connect() hangs until the client's connect timeout.
    Returns (port, close) ."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(('127.0.0.1', 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(('127.0.0.1', port))
        except BlockingIOError:
            pass
        fillers.append(s)
    # The queue is full once it holds one connection (backlog 0): from then
    # on the SYNs are dropped.
    wait_until(lambda: accept_queue(port) >= 1, 10, f'the accept queue of port {port} filled')

    def close():
        for s in fillers:
            s.close()
        lsock.close()
    return port, close


def accept_queue(port):
    """Connections waiting in the accept queue of the listener on
    127.0.0.1:port (rx_queue of its LISTEN row in /proc/net/tcp)."""
    for row in Path('/proc/net/tcp').read_text().splitlines()[1:]:
        f = row.split()
        if f[3] == '0A' and int(f[1].split(':')[1], 16) == port:
            return int(f[4].split(':')[1], 16)
    return 0


def free_port():
    """A loopback port nobody listens on (connection refused)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


# Running tokend, measured ---------------------------------------------------

class Measured:
    def __init__(self, returncode, stdout, stderr, seconds, maxrss_kb):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.seconds, self.maxrss_kb = seconds, maxrss_kb


GNU_TIME = '/usr/bin/time'


def run_measured(tokend, *args, timeout=60, env=None, stdin=None):
    """Runs tokend, returning exit status, output, wall time and its peak
    resident memory in KiB, measured by GNU time (the `time` package, in
    scripts/setup), which measures the program alone: a child's ru_maxrss
    here would start at the size of this Python process.  maxrss_kb is None
    only if GNU time wrote no figure."""
    e = dict(tokend.env, **(env or {}))
    cmd = [str(tokend_binary()), *args]
    mem = tokend.home / f'.maxrss-{time.monotonic_ns()}'
    assert os.access(GNU_TIME, os.X_OK), \
        f'{GNU_TIME} is missing: install the Debian package "time" (scripts/setup)'
    cmd = [GNU_TIME, '-q', '-f', '%M', '-o', str(mem), *cmd]
    started = time.monotonic()
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, errors='replace',
                       env=e, timeout=timeout)
    seconds = time.monotonic() - started
    maxrss = None
    if mem.exists():
        lines = mem.read_text().split()
        maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else None
        mem.unlink()
    return Measured(r.returncode, r.stdout, r.stderr, seconds, maxrss)


def tokend_binary():
    build = Path(os.environ.get('TOKEND_BUILD_DIR', REPO / 'build'))
    return build / 'src' / 'tokend'


def files_containing(root, needle):
    """Every file under root (symlinks not followed) whose bytes hold needle:
    where a secret that must not be kept was written after all."""
    needle = needle.encode() if isinstance(needle, str) else needle
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                if not path.is_symlink() and needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                pass
    return found


# Attacking the loopback catcher -------------------------------------------

def raw_exchange(host, port, data, timeout=5, family=socket.AF_INET):
    """Sends bytes, returns what comes back until the peer closes (or
    timeout).  b'' when the connection was refused or reset."""
    got = b''
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            if data:
                s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return got
                got += chunk
    except OSError:
        return got


def status_of(response):
    """The HTTP status of a raw response, or None."""
    try:
        return int(response.split(b' ', 2)[1])
    except (IndexError, ValueError):
        return None


class Slowloris:
    """n connections that each send a request head one byte per interval and
    never finish it."""

    def __init__(self, host, port, n=50, interval=1.0, family=socket.AF_INET):
        self.socks = []
        self.host, self.port = host, port
        self.stopping = threading.Event()
        self.opened = 0
        self.dropped = 0
        for _ in range(n):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect((host, port))
                s.sendall(b'GET /?state=')
                self.opened += 1
                self.socks.append(s)
            except OSError:
                s.close()
        self.thread = threading.Thread(target=self._drip, args=(interval,), daemon=True)
        self.thread.start()

    def _drip(self, interval):
        while not self.stopping.wait(interval):
            for s in list(self.socks):
                try:
                    s.send(b'a')
                except OSError:
                    self.dropped += 1
                    self.socks.remove(s)
                    s.close()

    def alive(self):
        return len(self.socks)

    def close(self):
        self.stopping.set()
        self.thread.join(3)
        for s in self.socks:
            s.close()


# Recording children ---------------------------------------------------------

RECORDER = '''#!/usr/bin/python3
# Records its argv and environment, then (as a browser) walks the sign-in and
# delivers the final redirect, recording that URL too.
import json, os, sys
sys.path.insert(0, {tests!r})
log = {log!r}
entry = {{'argv': sys.argv, 'env': dict(os.environ), 'pid': os.getpid()}}
with open(log, 'a') as f:
    f.write(json.dumps(entry) + '\\n')
role = {role!r}
if role == 'browser' and len(sys.argv) == 2:
    from harness import browser
    mode = os.environ.get('TOKEND_TEST_BROWSER_MODE', 'follow')
    ca = os.environ.get('TOKEND_TEST_CA') or None
    if mode == 'device':
        browser.verify_device(sys.argv[1], ca_file=ca)
    else:
        final = browser.authorize(sys.argv[1], ca_file=ca)
        with open(log, 'a') as f:
            f.write(json.dumps({{'final_url': final}}) + '\\n')
        if mode == 'print':
            out = os.environ['TOKEND_TEST_BROWSER_OUT']
            with open(out + '.tmp', 'w') as f:
                f.write(final + '\\n')
            os.replace(out + '.tmp', out)
        else:
            browser.deliver(final)
'''


def write_recorder(path, log, role):
    """An executable that appends {'argv', 'env'} (and as role 'browser' the
    final redirect URL it followed) as JSON lines to log."""
    path = Path(path)
    path.write_text(RECORDER.format(tests=str(REPO / 'tests'), log=str(log), role=role))
    path.chmod(0o755)
    return str(path)


def read_records(log):
    if not Path(log).exists():
        return []
    return [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]


def python():
    return sys.executable


# The catcher: addresses, junk -------------------------------------------------

def local_addresses():
    """(family, address, interface) of every non-loopback address the
    machine has, from `ip -o addr`."""
    try:
        out = subprocess.run(['ip', '-o', 'addr'], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.splitlines():
        f = line.split()
        if len(f) < 4 or f[1] == 'lo' or f[2] not in ('inet', 'inet6'):
            continue
        addr = f[3].split('/')[0]
        found.append((socket.AF_INET if f[2] == 'inet' else socket.AF_INET6, addr, f[1]))
    return found


def connect_result(family, address, port, interface=None, timeout=2):
    """'refused', 'open', or the error, for a TCP connect to address:port."""
    host = f'{address}%{interface}' if family == socket.AF_INET6 and address.startswith('fe80') \
        else address
    try:
        info = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(info[4])
            return 'open'
    except ConnectionRefusedError:
        return 'refused'
    except OSError as e:
        return repr(e)


def junk_requests():
    """Requests a browser would never send: name -> bytes."""
    return {
        'wrong-state': b'GET /?code=forged&state=wrong HTTP/1.1\r\nHost: a\r\n\r\n',
        'no-state': b'GET /?code=forged HTTP/1.1\r\nHost: a\r\n\r\n',
        'no-code-wrong-state': b'GET /?state=wrong HTTP/1.1\r\nHost: a\r\n\r\n',
        'two-codes': b'GET /?code=x&code=y&state=z HTTP/1.1\r\nHost: a\r\n\r\n',
        'other-path': b'GET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n',
        'dotdot': b'GET /../../etc/passwd?state=x HTTP/1.1\r\nHost: a\r\n\r\n',
        'absolute-uri': b'GET http://evil.example/?code=x&state=y HTTP/1.1\r\nHost: a\r\n\r\n',
        'post': b'POST /?code=x&state=y HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabcde',
        'absurd-method': b'FROBNICATE /?code=x&state=y HTTP/1.1\r\nHost: a\r\n\r\n',
        'long-method': b'X' * 5000 + b' / HTTP/1.1\r\nHost: a\r\n\r\n',
        'options-star': b'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
        'head': b'HEAD /?code=x&state=y HTTP/1.1\r\nHost: a\r\n\r\n',
        'http09': b'GET /?code=x&state=y\r\n\r\n',
        'http2-preface': b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
        'nul-raw': b'GET /?state=\x00x&code=\x00 HTTP/1.1\r\nHost: a\r\n\r\n',
        'nul-encoded': b'GET /?state=%00x&code=%00 HTTP/1.1\r\nHost: a\r\n\r\n',
        'nul-header': b'GET /?state=x HTTP/1.1\r\nHost: a\x00b\r\nX\x00: \x00\r\n\r\n',
        'bad-percent': b'GET /?state=%zz&code=%%% HTTP/1.1\r\nHost: a\r\n\r\n',
        'utf8': 'GET /?state=ä&code=ü HTTP/1.1\r\nHost: a\r\n\r\n'.encode(),
        'crlf-injection': b'GET /?state=x%0d%0aSet-Cookie:%20a=b HTTP/1.1\r\nHost: a\r\n\r\n',
        'no-host': b'GET /?code=x&state=y HTTP/1.1\r\n\r\n',
        'pipelined': b'GET /?code=x&state=y HTTP/1.1\r\nHost: a\r\n\r\n' * 20,
        'huge-url': b'GET /?code=x&state=' + b'a' * 65536 + b' HTTP/1.1\r\nHost: a\r\n\r\n',
        'huge-headers': b'GET /?state=x HTTP/1.1\r\nHost: a\r\n' + b''.join(
            b'X-H%d: %s\r\n' % (i, b'v' * 100) for i in range(1000)) + b'\r\n',
        'one-huge-header': b'GET /?state=x HTTP/1.1\r\nHost: a\r\nX: ' + b'v' * 65536 +
                           b'\r\n\r\n',
        'chunked-body': b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n'
                        b'ffffffff\r\n' + b'a' * 1000,
        'huge-length': b'GET /?state=x HTTP/1.1\r\nHost: a\r\nContent-Length: '
                       b'99999999999999999999\r\n\r\n',
        'expect-continue': b'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n'
                           b'Content-Length: 100000\r\n\r\n',
        'garbage': bytes(range(256)) * 4,
    }


def incomplete_requests():
    """Requests that never end: the server may only wait (or close)."""
    return {
        'empty-lines': b'\r\n' * 1000,
        'tls-client-hello': bytes.fromhex('16030100a5010000a10303') + b'\x17' * 160,
        'no-blank-line': b'GET /?code=x&state=y HTTP/1.1\r\nHost: a\r\n',
        'half-request-line': b'GET /?code=x&sta',
        'body-short': b'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc',
    }
