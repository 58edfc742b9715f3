"""System mode with a real consumer (issue 22): Debian's fetchmail 6.4 as
a daemon (`-d 1`, not detached) run as a fetchmail-like user of the reader
group, its `plugin "tokend --system tunnel work %h %p"` logging in to
Dovecot over TLS with the token file that group may read.  Across the
access token's expiry: without the system broker the reader's tunnel
cannot refresh (75, fetchmail retries at its next poll) and the timer's
command, `tokend --system
refresh` run as the service user as tokend-refresh.service would (the
test machine has no systemd as PID 1), brings a new token that the same
daemon then uses.  The reader cannot read anything under the state
folder, checked with its own uid.  With the broker running (as the
service user, --listen, as tokend-broker.socket would start it), the same
daemon fetches across the expiry with no timer at all."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import EX_OK, TOKEND
from harness.authserver import AuthServer
from harness.tunnelpeers import USER, deliver, dovecot_for
from harness.wait import wait_until
from test_system_mode import System, made_users

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates users: needs root')

ACCESS_TTL = 8


def as_user(user, argv):
    pw = pwd.getpwnam(user)
    return ['setpriv', f'--reuid={pw.pw_uid}', f'--regid={pw.pw_gid}', '--init-groups',
            '--', *argv]


@pytest.fixture
def host():
    """A mail host: tokend's system folders, an authorization server with
    short-lived access tokens, Dovecot over TLS."""
    base = Path(tempfile.mkdtemp(prefix='tokend-sysfetch-'))
    base.chmod(0o755)
    try:
        with made_users() as (service, reader, outsider, group), \
                AuthServer(base / 'authserver', access_ttl=ACCESS_TTL) as srv, \
                dovecot_for(srv) as dc:
            (base / 'authserver').chmod(0o755)
            s = System(base, srv, service)
            s.reader, s.group, s.dc = reader, group, dc
            s.write(s.etc / 'config', '[defaults]\nrefresh_margin = 300\n')
            yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def message():
    return (f'From: carol@example.org\r\nTo: {USER}@example.org\r\n'
            f'Subject: system {uuid.uuid4().hex}\r\n'
            f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\nhello\r\n').encode()


def reader_home(host):
    """The fetchmail user's folder: its rc file (0600, its own, as fetchmail
    demands), ids, pid file and delivered mail."""
    home = host.base / 'fetchmail'
    (home / 'out').mkdir(parents=True)
    rc = home / 'fetchmailrc'
    rc.write_text(f'poll {host.dc.host} protocol IMAP service {host.dc.imaps_port}\n'
                  f'    plugin "{TOKEND} --system tunnel work %h %p"\n'
                  f'    auth ssh username "{USER}"\n'
                  "    sslproto ''\n    keep\n    folders INBOX\n")
    pw = pwd.getpwnam(host.reader)
    for p in (home, home / 'out', rc):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    home.chmod(0o700)
    rc.chmod(0o600)
    return home


def unreadable_as(user, root):
    """Every path under root (listed as root) that user can open or list."""
    paths = [str(root)] + [str(p) for p in root.rglob('*')]
    probe = ('import json, os, sys\n'
             'ok = []\n'
             'for p in json.load(sys.stdin):\n'
             '    try:\n'
             '        os.listdir(p) if os.path.isdir(p) else open(p, "rb").close()\n'
             '        ok.append(p)\n'
             '    except OSError:\n'
             '        pass\n'
             'print(json.dumps(ok))\n')
    r = subprocess.run(as_user(user, ['/usr/bin/python3', '-c', probe]), input=json.dumps(paths),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return len(paths), json.loads(r.stdout)


def delivered(home):
    return sorted((home / 'out').glob('msg.*'))


def test_fetchmail_as_a_system_daemon_fetches_across_expiry(host):
    host.account('work', token_file_group=host.group, scopes='openid offline_access mail.imap',
                 imap_host=host.dc.host, imap_port=host.dc.imaps_port, tunnel_tls='implicit',
                 min_validity=1)
    r = host.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    token_file = host.run_dir / 'work.token'
    first = token_file.read_text()
    home = reader_home(host)
    log = home / 'fetchmail.log'
    env = dict(host.env, HOME=str(home))
    argv = ['fetchmail', '-f', str(home / 'fetchmailrc'), '-d', '1', '-N', '--invisible',
            '--mda', f'cat > {home}/out/msg.$$', '--pidfile', str(home / 'fetchmail.pid'),
            '--idfile', str(home / 'fetchids')]
    with open(log, 'w') as logf:
        daemon = subprocess.Popen(as_user(host.reader, argv), env=env, stdout=logf,
                                  stderr=logf, stdin=subprocess.DEVNULL)
    try:
        def detail():
            return log.read_text()[-3000:]

        deliver(host.dc, message())
        wait_until(lambda: len(delivered(home)) == 1, 20, 'fetchmail fetched the first message',
                   interval=0.1, detail=detail)
        # The delivered mail is the fetchmail user's, written by its daemon.
        assert os.stat(delivered(home)[0]).st_uid == pwd.getpwnam(host.reader).pw_uid
        wait_until(lambda: time.time() >= json.loads((host.run_dir / 'work.info').read_text())
                   ['expires_at'] and not host.srv.introspect(first.strip())['active'],
                   ACCESS_TTL + 10, 'the access token expired')
        deliver(host.dc, message())
        # No broker: the reader's tunnel cannot refresh, the poll fails for now.
        wait_until(lambda: 'work' in log.read_text() and 'system broker' in log.read_text(), 20,
                   "fetchmail's poll failed on the expired token", interval=0.1, detail=detail)
        assert len(delivered(home)) == 1 and token_file.read_text() == first
        # The timer's run, as tokend-refresh.service does it.
        r = host.tokend('-q', 'refresh', user=host.service)
        assert r.returncode == EX_OK, r.stderr
        assert token_file.read_text() != first
        wait_until(lambda: len(delivered(home)) == 2, 20,
                   'fetchmail fetched the second message with the new token', interval=0.1,
                   detail=detail)
        assert daemon.poll() is None, detail()
    finally:
        daemon.terminate()
        daemon.wait(10)

    # Nothing under the state folder is readable to the fetchmail user...
    count, readable = unreadable_as(host.reader, host.state)
    assert count > 3 and readable == [], readable
    # ... while its token file is (the check can see a readable file).
    assert unreadable_as(host.reader, token_file)[1] == [str(token_file)]
    secrets_seen = log.read_text()
    assert first.strip() not in secrets_seen and token_file.read_text().strip() not in secrets_seen


def test_fetchmail_through_the_broker_fetches_across_expiry_without_a_timer(host):
    from test_system_broker import broker
    host.sockgroup = host.group
    host.account('work', token_file_group=host.group, scopes='openid offline_access mail.imap',
                 imap_host=host.dc.host, imap_port=host.dc.imaps_port, tunnel_tls='implicit',
                 min_validity=1)
    r = host.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    token_file = host.run_dir / 'work.token'
    first = token_file.read_text()
    home = reader_home(host)
    log = home / 'fetchmail.log'
    argv = ['fetchmail', '-f', str(home / 'fetchmailrc'), '-d', '1', '-N', '--invisible',
            '--mda', f'cat > {home}/out/msg.$$', '--pidfile', str(home / 'fetchmail.pid'),
            '--idfile', str(home / 'fetchids')]
    with broker(host) as broker_log, open(log, 'w') as logf:
        daemon = subprocess.Popen(as_user(host.reader, argv), env=dict(host.env, HOME=str(home)),
                                  stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        try:
            def detail():
                return log.read_text()[-3000:] + broker_log.read_text()[-2000:]

            deliver(host.dc, message())
            wait_until(lambda: len(delivered(home)) == 1, 20, 'fetchmail fetched the first',
                       interval=0.1, detail=detail)
            wait_until(lambda: not host.srv.introspect(first.strip())['active'],
                       ACCESS_TTL + 10, 'the access token expired')
            deliver(host.dc, message())
            wait_until(lambda: len(delivered(home)) == 2, 20,
                       'fetchmail fetched the second message through the broker',
                       interval=0.1, detail=detail)
            assert daemon.poll() is None, detail()
        finally:
            daemon.terminate()
            daemon.wait(10)
        assert token_file.read_text() != first
        assert 'work: refreshed' in broker_log.read_text()
    assert first.strip() not in log.read_text()
