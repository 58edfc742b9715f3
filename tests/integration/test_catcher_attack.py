"""The loopback redirect catcher under attack while `tokend obtain work`
waits for a real sign-in at the real authorization server: it listens on
loopback only, refuses strangers, survives junk, slowloris connections and
replays, takes the real redirect, redeems the code exactly once, and gives up
within login_timeout when nobody comes."""

import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass

import pytest

from conftest import BROWSER, EX_DATAERR, EX_NOPERM, EX_OK, EX_TEMPFAIL
from harness import hostile
from harness.hostile import Slowloris, raw_exchange, status_of
from harness.wait import wait_until

SIGNED_IN = b'<h1>Signed in</h1>'
# What the catcher (or libmicrohttpd before it) may answer a stranger.
REFUSALS = {400, 404, 405, 413, 414, 431, 501, 505}


@dataclass
class Attempt:
    proc: subprocess.Popen
    url: str
    redirect: str
    port: int
    state: str
    started: float


def start_obtain(tokend, *args, options=(), **keys):
    """obtain --no-browser in the background, up to the printed URL."""
    tokend.account(**keys)
    started = time.monotonic()
    proc = tokend.popen(*options, 'obtain', 'work', '--no-browser', *args)
    lines = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if line.startswith('https://'):
            url = line.strip()
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            redirect = q['redirect_uri']
            return Attempt(proc, url, redirect, urllib.parse.urlsplit(redirect).port, q['state'],
                           started)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError('no URL printed: ' + ''.join(lines))


def finish(attempt, timeout=60):
    out, err = attempt.proc.communicate(timeout=timeout)
    return attempt.proc.returncode, out, err, time.monotonic() - attempt.started


def code_exchanges(authserver):
    return authserver.stats()['token'].get('authorization_code', 0)


def run_browser(tokend, url, log, **env):
    e = dict(tokend.env, TOKEND_TEST_BROWSER_LOG=str(log), **env)
    return subprocess.run([str(BROWSER), url], env=e, capture_output=True, text=True,
                          timeout=60)


def refused(port):
    return hostile.connect_result(socket.AF_INET, '127.0.0.1', port) == 'refused'


@pytest.fixture
def attempts():
    """Kills whatever obtain a failing test left behind."""
    started = []
    yield started
    for a in started:
        if a.proc.poll() is None:
            a.proc.kill()
            a.proc.communicate()


# Where it listens -------------------------------------------------------------

def test_catcher_answers_on_loopback_only(tokend, attempts):
    a = start_obtain(tokend, login_timeout=20)
    attempts.append(a)
    assert a.redirect.startswith('http://127.0.0.1:')
    assert status_of(raw_exchange('127.0.0.1', a.port, hostile.junk_requests()['wrong-state'])) \
        == 400
    elsewhere = {addr: hostile.connect_result(fam, addr, a.port, iface)
                 for fam, addr, iface in hostile.local_addresses()}
    # 127.0.0.2 is loopback too, but not the address in the redirect; ::1 is
    # not asked for by a 127.0.0.1 redirect.
    elsewhere['127.0.0.2'] = hostile.connect_result(socket.AF_INET, '127.0.0.2', a.port)
    elsewhere['::1'] = hostile.connect_result(socket.AF_INET6, '::1', a.port)
    print('connects to the catcher port elsewhere:', elsewhere)
    assert all(v == 'refused' for v in elsewhere.values()), elsewhere
    assert listeners(a.port) == {'127.0.0.1'}
    a.proc.terminate()
    finish(a)


def test_localhost_redirect_listens_on_both_loopbacks_only(tokend, attempts):
    # The listening sockets are the proof (listeners below); connecting from
    # the machine's other addresses, when it has any, shows it as a stranger
    # would see it.
    addresses = hostile.local_addresses()
    a = start_obtain(tokend, login_timeout=20, redirect_uri='http://localhost/')
    attempts.append(a)
    for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
        assert status_of(raw_exchange(host, a.port, b'GET /x HTTP/1.1\r\nHost: a\r\n\r\n',
                                      family=fam)) == 404, host
    elsewhere = {addr: hostile.connect_result(fam, addr, a.port, iface)
                 for fam, addr, iface in addresses}
    assert all(v == 'refused' for v in elsewhere.values()), elsewhere
    assert listeners(a.port) == {'127.0.0.1', '::1'}
    a.proc.terminate()
    finish(a)


