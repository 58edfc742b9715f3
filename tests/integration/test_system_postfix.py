"""Postfix as a mail host's system service sending through the system
relay (issue 22): a private Postfix (harness/postfix.py; its queue and smtp
client run as the real `postfix` user) whose relayhost is the system
relay.  The relay is tokend-relay-smtp@.service's command line,
`tokend --system relay smtp` run under the unit's user (the service user)
with setpriv, one process per connection with the connection on stdin and
stdout, as tokend-relay-smtp.socket (Accept=yes) starts it; the test
machine has no systemd as PID 1, so systemd-socket-activate plays the
socket unit.  The relay lets Postfix in by `relay_peers = postfix`;
upstream is Dovecot's submission with the account's token.  The message
arrives byte-identical, and the postfix user can read nothing under the
state folder nor the token file (checked with its uid)."""

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import EX_OK, TOKEND
from harness.authserver import AuthServer
from harness.dovecot import free_port
from harness.postfix import Postfix
from harness.tunnelpeers import dovecot_for, shared_dir
from harness.wait import wait_until
from test_relay_postfix import RECIPIENT, SENDER, arrived, message, without_received
from test_system_fetchmail import as_user, unreadable_as
from test_system_mode import System, made_users

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates users: needs root')

TIMEOUT = 30
SERVICE_IN = Path(__file__).resolve().parents[2] / 'data' / 'system' / \
    'tokend-relay-smtp@.service.in'


@pytest.fixture
def host():
    base = Path(tempfile.mkdtemp(prefix='tokend-syspostfix-'))
    base.chmod(0o755)
    try:
        with made_users() as (service, reader, outsider, group), \
                AuthServer(base / 'authserver') as srv, dovecot_for(srv) as dc:
            (base / 'authserver').chmod(0o755)
            s = System(base, srv, service)
            s.dc = dc
            s.write(s.etc / 'config', '[defaults]\nrelay_account = work\nrelay_peers = postfix\n')
            yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def unit_command():
    """The ExecStart of the system tokend-relay-smtp@.service, with the
    tested binary."""
    text = SERVICE_IN.read_text()
    assert 'User=tokend\n' in text and 'StandardInput=socket\n' in text
    line = re.search(r'^ExecStart=@bindir@/tokend (.*)$', text, re.M).group(1)
    return [str(TOKEND), *line.split()]


def listening(port):
    """The socket unit's port is listening (/proc/net/tcp, state 0A)."""
    want = f'0100007F:{port:04X}'
    rows = Path('/proc/net/tcp').read_text().splitlines()[1:]
    return any(r.split()[1] == want and r.split()[3] == '0A' for r in rows)


def greets(port):
    import smtplib
    try:
        with smtplib.SMTP('127.0.0.1', port, timeout=5) as s:
            return s.noop()[0] == 250
    except OSError:
        return False


def test_postfix_sends_through_the_system_relay(host):
    host.account('work', scopes='openid offline_access mail.imap', send_as=SENDER,
                 smtp_host=host.dc.host, smtp_port=host.dc.submission_port)
    r = host.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    port = free_port()
    log = host.base / 'relay.log'
    # tokend-relay-smtp.socket (Accept=yes) and its service, as the unit runs it.
    env = {k: v for k, v in host.env.items() if k != 'BROWSER'}
    # It gives the service only the variables named (as a unit's Environment=).
    passed = [f'-E{k}' for k in env]
    argv = ['systemd-socket-activate', '--accept', '--inetd', '-l', f'127.0.0.1:{port}',
            *passed, *as_user(host.service, unit_command())]
    with open(log, 'w') as logf:
        relay = subprocess.Popen(argv, env=env, stdout=logf, stderr=logf,
                                 stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(port), 10, 'the system relay listens',
                   detail=lambda: log.read_text()[-2000:])
        # Root is no relay peer: it is turned away (relay_peers names postfix only).
        assert not greets(port)
        wait_until(lambda: 'uid 0 may not use this relay' in log.read_text(), 10,
                   'the relay refused root', detail=lambda: log.read_text()[-2000:])
        r = host.tokend('snippet', 'work', 'postfix')
        assert r.returncode == EX_OK, r.stderr
        assert 'relayhost = [127.0.0.1]:1587\n' in r.stdout, r.stdout
        relay_cf = r.stdout.replace('[127.0.0.1]:1587', f'[127.0.0.1]:{port}')
        with shared_dir('tokend-syspostfix-') as workdir, Postfix(workdir, relay_cf) as pf:
            count = len(host.dc.messages())
            msg = message('system relay')
            pf.submit(SENDER, [RECIPIENT], msg)
            got = arrived(host.dc, count + 1)
            assert without_received(got['data']) == msg
            assert got['mail_from'].startswith(f'<{SENDER}>')
            wait_until(lambda: pf.queue() == '', TIMEOUT, 'the queue is empty', detail=pf.log)
            assert re.search(r'relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent', pf.log())
            maillog = pf.log()
    finally:
        relay.terminate()
        relay.wait(10)

    # The relay ran as the service user and let Postfix's user in.
    relay_log = log.read_text()
    token = (host.run_dir / 'work.token').read_text().strip()
    assert token not in relay_log and token not in maillog
    # Nothing under the state folder, nor the token file, is Postfix's to read.
    count, readable = unreadable_as('postfix', host.state)
    assert count > 3 and readable == [], readable
    assert unreadable_as('postfix', host.run_dir / 'work.token')[1] == []
    # The check sees what postfix can read (its own queue folder).
    assert pwd.getpwnam('postfix').pw_uid != os.stat(host.state).st_uid
