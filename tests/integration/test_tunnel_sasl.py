"""`tokend tunnel` against scripted IMAP and POP3 servers (harness/scripted.py,
in the style of curl's test servers): each server sends exactly the bytes a
test names, so that the login's edges show: servers that echo the SASL
string, capability lists with "]" and CR, temporary failures and refusals,
split packets, continuation lines, odd case, missing line ends, over-long
lines, bytes after the tagged reply, usage errors, a TLS server on a port
tokend took for STARTTLS, and a loopback port held by another user.  Every
case is bounded
in time and ends with one clear line, to the client in its protocol and on
stderr.

The account signs in at the session's authorization server, so that a
forced refresh is real; the scripted servers take any token or none.
"""

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from conftest import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE
from harness.authserver import SERVER_DIR
from harness.scripted import ScriptedMailServer
from harness.tunnelpeers import USER, tunnel

pytestmark = pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                                reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}')

HOST = '127.0.0.1'
QUICK = 10  # seconds: every scripted case ends well within this
CAPS = 'IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER'
# Only lower-case letters: no token shape for redact_text's general rule,
# so only the rule for what tokend knows it sent can hide it.
PLAIN_TOKEN = 'quietlowercasetokenwithnodigitsatall'


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def challenge(status='401'):
    return b64(json.dumps({'status': status, 'schemes': 'bearer', 'scope': 'mail'}))


def bearer_of(ir):
    """The token inside an XOAUTH2 or OAUTHBEARER initial response."""
    plain = base64.b64decode(ir).decode()
    return plain.split('auth=Bearer ', 1)[1].split('\x01', 1)[0]


def encodings(token, port):
    """Every form of token tokend sends: bare, XOAUTH2, OAUTHBEARER."""
    return [token, b64(f'user={USER}\x01auth=Bearer {token}\x01\x01'),
            b64(f'n,a={USER},\x01host={HOST}\x01port={port}\x01auth=Bearer {token}\x01\x01')]


def sign_in(tokend, token=None):
    tokend.account(scopes='openid offline_access mail.imap')
    tokend.obtain()
    if token:
        tokend.token_file().write_text(token + '\n')
    return tokend.token_file().read_text().strip()


def line_of(peer):
    return peer.readline().decode(errors='replace').rstrip('\r\n')


# Scripted servers -----------------------------------------------------------

def imap_server(final, caps=CAPS, challenge_status=None, after_login=None, greeting=None):
    """An IMAP server that greets, takes AUTHENTICATE (with or without
    SASL-IR), sends an error challenge when challenge_status is set, and
    answers final (a format string: {tag}, {echo}: every form of the token
    it received).  after_login(peer, tag) runs after an OK."""
    def script(peer):
        peer.send(greeting or f'* OK [CAPABILITY {caps}] scripted ready\r\n')
        while (line := line_of(peer)):
            tag, command, *args = line.split(' ')
            if command.upper() == 'CAPABILITY':
                peer.send(f'* CAPABILITY {caps}\r\n{tag} OK done\r\n')
                continue
            if command.upper() == 'LOGOUT':
                peer.send(f'* BYE bye\r\n{tag} OK done\r\n')
                return
            assert command.upper() == 'AUTHENTICATE', line
            if len(args) < 2:
                peer.send('+ \r\n')
                args.append(line_of(peer))
            if challenge_status:
                peer.send(f'+ {challenge(challenge_status)}\r\n')
                peer.readline()
            echo = ' '.join(encodings(bearer_of(args[1]), peer.server.port) + [args[1]])
            peer.send(final.format(tag=tag, echo=echo))
            if not final.startswith('{tag} OK'):
                peer.read_to_end()  # until the client has read it all and gone
                return
            if after_login:
                after_login(peer, tag)
            return
    return script


def pop3_server(final, challenge_status=None, refuse_ir=False):
    def script(peer):
        peer.send('+OK scripted POP3 ready\r\n')
        while (line := line_of(peer)):
            words = line.split(' ')
            if words[0].upper() == 'CAPA':
                peer.send('+OK\r\nUSER\r\nSASL XOAUTH2 OAUTHBEARER\r\n.\r\n')
                continue
            if words[0].upper() == 'QUIT':
                peer.send('+OK bye\r\n')
                return
            assert words[0].upper() == 'AUTH', line
            if len(words) > 2 and refuse_ir:
                peer.send('-ERR Syntax error\r\n')
                continue
            if len(words) < 3:
                peer.send('+ \r\n')
                words.append(line_of(peer))
            if challenge_status:
                peer.send(f'+ {challenge(challenge_status)}\r\n')
                peer.readline()
            peer.send(final.format(echo=' '.join(encodings(bearer_of(words[2]),
                                                           peer.server.port) + [words[2]])))
            peer.read_to_end()
            return
    return script


