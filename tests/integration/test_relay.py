"""`tokend relay`: local programs that only know passwords (Python's
smtplib, imaplib, poplib here; Postfix in test_relay_postfix.py) talk
SMTP, IMAP or POP3 to the built tokend, which logs in upstream to the real
Dovecot (submission, IMAP, POP3) with the account's token through the SASL
engine, validated by introspection at the test authorization server.

Two ways to run the relay are driven: inetd style (one connection on
stdin/stdout, as systemd's Accept=yes runs it), here a unix socketpair or
a TCP connection accepted by the test, and `--listen`, which starts one
such process per connection.  Dovecot's submission service relays to a
sink (harness/dovecot.py) that keeps each message as it came.
"""

import base64
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
from email.message import EmailMessage

import pytest

from conftest import EX_CONFIG, TOKEND
from harness.dovecot import free_port
from harness.tunnelpeers import USER, dovecot_for, logins, revoke_grant, wait_logged_in
from harness.wait import wait_until

SCOPES = 'openid offline_access mail.imap'
TIMEOUT = 30
# The test server's user is "alice" (no domain), which Dovecot submission
# refuses as a sender: her address is given as send_as.
SENDER = 'alice@example.org'


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver, pop3=True) as dc:
        yield dc


def sign_in(tokend, dc, extra='', **keys):
    keys.setdefault('send_as', SENDER)
    keys.setdefault('smtp_host', dc.host)
    keys.setdefault('smtp_port', dc.submission_port)
    keys.setdefault('imap_host', dc.host)
    keys.setdefault('imap_port', dc.imap_port)
    keys.setdefault('pop_host', dc.host)
    keys.setdefault('pop_port', dc.pop3_port)
    tokend.account(scopes=SCOPES, **keys)
    tokend.write_config(extra)
    tokend.obtain()
    return tokend.token_file().read_text().rstrip('\n')


def message(size=0, sender=SENDER):
    msg = EmailMessage()
    msg['From'] = sender
    msg['To'] = 'bob@example.org'
    msg['Subject'] = 'through the relay'
    msg.set_content('Hello through tokend relay.\n.leading dot\n' + 'x' * size + '\n')
    return msg.as_bytes().replace(b'\n', b'\r\n')


def relayed(got):
    """What the sink got, without the Received line Dovecot submission
    puts on top."""
    head, _, rest = got['data'].partition(b'\r\n')
    assert head.startswith(b'Received: '), got['data'][:200]
    while rest[:1] in (b' ', b'\t'):
        _, _, rest = rest.partition(b'\r\n')
    return rest


def wait_message(dc, count):
    wait_until(lambda: len(dc.messages()) >= count, 10, 'the sink got the message',
               detail=lambda: dc.log()[-2000:])
    return dc.messages()[count - 1]


class Session:
    """An inetd-style `tokend relay PROTO`: the test holds the other end of
    the socket that is the relay's stdin and stdout."""

    def __init__(self, tokend, proto, *options, family=socket.AF_UNIX, user=None):
        if family == socket.AF_UNIX:
            self.sock, theirs = socket.socketpair()
        else:
            lsock = socket.create_server(('127.0.0.1', 0))
            self.sock = socket.create_connection(lsock.getsockname())
            theirs, _ = lsock.accept()
            lsock.close()
        self.proc = subprocess.Popen([str(TOKEND), '-c', str(tokend.config), 'relay', *options,
                                      proto], stdin=theirs, stdout=theirs,
                                     stderr=subprocess.PIPE, env=tokend.env)
        theirs.close()
        self.sock.settimeout(TIMEOUT)
        self.buf = b''

    def line(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b''
                return line.decode(errors='replace')
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b'\n')
        return line.decode(errors='replace') + '\n'

    def reply(self):
        """One SMTP reply, its lines joined."""
        lines = [self.line()]
        while re.match(r'\d{3}-', lines[-1]):
            lines.append(self.line())
        return ''.join(lines)

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def command(self, text):
        self.send(text + '\r\n')
        return self.reply()

    def finish(self):
        self.sock.close()
        rc = self.proc.wait(TIMEOUT)
        self.stderr = self.proc.stderr.read().decode(errors='replace')
        return rc

    def close(self):
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()


