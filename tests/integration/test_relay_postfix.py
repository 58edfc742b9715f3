"""Postfix in front of `tokend relay`, as a mail host runs it: a private
Postfix (harness/postfix.py: its own config, queue and data directories,
loopback only; the system's Postfix stays stopped) with `relayhost =
[127.0.0.1]:PORT` pointing at `tokend relay --listen`, no SASL on
loopback, configured with what `tokend snippet work postfix` prints.  Its
smtp client connects as the `postfix` user, which the
relay lets in by `relay_peers = postfix`; without a login the relay uses
`relay_account`.  Upstream is the real Dovecot submission with the
account's token, relaying to the sink of harness/dovecot.py.

Token trouble must never bounce: with the sign-in revoked the relay
answers 454, Postfix keeps the message queued, and after a new sign-in
and `postqueue -f` delivers it.
"""

import re
import smtplib
from email.message import EmailMessage

import pytest

from harness.dovecot import free_port
from harness.postfix import Postfix
from harness.tunnelpeers import dovecot_for, revoke_grant, shared_dir
from harness.wait import wait_until

SCOPES = 'openid offline_access mail.imap'
SENDER = 'alice@example.org'
RECIPIENT = 'bob@example.org'
TIMEOUT = 30


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver) as dc:
        yield dc


@pytest.fixture
def relay(tokend, dovecot):
    """A signed-in account and `tokend relay --listen` for Postfix."""
    tokend.account(scopes=SCOPES, send_as=SENDER, smtp_host=dovecot.host,
                   smtp_port=dovecot.submission_port)
    tokend.write_config('[defaults]\nrelay_account = work\nrelay_peers = postfix\n')
    tokend.obtain()
    port = free_port()
    proc = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    wait_until(lambda: _greets(port), 10, 'the relay listens')
    yield port
    proc.terminate()
    _, err = proc.communicate(timeout=TIMEOUT)
    assert tokend.token_file().read_text().strip() not in err


def _greets(port):
    try:
        with smtplib.SMTP('127.0.0.1', port, timeout=2) as s:
            return s.noop()[0] == 250
    except OSError:
        return False


@pytest.fixture
def postfix(tokend, relay):
    """Postfix configured with what `tokend snippet work postfix` prints,
    the relay's port (the systemd socket's 1587) replaced by the test's."""
    r = tokend.run('snippet', 'work', 'postfix')
    assert r.returncode == 0, r.stderr
    assert 'relayhost = [127.0.0.1]:1587\n' in r.stdout
    assert 'relay_peers = postfix' in r.stdout and 'relay_account = work' in r.stdout
    relay_cf = r.stdout.replace('[127.0.0.1]:1587', f'[127.0.0.1]:{relay}')
    with shared_dir('tokend-postfix-') as workdir, Postfix(workdir, relay_cf) as pf:
        yield pf


def message(subject):
    msg = EmailMessage()
    msg['From'] = SENDER
    msg['To'] = RECIPIENT
    msg['Subject'] = subject
    msg['Date'] = 'Sun, 06 Dec 2026 12:00:00 +0000'
    msg['Message-ID'] = f'<{subject.replace(" ", "-")}@example.org>'
    msg.set_content('Through Postfix and tokend relay.\n.leading dot\n' + 'y' * 5000 + '\n')
    return msg.as_bytes().replace(b'\n', b'\r\n')


def without_received(data):
    """The message without the Received lines Postfix and Dovecot
    submission put on top (each may be folded)."""
    while data.startswith(b'Received: '):
        _, _, data = data.partition(b'\r\n')
        while data[:1] in (b' ', b'\t'):
            _, _, data = data.partition(b'\r\n')
    return data


def arrived(dc, count):
    wait_until(lambda: len(dc.messages()) >= count, TIMEOUT, 'the sink got the message',
               detail=lambda: dc.log()[-2000:])
    return dc.messages()[count - 1]


def test_mail_to_postfix_arrives_byte_identical(dovecot, postfix):
    count = len(dovecot.messages())
    msg = message('via postfix')
    postfix.submit(SENDER, [RECIPIENT], msg)
    got = arrived(dovecot, count + 1)
    assert without_received(got['data']) == msg
    assert got['mail_from'].startswith(f'<{SENDER}>')
    assert got['rcpt_tos'] == [f'<{RECIPIENT}>']
    wait_until(lambda: postfix.queue() == '', TIMEOUT, 'the queue is empty', detail=postfix.log)
    assert re.search(r'relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent', postfix.log())


def test_revoked_signin_keeps_mail_queued_until_signed_in_again(tokend, authserver, dovecot,
                                                                 postfix):
    count = len(dovecot.messages())
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    msg = message('queued while signed out')
    postfix.submit(SENDER, [RECIPIENT], msg)
    deferred = wait_until(lambda: re.search(r'status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] '
                                            r'said: (4\d\d [^\n]*)', postfix.log()),
                          TIMEOUT, 'postfix deferred the message', detail=postfix.log)
    assert deferred.group(1).startswith('454 4.7.0 tokend: work: '), deferred.group(1)
    assert 'tokend obtain work' in deferred.group(1)
    assert 'queued while signed out' not in postfix.log()
    queued = postfix.queue()
    assert SENDER in queued and RECIPIENT in queued, queued
    assert len(dovecot.messages()) == count
    assert 'bounced' not in postfix.log()

    tokend.obtain()
    postfix.flush()
    got = arrived(dovecot, count + 1)
    assert without_received(got['data']) == msg
    wait_until(lambda: postfix.queue() == '', TIMEOUT, 'the queue is empty', detail=postfix.log)
