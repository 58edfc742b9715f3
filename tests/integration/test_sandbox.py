"""The relaying tunnel's sandbox (src/base/sandbox.c), through the built
tokend against a TLS Dovecot that validates tokens at the test
authorization server.

- Long sessions keep working with it: imaplib (IMAP4_stream runs the
  tunnel as its connection) fetching big messages, IDLE seeing new mail,
  POP3 RETR of big messages, fetchmail 6.4 as a plugin; over implicit TLS
  and STARTTLS.  Any system call the filter lacks would kill tokend with
  SIGSYS, which the tests would see as a closed connection and exit -31.
- While relaying, /proc/PID/status shows the filter (Seccomp: 2) and
  NoNewPrivs: 1; tokend -v says which Landlock ABI it entered, the one the
  kernel reports, or that the kernel has none.
- The fault-injection build's TOKEND_FAULT=sandbox-open (a plain build,
  also when the rest runs under a sanitizer) makes the relay
  open a file once it is sandboxed: the kernel kills it with SIGSYS, the
  client sees the end of the stream, and the file is never created.

Under AddressSanitizer tokend runs without the sandbox (LeakSanitizer
needs /proc and ptrace at exit) and says so with -v: the checks of the
filter itself then check that line instead.
"""

import ctypes
import hashlib
import imaplib
import os
import re
import shlex
import shutil
import signal
import subprocess
import uuid

import pytest

from conftest import EX_OK, SANITIZER, TOKEND
from test_crash import fault_tokend, fault_tokend_binary  # noqa: F401 (fixtures)
from harness.authserver import SERVER_DIR
from harness.tunnelpeers import USER, deliver, dovecot_for, empty_inbox, tunnel
from harness.wait import wait_until

pytestmark = [
    pytest.mark.skipif(not shutil.which('dovecot'), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]

TIMEOUT = 60
SCOPES = 'openid offline_access mail.imap'
ASAN = any(s in (SANITIZER or '') for s in ('asan', 'address'))
BIG = 3 * 1024 * 1024


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver, pop3=True) as dc:
        yield dc


def sign_in(tokend, dc, tls):
    """tls: 'implicit' (the test's TLS ports) or 'starttls' (the plain ports)."""
    implicit = tls == 'implicit'
    tokend.account(scopes=SCOPES, imap_host=dc.host,
                   imap_port=dc.imaps_port if implicit else dc.imap_port,
                   pop_host=dc.host, pop_port=dc.pop3s_port if implicit else dc.pop3_port,
                   tunnel_tls=tls)
    tokend.obtain()