@pytest.fixture
def session(tokend):
    made = []

    def make(proto='smtp', *options, **kw):
        s = Session(tokend, proto, *options, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def send_one(s, sender=SENDER, body=None, auth=None):
    assert s.reply().startswith('220 ')
    ehlo = s.command('EHLO client.example')
    assert ehlo.startswith('250-') and 'AUTH PLAIN LOGIN' in ehlo, ehlo
    if auth:
        r = s.command(auth)
        if not r.startswith('235 '):
            return r
    r = s.command(f'MAIL FROM:<{sender}>')
    if not r.startswith('250'):
        return r
    assert s.command('RCPT TO:<bob@example.org>').startswith('250')
    assert s.command('DATA').startswith('354')
    s.send((body or message()).replace(b'\r\n.', b'\r\n..') + b'.\r\n')
    return s.reply()


# SMTP ---------------------------------------------------------------------

def test_smtplib_through_listen_delivers_byte_identical(tokend, dovecot):
    token = sign_in(tokend, dovecot)
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    try:
        before = logins(dovecot, 'submission', 'OAUTHBEARER')
        count = len(dovecot.messages())
        msg = message(size=200000)
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        with smtplib.SMTP('127.0.0.1', port, timeout=TIMEOUT) as smtp:
            smtp.login(USER, 'the password is ignored')
            smtp.sendmail(SENDER, ['bob@example.org'], msg)
        got = wait_message(dovecot, count + 1)
        assert relayed(got) == msg
        assert got['mail_from'].startswith(f'<{SENDER}>')
        wait_logged_in(dovecot, 'submission', 'OAUTHBEARER', before)
    finally:
        relay.terminate()
        _, err = relay.communicate(timeout=TIMEOUT)
    assert token not in err


def _connects(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return True
    except OSError:
        return False


def test_inetd_style_relay_account_without_auth(tokend, dovecot, session):
    sign_in(tokend, dovecot, extra='[defaults]\nrelay_account = work\n')
    count = len(dovecot.messages())
    s = session('smtp')
    assert send_one(s).startswith('250 ')
    assert s.command('QUIT').startswith('221 ')
    assert s.finish() == 0, s.stderr
    assert relayed(wait_message(dovecot, count + 1)) == message()


def test_auth_login_by_account_name_over_loopback_tcp(tokend, dovecot, session):
    sign_in(tokend, dovecot)
    s = session('smtp', family=socket.AF_INET)
    assert s.reply().startswith('220 ')
    s.command('EHLO c')
    assert s.command('AUTH LOGIN').startswith('334 VXNlcm5hbWU6')
    assert s.command('d29yaw==').startswith('334 UGFzc3dvcmQ6')  # "work"
    assert s.command('c2VjcmV0').startswith('235 ')
    assert s.command(f'MAIL FROM:<{SENDER}>').startswith('250')


def test_mail_from_outside_username_and_send_as(tokend, dovecot, session):
    sign_in(tokend, dovecot, send_as=f'{SENDER} shared@example.org',
            extra='[defaults]\nrelay_account = work\n')
    s = session('smtp')
    r = send_one(s, sender='mallory@example.org')
    assert r.startswith('550 5.7.1 ') and 'send_as' in r, r
    r = s.command('MAIL FROM:<Shared@Example.org>')
    assert r.startswith('250'), r


def test_no_relay_account_needs_auth(tokend, dovecot, session):
    sign_in(tokend, dovecot)
    s = session('smtp')
    assert send_one(s).startswith('530 5.7.0 ')


def test_unknown_login_is_535(tokend, dovecot, session):
    sign_in(tokend, dovecot)
    s = session('smtp')
    plain = base64.b64encode(b'\0nobody@example.org\0pw').decode()
    r = send_one(s, auth=f'AUTH PLAIN {plain}')
    assert r.startswith('535 5.7.8 ') and 'nobody@example.org' in r, r


def test_signin_revoked_is_454_and_notify_runs(tokend, dovecot, session, authserver, tmp_path):
    flag = tmp_path / 'notified'
    sign_in(tokend, dovecot, notify_cmd=f'touch {flag}',
            extra='[defaults]\nrelay_account = work\n')
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    s = session('smtp')
    r = send_one(s)
    assert r.startswith('454 4.7.0 tokend: work: '), r
    assert 'tokend obtain work' in r, r
    wait_until(flag.exists, 10, 'notify_cmd ran')


def test_token_server_down_is_454(tokend, dovecot, session, make_authserver):
    srv = make_authserver()
    tokend.account(server=srv, scopes=SCOPES, send_as=SENDER, smtp_host=dovecot.host,
                   smtp_port=dovecot.submission_port)
    tokend.write_config('[defaults]\nrelay_account = work\n')
    tokend.obtain(env={'TOKEND_TEST_CA': srv.ca_file})
    srv.stop()
    state = tokend.state / 'work' / 'state.json'
    state.write_text(re.sub(r'"expires_at":\s*\d+', '"expires_at": 1', state.read_text()))
    s = session('smtp')
    r = send_one(s)
    assert r.startswith('454 4.7.0 tokend: work: '), r


def test_peer_not_allowed_then_allowed_by_relay_peers(tokend, dovecot):
    sign_in(tokend, dovecot)
    port = free_port()

    def as_nobody():
        code = ('import socket,sys; s=socket.create_connection(("127.0.0.1",%d)); '
                'sys.stdout.write(s.makefile("rb").readline().decode())' % port)
        return subprocess.run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups',
                               '/usr/bin/python3', '-c', code], capture_output=True, text=True,
                              timeout=TIMEOUT).stdout

    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    try:
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        greeting = as_nobody()
        assert greeting.startswith('554 5.7.1 tokend: uid ') and 'relay_peers' in greeting
        tokend.write_config('[defaults]\nrelay_peers = nobody\n')
        assert as_nobody().startswith('220 ')
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)


