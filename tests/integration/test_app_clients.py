"""Real mail clients through an app-only account (grant = client_credentials,
private_key_jwt), configured as users configure them, from what `tokend
snippet ACCOUNT CLIENT` prints:

- Debian's fetchmail 6.4 through `tokend tunnel` (`plugin`, IMAP and POP3);
- msmtp (`passwordeval`) and mutt (`smtp_oauth_refresh_command`) with
  `tokend token`;
- the fetchmail 7 daemon (`passwordfile`, built from ../shared/fetchmail by
  harness.fetchmail7) across an expiry of the app's token and the timer's
  `tokend refresh`, which mints a new one.

The peers: oidc-provider with the `tokend-app` client (its certificate made
with openssl here) and a TLS Dovecot that lets the app into box1 only, as
an admin would configure it (harness.dovecot APP_PASSDB).  Mail is put into
box1's INBOX with doveadm; what Dovecot logs shows whose login it was."""

import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import EX_OK, REPO, Tokend
from harness.appkeys import AppKeys
from harness.authserver import SERVER_DIR, AuthServer
from harness.fetchmail7 import fetchmail7
from harness.tunnelpeers import dovecot_for

pytestmark = [
    pytest.mark.skipif(not shutil.which('dovecot'), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]

BOX = 'box1@example.org'
APP_SCOPES = 'mail.imap mail.smtp'
CLIENT_TIMEOUT = 60


def needs(*programs):
    missing = [p for p in programs if not shutil.which(p)]
    return pytest.mark.skipif(bool(missing), reason=f'needs {", ".join(missing)}')


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    return AppKeys(tmp_path_factory.mktemp('appkeys'))


@pytest.fixture(scope='module')
def server(tmp_path_factory, keys):
    with AuthServer(tmp_path_factory.mktemp('authserver'),
                    env={'TOKEND_TEST_APP_CERT': str(keys.cert)}) as srv:
        yield srv


@pytest.fixture(scope='module')
def dovecot(server):
    with dovecot_for(server, pop3=True, apps={'tokend-app': [BOX]}) as dc:
        yield dc


def app_account(tokend, keys, dc, **extra):
    """The app-only account `work` for box1, reaching dc's TLS ports."""
    tokend.config.parent.chmod(0o700)
    values = dict(grant='client_credentials', client_id='tokend-app', authorize_url=None,
                  scopes=APP_SCOPES, username=BOX, client_certificate=keys.cert,
                  client_key=keys.key, store=None, imap_host=dc.host, imap_port=dc.imaps_port,
                  pop_host=dc.host, pop_port=dc.pop3s_port, smtp_host=dc.host,
                  smtp_port=dc.submission_port, tunnel_tls='implicit')
    values.update(extra)
    tokend.account('work', **values)
    r = tokend.run('token', 'work')
    assert r.returncode == EX_OK, r.stderr
    return r.stdout.strip()


def snippet(tokend, client):
    r = tokend.run('snippet', 'work', client)
    assert r.returncode == EX_OK, r.stderr
    assert not re.findall(r'@[A-Z_]+@', r.stdout), r.stdout
    return r.stdout


def run(argv, env, input=None, cwd=None, timeout=CLIENT_TIMEOUT):
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd,
                          input=input, timeout=timeout)


