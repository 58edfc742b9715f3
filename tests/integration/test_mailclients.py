"""The real mail clients log in with what tokend hands out, against Dovecot
validating the tokens at the test authorization server by introspection.

Two Dovecots share the session's authorization server: one offers XOAUTH2
and OAUTHBEARER (like Gmail), the other only XOAUTH2 (like Exchange Online).
Each client is configured with what `tokend snippet work CLIENT` prints: the
recipe templates in doc/recipes/*.in, compiled into tokend, filled in from the
account (test_snippet.py checks the two are the same text), the same text the
recipes show (test_recipe_shows_its_template checks that).

What each client does here:
- curl: `--oauth2-bearer` (the token on stdin through `-K -`, never in argv)
  lists the mailboxes; curl picks OAUTHBEARER when offered, else XOAUTH2.
- Python imaplib and smtplib: the SASL initial response is exactly what
  `tokend token --format xoauth2|oauthbearer [--service smtp]` printed.
- msmtp: `passwordeval` runs `tokend token`, `auth xoauth2` and `auth
  oauthbearer`, and the message reaches Dovecot's relay.
- `tokend check`: logs in to IMAP and SMTP itself; a refused token is exit 77
  with the server's words.
- mutt 2.2 and neomutt: send in batch mode (stdin not a tty) through
  `smtp_oauth_refresh_command`, and read the IMAP INBOX through
  `imap_oauth_refresh_command` inside a detached tmux (mutt's index needs a
  terminal), polled with capture-pane for at most 10 s.
- mbsync (isync 1.4): `AuthMechs XOAUTH2` through Cyrus SASL with the KDE
  XOAUTH2 plugin (libsasl2-modules-kdexoauth2), `PassCmd` running tokend,
  syncs INBOX into a Maildir.
- getmail6: `use_xoauth2 = True` with `password_command` running tokend
  (getmail strips the trailing newline itself) retrieves INBOX into a Maildir.
- fetchmail 7: not packaged; Debian 12's fetchmail 6.4.37 has no OAuth
  (`auth oauthbearer` in a fetchmailrc: "syntax error at oauthbearer"), so
  what fetchmail 7 relies on is tested instead:
  the passwordfile contract (bare token and exactly one "\\n", re-read after
  every refresh, never seen empty or half-written by a reader polling it),
  and the recipe's fetchmailrc drives a small poll written after fetchmail
  7's rules (first line of the passwordfile, OAUTHBEARER, falling back to
  XOAUTH2 when the server does not offer it).
- a timer's cycle against a server whose tokens live 3 s, and notify_cmd when
  the refresh token is dead: notify_cmd runs once per lost sign-in, not at
  every tick of the timer.

Why IMAP readers go through TLS here: mutt and neomutt use OAUTHBEARER and
XOAUTH2 for IMAP only on an encrypted connection (mutt's imap_auth_xoauth2()
and imap_auth_oauthbearer() return "unavailable" while conn->ssf is 0, and
mutt says "No authenticators available"); the harness's Dovecot speaks plain
text, so a small TLS relay (TlsRelay, with the authorization server's
certificate for 127.0.0.1) stands in front of it, like port 993 of
outlook.office365.com.  mbsync, getmail and the fetchmail poll use the same
relay, so their recipes are the real implicit-TLS ones.

Why the Dovecots live in /tmp/tokend-dovecot-* rather than under pytest's
basetemp: their mail processes run as nobody and must search every folder
above their mail, and each pytest that starts on the machine (another
session's run, say) chmods /tmp/pytest-of-USER back to 0700.  Under the
basetemp, mailbox access then fails with "NO [SERVERBUG] Internal error" in
the middle of this module.
"""

import base64
import contextlib
import imaplib
import os
import re
import select
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import EX_NOPERM, EX_OK, REPO
from harness.authserver import SERVER_DIR
from harness.dovecot import MAIL_USER, Dovecot, open_path_to
from harness.proxy import CountingProxy
from harness.wait import wait_until

RECIPES = REPO / 'doc' / 'recipes'
CLIENT_TIMEOUT = 30
SCOPES = 'openid offline_access mail.imap mail.smtp'
USER = 'alice'

