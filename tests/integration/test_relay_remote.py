"""`tokend relay` for clients on other machines: TLS (the configured
certificate and key) before any login, and the account's password checked
against its relay_password_hash (yescrypt, made by `tokend
relay-password`); without them the relay refuses to start, saying why.

"Another machine" is an address that is not loopback: the test makes a
network namespace (as root; nothing of it is visible outside) whose
loopback device also carries 192.0.2.1 and 192.0.2.2 (TEST-NET-1), and
creates its sockets in there through a helper that passes them back over
a unix socket.  Sessions run as systemd's Accept=yes starts them: the test
accepts on 192.0.2.1 and hands the connection to `tokend relay PROTO` as
stdin and stdout; that process stays in the test's own namespace, where
Dovecot (submission, IMAP, POP3) is, so a good password ends with the
message delivered and the mailbox opened.  `tokend relay --listen
192.0.2.1:PORT` itself runs inside the namespace.
"""

import base64
import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys

import pytest

from conftest import EX_CONFIG, EX_USAGE, TOKEND
from harness import netns
from harness.tunnelpeers import USER, dovecot_for, logins, wait_logged_in
from harness.wait import wait_until

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=f'network namespace: {netns.available()}')

SCOPES = 'openid offline_access mail.imap'
SENDER = 'alice@example.org'
PASSWORD = 'correct horse battery staple'
SERVER = '192.0.2.1'
CLIENT = '192.0.2.2'
TIMEOUT = 30

# Runs inside the namespace: a new TCP socket, passed back over the unix
# socket whose descriptor is its argument.
MAKE_SOCKET = '''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
socket.send_fds(socket.socket(fileno=int(sys.argv[1])), [b"s"], [s.fileno()])
'''


