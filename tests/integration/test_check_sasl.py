"""`tokend check` logs in through the same session and SASL engine as the
tunnel (no libcurl): against scripted SMTP and IMAP servers (harness/
scripted.py) that echo what they were sent, answer with multi-line replies,
temporary failures and refusals, and against a loopback port held by
another user.  Exit statuses and the one-line messages
are those check always had: 0 and "ACCOUNT: SMTP login to HOST:PORT as
USER: ok", 77 with "refused the token (SERVER WORDS)", 75 for what may
pass later.
"""

import base64
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE
from harness.authserver import SERVER_DIR
from harness.scripted import ScriptedMailServer
from harness.tunnelpeers import USER

pytestmark = pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                                reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}')

HOST = '127.0.0.1'
QUICK = 15
# Only lower-case letters: no token shape for redact_text's general rule,
# so only the rule for what tokend knows it sent can hide it.
PLAIN_TOKEN = 'quietlowercasetokenwithnodigitsatall'


def b64(text):
    return base64.b64encode(text.encode()).decode()


def challenge(status='401'):
    return b64(json.dumps({'status': status, 'schemes': 'Bearer',
                           'scope': 'https://mail.google.com/'}))


def encodings(token, port):
    """Every form of token tokend sends: bare, XOAUTH2, OAUTHBEARER."""
    return [token, b64(f'user={USER}\x01auth=Bearer {token}\x01\x01'),
            b64(f'n,a={USER},\x01host={HOST}\x01port={port}\x01auth=Bearer {token}\x01\x01')]


def bearer_of(ir):
    """The token inside an XOAUTH2 or OAUTHBEARER initial response."""
    plain = base64.b64decode(ir).decode()
    return plain.split('auth=Bearer ', 1)[1].split('\x01', 1)[0]


def line_of(peer):
    return peer.readline().decode(errors='replace').rstrip('\r\n')


def smtp_server(final, mechs='XOAUTH2 OAUTHBEARER', challenge_status=None):
    """Submission as Gmail answers it: a multi-line greeting and EHLO, AUTH
    with or without an initial response, an error challenge, then final
    ({echo}: every form of the token received)."""
    def script(peer):
        peer.send('220-smtp.scripted ESMTP\r\n220 ready\r\n')
        while (line := line_of(peer)):
            words = line.split(' ')
            verb = words[0].upper()
            if verb == 'EHLO':
                peer.send(f'250-smtp.scripted at your service\r\n250-SIZE 35882577\r\n'
                          f'250-AUTH {mechs}\r\n250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n')
            elif verb == 'QUIT':
                peer.send('221 2.0.0 closing connection\r\n')
                return
            elif verb == 'AUTH':
                if len(words) < 3:
                    peer.send('334 \r\n')
                    words.append(line_of(peer))
                if challenge_status:
                    peer.send(f'334 {challenge(challenge_status)}\r\n')
                    peer.readline()
                echo = ' '.join(encodings(bearer_of(words[2]), peer.server.port) + [words[2]])
                peer.send(final.format(echo=echo))
                if not final.startswith('235'):
                    peer.read_to_end()
                    return
            else:
                peer.send('502 5.5.1 Unrecognized command.\r\n')
    return script


def imap_server(final, challenge_status=None):
    def script(peer):
        peer.send('* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n')
        while (line := line_of(peer)):
            tag, command, *args = line.split(' ')
            if command.upper() == 'LOGOUT':
                peer.send(f'* BYE bye\r\n{tag} OK done\r\n')
                return
            if challenge_status:
                peer.send(f'+ {challenge(challenge_status)}\r\n')
                peer.readline()
            echo = ' '.join(encodings(bearer_of(args[1]), peer.server.port) + [args[1]])
            peer.send(final.format(tag=tag, echo=echo))
            if not final.startswith('{tag} OK'):
                peer.read_to_end()
                return
    return script


def sign_in(tokend, port, smtp=True, token=None):
    keys = ({'smtp_host': HOST, 'smtp_port': port} if smtp else
            {'imap_host': HOST, 'imap_port': port})
    tokend.account(scopes='openid offline_access mail.imap mail.smtp', **keys)
    tokend.obtain()
    if token:
        tokend.token_file().write_text(token + '\n')
    return tokend.token_file().read_text().strip()


def check(tokend, *args):
    return tokend.run('-vv', 'check', 'work', *args, timeout=QUICK)