def listeners(port):
    """Local addresses with a listening socket on port (/proc/net/tcp{,6})."""
    found = set()
    for name, v6 in (('/proc/net/tcp', False), ('/proc/net/tcp6', True)):
        try:
            rows = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            addr, p = f[1].split(':')
            if f[3] != '0A' or int(p, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if v6:
                raw = b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, raw))
            else:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
    return found


# The attack -----------------------------------------------------------------

class Junk:
    """Threads sending junk requests until `total` are sent and the sign-in
    is over; every answer is kept."""

    def __init__(self, port, total=1000, threads=4):
        self.port, self.total = port, total
        self.lock = threading.Lock()
        self.sent = 0
        self.answers = []
        self.login_over = threading.Event()
        self.stopping = threading.Event()
        payloads = list(hostile.junk_requests().items())
        rnd = random.Random(20261123)
        for i in range(20):
            payloads.append((f'random-{i}', bytes(rnd.getrandbits(8) for _ in range(600))))
        self.payloads = payloads
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        n = i
        while not self.stopping.is_set():
            with self.lock:
                if self.sent >= self.total and self.login_over.is_set():
                    return
                self.sent += 1
                enough = self.sent > self.total
            if enough:
                time.sleep(0.02)  # keep it flowing, gently, until the sign-in is over
            name, data = self.payloads[n % len(self.payloads)]
            n += len(self.threads)
            answer = raw_exchange('127.0.0.1', self.port, data, timeout=3)
            with self.lock:
                self.answers.append((name, answer))

    def join(self, timeout=60):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0, deadline - time.monotonic()))
        self.stopping.set()


def probe_all(port, state):
    """Every junk request once, plus near misses of this attempt's state;
    returns name -> status."""
    probes = dict(hostile.junk_requests())
    probes.update({
        'state-prefix': f'GET /?code=x&state={state[:-1]} HTTP/1.1\r\nHost: a\r\n\r\n'.encode(),
        'state-longer': f'GET /?code=x&state={state}x HTTP/1.1\r\nHost: a\r\n\r\n'.encode(),
        'state-twice': f'GET /?code=x&state={state}&state={state} HTTP/1.1\r\n'
                       'Host: a\r\n\r\n'.encode(),
        'state-in-path': f'GET /{state}?code=x HTTP/1.1\r\nHost: a\r\n\r\n'.encode(),
        'state-in-header': f'GET /?code=x HTTP/1.1\r\nHost: a\r\nState: {state}\r\n\r\n'
                           .encode(),
    })
    statuses = {}
    for name, data in probes.items():
        t = time.monotonic()
        statuses[name] = status_of(raw_exchange('127.0.0.1', port, data, timeout=5))
        if time.monotonic() - t > 0.5:
            print(f'probe {name} took {time.monotonic() - t:.1f} s')
    for name, data in hostile.incomplete_requests().items():
        statuses[name] = status_of(raw_exchange('127.0.0.1', port, data, timeout=0.5))
    return statuses