pytestmark = [
    pytest.mark.skipif(not shutil.which('dovecot'), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]


def needs(*programs):
    missing = [p for p in programs if not shutil.which(p)]
    return pytest.mark.skipif(bool(missing), reason=f'needs {", ".join(missing)}')


# Recipes ---------------------------------------------------------------

RECIPE_TEMPLATES = [
    ('msmtp.md', 'msmtprc.in'),
    ('mutt.md', 'muttrc.in'),
    ('isync.md', 'mbsyncrc.in'),
    ('getmail.md', 'getmailrc.in'),
    ('fetchmail7.md', 'fetchmailrc.in'),
    *[('relay.md', t) for t in ('postfix-relay.in', 'msmtprc-relay.in', 'muttrc-relay.in',
                                'fetchmailrc-relay.in', 'fetchmailrc-relay-pop3.in',
                                'gitconfig-relay.in')],
]


def snippet(tokend, client, *options):
    """What `tokend [options] snippet work CLIENT` prints."""
    r = tokend.run(*options, 'snippet', 'work', client)
    assert r.returncode == EX_OK, r.stderr
    assert not re.findall(r'@[A-Z_]+@', r.stdout), r.stdout
    return r.stdout


@pytest.mark.parametrize('recipe,template', RECIPE_TEMPLATES)
def test_recipe_shows_its_template(recipe, template):
    text = (RECIPES / recipe).read_text()
    assert (RECIPES / template).read_text() in text, \
        f'{recipe} must show {template} verbatim, placeholders and all'


# Servers -----------------------------------------------------------------

class TlsRelay:
    """Implicit TLS on a free port of 127.0.0.1, relayed in plain text to a
    port of Dovecot (which the harness runs without TLS)."""

    def __init__(self, target_port, cert_file, key_file):
        self.target = ('127.0.0.1', target_port)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert_file, key_file)
        self.sock = socket.create_server(('127.0.0.1', 0))
        self.host, self.port = self.sock.getsockname()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, raw):
        try:
            raw.settimeout(10)
            with self.ctx.wrap_socket(raw, server_side=True) as tls, \
                    socket.create_connection(self.target, timeout=10) as up:
                while True:
                    ready = [tls] if tls.pending() else select.select([tls, up], [], [], 30)[0]
                    if not ready:
                        return
                    for s in ready:
                        data = s.recv(65536)
                        if not data:
                            return
                        (up if s is tls else tls).sendall(data)
        except (OSError, ssl.SSLError):
            pass  # a client that hung up; it sees the error itself
        finally:
            raw.close()

    def stop(self):
        self.sock.close()