class Namespace:
    """A network namespace with 192.0.2.1 and .2 on its loopback device."""

    def __init__(self):
        self.holder = subprocess.Popen(['unshare', '--net', 'sleep', 'infinity'],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        own = os.readlink('/proc/self/ns/net')
        wait_until(lambda: self._entered(own), 10, 'unshare entered a network namespace')
        for cmd in (['ip', 'link', 'set', 'lo', 'up'],
                    ['ip', 'addr', 'add', f'{SERVER}/32', 'dev', 'lo'],
                    ['ip', 'addr', 'add', f'{CLIENT}/32', 'dev', 'lo']):
            self.run(cmd, check=True)

    def _entered(self, own):
        try:
            return os.readlink(f'/proc/{self.holder.pid}/ns/net') != own and \
                open(f'/proc/{self.holder.pid}/cmdline', 'rb').read().startswith(b'sleep')
        except OSError:
            return False

    def command(self, argv):
        return ['nsenter', '-t', str(self.holder.pid), '-n', '--', *[str(a) for a in argv]]

    def run(self, argv, check=False, **kw):
        kw.setdefault('capture_output', True)
        kw.setdefault('text', True)
        r = subprocess.run(self.command(argv), timeout=TIMEOUT, **kw)
        assert not check or r.returncode == 0, r.stderr
        return r

    def popen(self, argv, **kw):
        return subprocess.Popen(self.command(argv), **kw)

    def socket(self):
        """A TCP socket of the namespace (bind and connect use its addresses)."""
        ours, theirs = socket.socketpair()
        with theirs:
            r = subprocess.run(self.command([sys.executable, '-c', MAKE_SOCKET,
                                             theirs.fileno()]),
                               pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stderr
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        ours.close()
        return socket.socket(fileno=fds[0])

    def close(self):
        self.holder.kill()
        self.holder.wait()


@pytest.fixture(scope='module')
def ns():
    n = Namespace()
    yield n
    n.close()


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver, pop3=True) as dc:
        yield dc


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    """A test CA and the relay's certificate for relay.test (and its key)."""
    return netns.make_host_certs(tmp_path_factory.mktemp('relaycerts'), ['relay.test'])


def password_hash(tokend, password=PASSWORD):
    r = tokend.run('relay-password', 'work', input=password + '\n')
    assert r.returncode == 0, r.stderr
    assert password not in r.stdout + r.stderr
    line = r.stdout.strip()
    assert line.startswith('relay_password_hash = $y$'), line
    return line.split(' = ', 1)[1]


@pytest.fixture
def remote(tokend, dovecot, certs):
    """Signs in; the config gets the relay's TLS and the account's hash."""
    ca, cert, key = certs
    tokend.account(scopes=SCOPES, send_as=SENDER, smtp_host=dovecot.host,
                   smtp_port=dovecot.submission_port, imap_host=dovecot.host,
                   imap_port=dovecot.imap_port, pop_host=dovecot.host,
                   pop_port=dovecot.pop3_port)
    tokend.write_config()
    tokend.obtain()
    tokend.hash = password_hash(tokend)
    configure(tokend, cert, key, tokend.hash, relay_account='work')
    return tokend


def configure(tokend, cert=None, key=None, hashed=None, relay_account=None):
    extra = '[defaults]\n'
    extra += f'relay_tls_certificate = {cert}\n' if cert else ''
    extra += f'relay_tls_key = {key}\n' if key else ''
    extra += f'relay_account = {relay_account}\n' if relay_account else ''
    text = tokend.config.read_text().split('[defaults]\n')[0]
    text = ''.join(line for line in text.splitlines(keepends=True)
                   if not line.startswith('relay_password_hash'))
    if hashed:
        text = text.replace('[account work]\n', f'[account work]\nrelay_password_hash = {hashed}\n')
    tokend.config.write_text(text + extra)


class Activation:
    """systemd's Accept=yes on SERVER in the namespace: each connection
    accepted here becomes stdin and stdout of `tokend relay PROTO`."""

    def __init__(self, ns, tokend, proto, *options):
        self.ns, self.tokend, self.proto, self.options = ns, tokend, proto, options
        self.lsock = ns.socket()
        self.lsock.bind((SERVER, 0))
        self.lsock.listen()
        self.port = self.lsock.getsockname()[1]
        self.procs = []

    def connect(self):
        """A client socket from CLIENT, already served by a relay process."""
        c = self.ns.socket()
        c.bind((CLIENT, 0))
        c.settimeout(TIMEOUT)
        c.connect((SERVER, self.port))
        conn, peer = self.lsock.accept()
        assert peer[0] == CLIENT
        with conn:
            self.procs.append(subprocess.Popen(
                [str(TOKEND), '-c', str(self.tokend.config), 'relay', *self.options, self.proto],
                stdin=conn, stdout=conn, stderr=subprocess.PIPE, env=self.tokend.env))
        return c

    def stderr(self):
        out = ''
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            out += p.communicate(timeout=TIMEOUT)[1].decode(errors='replace')
        return out

    def close(self):
        self.stderr()
        self.lsock.close()


@pytest.fixture
def activation(ns):
    made = []

    def make(tokend, proto, *options):
        a = Activation(ns, tokend, proto, *options)
        made.append(a)
        return a
    yield make
    for a in made:
        a.close()


def client_context(certs):
    return ssl.create_default_context(cafile=str(certs[0]))


class SMTP(smtplib.SMTP):
    """smtplib on a socket already connected (in the namespace)."""

    def __init__(self, sock):
        self.presock = sock
        super().__init__('relay.test', 25, timeout=TIMEOUT)

    def _get_socket(self, host, port, timeout):
        return self.presock


class IMAP(imaplib.IMAP4):
    def __init__(self, sock):
        self.presock = sock
        super().__init__('relay.test', 143, timeout=TIMEOUT)

    def _create_socket(self, timeout):
        return self.presock


class POP3(poplib.POP3):
    def __init__(self, sock):
        self.presock = sock
        super().__init__('relay.test', 110, timeout=TIMEOUT)

    def _create_socket(self, timeout):
        return self.presock


def message(marker):
    return (f'From: {SENDER}\r\nTo: bob@example.org\r\nSubject: remote {marker}\r\n\r\n'
            f'sent from another machine\r\n').encode()


def sink_has(dc, marker):
    return any(marker.encode() in m['data'] for m in dc.messages())


# SMTP ---------------------------------------------------------------------

def test_smtp_starttls_then_password_delivers(remote, dovecot, certs, activation):
    a = activation(remote, 'smtp')
    before = logins(dovecot, 'submission', 'OAUTHBEARER')
    with SMTP(a.connect()) as smtp:
        code, text = smtp.ehlo('client.example')
        assert code == 250 and smtp.has_extn('starttls') and not smtp.has_extn('auth'), text
        code, text = smtp.docmd('AUTH', 'PLAIN ' + base64.b64encode(
            f'\0work\0{PASSWORD}'.encode()).decode())
        assert code == 530 and b'STARTTLS' in text, text
        smtp.starttls(context=client_context(certs))
        smtp.ehlo('client.example')
        assert smtp.has_extn('auth') and not smtp.has_extn('starttls')
        smtp.login(USER, PASSWORD)
        smtp.sendmail(SENDER, ['bob@example.org'], message('starttls'))
    wait_until(lambda: sink_has(dovecot, 'remote starttls'), 10, 'the sink got the message')
    wait_logged_in(dovecot, 'submission', 'OAUTHBEARER', before)
    assert PASSWORD not in a.stderr()


def test_smtp_wrong_password_is_535_and_nothing_goes_upstream(remote, dovecot, certs,
                                                             activation):
    a = activation(remote, 'smtp')
    before = logins(dovecot, 'submission', 'OAUTHBEARER')
    with SMTP(a.connect()) as smtp:
        smtp.starttls(context=client_context(certs))
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            smtp.login('work', 'not the password')
        assert err.value.smtp_code == 535 and b'wrong password' in err.value.smtp_error
        # relay_account is for local programs: another machine must log in.
        code, text = smtp.docmd('MAIL', f'FROM:<{SENDER}>')
        assert code == 530, text
    assert logins(dovecot, 'submission', 'OAUTHBEARER') == before
    log = a.stderr()
    assert 'wrong password for work' in log and 'not the password' not in log


def test_smtp_implicit_tls_and_auth_login(remote, dovecot, certs, activation):
    a = activation(remote, 'smtp', '--tls=implicit')
    sock = client_context(certs).wrap_socket(a.connect(), server_hostname='relay.test')
    with SMTP(sock) as smtp:
        smtp.ehlo('client.example')
        assert smtp.has_extn('auth') and not smtp.has_extn('starttls')
        smtp.login(SENDER, PASSWORD)  # AUTH PLAIN or LOGIN, by the address
        smtp.sendmail(SENDER, ['bob@example.org'], message('implicit'))
    wait_until(lambda: sink_has(dovecot, 'remote implicit'), 10, 'the sink got the message')


def test_smtp_auth_login_checks_the_password(remote, certs, activation):
    a = activation(remote, 'smtp')
    with SMTP(a.connect()) as smtp:
        smtp.starttls(context=client_context(certs))
        smtp.ehlo('client.example')
        code, _ = smtp.docmd('AUTH LOGIN', base64.b64encode(b'work').decode())
        assert code == 334
        code, text = smtp.docmd(base64.b64encode(b'wrong').decode())
        assert code == 535 and b'wrong password' in text, text
        code, _ = smtp.docmd('AUTH LOGIN', base64.b64encode(b'work').decode())
        code, text = smtp.docmd(base64.b64encode(PASSWORD.encode()).decode())
        assert code == 235, text


# IMAP and POP3 ------------------------------------------------------------

def test_imap_logindisabled_until_starttls(remote, dovecot, certs, activation):
    a = activation(remote, 'imap')
    m = IMAP(a.connect())
    assert 'LOGINDISABLED' in m.capabilities and 'STARTTLS' in m.capabilities
    typ, data = m._simple_command('LOGIN', 'work', m._quote(PASSWORD))
    assert typ == 'NO' and b'PRIVACYREQUIRED' in data[-1], data
    m.starttls(ssl_context=client_context(certs))
    assert 'LOGINDISABLED' not in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match='wrong password'):
        m.login('work', 'wrong')
    before = logins(dovecot, 'imap', 'OAUTHBEARER')
    assert m.login(USER, PASSWORD)[0] == 'OK'
    assert m.select('INBOX')[0] == 'OK'
    m.logout()
    wait_logged_in(dovecot, 'imap', 'OAUTHBEARER', before)