def test_real_login_completes_under_attack(tokend, authserver, attempts, tmp_path):
    before = code_exchanges(authserver)
    a = start_obtain(tokend, login_timeout=60)
    attempts.append(a)
    slow = Slowloris('127.0.0.1', a.port, n=50, interval=1.0)
    junk = None
    try:
        assert slow.opened == 50
        junk = Junk(a.port, total=1000)
        # Strangers, one of each, answered and refused while the attack runs.
        statuses = probe_all(a.port, a.state)
        print('probe statuses:', statuses)
        may_wait = set(hostile.incomplete_requests())
        wrong = {n: s for n, s in statuses.items()
                 if s not in REFUSALS and not (s is None and n in may_wait)}
        assert not wrong, wrong
        assert statuses['wrong-state'] == 400 and statuses['other-path'] == 404
        assert statuses['huge-url'] in (400, 414) and statuses['huge-headers'] in (400, 431)
        # Repeated requests change nothing.
        for _ in range(50):
            assert status_of(raw_exchange('127.0.0.1', a.port,
                                          hostile.junk_requests()['wrong-state'])) == 400
        wait_until(lambda: junk.sent >= 200, 60, 'the junk threads sent 200 requests')
        assert slow.alive() == 50, 'the slow connections were dropped'
        # Now the real user signs in, with the junk still flowing.
        t = time.monotonic()
        browser = run_browser(tokend, a.url, tmp_path / 'browser.log')
        junk.login_over.set()
        rc, out, err, seconds = finish(a)
        print(f'the sign-in took {time.monotonic() - t:.1f} s')
    finally:
        if junk:
            junk.login_over.set()
            junk.join()
        slow.close()
    print(f'obtain under attack: exit {rc} in {seconds:.1f} s; {junk.sent} junk requests, '
          f'{sum(1 for _, r in junk.answers if r)} answered')
    assert browser.returncode == 0, browser.stderr
    assert rc == EX_OK, err
    assert 'signed in' in err
    log = (tmp_path / 'browser.log').read_text()
    assert log.startswith('200') and 'Signed in' in log
    # No junk was ever taken for the sign-in.
    assert junk.sent >= 1000
    # (After the redirect arrived, the right path says "Already signed in"
    # to anyone until the listener closes.)
    assert not [n for n, r in junk.answers if SIGNED_IN in r]
    bad = {(n, status_of(r)) for n, r in junk.answers
           if r and status_of(r) not in REFUSALS and b'Already signed in' not in r
           and not (n == 'head' and status_of(r) == 200)}
    assert not bad, bad
    # The code was redeemed exactly once and the token works.
    assert code_exchanges(authserver) == before + 1
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']
    assert refused(a.port), 'the catcher still listens after the sign-in'


def test_replayed_callback_redeems_the_code_once(tokend, authserver, attempts, tmp_path):
    """The real redirect delivered ten times at once, then a forged one with
    this attempt's state: one is taken, the code is redeemed once."""
    before = code_exchanges(authserver)
    a = start_obtain(tokend, login_timeout=60)
    attempts.append(a)
    out = tmp_path / 'final'
    browser = run_browser(tokend, a.url, tmp_path / 'log', TOKEND_TEST_BROWSER_MODE='print',
                          TOKEND_TEST_BROWSER_OUT=str(out))
    assert browser.returncode == 0, browser.stderr
    final = urllib.parse.urlsplit(out.read_text().strip())
    request = f'GET {final.path}?{final.query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.encode()
    answers = []
    go = threading.Event()

    def deliver():
        go.wait()
        answers.append(raw_exchange('127.0.0.1', a.port, request, timeout=10))

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(20)
    forged = f'GET /?code=forged-code&state={a.state}&iss=x HTTP/1.1\r\nHost: a\r\n\r\n'.encode()
    late = raw_exchange('127.0.0.1', a.port, forged, timeout=5)
    rc, _, err, _ = finish(a)
    assert rc == EX_OK, err
    taken = [r for r in answers if SIGNED_IN in r]
    again = [r for r in answers if b'Already signed in' in r]
    assert len(taken) == 1, [r[:60] for r in answers]
    assert len(taken) + len(again) + answers.count(b'') == 10
    assert SIGNED_IN not in late
    assert code_exchanges(authserver) == before + 1
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']


