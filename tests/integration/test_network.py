"""Network changes between tokend and the real authorization server.

The server cannot be restarted to "come back": a new server knows nothing of
the old grant.  So a small TCP forwarder (Proxy below) sits on loopback in
front of it and is switched between

  forward        pass bytes both ways (TLS stays end to end: the server's
                 certificate names 127.0.0.1 and localhost)
  refuse         no listener: connections are refused, as from a dead host
  reset          accept, then reset the connection at once
  lose-response  pass the request to the server, never pass back its answer
                 and close the connection once the answer has come (it
                 counts the TLS 1.3 records the client sends, as node and
                 OpenSSL 3 negotiate: the second application record is the
                 request)

and the accounts' token_url points at the forwarder.  tokend is a
short-lived process: a run after the network comes back must simply work.

Addresses.  Here /etc/hosts maps localhost to 127.0.0.1 only (`getent
ahosts localhost` shows no ::1), but libcurl (7.78 and later) resolves
"localhost" by itself, to 127.0.0.1 and ::1, and on this machine (7.88.1)
tries 127.0.0.1 first, then ::1 when the first is refused.  The forwarder
listens on one of the two only, with the same port on the other address
bound but not listening (so it refuses), and token_url names
https://localhost:PORT: both orders are run, so whichever address libcurl
tries first, one case has a dead first address and a live second one.
"""

import errno
import json
import socket
import struct
import threading
import time

import pytest

from conftest import EX_NOPERM, EX_OK, EX_TEMPFAIL
from harness.wait import wait_until

MODES = ('forward', 'refuse', 'reset', 'lose-response')


class Proxy:
    """TCP forwarder from host:port (one address) to 127.0.0.1:target_port."""

    def __init__(self, target_port, host='127.0.0.1'):
        self.target = ('127.0.0.1', target_port)
        self.family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.host = host
        self.port = 0
        self.connections = dict.fromkeys(MODES, 0)
        self._mode = self._applied = 'forward'
        self._stop = False
        self._listener = self._listen()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _listen(self):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)

        def bound():
            try:
                s.bind((self.host, self.port))
                return True
            except OSError as e:  # the old listener's port, briefly
                if e.errno != errno.EADDRINUSE or not self.port:
                    raise
                return False
        wait_until(bound, 2, f'port {self.port} free to listen on again')
        s.listen(64)
        s.settimeout(0.02)
        self.port = s.getsockname()[1]
        return s

    def set_mode(self, mode):
        """Switches, and returns once the forwarder works that way."""
        assert mode in MODES
        self._mode = mode

        def switched():
            assert self._thread.is_alive(), f'the forwarder stopped before switching to {mode}'
            return self._applied == mode
        wait_until(switched, 5, f'the forwarder switched to {mode}', interval=0.005)

    def close(self):
        self._stop = True
        self._thread.join(5)

    def _serve(self):
        while not self._stop:
            mode = self._mode
            if mode == 'refuse' and self._listener:
                self._listener.close()
                self._listener = None
            elif mode != 'refuse' and not self._listener:
                self._listener = self._listen()
            self._applied = mode
            if not self._listener:
                time.sleep(0.02)  # refusing: nothing to serve until the mode changes
                continue
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, BlockingIOError):
                continue
            client.settimeout(None)
            self.connections[mode] += 1
            if mode == 'reset':
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                client.close()
                continue
            threading.Thread(target=self._forward, args=(client, mode), daemon=True).start()
        if self._listener:
            self._listener.close()

    def _forward(self, client, mode):
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        if mode == 'lose-response':
            # TLS passes; once the request is on its way the answer is
            # swallowed, and the connection closed when the server has sent it.
            sent = threading.Event()
            up = threading.Thread(target=_pump, args=(client, upstream, sent), daemon=True)
            up.start()
            upstream.settimeout(1)
            try:
                while data := upstream.recv(65536):
                    if not sent.is_set():
                        client.sendall(data)
            except OSError:
                pass
            for s in (client, upstream):
                _hang_up(s)
            return
        up = threading.Thread(target=_pump, args=(client, upstream), daemon=True)
        up.start()
        _pump(upstream, client)
        up.join(10)
        for s in (client, upstream):
            _hang_up(s)


def _hang_up(s):
    try:
        s.shutdown(socket.SHUT_RDWR)  # also wakes a thread blocked in recv()
    except OSError:
        pass
    s.close()


class TlsRecords:
    """Counts the application data records (type 23) a TLS 1.3 client sends:
    the first is its encrypted Finished, the second carries the request."""

    def __init__(self):
        self.header = b''
        self.body_left = 0
        self.app_records = 0

    def feed(self, data):
        i = 0
        while i < len(data):
            if self.body_left:
                step = min(self.body_left, len(data) - i)
                self.body_left -= step
                i += step
                continue
            take = min(5 - len(self.header), len(data) - i)
            self.header += data[i:i + take]
            i += take
            if len(self.header) == 5:
                self.app_records += self.header[0] == 23
                self.body_left = struct.unpack('>H', self.header[3:5])[0]
                self.header = b''