def message(subject):
    return (f'From: carol@example.org\r\nTo: {BOX}\r\nSubject: {subject}\r\n'
            f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\nhello {subject}\r\n').encode()


def deliver(dc, msg):
    """Into box1's INBOX with doveadm, no login needed."""
    r = subprocess.run(['doveadm', '-c', str(dc.config_path), 'save', '-u', BOX, '-m', 'INBOX'],
                       input=msg, capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr


def logins(dc, service, method=None):
    """Dovecot's log lines of box1's logins to service (by method)."""
    pattern = rf'{service}-login: Info: Login: user=<{re.escape(BOX)}>, method=(\w+)'
    return [m for m in re.findall(pattern, dc.log()) if method is None or m == method]


def wait_for(cond, seconds, what):
    """Waits for an event (polled; fails with what after seconds)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f'not within {seconds} s: {what()}')


def delivered(folder):
    return [p.read_bytes() for p in sorted(folder.glob('msg.*'))]


def subjects(folder):
    return sorted(re.search(rb'Subject: (.*)', m).group(1).decode() for m in delivered(folder))


# fetchmail 6.4 through `tokend tunnel` ---------------------------------------------

@needs('fetchmail')
@pytest.mark.parametrize('pop3', [False, True], ids=['imap', 'pop3'])
def test_fetchmail_fetches_through_the_tunnel(tmp_path, server, keys, dovecot, pop3):
    tokend = Tokend(tmp_path / 'home', server)
    token = app_account(tokend, keys, dovecot)
    subject = f'app-fetchmail-{"pop3" if pop3 else "imap"}-{uuid.uuid4().hex[:8]}'
    deliver(dovecot, message(subject))
    rc = tmp_path / 'fetchmailrc'
    rc.write_text(snippet(tokend, 'fetchmail-pop3' if pop3 else 'fetchmail'))
    rc.chmod(0o600)
    out = tmp_path / 'out'
    out.mkdir()
    service = 'pop3' if pop3 else 'imap'
    before = len(logins(dovecot, service))
    # --pidfile: as root fetchmail's own is /var/run/fetchmail.pid, shared
    # with any other fetchmail on the machine.
    r = run(['fetchmail', '-f', str(rc), '-d0', '--invisible', '--mda', f'cat > {out}/msg.$$',
             '--pidfile', str(tmp_path / 'fetchmail.pid')], tokend.env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert subject in subjects(out), r.stdout + r.stderr
    wait_for(lambda: len(logins(dovecot, service)) > before, 5, lambda: dovecot.log()[-2000:])
    assert token not in r.stdout + r.stderr


# `tokend token`: msmtp and mutt ---------------------------------------------------

def msmtprc(tokend, dc, path):
    # The snippet's account, and one derived from it for the test's plain
    # submission port (the snippet says TLS; Dovecot's submission here has none).
    text = snippet(tokend, 'msmtp')
    text += f'\naccount test : work\ntls off\ntimeout 10\nfrom {BOX}\n'
    path.write_text(text)
    path.chmod(0o600)
    return path


@needs('msmtp')
def test_msmtp_sends_as_the_mailbox(tmp_path, server, keys, dovecot):
    tokend = Tokend(tmp_path / 'home', server)
    app_account(tokend, keys, dovecot)
    rc = msmtprc(tokend, dovecot, tmp_path / 'msmtprc')
    marker = f'app-msmtp-{uuid.uuid4().hex[:12]}'
    before = len(logins(dovecot, 'submission'))
    r = run(['msmtp', '-C', str(rc), '-a', 'test', 'bob@example.org'], tokend.env,
            input=f'Subject: {marker}\n\nsent by msmtp for the app\n')
    assert r.returncode == 0, r.stderr
    [sent] = [m for m in dovecot.messages() if marker.encode() in m['data']]
    assert sent['mail_from'].startswith(f'<{BOX}>')
    assert sent['rcpt_tos'] == ['<bob@example.org>']
    wait_for(lambda: len(logins(dovecot, 'submission')) > before, 5,
             lambda: dovecot.log()[-2000:])


@pytest.mark.parametrize('mutt', ['mutt', 'neomutt'])
def test_mutt_sends_as_the_mailbox(tmp_path, server, keys, dovecot, mutt):
    if not shutil.which(mutt):
        pytest.skip(f'needs {mutt}')
    tokend = Tokend(tmp_path / 'home', server)
    # The test's Dovecot submission has no TLS: the muttrc around the
    # recipe turns STARTTLS off.
    app_account(tokend, keys, dovecot)
    recipe = tmp_path / 'muttrc-recipe'
    recipe.write_text(snippet(tokend, mutt))
    main = tmp_path / 'muttrc'
    main.write_text(f'source "{recipe}"\n'
                    f'set ssl_ca_certificates_file = "{server.ca_file}"\n'
                    'set ssl_force_tls = no\nset ssl_starttls = no\n'
                    f'set from = "{BOX}"\n'
                    'set record = ""\nset header_cache = ""\nset message_cachedir = ""\n')
    marker = f'app-{mutt}-{uuid.uuid4().hex[:12]}'
    before = len(logins(dovecot, 'submission'))
    r = run([mutt, '-n', '-F', str(main), '-s', marker, 'bob@example.org'], tokend.env,
            input=f'sent by {mutt} for the app\n', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [sent] = [m for m in dovecot.messages() if marker.encode() in m['data']]
    assert sent['rcpt_tos'] == ['<bob@example.org>']
    wait_for(lambda: len(logins(dovecot, 'submission', 'XOAUTH2')) > before, 5,
             lambda: dovecot.log()[-2000:])


# fetchmail 7: the passwordfile daemon across an expiry -------------------------

@pytest.fixture(scope='module')
def fetchmail7_binary():
    path, why = fetchmail7(REPO / 'build')
    if not path:
        pytest.skip(why)
    return path


def test_fetchmail7_daemon_across_an_app_token_expiry(fetchmail7_binary, keys, tmp_path):
    """The app's token lives 6 s: after it expired, the daemon's polls fail
    until the timer's `tokend refresh` mints a new token into the file the
    daemon re-reads at every poll; then mail flows again, same daemon."""
    with AuthServer(tmp_path / 'authserver', access_ttl=6,
                    env={'TOKEND_TEST_APP_CERT': str(keys.cert)}) as srv, \
            dovecot_for(srv, apps={'tokend-app': [BOX]}) as dc:
        tokend = Tokend(tmp_path / 'home', srv)
        # localhost: fetchmail checks the name the certificate carries.
        first = app_account(tokend, keys, dc, imap_host='localhost', min_validity=1,
                            pop_host=None, pop_port=None)
        rc = tmp_path / 'fetchmailrc'
        rc.write_text(snippet(tokend, 'fetchmail7'))
        rc.chmod(0o600)
        assert f'passwordfile "{tokend.token_file()}"' in rc.read_text()
        out = tmp_path / 'out'
        out.mkdir()
        log = tmp_path / 'fetchmail.log'
        with open(log, 'w') as logf:
            daemon = subprocess.Popen(
                [fetchmail7_binary, '-f', str(rc), '-d', '1', '-N', '--invisible',
                 '--sslcertfile', srv.ca_file, '--mda', f'cat > {out}/msg.$$',
                 '--pidfile', str(tmp_path / 'fetchmail.pid')],
                env=tokend.env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        try:
            deliver(dc, message('before the expiry'))
            wait_for(lambda: len(delivered(out)) == 1, 20, log.read_text)
            wait_for(lambda: srv.introspect(first)['active'] is False, 20,
                     lambda: 'the first app token is still active')
            # The daemon meets the expired token (its poll fails) ...
            deliver(dc, message('after the expiry'))
            wait_for(lambda: 'Authorization failure on box1@example.org' in log.read_text(), 20,
                     log.read_text)
            assert len(delivered(out)) == 1 and daemon.poll() is None
            # ... until the timer mints the app's next token.
            r = tokend.run('refresh')
            assert r.returncode == EX_OK, r.stderr
            assert tokend.token_file().read_text().strip() != first
            wait_for(lambda: len(delivered(out)) == 2, 20, log.read_text)
            assert daemon.poll() is None, log.read_text()
        finally:
            daemon.terminate()
            daemon.wait(10)
        assert subjects(out) == ['after the expiry', 'before the expiry']
        assert logins(dc, 'imap', 'OAUTHBEARER')
        assert srv.stats()['token'].get('client_credentials', 0) == 2