def test_this_state_without_a_code_ends_the_attempt(tokend, authserver, attempts):
    """Whoever knows the state decides the attempt (only the browser does):
    no code means a clear failure, not a redemption of nothing."""
    before = code_exchanges(authserver)
    a = start_obtain(tokend, login_timeout=60)
    attempts.append(a)
    answer = raw_exchange('127.0.0.1', a.port,
                          f'GET /?state={a.state} HTTP/1.1\r\nHost: a\r\n\r\n'.encode())
    rc, _, err, seconds = finish(a)
    assert rc == EX_DATAERR, err
    assert 'no authorization code' in err and seconds < 10
    assert status_of(answer) == 200
    assert code_exchanges(authserver) == before
    assert not tokend.refresh_token_file().exists() and not tokend.token_file().exists()


def test_this_state_with_an_error_is_reported(tokend, authserver, attempts):
    before = code_exchanges(authserver)
    a = start_obtain(tokend, login_timeout=60)
    attempts.append(a)
    raw_exchange('127.0.0.1', a.port, f'GET /?error=access_denied&error_description=%1b%5b2J'
                 f'no&state={a.state} HTTP/1.1\r\nHost: a\r\n\r\n'.encode())
    rc, _, err, _ = finish(a)
    assert rc == EX_NOPERM, err
    assert '\x1b' not in err
    assert code_exchanges(authserver) == before


def test_login_timeout_with_slow_connections_open(tokend, attempts):
    """Nobody signs in; fifty slowloris connections and a few half-sent
    requests hold the catcher: obtain still gives up at login_timeout."""
    a = start_obtain(tokend, login_timeout=5)
    attempts.append(a)
    slow = Slowloris('127.0.0.1', a.port, n=50, interval=1.0)
    half = []
    print(f'slow connections open {time.monotonic() - a.started:.1f} s after the start')
    try:
        for data in (b'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc',
                     b'GET /?state=', b'\x16\x03\x01'):
            s = socket.create_connection(('127.0.0.1', a.port), timeout=2)
            s.sendall(data)
            half.append(s)
        rc, _, err, seconds = finish(a, timeout=30)
        alive = slow.alive()
    finally:
        slow.close()
        for s in half:
            s.close()
    print(f'login_timeout=5 with {alive} slow connections: exit {rc} in {seconds:.1f} s')
    assert rc == EX_TEMPFAIL, err
    assert 'no sign-in arrived within 5 s' in err
    assert seconds < 10
    assert refused(a.port)
    assert not tokend.token_file().exists()


# Another local user ---------------------------------------------------------

NOBODY = 65534
DELIVER = '''
import socket, sys
family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
got = b''
try:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((sys.argv[1], int(sys.argv[2])))
        s.sendall(sys.stdin.buffer.read())
        while chunk := s.recv(65536):
            got += chunk
except OSError as e:
    print(type(e).__name__, file=sys.stderr)
sys.stdout.buffer.write(got)
'''


def deliver_as(uid, host, port, request):
    """What a program of user uid gets back for request sent to host:port."""
    r = subprocess.run([sys.executable, '-c', DELIVER, host, str(port)], input=request,
                       capture_output=True, timeout=30, user=uid, group=uid, cwd='/',
                       env={'PATH': os.environ['PATH']})
    return r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to act as another user')
@pytest.mark.parametrize('redirect_uri,host', [(None, '127.0.0.1'),
                                               ('http://localhost/', '::1')])