def test_listen_refuses_other_addresses(tokend, dovecot):
    sign_in(tokend, dovecot)
    r = tokend.run('relay', '--listen', f'0.0.0.0:{free_port()}', 'smtp')
    assert r.returncode == EX_CONFIG
    assert 'not a loopback address' in r.stderr and 'TLS' in r.stderr, r.stderr


def test_session_cap_refuses_cleanly(tokend, dovecot):
    sign_in(tokend, dovecot)
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', '--max-sessions=1', 'smtp')
    try:
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        sockets = []

        def first_session():
            # _connects above took the one session until that one ended.
            s = socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT)
            sockets.append(s)
            return s.makefile('rb').readline().startswith(b'220 ')
        wait_until(first_session, 10, 'one session starts')
        first = sockets[-1]

        def refused():
            s = socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT)
            line = s.makefile('rb').readline()
            s.close()
            return line.startswith(b'421 4.3.2 tokend: all 1 sessions')
        wait_until(refused, 10, 'a second session is refused with 421')
        first.close()
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)


# Bad input ----------------------------------------------------------------

def test_ten_megabyte_line_is_refused_and_the_session_goes_on(tokend, dovecot, session):
    sign_in(tokend, dovecot, extra='[defaults]\nrelay_account = work\n')
    s = session('smtp')
    assert s.reply().startswith('220 ')
    s.send(b'EHLO ' + b'a' * (10 * 1024 * 1024) + b'\r\n')
    assert s.reply().startswith('500 5.5.2 tokend: line too long')
    assert s.command('EHLO c').startswith('250-')
    assert s.command('NOOP \xe9t\xe9').startswith('500 5.5.2 ')
    s.send('NOOP\n')  # a bare LF ends a command line too
    assert s.reply().startswith('250 ')
    assert s.command('NO\rOP').startswith('500 5.5.2 ')