@contextlib.contextmanager
def shared_dir(prefix):
    """A scratch folder that user nobody can reach, outside pytest's basetemp:
    every pytest that starts on this machine (another session's, say) chmods
    /tmp/pytest-of-USER back to 0700, taking away the search permission that
    Dovecot's mail processes and getmail's delivery (user nobody) need."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def dovecot_for(srv, **kw):
    with shared_dir('tokend-dovecot-') as workdir, \
            Dovecot(workdir, srv.introspection_url, ca_file=srv.ca_file, **kw) as dc:
        yield dc


@pytest.fixture(scope='module')
def dovecot(authserver):
    """Offers XOAUTH2 and OAUTHBEARER."""
    with dovecot_for(authserver) as dc:
        yield dc


@pytest.fixture(scope='module')
def exchange(authserver):
    """Offers only XOAUTH2, as Exchange Online does."""
    with dovecot_for(authserver, mechanisms=('xoauth2',)) as dc:
        yield dc


@pytest.fixture(scope='module')
def tls(authserver, dovecot, exchange):
    """IMAP over implicit TLS: {'dovecot': relay, 'exchange': relay}."""
    relays = {name: TlsRelay(dc.imap_port, authserver.cert_file, authserver.key_file)
              for name, dc in (('dovecot', dovecot), ('exchange', exchange))}
    yield relays
    for r in relays.values():
        r.stop()


@pytest.fixture(params=['dovecot', 'exchange'])
def server(request):
    return request.param, request.getfixturevalue(request.param)


# Helpers -------------------------------------------------------------------

def sign_in(tokend, dc, **keys):
    """An account for dc's IMAP and submission (or the hosts in keys),
    signed in as alice; returns the access token."""
    tokend.account(**dict(dict(scopes=SCOPES, imap_host=dc.host, imap_port=dc.imap_port,
                               smtp_host=dc.host, smtp_port=dc.submission_port), **keys))
    tokend.obtain()
    return tokend.token_file().read_text().rstrip('\n')


def token_output(tokend, *args):
    r = tokend.run('token', 'work', *args, timeout=CLIENT_TIMEOUT)
    assert r.returncode == EX_OK, r.stderr
    return r.stdout


def sasl_output(tokend, *args):
    """The SASL initial response `tokend token --format ...` printed, as the
    raw bytes (imaplib and smtplib base64-encode them themselves)."""
    out = token_output(tokend, *args)
    assert out.endswith('\n') and out.count('\n') == 1, out
    return base64.b64decode(out[:-1], validate=True)


def run(argv, env, input=None, cwd=None):
    return subprocess.run(argv, input=input, capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=CLIENT_TIMEOUT)


def logins(dc, service, method):
    return dc.log().count(f'{service}-login: Info: Login: user=<{USER}>, method={method},')


def assert_logged_in(dc, service, method, before):
    """Dovecot logged one more login of alice with method (its log
    process writes a moment later)."""
    wait_until(lambda: logins(dc, service, method) > before, 3,
               f'dovecot logged a {service} login with {method}',
               detail=lambda: dc.log()[-2000:])


def xoauth2(user, token):
    return f'user={user}\x01auth=Bearer {token}\x01\x01'.encode()


def oauthbearer(user, token, host, port):
    return f'n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01'.encode()


def answers(initial):
    """imaplib authobject: initial, then \\x01 to the error challenge (RFC 7628)."""
    sent = []

    def step(challenge):
        if sent:
            return b'\x01'
        sent.append(1)
        return initial
    return step


def new_message(dc, token, subject):
    """Puts a message into alice's INBOX on dc (through IMAP APPEND)."""
    m = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    try:
        m.authenticate('XOAUTH2', answers(xoauth2(USER, token)))
        msg = (f'From: carol@example.org\r\nTo: {USER}@example.org\r\n'
               f'Subject: {subject}\r\nMessage-ID: <{uuid.uuid4()}@example.org>\r\n\r\n'
               'hello\r\n').encode()
        typ, data = m.append('INBOX', None, None, msg)
        assert typ == 'OK', data
    finally:
        m.logout()


def unique(what):
    return f'tokend-{what}-{uuid.uuid4().hex[:12]}'


def select_inbox(m, dc):
    typ, data = m.select('INBOX')
    assert typ == 'OK', (data, dc.log()[-3000:])
    return int(data[0])


def relayed(dc, marker):
    return [m for m in dc.messages() if marker.encode() in m['data']]


def maildir_messages(path):
    return [p.read_bytes() for sub in ('new', 'cur') for p in (Path(path) / sub).glob('*')]


# curl ----------------------------------------------------------------------

@needs('curl')
def test_curl_lists_inbox_with_oauth2_bearer(tokend, server):
    name, dc = server
    sign_in(tokend, dc)
    token = token_output(tokend).rstrip('\n')
    method = 'OAUTHBEARER' if name == 'dovecot' else 'XOAUTH2'
    before = logins(dc, 'imap', method)
    config = (f'url = "imap://{USER}@{dc.host}:{dc.imap_port}/"\n'
              f'oauth2-bearer = "{token}"\n'
              'silent\nshow-error\nmax-time = 10\n')
    argv = ['curl', '-K', '-']
    r = run(argv, tokend.env, input=config)
    assert r.returncode == 0, r.stderr
    assert re.search(r'^\* LIST .* "?INBOX"?\r?$', r.stdout, re.M), r.stdout
    assert token not in ' '.join(argv)
    assert_logged_in(dc, 'imap', method, before)


# Python imaplib and smtplib ------------------------------------------------

def test_imaplib_xoauth2_with_tokend_initial_response(tokend, server):
    name, dc = server
    token = sign_in(tokend, dc)
    initial = sasl_output(tokend, '--format', 'xoauth2')
    assert initial == xoauth2(USER, token)
    before = logins(dc, 'imap', 'XOAUTH2')
    m = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    try:
        assert ('AUTH=OAUTHBEARER' in m.capabilities) == (name == 'dovecot')
        assert m.authenticate('XOAUTH2', answers(initial))[0] == 'OK'
        select_inbox(m, dc)
    finally:
        m.logout()
    assert_logged_in(dc, 'imap', 'XOAUTH2', before)


