"""The real fetchmail 7 daemon (the unreleased `next` branch, built once
from ../shared/fetchmail/ into the build folder by harness.fetchmail7)
with `auth oauthbearer` and `passwordfile` pointing at tokend's token file,
against a TLS Dovecot, across an access-token expiry and the timer's
refresh: fetchmail re-reads the file at every poll.  Fails, saying why,
where the source is absent or cannot be built (skips with
TOKEND_ALLOW_SKIP=1)."""

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import REPO, Tokend
from harness.authserver import SERVER_DIR
from harness.fetchmail7 import fetchmail7
from harness.tunnelpeers import USER, deliver, dovecot_for, logins, wait_logged_in
from harness.wait import wait_until


pytestmark = [
    pytest.mark.skipif(not shutil.which('dovecot'), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]


@pytest.fixture(scope='module')
def fetchmail7_binary():
    # Under build/ whichever tokend build is tested: built once for all.
    path, why = fetchmail7(REPO / 'build')
    if not path:
        pytest.skip(why)
    return path


def snippet(tokend, client):
    r = tokend.run('snippet', 'work', client)
    assert r.returncode == 0, r.stderr
    assert not re.findall(r'@[A-Z_]+@', r.stdout)
    return r.stdout


def message(subject):
    return (f'From: carol@example.org\r\nTo: {USER}@example.org\r\nSubject: {subject}\r\n'
            f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\nhello\r\n').encode()


def wait_for(cond, seconds, log, what):
    wait_until(cond, seconds, what, interval=0.1, detail=lambda: log.read_text()[-3000:])


def test_fetchmail7_daemon_rereads_the_token_file_across_a_refresh(
        fetchmail7_binary, make_authserver, tmp_path):
    srv = make_authserver(access_ttl=4)
    tokend = Tokend(tmp_path / 'home', srv)
    with dovecot_for(srv) as dc:
        # localhost: fetchmail checks the name the certificate carries.
        tokend.account(scopes='openid offline_access mail.imap', imap_host='localhost',
                       imap_port=dc.imaps_port)
        tokend.obtain()
        first = tokend.token_file().read_text()
        rc = tmp_path / 'fetchmailrc'
        rc.write_text(snippet(tokend, 'fetchmail7'))
        rc.chmod(0o600)
        out = tmp_path / 'out'
        out.mkdir()
        log = tmp_path / 'fetchmail.log'
        before = logins(dc, 'imap', 'OAUTHBEARER', secured=True)
        with open(log, 'w') as logf:
            daemon = subprocess.Popen(
                [fetchmail7_binary, '-f', str(rc), '-d', '1', '-N', '--invisible',
                 '--sslcertfile', srv.ca_file, '--mda', f'cat > {out}/msg.$$',
                 '--pidfile', str(tmp_path / 'fetchmail.pid')],
                env=tokend.env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        try:
            deliver(dc, message('before the refresh'))
            wait_for(lambda: len(list(out.glob('msg.*'))) == 1, 20, log,
                     'fetchmail delivered the first')
            tokend.wait_expired(srv, first)
            r = tokend.run('refresh')  # what the timer does
            assert r.returncode == 0, r.stderr
            assert tokend.token_file().read_text() != first
            deliver(dc, message('after the refresh'))
            wait_for(lambda: len(list(out.glob('msg.*'))) == 2, 20, log,
                     'fetchmail delivered the second')
            assert daemon.poll() is None, log.read_text()
        finally:
            daemon.terminate()
            daemon.wait(10)
        subjects = sorted(re.search(rb'Subject: (.*)', p.read_bytes()).group(1)
                          for p in out.glob('msg.*'))
        assert subjects == [b'after the refresh', b'before the refresh']
        wait_logged_in(dc, 'imap', 'OAUTHBEARER', before, secured=True)
        assert '7.0.0' in subprocess.run([fetchmail7_binary, '--version'], capture_output=True,
                                         text=True).stdout