def test_stall_mid_data_is_bounded_and_sends_nothing(tokend, dovecot, session):
    sign_in(tokend, dovecot, extra='[defaults]\nrelay_account = work\n')
    count = len(dovecot.messages())
    s = session('smtp', '--timeout=2')
    assert s.reply().startswith('220 ')
    s.command('EHLO c')
    assert s.command(f'MAIL FROM:<{SENDER}>').startswith('250')
    assert s.command('RCPT TO:<bob@example.org>').startswith('250')
    assert s.command('DATA').startswith('354')
    s.send(b'Subject: half\r\n\r\nhalf a message')
    r = s.reply()
    assert r.startswith('421 4.4.2 tokend: the message was not sent'), r
    assert s.proc.wait(TIMEOUT) != 0
    assert len(dovecot.messages()) == count


def test_large_message_streams_in_constant_memory(tokend, dovecot, session):
    sign_in(tokend, dovecot, extra='[defaults]\nrelay_account = work\n')
    hwm = []
    for size in (1000, 30 * 1024 * 1024):
        count = len(dovecot.messages())
        s = session('smtp')
        assert send_one(s, body=message(size=size)).startswith('250 ')
        hwm.append(_vm_hwm_kib(s.proc.pid))
        s.command('QUIT')
        assert s.finish() == 0
        assert relayed(wait_message(dovecot, count + 1)) == message(size=size)
    assert hwm[1] - hwm[0] < 2048, hwm


def _vm_hwm_kib(pid):
    status = open(f'/proc/{pid}/status').read()
    return int(re.search(r'VmHWM:\s+(\d+) kB', status).group(1))


def test_disconnects_at_each_step_leave_no_process(tokend, dovecot, session):
    sign_in(tokend, dovecot, extra='[defaults]\nrelay_account = work\n')
    steps = ['', 'EHLO c', f'MAIL FROM:<{SENDER}>', 'RCPT TO:<bob@example.org>', 'DATA',
             'Subject: x']
    for n in range(len(steps) + 1):
        s = session('smtp')
        s.reply()
        for cmd in steps[1:n]:
            s.command(cmd) if cmd != 'Subject: x' else s.send(cmd + '\r\n')
        s.sock.close()
        s.proc.wait(TIMEOUT)


# IMAP and POP3 ------------------------------------------------------------

def test_imaplib_login_through_relay(tokend, dovecot):
    sign_in(tokend, dovecot)
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'imap')
    try:
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        before = logins(dovecot, 'imap', 'OAUTHBEARER')
        m = imaplib.IMAP4('127.0.0.1', port, timeout=TIMEOUT)
        typ, _ = m.login(USER, 'ignored')
        assert typ == 'OK'
        assert m.select('INBOX')[0] == 'OK'
        m.logout()
        wait_logged_in(dovecot, 'imap', 'OAUTHBEARER', before)
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)


def test_poplib_login_through_relay(tokend, dovecot):
    sign_in(tokend, dovecot)
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'pop3')
    try:
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        p = poplib.POP3('127.0.0.1', port, timeout=TIMEOUT)
        p.user('work')
        assert p.pass_('ignored').startswith(b'+OK')
        assert p.stat()[0] >= 0
        p.quit()
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)


# STARTTLS on loopback -------------------------------------------------------

def _starttls(s, cafile):
    """STARTTLS on a Session over TCP, verified against cafile."""
    assert s.reply().startswith('220 ')
    ehlo = s.command('EHLO c')
    assert '250-STARTTLS' in ehlo, ehlo
    assert s.command('STARTTLS').startswith('220 ')
    ctx = ssl.create_default_context(cafile=str(cafile))
    s.sock = ctx.wrap_socket(s.sock, server_hostname='localhost')
    return s.command('EHLO c')


