"""`tokend relay smtp` with `smtp_backend = graph`: the relay takes the
message itself and sends it with Microsoft Graph's sendMail.

No real Microsoft Graph is reachable here: the Graph side is
tests/harness/graph_testserver.py, a small HTTP server that replays Graph's
documented sendMail contract (its docstring cites the pages), checks the
bearer token by introspection at the test authorization server and
delivers what it accepts into the real Dovecot with doveadm, where these
tests read it back.  The SMTP clients are Python's smtplib and msmtp.
"""

import re
import smtplib
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import SANITIZER
from harness.dovecot import free_port
from harness.graph_testserver import GraphServer, error
from harness.tunnelpeers import USER, dovecot_for, revoke_grant
from harness.wait import wait_until
from test_relay import Session

TIMEOUT = 30
SENDER = 'alice@example.org'
SCOPES = 'openid offline_access mail.imap mail.send'
LIMIT = 3145728  # Graph's 4 MB a request, base64: 3 MiB of message
APP = 'tokend-app-secret'
BOX = 'box1@example.org'


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver) as dc:
        yield dc


@pytest.fixture
def graph(authserver, dovecot):
    with GraphServer(authserver, dovecot, apps={APP: [BOX]}) as g:
        yield g


def user_account(tokend, dovecot, graph, **keys):
    """A person's account: its IMAP/SMTP token and, in token set `graph`,
    one for Graph's Mail.Send (here the test server's mail.send)."""
    values = dict(scopes=SCOPES, send_as=SENDER, smtp_backend='graph', graph_url=graph.url,
                  token_sets='graph:mail.send', imap_host=dovecot.host,
                  imap_port=dovecot.imap_port)
    values.update(keys)
    tokend.account(**values)
    tokend.write_config('[defaults]\nrelay_account = work\n')
    tokend.obtain()


def app_account(tokend, graph, tmp_path, username=BOX):
    secret = tmp_path / 'secret'
    secret.write_text('test-app-secret\n')
    secret.chmod(0o600)
    tokend.config.parent.chmod(0o700)
    tokend.account(grant='client_credentials', client_id=APP, client_secret_file=secret,
                   authorize_url=None, scopes='mail.send', username=username,
                   smtp_backend='graph', graph_url=graph.url)
    tokend.write_config('[defaults]\nrelay_account = work\n')


def message(sender=SENDER, to='bob@example.org', cc=None, size=0, subject='through Graph'):
    lines = [f'From: {sender}', f'To: {to}'] + ([f'Cc: {cc}'] if cc else []) + [
        f'Subject: {subject}', 'Message-ID: <graph-test@example.org>', '',
        'Hello through Microsoft Graph.', '.a line that starts with a dot', '..two dots',
        'x' * size, '']
    return '\r\n'.join(lines).encode()