@pytest.mark.parametrize('mechs', ['XOAUTH2', 'XOAUTH2 OAUTHBEARER'])
def test_smtp_echo_never_reaches_the_output(tokend, mechs):
    final = '535-5.7.8 Username and Password not accepted, you sent\r\n535 5.7.8 {echo}\r\n'
    with ScriptedMailServer(smtp_server(final, mechs, challenge_status='401')) as srv:
        token = sign_in(tokend, srv.port, token=PLAIN_TOKEN)
        r = check(tokend, '--smtp')
    assert r.returncode == EX_NOPERM, r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith(
        'tokend: work: SMTP login to 127.0.0.1 refused the token (535 5.7.8 Username and '
        'Password not accepted, you sent [redacted]'), last
    assert last.endswith('or run: tokend refresh --force'), last
    for form in encodings(token, srv.port):
        assert form not in r.stdout + r.stderr


def test_imap_echo_never_reaches_the_output(tokend):
    final = '{tag} NO [AUTHENTICATIONFAILED] you sent {echo}\r\n'
    with ScriptedMailServer(imap_server(final, challenge_status='401')) as srv:
        token = sign_in(tokend, srv.port, smtp=False, token=PLAIN_TOKEN)
        r = check(tokend, '--imap')
    assert r.returncode == EX_NOPERM, r.stderr
    assert 'IMAP login to 127.0.0.1 refused the token (NO [AUTHENTICATIONFAILED] you sent ' \
        '[redacted]' in r.stderr
    for form in encodings(token, srv.port):
        assert form not in r.stdout + r.stderr


def test_smtp_login_through_multiline_replies(tokend):
    with ScriptedMailServer(smtp_server('235 2.7.0 Accepted\r\n', 'XOAUTH2')) as srv:
        sign_in(tokend, srv.port)
        r = check(tokend, '--smtp')
        sent = srv.received().decode()
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout == f'work: SMTP login to {HOST}:{srv.port} as {USER}: ok\n'
    lines = sent.split('\r\n')
    assert lines[0] == 'EHLO localhost'
    assert lines[1].startswith('AUTH XOAUTH2 ')  # short enough for the initial response
    assert lines[2] == 'QUIT'


def test_smtp_temporary_failure_is_75(tokend):
    with ScriptedMailServer(smtp_server('454 4.7.0 Temporary authentication failure\r\n',
                                        challenge_status='401')) as srv:
        sign_in(tokend, srv.port)
        r = check(tokend, '--smtp')
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert r.stderr.splitlines()[-1] == (
        'tokend: work: SMTP login to 127.0.0.1 failed: 454 4.7.0 Temporary authentication '
        'failure; SASL status 401; the server could not check the token now; try again later')


def test_imap_unavailable_is_75(tokend):
    with ScriptedMailServer(imap_server('{tag} NO [UNAVAILABLE] Try later.\r\n')) as srv:
        sign_in(tokend, srv.port, smtp=False)
        r = check(tokend, '--imap')
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert 'IMAP login to 127.0.0.1 failed: NO [UNAVAILABLE] Try later.' in r.stderr


def test_server_down_keeps_the_check_message(tokend):
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    sign_in(tokend, port)
    r = check(tokend, '--smtp')
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert r.stderr.splitlines()[-1].startswith(
        f'tokend: work: SMTP check of {HOST}:{port} failed: cannot connect to {HOST} port '
        f'{port}: Connection refused')


LISTENER = r'''
import socket, sys
s = socket.create_server(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(20)
conn, _ = s.accept()
conn.sendall(sys.argv[1].encode())
conn.settimeout(5)
got = b""
try:
    while (chunk := conn.recv(65536)):
        got += chunk
except OSError:
    pass
print(len(got), flush=True)
'''


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to run a listener as nobody')
@pytest.mark.parametrize('smtp', [True, False], ids=['smtp', 'imap'])
def test_loopback_port_of_another_user_gets_nothing(tokend, smtp):
    greeting = '220 ready\r\n' if smtp else '* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi\r\n'
    listener = subprocess.Popen([sys.executable, '-c', LISTENER, greeting], user='nobody',
                                stdout=subprocess.PIPE, text=True, cwd='/')
    try:
        port = listener.stdout.readline().strip()
        sign_in(tokend, port, smtp=smtp)
        r = check(tokend, '--smtp' if smtp else '--imap')
        received = listener.stdout.readline().strip()
    finally:
        listener.kill()
        listener.wait()
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    assert received == '0'
    assert r.stderr.splitlines()[-1] == (
        f'tokend: work: {"SMTP" if smtp else "IMAP"} check of {HOST}:{port} failed: {HOST} '
        f'port {port} is held by user nobody (uid 65534), not by root or you; tokend sends '
        f'nothing there; a mail server on loopback must run as root or as you')