def test_imaplib_oauthbearer_carries_host_and_port(tokend, dovecot):
    token = sign_in(tokend, dovecot)
    initial = sasl_output(tokend, '--format', 'oauthbearer')
    assert initial == oauthbearer(USER, token, dovecot.host, dovecot.imap_port)
    assert f'\x01host={dovecot.host}\x01port={dovecot.imap_port}\x01'.encode() in initial
    before = logins(dovecot, 'imap', 'OAUTHBEARER')
    m = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert m.authenticate('OAUTHBEARER', answers(initial))[0] == 'OK'
        select_inbox(m, dovecot)
    finally:
        m.logout()
    assert_logged_in(dovecot, 'imap', 'OAUTHBEARER', before)


def test_smtplib_oauthbearer_for_submission(tokend, dovecot):
    token = sign_in(tokend, dovecot)
    initial = sasl_output(tokend, '--format', 'oauthbearer', '--service', 'smtp').decode()
    assert initial == oauthbearer(USER, token, dovecot.host,
                                  dovecot.submission_port).decode()
    marker = unique('smtplib')
    with smtplib.SMTP(dovecot.host, dovecot.submission_port, timeout=10) as s:
        s.ehlo()
        code, _ = s.auth('OAUTHBEARER', lambda challenge=None:
                         initial if challenge is None else '\x01')
        assert code == 235
        s.sendmail(f'{USER}@example.org', ['bob@example.org'],
                   f'Subject: {marker}\r\n\r\nhello\r\n')
    assert relayed(dovecot, marker)


# msmtp ---------------------------------------------------------------------

def msmtprc(tokend, dc, path, *options):
    text = snippet(tokend, 'msmtp', *options)
    # The test's Dovecot speaks no TLS, and its user has no @: accounts
    # derived from the snippet's.
    text += (f'\naccount test : work\ntls off\ntimeout 10\nfrom {USER}@example.org\n'
             '\naccount test-oauthbearer : test\nauth oauthbearer\n')
    path.write_text(text)
    path.chmod(0o600)
    return path


@needs('msmtp')
@pytest.mark.parametrize('account,dc_name,method', [
    ('test', 'dovecot', 'XOAUTH2'),
    ('test', 'exchange', 'XOAUTH2'),
    ('test-oauthbearer', 'dovecot', 'OAUTHBEARER'),
])
def test_msmtp_sends_with_passwordeval(tokend, request, tmp_path, account, dc_name, method):
    dc = request.getfixturevalue(dc_name)
    sign_in(tokend, dc)
    rc = msmtprc(tokend, dc, tmp_path / 'msmtprc')
    marker = unique('msmtp')
    before = logins(dc, 'submission', method)
    r = run(['msmtp', '-C', str(rc), '-a', account, 'bob@example.org'], tokend.env,
            input=f'Subject: {marker}\n\nsent by msmtp\n')
    assert r.returncode == 0, r.stderr
    [sent] = relayed(dc, marker)
    assert sent['mail_from'].startswith(f'<{USER}@example.org>')
    assert sent['rcpt_tos'] == ['<bob@example.org>']
    assert_logged_in(dc, 'submission', method, before)