def run_tunnel(tokend, srv, *args, options=()):
    """A tunnel to srv that the client only watches: (first line, exit
    status, stderr, seconds taken)."""
    pop3 = ('--pop3',) if 'pop3' in args else ()
    started = time.monotonic()
    with tunnel(tokend, 'work', *pop3, HOST, str(srv.port), options=options) as c:
        out = c.rest(QUICK)
        rc = c.wait(QUICK)
    return out, rc, c.stderr, time.monotonic() - started


def assert_one_clean_line(out, stderr, prefix):
    assert out.startswith(prefix), out
    assert out.count('\n') == 1, out
    assert out == f'{prefix}{stderr.splitlines()[-1]}\r\n'


# 1. Nothing the server echoes reaches a log or the client ---------------------

@pytest.mark.parametrize('pop3', [False, True], ids=['imap', 'pop3'])
@pytest.mark.parametrize('mech', ['xoauth2', 'oauthbearer'])
def test_echoed_tokens_never_reach_stderr_or_the_client(tokend, pop3, mech):
    first = sign_in(tokend, PLAIN_TOKEN)
    tokend.accounts['work']['tunnel_mech'] = mech
    tokend.write_config()
    if pop3:
        script = pop3_server('-ERR [AUTH] you sent {echo}\r\n', challenge_status='401')
    else:
        script = imap_server('{tag} NO [AUTHENTICATIONFAILED] you sent {echo}\r\n',
                             challenge_status='401')
    with ScriptedMailServer(script) as srv:
        out, rc, stderr, _ = run_tunnel(tokend, srv, *(['pop3'] if pop3 else []),
                                        options=('-vv',))
    assert rc == EX_NOPERM, stderr
    assert len(srv.connections) == 2  # refused, refreshed, refused again
    second = tokend.token_file().read_text().strip()
    assert second != first
    assert 'refreshing and trying once more' in stderr
    assert '[redacted]' in stderr
    for token in (first, second):
        for form in encodings(token, srv.port):
            assert form not in stderr
            assert form not in out
    assert out.startswith('-ERR tokend: work: POP3 login' if pop3 else
                          '* BYE [AUTHENTICATIONFAILED] tokend: work: IMAP login'), out


# 2. The PREAUTH line holds capability atoms only -------------------------------

def test_preauth_line_is_built_from_capability_atoms(tokend):
    sign_in(tokend)

    def after(peer, tag):
        line = line_of(peer)
        t = line.split(' ')[0]
        peer.send(f'* CAPABILITY IMAP4rev1 IDLE\rINJECTED ]X Y] * BYE] {{5}} MOVE '
                  f'AUTH=PLAIN STARTTLS\r\n{t} OK done\r\n')
        peer.read_to_end()
    script = imap_server('{tag} OK Logged in\r\n', after_login=after)
    with ScriptedMailServer(script) as srv:
        with tunnel(tokend, 'work', HOST, str(srv.port)) as c:
            greeting = c.line(QUICK)
    assert greeting == f'* PREAUTH [CAPABILITY IMAP4rev1 MOVE] tokend: logged in as {USER}\r\n'


def test_preauth_capabilities_from_the_login_reply(tokend):
    sign_in(tokend)
    script = imap_server('{tag} OK [CAPABILITY IMAP4rev1 X]Y] * OK Logged in\r\n',
                         after_login=lambda peer, tag: peer.read_to_end())
    with ScriptedMailServer(script) as srv:
        with tunnel(tokend, 'work', HOST, str(srv.port)) as c:
            greeting = c.line(QUICK)
    assert greeting == f'* PREAUTH [CAPABILITY IMAP4rev1 X] tokend: logged in as {USER}\r\n'


# 3. Usage errors are told to the client in its protocol -----------------------

@pytest.mark.parametrize('args,prefix', [
    ((), '* BYE [UNAVAILABLE] '),
    (('--pop3',), '-ERR '),
    (('--bogus', 'work'), '* BYE [UNAVAILABLE] '),
    (('--pop3', '--bogus', 'work'), '-ERR '),
    (('work', 'host', '143', 'extra'), '* BYE [UNAVAILABLE] '),
    (('--pop3', 'work', 'host', '110', 'extra'), '-ERR '),
])
def test_usage_errors_answer_in_the_protocol(tokend, args, prefix):
    tokend.account()
    with tunnel(tokend, *args) as c:
        out = c.rest(QUICK)
        rc = c.wait(QUICK)
    assert rc == EX_USAGE, c.stderr
    assert out.startswith(prefix + 'tokend: '), out
    assert out.endswith('; usage: tokend tunnel ACCOUNT [--pop3] [HOST [PORT]]\r\n'), out
    assert out.count('\n') == 1
    assert c.stderr.startswith('tokend: ') and 'see tokend --help' in c.stderr