def test_loopback_starttls_certificate_made_once_and_private(tokend, dovecot, session):
    sign_in(tokend, dovecot, extra='[defaults]\nrelay_account = work\n')
    folder = tokend.state / '_relay-tls'
    assert not folder.exists()
    # Unix sockets and pipes get no STARTTLS: nothing to protect there.
    s = session('smtp')
    assert s.reply().startswith('220 ') and 'STARTTLS' not in s.command('EHLO c')
    # Four sessions at once make it: one folder wins, whole, and all of
    # them serve its certificate.
    sessions = [session('smtp', family=socket.AF_INET) for _ in range(4)]
    for s in sessions:
        assert s.reply().startswith('220 ')
        assert '250-STARTTLS' in s.command('EHLO c')
        s.send('STARTTLS\r\n')
    for s in sessions:
        assert s.reply().startswith('220 ')
    wait_until((folder / 'cert.pem').exists, 10, 'the certificate is made')
    ctx = ssl.create_default_context(cafile=str(folder / 'cert.pem'))
    for s in sessions:
        s.sock = ctx.wrap_socket(s.sock, server_hostname='localhost')
        ehlo = s.command('EHLO c')
        assert 'STARTTLS' not in ehlo and 'AUTH PLAIN LOGIN' in ehlo, ehlo
    assert sorted(p.name for p in tokend.state.iterdir() if p.name.startswith('_relay')) == \
        ['_relay-tls']
    assert sorted(p.name for p in folder.iterdir()) == ['cert.pem', 'key.pem']
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / 'key.pem').stat().st_mode & 0o777 == 0o600
    names = subprocess.run(['openssl', 'x509', '-noout', '-ext', 'subjectAltName', '-in',
                            str(folder / 'cert.pem')], capture_output=True, text=True).stdout
    assert 'DNS:localhost' in names and 'IP Address:127.0.0.1' in names and \
        'IP Address:0:0:0:0:0:0:0:1' in names, names
    # A message through the TLS session, after the sandbox: byte-identical.
    count = len(dovecot.messages())
    s = sessions[0]
    assert s.command(f'MAIL FROM:<{SENDER}>').startswith('250')
    assert s.command('RCPT TO:<bob@example.org>').startswith('250')
    assert s.command('DATA').startswith('354')
    s.send(message().replace(b'\r\n.', b'\r\n..') + b'.\r\n')
    assert s.reply().startswith('250 ')
    assert relayed(wait_message(dovecot, count + 1)) == message()
    # Made once: a later session serves the same certificate.
    before = (folder / 'cert.pem').read_bytes()
    again = session('smtp', family=socket.AF_INET)
    assert 'AUTH PLAIN LOGIN' in _starttls(again, folder / 'cert.pem')
    assert (folder / 'cert.pem').read_bytes() == before


def test_starttls_drops_what_came_before_the_handshake(tokend, dovecot, session):
    """Commands pipelined behind STARTTLS in plain text are not run inside
    the TLS session (RFC 3207 4.2)."""
    sign_in(tokend, dovecot, extra='[defaults]\nrelay_account = work\n')
    tokend.run('snippet', 'work', 'msmtp-relay')  # makes the certificate
    s = session('smtp', family=socket.AF_INET)
    assert s.reply().startswith('220 ')
    s.command('EHLO c')
    s.send('STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n')
    assert s.reply().startswith('220 ')
    ctx = ssl.create_default_context(cafile=str(tokend.state / '_relay-tls' / 'cert.pem'))
    s.sock = ctx.wrap_socket(s.sock, server_hostname='localhost')
    assert s.command('NOOP').startswith('250 ')  # not the injected MAIL's answer
    assert s.command('RSET').startswith('250 ')