@needs('msmtp')
def test_msmtp_snippet_carries_the_config_file(tokend, dovecot, tmp_path):
    """`tokend -c FILE snippet`: the client runs tokend with that file, its
    path quoted for the shell inside msmtp's double quotes."""
    config = tmp_path / 'my "mail" $setup' / 'tokend.conf'
    config.parent.mkdir()
    tokend.config = config
    tokend.account(scopes=SCOPES, smtp_host=dovecot.host, smtp_port=dovecot.submission_port)
    r = tokend.run('-c', str(config), 'obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    rc = msmtprc(tokend, dovecot, tmp_path / 'msmtprc', '-c', str(config))
    assert '-c \'' in rc.read_text(), rc.read_text()
    marker = unique('msmtp-c')
    r = run(['msmtp', '-C', str(rc), '-a', 'test', 'bob@example.org'], tokend.env,
            input=f'Subject: {marker}\n\nsent by msmtp\n')
    assert r.returncode == 0, r.stderr
    assert relayed(dovecot, marker)


# tokend check ----------------------------------------------------------------

def test_check_logs_in_to_imap_and_smtp(tokend, dovecot):
    sign_in(tokend, dovecot)
    r = tokend.run('check', 'work', timeout=CLIENT_TIMEOUT)
    assert r.returncode == EX_OK, r.stderr
    assert f'work: IMAP login to {dovecot.host}:{dovecot.imap_port} as {USER}: ok' in r.stdout
    assert f'work: SMTP login to {dovecot.host}:{dovecot.submission_port} as {USER}: ok' \
        in r.stdout


def test_check_of_a_loopback_server_ignores_proxies(tokend, dovecot):
    sign_in(tokend, dovecot)
    proxy = CountingProxy()
    try:
        r = tokend.run('check', 'work', timeout=CLIENT_TIMEOUT, env=proxy.env())
        assert r.returncode == EX_OK, r.stderr
        assert proxy.asked == []
    finally:
        proxy.close()


def test_check_reports_a_refused_token_with_the_server_words(tokend, dovecot):
    # The cached token is good for an hour, far more than min_validity: check
    # uses what the file holds without refreshing.
    sign_in(tokend, dovecot, min_validity=120)
    bogus = 'bogus-' + uuid.uuid4().hex
    tokend.token_file().write_text(bogus + '\n')
    r = tokend.run('check', 'work', '--imap', timeout=CLIENT_TIMEOUT)
    assert r.returncode == EX_NOPERM, r.stderr
    assert r.stderr.startswith('tokend: work: IMAP login to 127.0.0.1 refused the token')
    assert 'NO [AUTHENTICATIONFAILED]' in r.stderr
    r2 = tokend.run('check', 'work', '--smtp', timeout=CLIENT_TIMEOUT)
    assert r2.returncode == EX_NOPERM, r2.stderr
    assert 'SMTP login to 127.0.0.1 refused the token (535 ' in r2.stderr
    for out in (r, r2):
        assert bogus not in out.stdout + out.stderr
        assert len(out.stderr.splitlines()) == 1


# mutt and neomutt --------------------------------------------------------------

def muttrc(tokend, dc, tmp_path, relay, ca_file, mutt):
    rc = tmp_path / 'muttrc-recipe'
    rc.write_text(snippet(tokend, mutt))
    main = tmp_path / 'muttrc'
    main.write_text(f'source "{rc}"\n'
                    # the test's own: a private CA, no caches, no saved copies
                    f'set ssl_ca_certificates_file = "{ca_file}"\n'
                    'set ssl_force_tls = no\n'
                    f'set from = "{USER}@example.org"\n'
                    'set record = ""\nset header_cache = ""\nset message_cachedir = ""\n'
                    'set sort = reverse-date-received\nset mail_check_stats = no\n'
                    'set sleep_time = 0\n')
    return main


@pytest.mark.parametrize('mutt', ['mutt', 'neomutt'])
def test_mutt_sends_in_batch_mode(tokend, server, tls, authserver, tmp_path, mutt):
    if not shutil.which(mutt):
        pytest.skip(f'needs {mutt}')
    name, dc = server
    sign_in(tokend, dc, imap_host=tls[name].host, imap_port=tls[name].port)
    rc = muttrc(tokend, dc, tmp_path, tls[name], authserver.ca_file, mutt)
    marker = unique(mutt)
    before = logins(dc, 'submission', 'XOAUTH2')
    # stdin is the body, not a tty: mutt sends without asking anything.
    r = run([mutt, '-n', '-F', str(rc), '-s', marker, 'bob@example.org'], tokend.env,
            input=f'sent by {mutt}\n', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [sent] = relayed(dc, marker)
    assert sent['rcpt_tos'] == ['<bob@example.org>']
    assert f'sent by {mutt}'.encode() in sent['data']
    assert_logged_in(dc, 'submission', 'XOAUTH2', before)


class Tmux:
    """A private tmux server (its own socket) running one program."""

    def __init__(self, env):
        self.dir = tempfile.mkdtemp(prefix='tokend-tmux-')  # short socket path
        self.socket = os.path.join(self.dir, 's')
        self.env = dict(env, TERM='xterm')

    def tmux(self, *args):
        return subprocess.run(['tmux', '-S', self.socket, *args], capture_output=True,
                              text=True, env=self.env, timeout=10)

    def start(self, argv):
        r = self.tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'mail', '-x', '150',
                      '-y', '50', ' '.join(argv))
        assert r.returncode == 0, r.stderr

    def screen(self):
        return self.tmux('capture-pane', '-p', '-t', 'mail').stdout

    def wait_for(self, text, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.05)
        return None

    def running(self):
        return self.tmux('has-session', '-t', 'mail').returncode == 0

    def quit(self):
        """Presses q and waits until the client has ended."""
        self.tmux('send-keys', '-t', 'mail', 'q')
        wait_until(lambda: not self.running(), 5, 'the client quit on q', interval=0.05,
                   detail=self.screen)

    def close(self):
        self.tmux('kill-server')
        shutil.rmtree(self.dir, ignore_errors=True)


@needs('tmux')
@pytest.mark.parametrize('mutt', ['mutt', 'neomutt'])
def test_mutt_reads_imap_in_tmux(tokend, exchange, tls, authserver, tmp_path, mutt):
    if not shutil.which(mutt):
        pytest.skip(f'needs {mutt}')
    relay = tls['exchange']
    token = sign_in(tokend, exchange, imap_host=relay.host, imap_port=relay.port)
    subject = unique(f'{mutt}-imap')
    new_message(exchange, token, subject)
    rc = muttrc(tokend, exchange, tmp_path, relay, authserver.ca_file, mutt)
    before = logins(exchange, 'imap', 'XOAUTH2')
    term = Tmux(tokend.env)
    try:
        started = time.monotonic()
        term.start([mutt, '-n', '-F', str(rc)])
        screen = term.wait_for(subject, 10)
        assert screen is not None, f'{mutt} did not show the INBOX: {term.screen()}'
        assert time.monotonic() - started < 10
        term.quit()
    finally:
        term.close()
    assert_logged_in(exchange, 'imap', 'XOAUTH2', before)


# isync -------------------------------------------------------------------------

def kde_xoauth2_plugin():
    return any(Path(d).glob('libkdexoauth2.so*') for d in
               ('/usr/lib/x86_64-linux-gnu/sasl2', '/usr/lib/aarch64-linux-gnu/sasl2',
                '/usr/lib/sasl2'))


@needs('mbsync')
@pytest.mark.skipif(not kde_xoauth2_plugin(), reason='needs libsasl2-modules-kdexoauth2')
def test_mbsync_syncs_inbox_with_sasl_xoauth2(tokend, exchange, tls, authserver, tmp_path):
    relay = tls['exchange']
    token = sign_in(tokend, exchange, imap_host=relay.host, imap_port=relay.port)
    subject = unique('mbsync')
    new_message(exchange, token, subject)
    maildir = tokend.home / 'Mail' / 'work'  # the snippet's ~/Mail/ACCOUNT
    maildir.mkdir(parents=True)
    rc = tmp_path / 'mbsyncrc'
    rc.write_text(snippet(tokend, 'mbsync'))
    before = logins(exchange, 'imap', 'XOAUTH2')
    r = run(['mbsync', '-c', str(rc), 'work'], tokend.env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(subject.encode() in m for m in maildir_messages(maildir / 'INBOX'))
    assert_logged_in(exchange, 'imap', 'XOAUTH2', before)


# getmail -------------------------------------------------------------------------

@contextlib.contextmanager
def getmail_maildir():
    """Yields (Maildir, getmailrc [destination] for it).  getmail refuses to
    deliver as root: under root it delivers as user nobody."""
    with shared_dir('tokend-getmail-') as shared:
        maildir = shared / 'Maildir'
        for sub in ('new', 'cur', 'tmp'):
            (maildir / sub).mkdir(parents=True)
        destination = f'[destination]\ntype = Maildir\npath = {maildir}/\n'
        if os.geteuid() == 0:
            destination += f'user = {MAIL_USER}\n'
            for d in (maildir, *maildir.iterdir()):
                shutil.chown(d, MAIL_USER)
            open_path_to(maildir)
        yield maildir, destination


@needs('getmail')
def test_getmail_retrieves_with_xoauth2(tokend, exchange, tls, authserver, tmp_path):
    relay = tls['exchange']
    token = sign_in(tokend, exchange, imap_host=relay.host, imap_port=relay.port)
    subject = unique('getmail')
    new_message(exchange, token, subject)
    state = tmp_path / 'getmail-state'
    state.mkdir()
    rc = tmp_path / 'getmailrc'
    before = logins(exchange, 'imap', 'XOAUTH2')
    with getmail_maildir() as (maildir, destination):
        rc.write_text(snippet(tokend, 'getmail') + '\n' + destination + '\n[options]\nread_all = true\ndelete = false\n')
        r = run(['getmail', '--getmaildir', str(state), '--rcfile', str(rc)], tokend.env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert any(subject.encode() in m for m in maildir_messages(maildir))
    assert_logged_in(exchange, 'imap', 'XOAUTH2', before)


# fetchmail 7 ---------------------------------------------------------------------

def read_passwordfile(path):
    """As fetchmail 7 reads its passwordfile at every poll: at most 10000
    bytes, the text up to the first newline."""
    with open(path, 'rb') as f:
        data = f.read(10000)
    return data.split(b'\n', 1)[0]


def fetchmail7_poll(rc_text, ca_file):
    """One poll after fetchmail 7's rules, from the recipe's fetchmailrc:
    returns (the mechanism used, messages in the folder)."""
    poll = re.search(r'^poll (\S+) protocol IMAP port (\d+)$', rc_text, re.M)
    user = re.search(r'auth oauthbearer username "([^"]+)"', rc_text).group(1)
    pwfile = re.search(r'passwordfile "([^"]+)"', rc_text).group(1)
    folder = re.search(r'folders (\S+)', rc_text).group(1)
    assert 'sslmode wrapped sslcertck' in rc_text
    host, port = poll.group(1), int(poll.group(2))
    token = read_passwordfile(pwfile).decode('ascii')
    assert token, 'an empty first line makes fetchmail skip the poll'
    ctx = ssl.create_default_context(cafile=ca_file)
    m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=10)
    try:
        if 'AUTH=OAUTHBEARER' in m.capabilities:
            mech, initial = 'OAUTHBEARER', oauthbearer(user, token, host, port)
        else:
            mech, initial = 'XOAUTH2', xoauth2(user, token)
        m.authenticate(mech, answers(initial))
        typ, data = m.select(folder, readonly=True)
        assert typ == 'OK'
        return mech, int(data[0])
    finally:
        m.logout()


def test_fetchmail7_recipe_polls_with_the_token_file(tokend, server, tls, authserver):
    name, dc = server
    relay = tls[name]
    sign_in(tokend, dc, imap_host=relay.host, imap_port=relay.port)
    rc = snippet(tokend, 'fetchmail7')
    before = logins(dc, 'imap', 'OAUTHBEARER' if name == 'dovecot' else 'XOAUTH2')
    mech, _ = fetchmail7_poll(rc, authserver.ca_file)
    # fetchmail 7 tries OAUTHBEARER, and XOAUTH2 where only that is offered.
    assert mech == ('OAUTHBEARER' if name == 'dovecot' else 'XOAUTH2')
    assert_logged_in(dc, 'imap', mech, before)


def assert_passwordfile_shape(data):
    assert data.endswith(b'\n') and not data.endswith(b'\n\n'), data
    assert b'\r' not in data and data.count(b'\n') == 1, data
    assert re.fullmatch(rb'[\x21-\x7e]+\n', data), data


def imap_login(dc, token):
    m = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    try:
        return m.authenticate('XOAUTH2', answers(xoauth2(USER, token)))[0]
    finally:
        m.shutdown()


def test_token_file_is_a_fetchmail_passwordfile(tokend, dovecot):
    sign_in(tokend, dovecot)
    path = tokend.token_file()
    first = path.read_bytes()
    assert_passwordfile_shape(first)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert imap_login(dovecot, read_passwordfile(path).decode()) == 'OK'
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    second = path.read_bytes()
    assert_passwordfile_shape(second)
    assert second != first
    # The next poll reads the file again and logs in with the new token.
    assert imap_login(dovecot, read_passwordfile(path).decode()) == 'OK'


def test_token_file_is_never_seen_half_written(tokend, dovecot):
    sign_in(tokend, dovecot)
    path = tokend.token_file()
    written = {path.read_bytes()}
    seen, bad, reads = set(), [], [0]
    stop = threading.Event()

    def reader():
        # open, read, close in a tight loop, as fetchmail does at each poll
        while not stop.is_set():
            try:
                with open(path, 'rb') as f:
                    data = f.read(10000)
            except FileNotFoundError as e:
                bad.append(repr(e))
                continue
            reads[0] += 1
            if not re.fullmatch(rb'[\x21-\x7e]+\n', data):
                bad.append(data)
            seen.add(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for _ in range(50):
            r = tokend.run('refresh', '--force', 'work')
            assert r.returncode == EX_OK, r.stderr
            written.add(path.read_bytes())
    finally:
        stop.set()
        t.join(10)
    assert not bad, bad[:3]
    assert len(written) == 51
    assert seen <= written, seen - written
    assert reads[0] > 50 and len(seen) > 1, (reads[0], len(seen))


# A timer's cycle -------------------------------------------------------------------

def test_timer_refresh_renews_an_expired_token(tokend, make_authserver):
    srv = make_authserver(access_ttl=3)
    tokend.server = srv
    tokend.env['TOKEND_TEST_CA'] = srv.ca_file
    with dovecot_for(srv) as dc:
        tokend.account(server=srv, scopes=SCOPES, refresh_margin=1,
                       imap_host=dc.host, imap_port=dc.imap_port)
        tokend.obtain()
        old = read_passwordfile(tokend.token_file()).decode()
        assert imap_login(dc, old) == 'OK'
        tokend.wait_expired(srv, old)
        with pytest.raises(imaplib.IMAP4.error, match=r'\[AUTHENTICATIONFAILED\]'):
            imap_login(dc, old)
        r = tokend.run('refresh')  # what the timer runs
        assert r.returncode == EX_OK, r.stderr
        new = read_passwordfile(tokend.token_file()).decode()
        assert new != old
        assert imap_login(dc, new) == 'OK'


# notify_cmd ----------------------------------------------------------------------------

def test_notify_cmd_runs_when_the_refresh_token_is_dead(tokend, authserver, tmp_path):
    out = tmp_path / 'notified'
    script = tmp_path / 'notify'
    script.write_text('#!/bin/sh\n'
                      f'{{ printf "argv:"; printf " %s" "$0" "$@"; echo; env; }} > "{out}"\n')
    script.chmod(0o755)
    tokend.account(notify_cmd=f'{script} --from-tokend', refresh_margin=7200)
    tokend.obtain()
    access = tokend.token_file().read_text().strip()
    dead = tokend.stored_refresh_token().strip()
    # Use the stored refresh token, then replay it: oidc-provider revokes
    # the whole grant, so the refresh token tokend holds is dead.
    status, rotated = authserver.refresh(dead)
    assert status == 200
    status, body = authserver.refresh(dead)
    assert status == 400 and body['error'] == 'invalid_grant'

    r = tokend.run('refresh')  # the token expires within refresh_margin: due
    assert r.returncode == EX_NOPERM, r.stderr
    assert 'run: tokend obtain work' in r.stderr
    text = out.read_text()
    env = dict(line.split('=', 1) for line in text.splitlines()[1:] if '=' in line)
    assert text.splitlines()[0] == f'argv: {script} --from-tokend'
    assert env['TOKEND_ACCOUNT'] == 'work'
    assert env['TOKEND_COMMAND'] == 'tokend obtain work'
    assert env['TOKEND_REASON']
    for secret in (access, dead, rotated['refresh_token'], rotated['access_token']):
        assert secret not in text
    # Nothing stored was lost on the way.
    assert tokend.stored_refresh_token().strip() == dead
    assert tokend.token_file().read_text().strip() == access


def test_notify_cmd_runs_once_per_lost_signin(tokend, authserver, tmp_path):
    out = tmp_path / 'notified'
    script = tmp_path / 'notify'
    script.write_text(f'#!/bin/sh\necho "$TOKEND_ACCOUNT" >> "{out}"\n')
    script.chmod(0o755)
    tokend.account(notify_cmd=str(script), refresh_margin=7200)
    tokend.obtain()
    dead = tokend.stored_refresh_token().strip()
    assert authserver.refresh(dead)[0] == 200
    assert authserver.refresh(dead)[0] == 400
    for _ in range(3):  # three ticks of the timer
        assert tokend.run('refresh').returncode == EX_NOPERM
    assert out.read_text().splitlines() == ['work']