# 4. Only an authentication failure is refreshed -------------------------------

@pytest.mark.parametrize('pop3,final,status', [
    (False, '{tag} NO [UNAVAILABLE] Temporary authentication failure.\r\n', None),
    (False, '{tag} NO [UNAVAILABLE] Temporary authentication failure.\r\n', '401'),
    (False, '{tag} NO [SERVERBUG] Internal error occurred.\r\n', None),
    (True, '-ERR [SYS/TEMP] Temporary authentication failure.\r\n', None),
    (True, '-ERR [IN-USE] Mailbox locked.\r\n', None),
], ids=['imap-unavailable', 'imap-unavailable-after-401', 'imap-serverbug', 'pop3-sys-temp',
        'pop3-in-use'])
def test_temporary_failure_is_75_without_refresh(tokend, pop3, final, status):
    first = sign_in(tokend)
    script = (pop3_server(final, challenge_status=status) if pop3 else
              imap_server(final, challenge_status=status))
    with ScriptedMailServer(script) as srv:
        out, rc, stderr, _ = run_tunnel(tokend, srv, *(['pop3'] if pop3 else []))
    assert rc == EX_TEMPFAIL, stderr
    assert len(srv.connections) == 1
    assert tokend.token_file().read_text().strip() == first
    assert 'try again later' in stderr
    assert_one_clean_line(out, stderr, '-ERR ' if pop3 else '* BYE [UNAVAILABLE] ')


@pytest.mark.parametrize('pop3,final,status', [
    (False, '{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n', None),
    (False, '{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n', '401'),
    (False, '{tag} NO AUTHENTICATE failed.\r\n', None),  # Exchange Online: no code
    (False, '{tag} NO Authentication failed.\r\n', 'invalid_token'),
    (True, '-ERR [AUTH] Authentication failed.\r\n', None),
    (True, '-ERR Authentication failure: unknown user name or bad password.\r\n', '401'),
], ids=['imap-code', 'imap-code-401', 'imap-bare', 'imap-invalid-token', 'pop3-auth',
        'pop3-bare-401'])
def test_authentication_failure_refreshes_once(tokend, pop3, final, status):
    first = sign_in(tokend)
    script = (pop3_server(final, challenge_status=status) if pop3 else
              imap_server(final, challenge_status=status))
    with ScriptedMailServer(script) as srv:
        out, rc, stderr, _ = run_tunnel(tokend, srv, *(['pop3'] if pop3 else []))
    assert rc == EX_NOPERM, stderr
    assert len(srv.connections) == 2
    assert tokend.token_file().read_text().strip() != first
    assert 'refused the token' in stderr and 'trying once more' in stderr
    assert_one_clean_line(out, stderr, '-ERR ' if pop3 else '* BYE [AUTHENTICATIONFAILED] ')


@pytest.mark.parametrize('final,status', [
    ('{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n', '400'),
    ('{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n', 'insufficient_scope'),
    ('{tag} NO [AUTHORIZATIONFAILED] Not for this user.\r\n', None),
    ('{tag} NO [CONTACTADMIN] Ask the administrator.\r\n', None),
])
def test_refusal_not_of_the_token_is_77_without_refresh(tokend, final, status):
    first = sign_in(tokend)
    with ScriptedMailServer(imap_server(final, challenge_status=status)) as srv:
        out, rc, stderr, _ = run_tunnel(tokend, srv)
    assert rc == EX_NOPERM, stderr
    assert len(srv.connections) == 1
    assert tokend.token_file().read_text().strip() == first
    assert 'was refused' in stderr and 'a new token would not help' in stderr
    assert_one_clean_line(out, stderr, '* BYE [AUTHENTICATIONFAILED] ')


# 5. A TLS server on a port tokend took for plain text --------------------------