def test_pop3_stls_then_user_pass(remote, certs, activation):
    a = activation(remote, 'pop3')
    p = POP3(a.connect())
    assert 'STLS' in p.capa()
    with pytest.raises(poplib.error_proto, match='STLS first'):
        p.user('work')
    p.stls(context=client_context(certs))
    p.user('work')
    with pytest.raises(poplib.error_proto, match='wrong password'):
        p.pass_('wrong')
    p.user('work')
    assert p.pass_(PASSWORD).startswith(b'+OK')
    assert p.stat()[0] >= 0
    p.quit()


# Refusals -----------------------------------------------------------------

def test_session_from_another_machine_without_tls_config_is_refused(remote, activation):
    configure(remote, hashed=remote.hash)  # no certificate, no key
    a = activation(remote, 'smtp')
    c = a.connect()
    greeting = c.makefile('rb').readline().decode()
    assert greeting.startswith('421 4.3.2 tokend: the relay serves other machines only over '
                               'TLS'), greeting
    assert 'relay_tls_certificate' in greeting, greeting


@pytest.mark.parametrize('case', ['no tls', 'no key', 'unreadable key', 'no hash',
                                  'weak hash'])
def test_listen_on_another_address_refuses_to_start(remote, certs, ns, case, tmp_path):
    ca, cert, key = certs
    if case == 'no tls':
        configure(remote, hashed=remote.hash)
        why = 'set relay_tls_certificate and relay_tls_key'
    elif case == 'no key':
        configure(remote, cert=cert, hashed=remote.hash)
        why = 'set relay_tls_certificate and relay_tls_key'
    elif case == 'unreadable key':
        configure(remote, cert=cert, key=tmp_path / 'missing.key', hashed=remote.hash)
        why = 'cannot use the certificate'
    elif case == 'no hash':
        configure(remote, cert=cert, key=key)
        why = 'no account has a relay_password_hash'
    else:  # sha512crypt: a hash, but not yescrypt
        configure(remote, cert=cert, key=key,
                  hashed='$6$rounds=5000$saltsalt$' + 'A' * 86)
        why = 'no account has a relay_password_hash'
    r = ns.run([TOKEND, '-c', remote.config, 'relay', '--listen', f'{SERVER}:2587', 'smtp'],
               env=remote.env)
    assert r.returncode == EX_CONFIG, r.stderr
    assert f'--listen {SERVER}:2587: not a loopback address' in r.stderr, r.stderr
    assert 'only over TLS with a password per account' in r.stderr and why in r.stderr, r.stderr


