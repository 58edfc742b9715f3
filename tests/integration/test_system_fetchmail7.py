"""fetchmail 7 (the unreleased `next` branch, harness.fetchmail7) on a mail
host (issue 22): a daemon run as its own user, a member of the account's
token_file_group, with `passwordfile` at the system token file
/run/tokend/ACCOUNT.token (TOKEND_RUNTIMEDIR here), configured with what
`tokend --system snippet work fetchmail7` prints.  Across an access
token's expiry the system timer's command (`tokend --system -q refresh`
run as the service user, as tokend-refresh.service would; no systemd as
PID 1 here) replaces the file, and the same daemon logs in with the new
token at its next poll.  The fetchmail user reads the token file and
nothing under the state folder (checked with its uid)."""

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import EX_OK, REPO
from harness.authserver import AuthServer
from harness.fetchmail7 import fetchmail7
from harness.tunnelpeers import USER, deliver, dovecot_for, logins, wait_logged_in
from harness.wait import wait_until
from test_fetchmail7 import message
from test_system_fetchmail import as_user, unreadable_as
from test_system_mode import System, made_users

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates users: needs root')

ACCESS_TTL = 6


@pytest.fixture(scope='module')
def fetchmail7_binary():
    path, why = fetchmail7(REPO / 'build')
    if not path:
        pytest.skip(why)
    return path


@pytest.fixture
def host():
    base = Path(tempfile.mkdtemp(prefix='tokend-sysfm7-'))
    base.chmod(0o755)
    try:
        with made_users() as (service, reader, outsider, group), \
                AuthServer(base / 'authserver', access_ttl=ACCESS_TTL) as srv, \
                dovecot_for(srv) as dc:
            (base / 'authserver').chmod(0o755)
            s = System(base, srv, service)
            s.reader, s.group, s.dc = reader, group, dc
            s.write(s.etc / 'config', '[defaults]\nrefresh_margin = 2\n')
            yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def reader_home(host, rc_text):
    """The fetchmail user's folder: its rc file (0600, its own, as fetchmail
    demands) and what it delivers."""
    home = host.base / 'fetchmail'
    (home / 'out').mkdir(parents=True)
    rc = home / 'fetchmailrc'
    rc.write_text(rc_text)
    pw = pwd.getpwnam(host.reader)
    for p in (home, home / 'out', rc):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    home.chmod(0o700)
    rc.chmod(0o600)
    return home


def test_fetchmail7_reads_the_system_token_file_as_its_own_user(fetchmail7_binary, host):
    # localhost: fetchmail checks the name the certificate carries.
    host.account('work', token_file_group=host.group, imap_host='localhost',
                 imap_port=host.dc.imaps_port)
    r = host.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    token_file = host.run_dir / 'work.token'
    first = token_file.read_text()
    r = host.tokend('snippet', 'work', 'fetchmail7')
    assert r.returncode == EX_OK, r.stderr
    assert f'passwordfile "{token_file}"' in r.stdout, r.stdout
    home = reader_home(host, r.stdout)
    log = home / 'fetchmail.log'
    argv = [fetchmail7_binary, '-f', str(home / 'fetchmailrc'), '-d', '1', '-N', '--invisible',
            '--sslcertfile', host.srv.ca_file, '--mda', f'cat > {home}/out/msg.$$',
            '--pidfile', str(home / 'fetchmail.pid'), '--idfile', str(home / 'fetchids')]
    before = logins(host.dc, 'imap', 'OAUTHBEARER', secured=True)
    with open(log, 'w') as logf:
        daemon = subprocess.Popen(as_user(host.reader, argv),
                                  env={'PATH': os.environ['PATH'], 'HOME': str(home),
                                       'LANG': 'C.UTF-8'},
                                  stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)

    def delivered():
        return sorted((home / 'out').glob('msg.*'))

    def detail():
        return log.read_text()[-3000:]
    try:
        deliver(host.dc, message('before the refresh'))
        wait_until(lambda: len(delivered()) == 1, 20, 'fetchmail 7 fetched the first message',
                   interval=0.1, detail=detail)
        assert os.stat(delivered()[0]).st_uid == pwd.getpwnam(host.reader).pw_uid
        wait_until(lambda: time.time() >= json.loads((host.run_dir / 'work.info').read_text())
                   ['expires_at'] and not host.srv.introspect(first.strip())['active'],
                   ACCESS_TTL + 10, 'the access token expired')
        # The timer's run, as tokend-refresh.service does it.
        r = host.tokend('-q', 'refresh', user=host.service)
        assert r.returncode == EX_OK, r.stderr
        second = token_file.read_text()
        assert second != first and host.srv.introspect(second.strip())['active']
        deliver(host.dc, message('after the refresh'))
        wait_until(lambda: len(delivered()) == 2, 20,
                   'fetchmail 7 fetched the second message with the new token', interval=0.1,
                   detail=detail)
        assert daemon.poll() is None, detail()
    finally:
        daemon.terminate()
        daemon.wait(10)
    subjects = sorted(re.search(rb'Subject: (.*)', p.read_bytes()).group(1) for p in delivered())
    assert subjects == [b'after the refresh', b'before the refresh']
    wait_logged_in(host.dc, 'imap', 'OAUTHBEARER', before, secured=True)

    # The token file is the fetchmail user's to read; the state folder is not.
    assert unreadable_as(host.reader, token_file)[1] == [str(token_file)]
    count, readable = unreadable_as(host.reader, host.state)
    assert count > 3 and readable == [], readable
    assert first.strip() not in log.read_text() and second.strip() not in log.read_text()