def test_another_users_redirect_is_refused(tokend, authserver, attempts, tmp_path,
                                           redirect_uri, host):
    """Another local user who read the authorization URL (state included)
    signs in and delivers the redirect: the catcher closes the connection
    unanswered and keeps waiting; the real user's redirect then completes."""
    before = code_exchanges(authserver)
    a = start_obtain(tokend, options=['-v'], login_timeout=60, redirect_uri=redirect_uri)
    attempts.append(a)
    out = tmp_path / 'final'
    browser = run_browser(tokend, a.url, tmp_path / 'log', TOKEND_TEST_BROWSER_MODE='print',
                          TOKEND_TEST_BROWSER_OUT=str(out),
                          TOKEND_TEST_LOGIN='mallory')
    assert browser.returncode == 0, browser.stderr
    final = urllib.parse.urlsplit(out.read_text().strip())
    request = f'GET {final.path}?{final.query} HTTP/1.1\r\nHost: x\r\n\r\n'.encode()
    for _ in range(3):
        assert deliver_as(NOBODY, host, a.port, request) == b''
    # The catcher says each refusal (-v) as it closes the connection.
    refused_line = 'refused a connection from another user (uid 65534)'
    told = stderr_lines_until(a.proc, refused_line, timeout=10, count=3)
    assert sum(refused_line in line for line in told) == 3, ''.join(told)
    assert a.proc.poll() is None, 'obtain ended on the stranger\'s redirect'
    assert code_exchanges(authserver) == before
    # The real user signs in (as alice) and that redirect is taken.
    browser = run_browser(tokend, a.url, tmp_path / 'browser.log')
    assert browser.returncode == 0, browser.stderr
    rc, _, err, _ = finish(a)
    assert rc == EX_OK, err
    assert refused_line not in err, 'refused more than the stranger\'s three'
    assert (tmp_path / 'browser.log').read_text().startswith('200')
    assert code_exchanges(authserver) == before + 1
    token = authserver.introspect(tokend.token_file().read_text().strip())
    assert token['active'] and token['sub'] == 'alice', token


# A fixed port -----------------------------------------------------------------

def free_port_on_both():
    """A port free on 127.0.0.1 and ::1 (at the moment of asking)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
            s6.bind(('::1', 0))
            port = s6.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
                try:
                    s4.bind(('127.0.0.1', port))
                except OSError:
                    continue
        return port
    raise AssertionError('no port free on both loopbacks')


@pytest.mark.parametrize('taken', ['::1', '127.0.0.1'])
def test_fixed_port_taken_on_either_loopback_is_an_error(tokend, taken):
    """localhost is 127.0.0.1 and ::1 to the browser: with a fixed port,
    either one held by another program stops the sign-in before the URL is
    shown (whoever holds it would get the code)."""
    port = free_port_on_both()
    family = socket.AF_INET6 if ':' in taken else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as holder:
        holder.bind((taken, port))
        holder.listen(1)
        tokend.account(redirect_uri=f'http://localhost:{port}/', login_timeout=5)
        t = time.monotonic()
        r = tokend.run('obtain', 'work', '--no-browser', timeout=30)
        seconds = time.monotonic() - t
    print(r.stderr)
    assert r.returncode == EX_TEMPFAIL, r.stderr
    shown = '[::1]' if family == socket.AF_INET6 else '127.0.0.1'
    assert f'cannot listen on {shown} port {port}' in r.stderr
    assert 'leave the port out of redirect_uri' in r.stderr
    assert 'https://' not in r.stderr and seconds < 4
    assert not tokend.token_file().exists()


def leave_time_wait(host, port):
    """A connection to host:port that the listening side closes first, so
    the listening side's port stays in TIME_WAIT for a minute, as it does
    after the catcher answers a browser."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(1)
        client = socket.create_connection((host, port), timeout=5)
        server, _ = listener.accept()
        server.close()
        client.recv(1)
        client.close()


def time_wait_rows(port):
    rows = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for row in open(table).read().splitlines()[1:]:
            fields = row.split()
            if fields[3] == '06' and int(fields[1].rsplit(':', 1)[1], 16) == port:
                rows.append(row)
    return rows


def test_fixed_port_second_signin_within_a_minute(tokend, authserver):
    """The catcher closes the browser's connection itself, which leaves its
    port in TIME_WAIT for a minute: the next sign-in on the same fixed port
    must still be able to listen there. The TIME_WAIT is made here on both
    loopbacks before each sign-in, so the test does not depend on which side
    of the browser's connection happened to close first."""
    port = free_port_on_both()
    tokend.account(redirect_uri=f'http://localhost:{port}/', login_timeout=30)
    before = code_exchanges(authserver)
    for i in range(2):
        leave_time_wait('127.0.0.1', port)
        leave_time_wait('::1', port)
        waiting = time_wait_rows(port)
        print(f'{len(waiting)} connection(s) of port {port} in TIME_WAIT before sign-in {i + 1}')
        assert len(waiting) >= 2, 'the test did not make TIME_WAIT on both loopbacks'
        r = tokend.run('obtain', 'work')
        assert r.returncode == EX_OK, f'sign-in {i + 1}: {r.stderr}'
        assert f'localhost%3a{port}' in r.stderr.lower(), r.stderr
    assert code_exchanges(authserver) == before + 2