def test_listen_on_another_address_with_tls_and_hash(remote, certs, ns):
    """--listen itself, inside the namespace: it starts, offers STARTTLS,
    wants the password (no upstream there: a good one gets a 454)."""
    port = 2587
    relay = ns.popen([TOKEND, '-c', remote.config, 'relay', '--listen', f'{SERVER}:{port}',
                      'smtp'], env=remote.env, stderr=subprocess.PIPE)
    try:
        def listening():
            return f'{SERVER}:{port}' in ns.run(['ss', '-ltnH']).stdout
        wait_until(listening, 10, 'the relay listens on 192.0.2.1')
        s = ns.socket()
        s.settimeout(TIMEOUT)
        s.connect((SERVER, port))
        with SMTP(s) as smtp:
            smtp.ehlo('client.example')
            assert smtp.has_extn('starttls') and not smtp.has_extn('auth')
            smtp.starttls(context=client_context(certs))
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login('work', 'wrong')
            code, text = smtp.docmd('AUTH', 'PLAIN ' + base64.b64encode(
                f'\0work\0{PASSWORD}'.encode()).decode())
            assert code == 454, text
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)


def test_relay_password_reads_no_argv_and_refuses_empty(remote):
    r = remote.run('relay-password', 'work', input='\n')
    assert r.returncode == EX_USAGE and 'empty' in r.stderr
    r = remote.run('relay-password', 'work', 'extra', input=PASSWORD + '\n')
    assert r.returncode == EX_USAGE
    # Each hash has its own salt.
    assert password_hash(remote) != remote.hash