def message(size, subject=None):
    body = os.urandom(size // 2 + 1).hex()
    lines = '\r\n'.join(body[i:i + 76] for i in range(0, len(body), 76))
    return (f'From: carol@example.org\r\nTo: {USER}@example.org\r\n'
            f'Subject: {subject or uuid.uuid4().hex}\r\n'
            f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\n{lines}\r\n').encode()


def status_of(pid):
    fields = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            fields[key] = value.strip()
    return fields


def kernel_landlock_abi():
    """What landlock_create_ruleset(NULL, 0, VERSION) says: 0 without it."""
    libc = ctypes.CDLL(None, use_errno=True)
    # 444 on every architecture (the unified numbers of Linux 5.13 on).
    v = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(v, 0)


def assert_sandboxed(pid):
    """The tunnel enters the sandbox just after it greets the client."""
    if ASAN:
        assert status_of(pid)['Seccomp'] == '0'
        return
    def filtered():
        s = status_of(pid)
        return s if s['Seccomp'] == '2' else None

    s = wait_until(filtered, TIMEOUT, 'the tunnel entered its seccomp filter',
                   detail=lambda: status_of(pid))
    assert s['NoNewPrivs'] == '1', s


def assert_said_landlock(stderr):
    if ASAN:
        assert 'no sandbox in this AddressSanitizer build' in stderr, stderr
        return
    abi = kernel_landlock_abi()
    if abi:
        assert f'tunnel: Landlock ABI {abi}: no file access' in stderr, stderr
    else:
        assert 'tunnel: Landlock is not available in this kernel' in stderr, stderr
    assert 'tunnel: sandboxed: no new privileges, system calls filtered' in stderr, stderr


def memory_holds(pid, needles):
    """The names of the needles found in pid's readable memory.  Reading
    /proc/PID/mem of tokend (not dumpable: harden.c) takes CAP_SYS_PTRACE,
    which the tests have as root.  Mappings over 1 GiB are left out: the
    shadow memory of an AddressSanitizer build, which holds no data."""
    found = set()
    with open(f'/proc/{pid}/maps') as maps, open(f'/proc/{pid}/mem', 'rb', 0) as mem:
        for line in maps:
            start, end, perms = re.match(r'([0-9a-f]+)-([0-9a-f]+) (\S+)', line).groups()
            size = int(end, 16) - int(start, 16)
            if not perms.startswith('r') or line.rstrip().endswith('[vvar]') or size > 1 << 30:
                continue
            try:
                mem.seek(int(start, 16))
                data = mem.read(size)
            except OSError:
                continue
            found |= {name for name, needle in needles.items() if needle in data}
    return found


def test_relaying_tunnel_holds_no_secret(tokend, dovecot):
    """Neither the access token nor the refresh token is left in the
    memory of a relaying tunnel (the login's copies wiped before the
    sandbox), while the user name it greeted with is (the scan works)."""
    sign_in(tokend, dovecot, 'implicit')
    token = tokend.token_file().read_text().strip()
    refresh = tokend.stored_refresh_token().strip()
    with tunnel(tokend, 'work') as c:
        assert c.line(TIMEOUT).startswith('* PREAUTH '), c.proc.stderr
        assert_sandboxed(c.proc.pid)
        found = memory_holds(c.proc.pid, {'token': token.encode(), 'refresh': refresh.encode(),
                                          'user': f'as {USER}'.encode()})
        assert found == {'user'}, found


# (a) long sessions through the sandbox -------------------------------------------

class StreamIMAP(imaplib.IMAP4_stream):
    """imaplib with the tunnel as its connection: the tokend (launcher,
    then engine) runs under the pid of the shell that execs it."""

    def __init__(self, tokend, options=()):
        env = ' '.join(f'{k}={shlex.quote(v)}' for k, v in tokend.env.items())
        argv = [str(TOKEND), '-c', str(tokend.config), *options, 'tunnel', 'work']
        self.stderr_path = tokend.home / f'tunnel-{uuid.uuid4().hex}.err'
        super().__init__(f'exec env -i {env} {shlex.join(argv)} 2>{self.stderr_path}')

    def stderr(self):
        return self.stderr_path.read_text()


@pytest.mark.parametrize('tls', ['implicit', 'starttls'])
def test_imaplib_fetches_big_messages_sandboxed(tokend, dovecot, tls):
    sign_in(tokend, dovecot, tls)
    empty_inbox(dovecot)
    sent = [message(BIG), message(200), message(BIG // 3)]
    for m in sent:
        deliver(dovecot, m)
    m = StreamIMAP(tokend, options=('-v',))
    try:
        assert m.state == 'AUTH', m.welcome
        assert_sandboxed(m.process.pid)
        typ, data = m.select('INBOX')
        assert typ == 'OK', data
        got = []
        # Twice over: a long session of big reads both ways.
        for _ in range(2):
            for num in range(1, len(sent) + 1):
                typ, data = m.fetch(str(num), '(BODY.PEEK[])')
                assert typ == 'OK', data
                got.append(data[0][1])
            assert m.noop()[0] == 'OK'
        assert [hashlib.sha256(g).digest() for g in got] == \
            [hashlib.sha256(s).digest() for s in sent * 2]
        assert_sandboxed(m.process.pid)
        m.logout()
    finally:
        m.shutdown()
    assert m.process.wait(TIMEOUT) == EX_OK, m.stderr()
    assert_said_landlock(m.stderr())


@pytest.mark.parametrize('tls', ['implicit', 'starttls'])
def test_idle_sees_new_mail_sandboxed(tokend, dovecot, tls):
    sign_in(tokend, dovecot, tls)
    empty_inbox(dovecot)
    with tunnel(tokend, 'work', options=('-v',)) as c:
        assert c.line(TIMEOUT).startswith('* PREAUTH '), c.proc.stderr
        c.send('a SELECT INBOX\r\n')
        c.until('a')
        assert_sandboxed(c.proc.pid)
        for i in range(3):
            c.send(f'i{i} IDLE\r\n')
            assert c.line(TIMEOUT).startswith('+ '), 'no IDLE continuation'
            deliver(dovecot, message(100000))
            wait_until(lambda: c.line(TIMEOUT).endswith(f' {i + 1} EXISTS\r\n'), TIMEOUT,
                       f'IDLE announced message {i + 1}')
            c.send('DONE\r\n')
            c.until(f'i{i}')
        c.send('f FETCH 1:* (BODY.PEEK[])\r\n')
        assert c.until('f')[-1].startswith('f OK'), 'the fetch failed'
        c.send('z LOGOUT\r\n')
        c.until('z')
        assert c.wait() == EX_OK, c.stderr
    assert_said_landlock(c.stderr)


@pytest.mark.parametrize('tls', ['implicit', 'starttls'])
def test_pop3_retr_of_big_messages_sandboxed(tokend, dovecot, tls):
    sign_in(tokend, dovecot, tls)
    empty_inbox(dovecot)
    sent = [message(BIG), message(BIG // 2)]
    for m in sent:
        deliver(dovecot, m)
    with tunnel(tokend, 'work', '--pop3', options=('-v',)) as c:
        assert c.line(TIMEOUT) == '+OK tokend: logged in\r\n', c.proc.stderr
        assert_sandboxed(c.proc.pid)
        for num, m in enumerate(sent, 1):
            c.send(f'RETR {num}\r\n')
            assert c.line(TIMEOUT).startswith('+OK'), 'RETR refused'
            lines = []
            while (line := c.line(TIMEOUT)) != '.\r\n':
                assert line, 'the tunnel closed mid-message'
                lines.append(line[1:] if line.startswith('..') else line)
            assert hashlib.sha256(''.join(lines).encode()).digest() == \
                hashlib.sha256(m).digest()
        c.send('QUIT\r\n')
        assert c.line(TIMEOUT).startswith('+OK')
        assert c.wait() == EX_OK, c.stderr
    assert_said_landlock(c.stderr)


@pytest.mark.parametrize('pop3', [False, True], ids=['imap', 'pop3'])
def test_fetchmail_plugin_sandboxed(tokend, dovecot, tmp_path, pop3):
    sign_in(tokend, dovecot, 'implicit')
    empty_inbox(dovecot)
    sent = [message(BIG), message(5000), message(300000)]
    for m in sent:
        deliver(dovecot, m)
    r = tokend.run('snippet', 'work', 'fetchmail-pop3' if pop3 else 'fetchmail')
    assert r.returncode == EX_OK, r.stderr
    rc = tmp_path / 'fetchmailrc'
    rc.write_text(r.stdout)
    rc.chmod(0o600)
    out = tmp_path / 'out'
    out.mkdir()
    r = subprocess.run(['fetchmail', '-f', str(rc), '-d0', '--invisible', '--mda',
                        f'cat > {out}/msg.$$', '-v'],
                       capture_output=True, text=True, env=tokend.env, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(hashlib.sha256(p.read_bytes()).digest() for p in out.glob('msg.*'))
    assert got == sorted(hashlib.sha256(m.replace(b'\r\n', b'\n')).digest() for m in sent)
    assert 'SIGSYS' not in r.stdout + r.stderr and 'Bad system call' not in r.stderr


# (c) a sandboxed relay that opens a file -----------------------------------------

def test_relay_that_opens_a_file_is_killed(fault_tokend, dovecot, tmp_path):
    sign_in(fault_tokend, dovecot, 'implicit')
    probe = tmp_path / 'opened-by-the-relay'
    env = dict(fault_tokend.env, TOKEND_FAULT='sandbox-open', TOKEND_FAULT_LOG=str(probe))
    proc = subprocess.Popen([fault_tokend.binary, '-c', str(fault_tokend.config), '-v',
                             'tunnel', 'work'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode(errors='replace')
    # The client got its greeting, then the end of the stream.
    assert out.startswith(b'* PREAUTH '), out
    assert out.count(b'\n') == 1, out
    assert proc.returncode == -signal.SIGSYS, (proc.returncode, err)
    assert 'tunnel: sandboxed' in err, err
    assert not probe.exists(), probe.read_text()


def test_relay_opens_the_file_with_the_sandbox_off(fault_tokend, dovecot, tmp_path):
    """The same trigger without the sandbox (TOKEND_SANDBOX=off, said as a
    warning): the file is written, so the test above sees the sandbox."""
    sign_in(fault_tokend, dovecot, 'implicit')
    probe = tmp_path / 'opened-by-the-relay'
    env = dict(fault_tokend.env, TOKEND_FAULT='sandbox-open', TOKEND_FAULT_LOG=str(probe),
               TOKEND_SANDBOX='off')
    proc = subprocess.Popen([fault_tokend.binary, '-c', str(fault_tokend.config), 'tunnel',
                             'work'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate(b'a LOGOUT\r\n', timeout=TIMEOUT)
    assert proc.returncode == EX_OK, err
    assert probe.read_text() == 'sandbox-open: opened\n'
    assert b'TOKEND_SANDBOX=off: relaying without the sandbox' in err, err