# Two sign-ins of one account -------------------------------------------------------

def test_second_obtain_while_one_runs_is_refused(tokend, authserver, attempts, tmp_path):
    """Two sign-ins of one account at once would both get a grant, and the
    one saved first would be overwritten and left at the server with nothing
    holding it: the second obtain is refused at once, saying who runs."""
    before = code_exchanges(authserver)
    a = start_obtain(tokend, login_timeout=60)
    attempts.append(a)
    for args in (('--no-browser',), ('--manual',), ('--device',)):
        t = time.monotonic()
        r = tokend.run('obtain', 'work', *args, input='', timeout=30)
        seconds = time.monotonic() - t
        print(f'second obtain {args[0]}: exit {r.returncode} in {seconds:.1f} s: {r.stderr}')
        assert r.returncode == EX_TEMPFAIL, r.stderr
        assert f'another tokend obtain (pid {a.proc.pid}) is signing in to this account' \
            in r.stderr
        assert 'finish or stop that sign-in first' in r.stderr
        assert 'https://' not in r.stderr and seconds < 5
    assert a.proc.poll() is None
    browser = run_browser(tokend, a.url, tmp_path / 'browser.log')
    assert browser.returncode == 0, browser.stderr
    rc, _, err, _ = finish(a)
    assert rc == EX_OK, err
    assert code_exchanges(authserver) == before + 1
    # Once it is over, the next sign-in goes ahead.
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert code_exchanges(authserver) == before + 2


def test_killed_obtain_does_not_block_the_next(tokend, authserver, attempts):
    a = start_obtain(tokend, login_timeout=60)
    attempts.append(a)
    a.proc.kill()
    a.proc.communicate()
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr


def stderr_lines_until(proc, marker, timeout, count=1):
    """Lines of a running process's stderr until count of them hold marker
    (or the timeout); the process keeps running."""
    got = queue.Queue()

    def pump():
        seen = 0
        for line in proc.stderr:
            got.put(line)
            seen += marker in line
            if seen == count:
                return

    threading.Thread(target=pump, daemon=True).start()
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines.append(got.get(timeout=deadline - time.monotonic()))
        except queue.Empty:
            break
        if sum(marker in line for line in lines) == count:
            break
    return lines


@pytest.mark.parametrize('query,reason', [
    ('code=s3cretcode&state=WRONG', 'does not belong to this sign-in'),
    ('code=s3cretcode&code=0therc0de&state={state}', 'two codes'),
])
def test_refused_redirect_is_told_at_once(tokend, authserver, attempts, query, reason):
    """The user waiting at the terminal learns at once why the redirect the
    browser delivered was refused (not after login_timeout), once, with no
    value of the request in it; the sign-in still waits for the right one."""
    a = start_obtain(tokend, login_timeout=60)
    attempts.append(a)
    request = f'GET /?{query.format(state=a.state)} HTTP/1.1\r\nHost: a\r\n\r\n'.encode()
    t = time.monotonic()
    for _ in range(3):
        assert status_of(raw_exchange('127.0.0.1', a.port, request)) == 400
    lines = stderr_lines_until(a.proc, 'refused a redirect', timeout=5)
    told = [line for line in lines if 'refused a redirect' in line]
    print(''.join(lines))
    assert told and reason in told[0] and time.monotonic() - t < 5
    assert told[0].startswith('tokend: ') and told[0].count('\n') == 1
    assert 's3cretcode' not in told[0] and '0therc0de' not in told[0]
    assert a.state not in told[0]
    assert a.proc.poll() is None, 'the sign-in stopped waiting'
    a.proc.kill()
    _, err = a.proc.communicate()
    assert 'refused a redirect' not in err, 'told more than once'
