"""Real mail clients through `tokend tunnel`, against a TLS Dovecot that
validates the tokens by introspection at the test authorization server.

- Debian's fetchmail 6.4 (no OAuth of its own): `plugin "tokend tunnel
  work %h %p"` with `auth ssh` (without it fetchmail wants a password
  before it ever connects) and `sslproto ''` (fetchmail must not start TLS
  itself: tokend does); IMAP takes the `* PREAUTH` greeting, POP3 the
  `+OK`.  The messages put into the mailbox arrive byte-identical (after
  fetchmail's usual CRLF to LF for the MDA; `--invisible` leaves out its
  Received: header).  A daemon (`-d`) keeps fetching across an access-token
  expiry and the refresh that follows, and on a revoked grant it logs the
  tunnel's reason and ends the poll at once.
- OfflineIMAP (`preauthtunnel`), mbsync (`Tunnel`, no SASL plugin) and
  mutt/neomutt (`tunnel`) read or sync the INBOX through the tunnel.

Each client is configured with what `tokend snippet work CLIENT` prints: the
recipe templates in doc/recipes/*.in filled in from the account, the same
text the recipes show (test_recipe_shows_its_template).
"""

import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import EX_OK, REPO, Tokend
from harness.authserver import SERVER_DIR
from harness.wait import wait_until
from harness.tunnelpeers import (USER, append_message, deliver, dovecot_for, empty_inbox,
                                 logins, revoke_grant, wait_logged_in)

RECIPES = REPO / 'doc' / 'recipes'
SCOPES = 'openid offline_access mail.imap'
CLIENT_TIMEOUT = 60

pytestmark = [
    pytest.mark.skipif(not shutil.which('dovecot'), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]


def needs(*programs):
    missing = [p for p in programs if not shutil.which(p)]
    return pytest.mark.skipif(bool(missing), reason=f'needs {", ".join(missing)}')


RECIPE_TEMPLATES = [
    ('fetchmail.md', 'fetchmailrc-plugin.in'),
    ('fetchmail.md', 'fetchmailrc-plugin-pop3.in'),
    ('offlineimap.md', 'offlineimaprc-tunnel.in'),
    ('mutt-tunnel.md', 'muttrc-tunnel.in'),
    ('isync-tunnel.md', 'mbsyncrc-tunnel.in'),
]


def snippet(tokend, client):
    r = tokend.run('snippet', 'work', client)
    assert r.returncode == EX_OK, r.stderr
    assert not re.findall(r'@[A-Z_]+@', r.stdout), r.stdout
    return r.stdout


@pytest.mark.parametrize('recipe,template', RECIPE_TEMPLATES)
def test_recipe_shows_its_template(recipe, template):
    text = (RECIPES / recipe).read_text()
    assert (RECIPES / template).read_text() in text, \
        f'{recipe} must show {template} verbatim, placeholders and all'


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver, pop3=True) as dc:
        yield dc


def sign_in(tokend, dc):
    """tunnel_tls = implicit: the test's implicit-TLS ports are not 993/995."""
    tokend.account(scopes=SCOPES, imap_host=dc.host, imap_port=dc.imaps_port,
                   pop_host=dc.host, pop_port=dc.pop3s_port, tunnel_tls='implicit')
    tokend.obtain()
    return tokend.token_file().read_text().rstrip('\n')


def run(argv, env, cwd=None, timeout=CLIENT_TIMEOUT, input=None):
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout, input=input)