def inbox(dc, user):
    """Each message in user's INBOX as Dovecot gives it back (IMAP's
    BODY[], CR LF)."""
    r = subprocess.run(['doveadm', '-c', str(dc.config_path), 'fetch', '-u', user, 'text',
                        'mailbox', 'INBOX', 'all'], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    parts = [p for p in r.stdout.split(b'\f\n') if p.strip()]
    out = []
    for p in parts:
        assert p.startswith(b'text:\n'), p[:100]
        out.append(p[len(b'text:\n'):])
    return [m.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n') for m in out]


def empty(dc, user):
    subprocess.run(['doveadm', '-c', str(dc.config_path), 'expunge', '-u', user, 'mailbox',
                    'INBOX', 'all'], capture_output=True, timeout=30)


@pytest.fixture
def session(tokend):
    made = []

    def make(*options):
        s = Session(tokend, 'smtp', *options)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def transaction(s, msg, rcpts=('bob@example.org',), sender=SENDER, ehlo=True):
    """Greeting, EHLO, one message; the reply after the data (or the first
    refusal)."""
    if ehlo:
        assert s.reply().startswith('220 ')
        s.ehlo = s.command('EHLO client.example')
    r = s.command(f'MAIL FROM:<{sender}>')
    if not r.startswith('250'):
        return r
    for rcpt in rcpts:
        assert s.command(f'RCPT TO:<{rcpt}>').startswith('250')
    assert s.command('DATA').startswith('354')
    s.send(msg.replace(b'\r\n.', b'\r\n..') + b'.\r\n')
    return s.reply()


# Delivery -----------------------------------------------------------------

def test_smtplib_through_listen_delivers_byte_identical(tokend, dovecot, graph):
    user_account(tokend, dovecot, graph)
    empty(dovecot, 'bob')
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    msg = message(size=200000)
    try:
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        with smtplib.SMTP('127.0.0.1', port, timeout=TIMEOUT) as smtp:
            code, ehlo = smtp.ehlo()
            assert f'SIZE {LIMIT}'.encode() in ehlo, ehlo
            smtp.login(USER, 'the password is ignored')
            smtp.sendmail(SENDER, ['bob@example.org'], msg)
    finally:
        relay.terminate()
        _, err = relay.communicate(timeout=TIMEOUT)
    assert inbox(dovecot, 'bob') == [msg]
    req = graph.requests[-1]
    assert req['path'] == f'/v1.0/users/{SENDER.replace("@", "@")}/sendMail'
    assert req['content_type'] == 'text/plain'
    # The Graph token is the token set's, not the mail token.
    graph_token = (tokend.state / 'work' / 'token.graph').read_text().strip()
    assert req['authorization'] == f'Bearer {graph_token}'
    assert graph_token != tokend.token_file().read_text().strip()
    assert graph_token not in err and 'sandboxed' not in err


def _connects(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return True
    except OSError:
        return False


def test_250_only_after_graph_answered_202(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    s = session()
    r = transaction(s, message(subject='ordering'))
    # The test server delivers, then answers 202: a 250 seen means both
    # happened before it.
    assert r.startswith('250 2.0.0 ') and 'Microsoft Graph' in r, r
    assert len(graph.sent) == 1
    # The process that reads the client is sandboxed; its agent, which
    # sends and refreshes, is not.
    status = _proc_status(s.proc.pid)
    # (The ASan build leaves the sandbox out: LeakSanitizer needs ptrace.)
    if 'asan' not in (SANITIZER or ''):
        assert status['Seccomp'] == '2' and status['NoNewPrivs'] == '1', status
    children = (Path('/proc') / str(s.proc.pid) / 'task' / str(s.proc.pid) / 'children')
    agent = int(children.read_text().split()[0])
    assert _proc_status(agent)['Seccomp'] == '0'
    assert s.command('QUIT').startswith('221 ')
    assert s.finish() == 0, s.stderr


def _proc_status(pid):
    lines = (Path('/proc') / str(pid) / 'status').read_text().splitlines()
    return dict(line.split(':\t', 1) for line in lines if ':\t' in line)


def test_bcc_recipients_get_it_without_the_header(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    for u in ('bob', 'carol', 'dave'):
        empty(dovecot, u)
    # A display name in a charset iconv loads a module for: the sandboxed
    # process reading the header does without it.
    msg = message(to='bob@example.org', cc='=?koi8-r?Q?D=C1ve?= <dave@example.org>',
                  subject='bcc')
    s = session()
    r = transaction(s, msg, rcpts=('bob@example.org', 'Dave@Example.org', 'carol@example.org'))
    assert r.startswith('250 '), r
    sent = graph.sent[-1]
    assert sent['mime'].startswith(b'Bcc: carol@example.org\r\n'), sent['mime'][:200]
    assert sorted(sent['recipients']) == ['bob@example.org', 'carol@example.org',
                                          'dave@example.org']
    for u in ('bob', 'carol', 'dave'):
        assert inbox(dovecot, u) == [msg], u


def test_header_recipient_not_in_rcpt_to_is_refused(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    s = session()
    r = transaction(s, message(to='bob@example.org, erin@example.org'))
    assert r.startswith('554 5.6.0 ') and '<erin@example.org>' in r, r
    assert graph.requests == []


def test_app_only_account_with_msmtp(tokend, dovecot, graph, tmp_path):
    app_account(tokend, graph, tmp_path)
    empty(dovecot, 'bob')
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    msg = message(sender=BOX, subject='app only').replace(b'\r\n', b'\n')
    try:
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        r = subprocess.run(['msmtp', '--host=127.0.0.1', f'--port={port}', '--tls=off',
                            '--auth=off', f'--from={BOX}', 'bob@example.org'], input=msg,
                           capture_output=True, timeout=TIMEOUT, env=tokend.env)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)
    # msmtp adds a Date header on top.
    got = inbox(dovecot, 'bob')
    assert len(got) == 1 and got[0].endswith(msg.replace(b'\n', b'\r\n')), got
    assert got[0] == graph.sent[-1]['mime']
    info = graph.authserver.introspect(graph.requests[-1]['authorization'].split()[1])
    assert info['client_id'] == APP


def test_app_without_the_mailbox_is_550(tokend, dovecot, graph, tmp_path, session):
    """The app holds Mail.Send, but not for box2: Graph's real 403."""
    app_account(tokend, graph, tmp_path, username='box2@example.org')
    r = transaction(session(), message(sender='box2@example.org'), sender='box2@example.org')
    assert r.startswith('550 5.7.1 ') and 'ErrorAccessDenied' in r and 'Mail.Send' in r, r
    assert graph.sent == []


# Graph's answers ------------------------------------------------------------

@pytest.mark.parametrize('answer, expected, words', [
    (error(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.'),
     '554 5.6.0 ', 'ErrorMimeContentInvalidBase64String: Invalid base64 string'),
    (error(403, 'ErrorAccessDenied', 'Access is denied.'), '550 5.7.1 ', 'Mail.Send'),
    (error(413, 'RequestEntityTooLarge', 'The request is too large.'), '552 5.3.4 ', str(LIMIT)),
    (error(429, 'ApplicationThrottled', 'Too many requests.', {'Retry-After': '7'}),
     '451 4.4.5 ', 'wait 7 seconds'),
    (error(503, 'ServiceUnavailable', 'Try later.', {'Retry-After': '3'}), '451 4.4.3 ',
     'wait 3 seconds'),
    (error(504, 'GatewayTimeout', 'Gateway timeout.'), '451 4.4.3 ', '504'),
], ids=['400', '403', '413', '429', '503', '504'])
def test_graph_answers_are_mapped(tokend, dovecot, graph, session, answer, expected, words):
    user_account(tokend, dovecot, graph)
    graph.script(answer)
    s = session()
    r = transaction(s, message())
    assert r.startswith(expected) and words in r, r
    assert '\r\n' not in r[:-2]
    assert graph.sent == []
    # The session goes on: the next message is sent.
    assert transaction(s, message(), ehlo=False).startswith('250 ')


def test_graph_hanging_is_451_within_the_timeout(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    graph.hang()
    r = transaction(session('--timeout=3'), message())
    assert r.startswith('451 4.4.1 ') and 'did not answer' in r, r
    assert graph.sent == []


def test_graph_unreachable_is_451(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph, graph_url=f'http://127.0.0.1:{free_port()}')
    r = transaction(session(), message())
    assert r.startswith('451 4.4.1 '), r


def test_401_is_one_refresh_and_one_retry(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    graph.script(error(401, 'InvalidAuthenticationToken', 'Access token has expired.'))
    r = transaction(session(), message())
    assert r.startswith('250 '), r
    first, second = graph.requests[-2:]
    assert first['authorization'] != second['authorization']


def test_signin_revoked_is_454_and_notify_runs(tokend, dovecot, graph, session, authserver,
                                               tmp_path):
    flag = tmp_path / 'notified'
    user_account(tokend, dovecot, graph, notify_cmd=f'touch {flag}')
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    r = transaction(session(), message())
    assert r.startswith('454 4.7.0 tokend: work: '), r
    assert graph.sent == []
    wait_until(flag.exists, 10, 'notify_cmd ran')


def test_401_twice_is_454(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    refused = error(401, 'InvalidAuthenticationToken', 'Access token has expired.')
    graph.script(refused, refused)
    r = transaction(session(), message())
    assert r.startswith('454 4.7.0 ') and 'InvalidAuthenticationToken' in r, r
    assert len(graph.requests) == 2


# Size ---------------------------------------------------------------------

def test_declared_size_over_the_limit_is_552_at_mail_from(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    s = session()
    assert s.reply().startswith('220 ')
    assert f'SIZE {LIMIT}' in s.command('EHLO c')
    r = s.command(f'MAIL FROM:<{SENDER}> SIZE={LIMIT + 1}')
    assert r.startswith('552 5.3.4 ') and str(LIMIT) in r, r
    assert s.command(f'MAIL FROM:<{SENDER}> SIZE={LIMIT}').startswith('250 ')


def test_graph_session_offers_no_chunks_and_refuses_bdat(tokend, dovecot, graph, session):
    """sendMail takes one whole MIME message: a Graph session offers no
    CHUNKING, DSN or SMTPUTF8, refuses a success notice it cannot give, and
    answers BDAT with 502 (the chunk read and dropped), after which the
    session still sends with DATA."""
    user_account(tokend, dovecot, graph)
    empty(dovecot, 'bob')
    s = session()
    assert s.reply().startswith('220 ')
    ehlo = s.command('EHLO c')
    assert f'SIZE {LIMIT}' in ehlo and 'PIPELINING' in ehlo, ehlo
    for word in ('CHUNKING', 'DSN', 'SMTPUTF8'):
        assert word not in ehlo, ehlo
    assert s.command(f'MAIL FROM:<{SENDER}>').startswith('250 ')
    assert s.command('RCPT TO:<bob@example.org> NOTIFY=SUCCESS').startswith('555 ')
    assert s.command('RCPT TO:<bob@example.org>').startswith('250 ')
    s.send(b'BDAT 5 LAST\r\nhello')
    r = s.reply()
    assert r.startswith('502 5.5.1 ') and 'Graph' in r, r
    assert s.command('RSET').startswith('250')
    msg = message()
    assert transaction(s, msg, ehlo=False).startswith('250 ')
    assert inbox(dovecot, 'bob') == [msg]


def test_message_over_the_limit_is_552_after_the_data(tokend, dovecot, graph, session):
    """Without SIZE= the relay learns the size only while reading: what
    passes the limit is read and dropped, never kept, so 30 MB take no more
    memory than just over the limit."""
    user_account(tokend, dovecot, graph)
    hwm = []
    for size in (LIMIT, 30 * 1024 * 1024):
        s = session()
        r = transaction(s, message(size=size))
        assert r.startswith('552 5.3.4 ') and str(LIMIT) in r, r
        hwm.append(_vm_hwm_kib(s.proc.pid))
        assert transaction(s, message(), ehlo=False).startswith('250 ')
    assert len(graph.requests) == 2
    assert hwm[1] - hwm[0] < 2048, hwm


def test_message_at_the_limit_is_sent(tokend, dovecot, graph, session):
    user_account(tokend, dovecot, graph)
    empty(dovecot, 'bob')
    msg = message(size=0)
    msg = msg[:-2] + b'y' * (LIMIT - len(msg)) + b'\r\n'
    assert len(msg) == LIMIT
    r = transaction(session(), msg)
    assert r.startswith('250 '), r
    assert graph.requests[-1]['length'] == 4 * 1024 * 1024
    assert inbox(dovecot, 'bob') == [msg]


def _vm_hwm_kib(pid):
    status = open(f'/proc/{pid}/status').read()
    return int(re.search(r'VmHWM:\s+(\d+) kB', status).group(1))


# Configuration ---------------------------------------------------------------

def test_graph_backend_needs_a_graph_url(tokend):
    tokend.account(smtp_backend='graph')
    tokend.write_config()
    r = tokend.run('status')
    assert r.returncode == 78 and 'graph_url' in r.stderr, r.stderr
    tokend.account(smtp_backend='exchange')
    tokend.write_config()
    r = tokend.run('status')
    assert r.returncode == 78 and 'smtp_backend' in r.stderr, r.stderr
    # The loopback rule of every URL: http only to a loopback address.
    tokend.account(smtp_backend='graph', graph_url='http://graph.example.com')
    tokend.write_config()
    r = tokend.run('status')
    assert r.returncode == 78 and 'graph_url' in r.stderr and 'https://' in r.stderr, r.stderr
