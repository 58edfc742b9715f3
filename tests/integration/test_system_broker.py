"""The system broker (issue 22): a reader of a system account's token file
(here a member of the account's token_file_group) whose token is stale
asks `tokend --system broker`, running as the service user behind
RUNTIME_DIR/broker, to refresh it, then reads the new token file.  The
broker runs here with --listen as the service user (the test machine has
no systemd as PID 1), and inetd style with a connection on its stdin, as
tokend-broker@.service runs it.

Users: the service user, a reader in the token group and the socket's
group, an outsider in the socket's group only (so that the broker's own
check of its SO_PEERCRED is what refuses it), and nobody, in neither.
Access tokens live ACCESS_TTL seconds and are stale MIN_VALIDITY seconds
before that, so a token turns stale during the test and a refreshed one
stays fresh long enough to be read."""

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_USAGE, TOKEND
from harness.authserver import AuthServer
from harness.wait import wait_until
from test_system_mode import System, made_users, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates users: needs root')

ACCESS_TTL = 40
MIN_VALIDITY = 30


def as_user(user, argv):
    pw = pwd.getpwnam(user)
    return ['setpriv', f'--reuid={pw.pw_uid}', f'--regid={pw.pw_gid}', '--init-groups',
            '--', *argv]


@pytest.fixture
def host():
    base = Path(tempfile.mkdtemp(prefix='tokend-broker-'))
    base.chmod(0o755)
    sockgroup = None
    try:
        with made_users() as (service, reader, outsider, group), \
                AuthServer(base / 'authserver', access_ttl=ACCESS_TTL) as srv:
            (base / 'authserver').chmod(0o755)
            sockgroup = group + 's'
            run('groupadd', '--system', sockgroup)
            for user in (service, reader, outsider):
                run('usermod', '-aG', sockgroup, user)
            s = System(base, srv, service)
            s.reader, s.outsider, s.group, s.sockgroup = reader, outsider, group, sockgroup
            # The timer refreshes what is due within min_validity, as the broker does.
            s.write(s.etc / 'config', f'[defaults]\nrefresh_margin = {MIN_VALIDITY}\n')
            s.account('work', token_file_group=group, min_validity=MIN_VALIDITY)
            r = s.tokend('obtain', 'work')
            assert r.returncode == EX_OK, r.stderr
            s.token_file = s.run_dir / 'work.token'
            yield s
    finally:
        if sockgroup:
            subprocess.run(['groupdel', sockgroup], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def broker(host):
    """`tokend --system broker --listen` as the service user; its log."""
    sock = host.run_dir / 'broker'
    log = host.base / 'broker.log'
    with open(log, 'w') as logf:
        proc = subprocess.Popen(
            as_user(host.service, [str(TOKEND), '--system', '-v', 'broker', '--listen',
                                   str(sock), '--group', host.sockgroup]),
            env=host.env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: sock.exists() or proc.poll() is not None, 20, 'the broker listens')
        assert proc.poll() is None, log.read_text()
        yield log
    finally:
        proc.terminate()
        proc.wait(10)
    assert not sock.exists()


def raw_request(host, user, sock):
    """'refresh work' sent by user over the socket: the answer line, or the
    name of the error connecting raised."""
    client = ('import socket, sys\n'
              's = socket.socket(socket.AF_UNIX)\n'
              'try:\n'
              '    s.connect(sys.argv[1])\n'
              'except OSError as e:\n'
              '    print(type(e).__name__, end=""); sys.exit(0)\n'
              's.sendall(b"refresh work\\n")\n'
              'print(s.makefile().readline(), end="")\n')
    r = subprocess.run(as_user(user, ['/usr/bin/python3', '-c', client, str(sock)]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def wait_stale(host):
    """Until the reader's token is stale (not valid MIN_VALIDITY more s)."""
    import json
    view = json.loads((host.run_dir / 'work.info').read_text())
    wait_until(lambda: time.time() >= view['expires_at'] - MIN_VALIDITY, ACCESS_TTL,
               'the token turned stale', interval=0.2)


def test_a_reader_with_a_stale_token_gets_a_fresh_one_through_the_broker(host):
    first = host.token_file.read_text()
    sock = host.run_dir / 'broker'
    with broker(host) as log:
        st = os.stat(sock)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == \
            (pwd.getpwnam(host.service).pw_uid, grp.getgrnam(host.sockgroup).gr_gid, 0o660)
        wait_stale(host)
        # In the socket's group, not the token's: it cannot read the
        # account's view, and the broker refuses it too; nothing changes.
        r = host.tokend('token', 'work', user=host.outsider)
        assert r.returncode == EX_NOPERM and r.stdout == '', r.stderr
        assert raw_request(host, host.outsider, sock) == \
            "77 this user may not read the account's token file\n"
        assert host.token_file.read_text() == first
        assert f'uid {pwd.getpwnam(host.outsider).pw_uid}: work: refused' in log.read_text()
        # In neither group: the socket itself is closed to it.
        assert raw_request(host, 'nobody', sock) == 'PermissionError'
        assert host.token_file.read_text() == first
        # The reader: through the launcher, a fresh token.
        r = host.tokend('token', 'work', user=host.reader)
        assert r.returncode == EX_OK, r.stderr + log.read_text()
        new = host.token_file.read_text()
        assert new != first and r.stdout == new
        assert host.srv.introspect(new.strip())['active']
        st = os.stat(host.token_file)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == \
            (pwd.getpwnam(host.service).pw_uid, grp.getgrnam(host.group).gr_gid, 0o640)
        assert 'work: refreshed' in log.read_text()
        # Fresh now: the same token, without a request.
        r = host.tokend('-v', 'token', 'work', user=host.reader)
        assert (r.returncode, r.stdout) == (EX_OK, new), r.stderr
    assert first.strip() not in log.read_text() and new.strip() not in log.read_text()


def test_the_timer_and_the_broker_at_once_refresh_once(host):
    """The broker's refresh takes the account's lock, as the timer's does:
    both at the same moment make one refresh request."""
    with broker(host):
        wait_stale(host)
        host.srv.reset_stats()
        results = {}

        def timer():
            results['timer'] = host.tokend('-q', 'refresh', user=host.service)

        t = threading.Thread(target=timer)
        t.start()
        r = host.tokend('token', 'work', user=host.reader)
        t.join(60)
        assert r.returncode == EX_OK, r.stderr
        assert results['timer'].returncode == EX_OK, results['timer'].stderr
    assert host.srv.stats()['token'].get('refresh_token', 0) == 1
    assert r.stdout == host.token_file.read_text()


def inetd(host, request, shut=True):
    """One request to `tokend --system broker` with the connection as its
    stdin and stdout (tokend-broker@.service), sent by root; the answer and
    the broker's exit status and log."""
    ours, theirs = socket.socketpair()
    with theirs:
        proc = subprocess.Popen(as_user(host.service, [str(TOKEND), '--system', 'broker']),
                                env=host.env, stdin=theirs, stdout=theirs,
                                stderr=subprocess.PIPE, text=True)
    with ours:
        ours.settimeout(30)
        ours.sendall(request)
        if shut:
            ours.shutdown(socket.SHUT_WR)
        answer = b''
        while not answer.endswith(b'\n'):
            chunk = ours.recv(512)
            if not chunk:
                break
            answer += chunk
    _, err = proc.communicate(timeout=30)
    return answer.decode(), proc.returncode, err


@pytest.mark.parametrize('request_line', [
    b'refresh\n', b'refresh work\r\n', b'REFRESH work\n', b'refresh  work\n',
    b'refresh work', b'refresh work\nrefresh work\n', b'refresh ../work\n',
    b'refresh wo\x00rk\n', b'refresh ' + b'w' * 65 + b'\n', b'refresh ' + b'w' * 4096 + b'\n',
    b'\n', b'',
], ids=['no-account', 'crlf', 'case', 'two-spaces', 'no-newline', 'two-lines', 'path',
        'nul', 'long-name', 'oversized', 'empty-line', 'nothing'])
def test_malformed_or_oversized_requests_are_refused(host, request_line):
    first = host.token_file.read_text()
    answer, status, err = inetd(host, request_line)
    assert answer.startswith('64 ') and status == EX_USAGE, (answer, err)
    assert 'malformed or oversized' in answer and 'refused' in err
    assert host.token_file.read_text() == first


def test_unknown_account_and_a_fresh_one_inetd_style(host):
    first = host.token_file.read_text()
    answer, status, err = inetd(host, b'refresh nosuch\n')
    assert (answer, status) == ('78 no such account\n', EX_CONFIG), err
    # Fresh: nothing to do, and said so.
    answer, status, err = inetd(host, b'refresh work\n')
    assert (answer, status) == ('0 fresh\n', EX_OK), err
    assert host.token_file.read_text() == first
    # Its stdin must be a unix socket connection.
    r = host.tokend('broker', user=host.service)
    assert r.returncode == EX_USAGE and 'not a unix socket' in r.stderr, r.stderr
    # Readers may not run it.
    r = host.tokend('broker', user=host.reader)
    assert r.returncode == EX_NOPERM, r.stderr


def test_broker_down_or_silent_is_75_for_the_reader(host):
    first = host.token_file.read_text()
    wait_stale(host)
    # No broker: at once.
    r = host.tokend('token', 'work', user=host.reader)
    assert r.returncode == EX_TEMPFAIL and 'cannot be reached' in r.stderr, r.stderr
    assert r.stdout == ''
    # A broker that takes the connection and never answers: the bounded wait.
    sock = host.run_dir / 'broker'
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(sock))
    sock.chmod(0o666)
    silent.listen(4)
    try:
        r = host.tokend('token', 'work', user=host.reader)
        assert r.returncode == EX_TEMPFAIL and 'did not answer in time' in r.stderr, r.stderr
    finally:
        silent.close()
        sock.unlink()
    assert host.token_file.read_text() == first