def mixed_messages(n=6):
    """Messages of mixed sizes (CRLF lines, as IMAP carries them)."""
    out = []
    for i in range(n):
        size = [200, 5000, 70000, 300000, 1, 1500000][i % 6]
        body = os.urandom(size // 2 + 1).hex()
        lines = '\r\n'.join(body[j:j + 76] for j in range(0, len(body), 76))
        out.append((f'From: carol@example.org\r\nTo: {USER}@example.org\r\n'
                    f'Subject: tunnel {i} {uuid.uuid4().hex}\r\n'
                    f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\n{lines}\r\n').encode())
    return out


def digests(messages):
    return sorted(hashlib.sha256(m).hexdigest() for m in messages)


def delivered(folder):
    return [p.read_bytes() for p in sorted(Path(folder).glob('msg.*'))]


# fetchmail 6.4 --------------------------------------------------------------

def fetchmailrc(tokend, dc, path, pop3=False):
    path.write_text(snippet(tokend, 'fetchmail-pop3' if pop3 else 'fetchmail'))
    path.chmod(0o600)
    return path


def fetchmail(tokend, rc, out, *args, timeout=CLIENT_TIMEOUT):
    # --mda: one file per message; -d0: no daemon despite the recipe's
    # `set daemon`; --invisible: no Received: header of fetchmail's own.
    mda = f'cat > {out}/msg.$$'
    return run(['fetchmail', '-f', str(rc), '-d0', '--invisible', '--mda', mda, *args],
               tokend.env, timeout=timeout)


@needs('fetchmail')
@pytest.mark.parametrize('pop3', [False, True], ids=['imap', 'pop3'])
def test_fetchmail_fetches_byte_identical(tokend, dovecot, tmp_path, pop3):
    token = sign_in(tokend, dovecot)
    empty_inbox(dovecot)
    messages = mixed_messages()
    for m in messages:
        append_message(dovecot, token, m)
    rc = fetchmailrc(tokend, dovecot, tmp_path / 'fetchmailrc', pop3)
    out = tmp_path / 'out'
    out.mkdir()
    service, method = ('pop3', 'OAUTHBEARER') if pop3 else ('imap', 'OAUTHBEARER')
    before = logins(dovecot, service, method, secured=True)
    r = fetchmail(tokend, rc, out, '-v')
    assert r.returncode == 0, r.stdout + r.stderr
    got = delivered(out)
    assert digests(got) == digests(m.replace(b'\r\n', b'\n') for m in messages), \
        r.stdout + r.stderr
    if not pop3:
        assert '* PREAUTH [CAPABILITY' in r.stderr + r.stdout
    wait_logged_in(dovecot, service, method, before, secured=True)
    assert token not in r.stdout + r.stderr


@needs('fetchmail')
@pytest.mark.parametrize('pop3', [False, True], ids=['imap', 'pop3'])
def test_fetchmail_ends_the_poll_on_a_revoked_grant(tokend, dovecot, authserver, tmp_path,
                                                    pop3):
    sign_in(tokend, dovecot)
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    rc = fetchmailrc(tokend, dovecot, tmp_path / 'fetchmailrc', pop3)
    out = tmp_path / 'out'
    out.mkdir()
    started = time.monotonic()
    r = fetchmail(tokend, rc, out)
    elapsed = time.monotonic() - started
    print(f'fetchmail ({"POP3" if pop3 else "IMAP"}) ended the poll {elapsed:.2f} s '
          'after it started, on a revoked grant')
    assert r.returncode != 0
    text = r.stdout + r.stderr
    # tokend's line on stderr (fetchmail passes the plugin's stderr on),
    # and fetchmail's report of what the server side said.
    assert 'tokend: work: sign-in needed' in text, text
    assert 'run: tokend obtain work' in text
    assert elapsed < 10, text
    # fetchmail's own report (it upper-cases IMAP responses).
    if pop3:
        assert 'Query status=3 (AUTHFAIL)' in text, text
    else:
        assert ('Received BYE response from IMAP server:  [AUTHENTICATIONFAILED] '
                'TOKEND: WORK: SIGN-IN NEEDED') in text, text


@needs('fetchmail')
def test_fetchmail_daemon_across_expiry_and_refresh(make_authserver, tmp_path):
    srv = make_authserver(access_ttl=4)
    tokend = Tokend(tmp_path / 'home', srv)
    with dovecot_for(srv) as dc:
        tokend.account(scopes=SCOPES, imap_host=dc.host, imap_port=dc.imaps_port,
                       tunnel_tls='implicit', min_validity=1)
        tokend.obtain()
        first = tokend.token_file().read_text()
        rc = fetchmailrc(tokend, dc, tmp_path / 'fetchmailrc')
        out = tmp_path / 'out'
        out.mkdir()
        mda = f'cat > {out}/msg.$$'
        log = tmp_path / 'fetchmail.log'
        with open(log, 'w') as logf:
            daemon = subprocess.Popen(
                ['fetchmail', '-f', str(rc), '-d', '1', '-N', '--invisible', '--mda', mda,
                 '--pidfile', str(tmp_path / 'fetchmail.pid')],
                env=tokend.env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        try:
            deliver(dc, mixed_messages(1)[0])
            wait_for(lambda: len(delivered(out)) == 1, 20, log, 'fetchmail delivered the first')
            tokend.wait_expired(srv, first)
            deliver(dc, mixed_messages(2)[1])
            wait_for(lambda: len(delivered(out)) == 2, 20, log, 'fetchmail delivered the second')
            # The tunnel refreshed (nothing else ran tokend), and the same
            # daemon fetched with the new token.
            assert tokend.token_file().read_text() != first
            assert daemon.poll() is None, log.read_text()
        finally:
            daemon.terminate()
            daemon.wait(10)


def wait_for(cond, seconds, log, what):
    wait_until(cond, seconds, what, interval=0.1, detail=lambda: log.read_text()[-3000:])


# OfflineIMAP, mbsync, mutt ------------------------------------------------------

def maildir_messages(path):
    return [p.read_bytes() for sub in ('new', 'cur') for p in (Path(path) / sub).glob('*')]


def subject_message(subject):
    return (f'From: carol@example.org\r\nTo: {USER}@example.org\r\nSubject: {subject}\r\n'
            f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\nhello\r\n').encode()


@needs('offlineimap')
def test_offlineimap_syncs_through_preauthtunnel(tokend, dovecot, tmp_path):
    sign_in(tokend, dovecot)
    subject = f'offlineimap-{uuid.uuid4().hex}'
    deliver(dovecot, subject_message(subject))
    maildir = tokend.home / 'Mail' / 'work'  # the snippet's ~/Mail/ACCOUNT
    rc = tmp_path / 'offlineimaprc'
    rc.write_text(snippet(tokend, 'offlineimap'))
    before = logins(dovecot, 'imap', 'OAUTHBEARER', secured=True)
    r = run(['offlineimap', '-c', str(rc), '-o', '-u', 'basic'], tokend.env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(subject.encode() in m for m in maildir_messages(maildir / 'INBOX')), \
        r.stdout + r.stderr
    wait_logged_in(dovecot, 'imap', 'OAUTHBEARER', before, secured=True)


@needs('mbsync')
def test_mbsync_syncs_through_tunnel(tokend, dovecot, tmp_path):
    sign_in(tokend, dovecot)
    subject = f'mbsync-{uuid.uuid4().hex}'
    deliver(dovecot, subject_message(subject))
    maildir = tokend.home / 'Mail' / 'work'  # the snippet's ~/Mail/ACCOUNT
    maildir.mkdir(parents=True)
    rc = tmp_path / 'mbsyncrc'
    rc.write_text(snippet(tokend, 'mbsync-tunnel'))
    before = logins(dovecot, 'imap', 'OAUTHBEARER', secured=True)
    r = run(['mbsync', '-c', str(rc), 'work'], tokend.env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(subject.encode() in m for m in maildir_messages(maildir / 'INBOX'))
    wait_logged_in(dovecot, 'imap', 'OAUTHBEARER', before, secured=True)


@needs('tmux')
@pytest.mark.parametrize('mutt', ['mutt', 'neomutt'])
def test_mutt_reads_through_tunnel(tokend, dovecot, tmp_path, mutt):
    if not shutil.which(mutt):
        pytest.skip(f'needs {mutt}')
    from test_mailclients import Tmux
    sign_in(tokend, dovecot)
    subject = f'{mutt}-tunnel-{uuid.uuid4().hex[:12]}'
    deliver(dovecot, subject_message(subject))
    recipe = tmp_path / 'muttrc-recipe'
    recipe.write_text(snippet(tokend, f'{mutt}-tunnel'))
    rc = tmp_path / 'muttrc'
    rc.write_text(f'source "{recipe}"\nset record = ""\nset header_cache = ""\n'
                  'set message_cachedir = ""\nset sort = reverse-date-received\n'
                  'set mail_check_stats = no\nset sleep_time = 0\n')
    before = logins(dovecot, 'imap', 'OAUTHBEARER', secured=True)
    term = Tmux(tokend.env)
    try:
        term.start([mutt, '-n', '-F', str(rc)])
        screen = term.wait_for(subject, 15)
        assert screen is not None, f'{mutt} did not show the INBOX: {term.screen()}'
        term.quit()
    finally:
        term.close()
    wait_logged_in(dovecot, 'imap', 'OAUTHBEARER', before, secured=True)