def _pump(src, dst, request_sent=None):
    """Copies src to dst until EOF; with request_sent, sets it as the
    client's request starts on its way."""
    records = TlsRecords()
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if request_sent is not None:
                records.feed(data)
                if records.app_records >= 2:
                    request_sent.set()
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def proxy(authserver):
    p = Proxy(authserver.port)
    yield p
    p.close()


def proxied(tokend, url):
    tokend.account(token_url=url)
    tokend.obtain()


def snapshot(t):
    return (t.stored_refresh_token(), t.token_file().read_text(),
            (t.state / 'work' / 'state.json').read_text())


def refresh_requests(server):
    return server.stats()['token'].get('refresh_token', 0)


def assert_refreshed(t, server, before):
    r = t.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    rt, token, _ = snapshot(t)
    assert rt != before[0] and token != before[1]
    assert server.introspect(rt)['active'] and server.introspect(token.strip())['active']


def test_server_unreachable_then_back(tokend, authserver, proxy):
    proxied(tokend, f'https://127.0.0.1:{proxy.port}/token')
    pid = authserver.proc.pid
    for failure in ('refuse', 'reset', 'refuse'):
        proxy.set_mode(failure)
        before = snapshot(tokend)
        requests = refresh_requests(authserver)
        start = time.monotonic()
        r = tokend.run('refresh', '--force', 'work')
        assert r.returncode == EX_TEMPFAIL, (failure, r.stderr)
        assert 'try again later' in r.stderr and len(r.stderr.splitlines()) == 1
        if failure == 'refuse':
            assert 'cannot reach 127.0.0.1' in r.stderr
        assert time.monotonic() - start < 15
        assert snapshot(tokend)[:2] == before[:2], 'a network failure changed the tokens'
        assert refresh_requests(authserver) == requests
        status = json.loads(tokend.run('status', '--json').stdout)[0]
        assert status['needs_signin'] is False and status['valid']
        # A caller that wants a fresher token still gets the valid one.
        r = tokend.run('token', 'work')
        assert r.returncode == EX_OK and r.stdout == before[1]
        tokend.accounts['work']['min_validity'] = '3650'
        tokend.write_config()
        r = tokend.run('token', 'work')
        assert r.returncode == EX_OK and r.stdout == before[1], r.stderr
        assert 'handed out the current token' in r.stderr
        tokend.accounts['work'].pop('min_validity')
        tokend.write_config()
        # The network is back: the next run works, nothing was restarted.
        proxy.set_mode('forward')
        assert_refreshed(tokend, authserver, before)
        assert refresh_requests(authserver) == requests + 1
    assert authserver.proc.pid == pid and authserver.proc.poll() is None
    assert proxy.connections['refuse'] == 0 and proxy.connections['reset'] >= 1


def test_lost_answer_is_temporary_then_needs_a_sign_in(tokend, authserver, proxy):
    """The network twin of a kill at "after-response": the server rotated
    the refresh token, the answer never came.  tokend reports a temporary
    failure and keeps everything; the kept refresh token has been consumed,
    so the next refresh is refused and asks for a sign-in (a rotating server
    leaves no other way out).  Documented, not wished for."""
    proxied(tokend, f'https://127.0.0.1:{proxy.port}/token')
    before = snapshot(tokend)
    requests = refresh_requests(authserver)
    proxy.set_mode('lose-response')
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert snapshot(tokend)[:2] == before[:2]
    assert refresh_requests(authserver) == requests + 1
    assert not authserver.introspect(before[0])['active']
    proxy.set_mode('forward')
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM and 'run: tokend obtain work' in r.stderr
    assert snapshot(tokend)[:2] == before[:2]
    tokend.obtain()
    assert_refreshed(tokend, authserver, snapshot(tokend))


def dead_port(host, port):
    """A socket bound to host:port and not listening: connections are refused."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    return s


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize('live,dead', [('::1', '127.0.0.1'), ('127.0.0.1', '::1')])
def test_localhost_uses_whichever_address_answers(tokend, authserver, live, dead):
    if not ipv6_loopback():
        pytest.skip('no IPv6 loopback (::1) on this machine')
    for _ in range(20):
        p = Proxy(authserver.port, host=live)
        try:
            closed = dead_port(dead, p.port)
            break
        except OSError:  # that port is taken on the other address: another one
            p.close()
    else:
        pytest.fail('no port free on both 127.0.0.1 and ::1')
    try:
        proxied(tokend, f'https://localhost:{p.port}/token')
        before = snapshot(tokend)
        start = time.monotonic()
        assert_refreshed(tokend, authserver, before)
        elapsed = time.monotonic() - start
        assert p.connections['forward'] >= 2  # the sign-in and the refresh
        print(f'\nlocalhost: {dead} refused, {live} answered; refresh took {elapsed:.3f} s')
    finally:
        closed.close()
        p.close()