def tls_listener(authserver, send_first=None):
    """A server that speaks TLS from the first byte, as on port 993: it waits
    for the client's hello (or sends send_first at once)."""
    srv = socket.create_server((HOST, 0))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(authserver.cert_file, authserver.key_file)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if send_first:
                conn.sendall(send_first)
            conn.settimeout(30)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b'* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] TLS ready\r\n')
                    tls.recv(100)
            except (OSError, ssl.SSLError):
                pass
    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_tls_server_on_a_plain_port_is_given_up_soon(tokend, authserver):
    sign_in(tokend)
    srv = tls_listener(authserver)
    try:
        started = time.monotonic()
        with tunnel(tokend, 'work', HOST, str(srv.getsockname()[1])) as c:
            out = c.rest(QUICK)
            rc = c.wait(QUICK)
        took = time.monotonic() - started
    finally:
        srv.close()
    print(f'tls-auto give-up after {took:.2f} s', file=sys.stderr)
    assert rc == EX_TEMPFAIL, c.stderr
    assert 4 <= took < 8
    assert 'sent no greeting within 5 s' in out
    assert out.rstrip().endswith('; set tunnel_tls = implicit'), out
    assert_one_clean_line(out, c.stderr, '* BYE [UNAVAILABLE] ')


def test_tls_record_in_place_of_a_greeting_is_named_at_once(tokend, authserver):
    sign_in(tokend)
    srv = tls_listener(authserver, send_first=b'\x16\x03\x01\x00\x02\x02\x28')
    try:
        started = time.monotonic()
        with tunnel(tokend, 'work', '--pop3', HOST, str(srv.getsockname()[1])) as c:
            out = c.rest(QUICK)
            rc = c.wait(QUICK)
        took = time.monotonic() - started
    finally:
        srv.close()
    assert rc == EX_CONFIG, c.stderr
    assert took < 3
    assert 'speaks TLS from the first byte; set tunnel_tls = implicit' in out, out
    assert_one_clean_line(out, c.stderr, '-ERR ')


# 6. A loopback port held by another user gets nothing -------------------------

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
@pytest.mark.parametrize('pop3', [False, True], ids=['imap', 'pop3'])
def test_loopback_port_of_another_user_gets_nothing(tokend, pop3):
    sign_in(tokend)
    greeting = '+OK ready\r\n' if pop3 else '* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready\r\n'
    listener = subprocess.Popen([sys.executable, '-c', LISTENER, greeting], user='nobody',
                                stdout=subprocess.PIPE, text=True, cwd='/')
    try:
        port = listener.stdout.readline().strip()
        with tunnel(tokend, 'work', *(['--pop3'] if pop3 else []), HOST, port) as c:
            out = c.rest(QUICK)
            rc = c.wait(QUICK)
        received = listener.stdout.readline().strip()
    finally:
        listener.kill()
        listener.wait()
    assert rc == EX_UNAVAILABLE, c.stderr
    assert received == '0'
    assert f'{HOST} port {port} is held by user nobody' in out
    assert 'not by root or you; tokend sends nothing there' in out
    assert_one_clean_line(out, c.stderr, '-ERR ' if pop3 else '* BYE [UNAVAILABLE] ')


# 8. The bytes a server may send -------------------------------------------------

def session_after(peer, tag):
    """After the login: a client's SELECT and LOGOUT."""
    while (line := line_of(peer)):
        t, command = line.split(' ')[:2]
        if command.upper() == 'LOGOUT':
            peer.send(f'* BYE bye\r\n{t} OK done\r\n')
            return
        peer.send(f'* 0 EXISTS\r\n{t} OK [READ-WRITE] done\r\n')


def assert_session(tokend, srv, first_after=None):
    with tunnel(tokend, 'work', HOST, str(srv.port)) as c:
        greeting = c.line(QUICK)
        assert greeting.startswith('* PREAUTH [CAPABILITY IMAP4rev1'), (greeting, c.stderr)
        if first_after:
            assert c.line(QUICK) == first_after
        c.send('a1 SELECT INBOX\r\n')
        assert c.until('a1')[-1] == 'a1 OK [READ-WRITE] done\r\n'
        c.send('a2 LOGOUT\r\n')
        assert c.until('a2')[-1].startswith('a2 OK')
        assert c.wait(QUICK) == EX_OK, c.stderr
    assert not srv.errors, srv.errors


def test_split_packets(tokend):
    sign_in(tokend)
    whole = imap_server('{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n',
                        after_login=session_after)

    def script(peer):
        # One byte per segment for the greeting and the tagged reply.
        real_send = peer.send
        peer.send = lambda data, **kw: real_send(data, split=1, pause=0.002)
        whole(peer)
    with ScriptedMailServer(script) as srv:
        assert_session(tokend, srv)


def test_continuation_without_sasl_ir(tokend):
    sign_in(tokend)
    script = imap_server('{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n',
                         caps='IMAP4rev1 AUTH=XOAUTH2', after_login=session_after)
    with ScriptedMailServer(script) as srv:
        assert_session(tokend, srv)
        first = srv.connections[0].received.split(b'\r\n')[0]
    assert first.endswith(b' AUTHENTICATE XOAUTH2'), first  # no initial response on the line


def test_odd_case(tokend):
    sign_in(tokend)
    script = imap_server('{tag} ok [capability imap4rev1 idle] logged in\r\n',
                         caps='imap4rev1 sasl-ir auth=xoauth2 auth=oauthbearer',
                         greeting='* ok [capability imap4rev1 sasl-ir auth=oauthbearer] hi\r\n',
                         after_login=session_after)
    with ScriptedMailServer(script) as srv:
        with tunnel(tokend, 'work', HOST, str(srv.port)) as c:
            assert c.line(QUICK) == \
                f'* PREAUTH [CAPABILITY imap4rev1 idle] tokend: logged in as {USER}\r\n'
        assert b' AUTHENTICATE OAUTHBEARER ' in srv.received()


def test_bare_lf_line_ends(tokend):
    sign_in(tokend)

    def script(peer):
        real_send = peer.send
        peer.send = lambda data, **kw: real_send(data.replace('\r\n', '\n'), **kw)
        imap_server('{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n',
                    after_login=session_after)(peer)
    with ScriptedMailServer(script) as srv:
        with tunnel(tokend, 'work', HOST, str(srv.port)) as c:
            assert c.line(QUICK).startswith('* PREAUTH [CAPABILITY IMAP4rev1 IDLE]')


def test_bytes_after_the_tagged_reply_reach_the_client_in_order(tokend):
    sign_in(tokend)
    script = imap_server('{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n* 7 EXISTS\r\n',
                         after_login=session_after)
    with ScriptedMailServer(script) as srv:
        assert_session(tokend, srv, first_after='* 7 EXISTS\r\n')


@pytest.mark.parametrize('name,script,words', [
    ('missing-crlf-then-close', lambda p: p.send(b'* OK [CAPABILITY IMAP4rev1'),
     '127.0.0.1 closed the connection'),
    ('over-long-line', lambda p: (p.send(b'* OK ' + b'x' * 100_000), p.read_to_end(5)),
     '127.0.0.1 sent an over-long line'),
    ('garbage-greeting', lambda p: p.send(b'HTTP/1.1 400 Bad Request\r\n\r\n'),
     '127.0.0.1 greeted with something else than IMAP: HTTP/1.1 400 Bad Request'),
    ('bye-greeting', lambda p: p.send(b'* BYE [UNAVAILABLE] Too many connections\r\n'),
     '127.0.0.1 turned the connection away: * BYE [UNAVAILABLE] Too many connections'),
    ('wrong-tag', imap_server('zz9 OK Logged in\r\n'),
     'unexpected answer from 127.0.0.1: zz9 OK Logged in'),
    ('untagged-bye-during-login', imap_server('* BYE Server shutting down\r\n'),
     '127.0.0.1 closed the session: * BYE Server shutting down'),
    ('endless-continuations', imap_server('+ more\r\n+ more\r\n+ more\r\n+ more\r\n'),
     '127.0.0.1 went on asking after the login was cancelled'),
    ('bad-to-authenticate', imap_server('{tag} BAD Unsupported mechanism\r\n'),
     'IMAP login to 127.0.0.1 failed: BAD Unsupported mechanism'),
])
def test_misbehaving_server_ends_with_one_clear_line(tokend, name, script, words):
    sign_in(tokend)
    with ScriptedMailServer(script) as srv:
        out, rc, stderr, took = run_tunnel(tokend, srv)
    assert rc == EX_TEMPFAIL, stderr
    assert took < QUICK
    assert words in out, out
    assert len(srv.connections) == 1
    assert_one_clean_line(out, stderr, '* BYE [UNAVAILABLE] ')


def test_pop3_server_refusing_an_initial_response_gets_it_after_the_prompt(tokend):
    sign_in(tokend)
    script = pop3_server('+OK Logged in.\r\n', refuse_ir=True)
    with ScriptedMailServer(script) as srv:
        with tunnel(tokend, 'work', '--pop3', HOST, str(srv.port)) as c:
            assert c.line(QUICK) == '+OK tokend: logged in\r\n', c.proc.stderr
            c.send('QUIT\r\n')
        lines = srv.received().split(b'\r\n')
    assert lines[0] == b'CAPA'
    assert lines[1].startswith(b'AUTH OAUTHBEARER ') and len(lines[1].split()) == 3
    assert lines[2] == b'AUTH OAUTHBEARER'
    assert lines[3] == lines[1].split()[2]
