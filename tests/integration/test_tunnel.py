"""`tokend tunnel`: the built tokend logs in to a TLS Dovecot (IMAP and POP3,
implicit TLS and STARTTLS) with XOAUTH2 or OAUTHBEARER, validated by
introspection at the test authorization server, and hands the session to
the client on stdin/stdout.  Here the client is the test itself, speaking
IMAP and POP3 over the tunnel's pipes; test_tunnel_clients.py drives the
real mail clients.

Two Dovecots share the session's authorization server, both with TLS from
the authorization server's test CA (its certificate names 127.0.0.1 and
localhost): one offers XOAUTH2 and OAUTHBEARER (like Gmail), the other only
XOAUTH2 (like Exchange Online).  Ports are random, so the tests that want
implicit TLS say so with the account's tunnel_tls = implicit (993 and 995
need no such key).
"""

import contextlib
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL, Tokend
from harness.authserver import SERVER_DIR
from harness.wait import wait_until
from harness.tunnelpeers import (USER, append_message, dovecot_for, logins,
                                 revoke_grant, tunnel, wait_logged_in)

SCOPES = 'openid offline_access mail.imap'
TIMEOUT = 30

pytestmark = [
    pytest.mark.skipif(not Path('/usr/sbin/dovecot').exists() and
                       not Path('/usr/bin/dovecot').exists(), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver, pop3=True) as dc:
        yield dc


@pytest.fixture(scope='module')
def exchange(authserver):
    with dovecot_for(authserver, mechanisms=('xoauth2',), pop3=True) as dc:
        yield dc


def sign_in(tokend, dc, **keys):
    keys.setdefault('imap_host', dc.host)
    keys.setdefault('imap_port', dc.imaps_port)
    keys.setdefault('pop_host', dc.host)
    keys.setdefault('pop_port', dc.pop3s_port)
    keys.setdefault('tunnel_tls', 'implicit')
    tokend.account(scopes=SCOPES, **keys)
    tokend.obtain()
    return tokend.token_file().read_text().rstrip('\n')


def imap_session(c, dc, user=USER):
    greeting = c.line()
    assert greeting.startswith('* PREAUTH [CAPABILITY '), greeting
    assert f'tokend: logged in as {user}' in greeting
    assert 'IMAP4rev1' in greeting
    assert 'AUTH=' not in greeting  # the capabilities as they are after login
    c.send('a1 SELECT INBOX\r\n')
    lines = c.until('a1')
    assert lines[-1].startswith('a1 OK'), lines
    c.send('a2 LOGOUT\r\n')
    assert c.until('a2')[-1].startswith('a2 OK')
    assert c.line() == ''  # the server closed: so does the tunnel
    return greeting


# IMAP ---------------------------------------------------------------------

@pytest.mark.parametrize('server,method', [('dovecot', 'OAUTHBEARER'),
                                           ('exchange', 'XOAUTH2')])
def test_imap_implicit_tls_preauth(tokend, request, server, method):
    dc = request.getfixturevalue(server)
    token = sign_in(tokend, dc)
    before = logins(dc, 'imap', method)
    with tunnel(tokend, 'work') as c:
        imap_session(c, dc)
        assert c.wait() == EX_OK, c.stderr
        assert token not in c.stderr
    wait_logged_in(dc, 'imap', method, before, secured=True)


@pytest.mark.parametrize('mech,method', [('xoauth2', 'XOAUTH2'),
                                         ('oauthbearer', 'OAUTHBEARER')])
def test_imap_mechanism_chosen_by_account(tokend, dovecot, mech, method):
    sign_in(tokend, dovecot, tunnel_mech=mech)
    before = logins(dovecot, 'imap', method)
    with tunnel(tokend, 'work') as c:
        imap_session(c, dovecot)
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(dovecot, 'imap', method, before, secured=True)


def test_imap_starttls_with_host_and_port_from_the_command_line(tokend, dovecot):
    # No imap_host in the account: HOST PORT as fetchmail passes %h %p; the
    # plain port, so STARTTLS (tunnel_tls auto).
    sign_in(tokend, dovecot, imap_host=None, imap_port=None, tunnel_tls=None)
    before = logins(dovecot, 'imap', 'OAUTHBEARER')
    with tunnel(tokend, 'work', dovecot.host, str(dovecot.imap_port)) as c:
        imap_session(c, dovecot)
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(dovecot, 'imap', 'OAUTHBEARER', before, secured=True)


def test_imap_relays_a_large_message_byte_identical(tokend, dovecot):
    token = sign_in(tokend, dovecot)
    body = os.urandom(3 * 1024 * 1024).hex().encode()  # 6 MB, no line breaks to help
    msg = (b'From: carol@example.org\r\nSubject: big\r\n\r\n' +
           b'\r\n'.join(body[i:i + 998] for i in range(0, len(body), 998)) + b'\r\n')
    uid = append_message(dovecot, token, msg)
    with tunnel(tokend, 'work') as c:
        assert c.line().startswith('* PREAUTH')
        c.send('a1 SELECT INBOX\r\n')
        c.until('a1')
        c.send(f'a2 UID FETCH {uid} BODY.PEEK[]\r\n')
        first = c.line()
        assert f'{{{len(msg)}}}' in first, first
        while len(c.buf) < len(msg):
            r, _, _ = select.select([c.proc.stdout], [], [], TIMEOUT)
            assert r
            c.buf += os.read(c.proc.stdout.fileno(), 1 << 20)
        assert c.buf[:len(msg)] == msg
        c.buf = c.buf[len(msg):]
        assert c.until('a2')[-1].startswith('a2 OK')
        c.send('a3 LOGOUT\r\n')
        c.until('a3')
        assert c.wait() == EX_OK, c.stderr


# POP3 ---------------------------------------------------------------------

def pop3_session(c):
    greeting = c.line()
    assert greeting == '+OK tokend: logged in\r\n', greeting
    c.send('STAT\r\n')
    assert c.line().startswith('+OK ')
    c.send('QUIT\r\n')
    assert c.line().startswith('+OK')
    assert c.line() == ''


@pytest.mark.parametrize('server,method', [('dovecot', 'OAUTHBEARER'),
                                           ('exchange', 'XOAUTH2')])
def test_pop3_implicit_tls(tokend, request, server, method):
    dc = request.getfixturevalue(server)
    sign_in(tokend, dc)
    before = logins(dc, 'pop3', method)
    with tunnel(tokend, 'work', '--pop3') as c:
        pop3_session(c)
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(dc, 'pop3', method, before, secured=True)


def test_pop3_stls(tokend, exchange):
    sign_in(tokend, exchange, pop_port=exchange.pop3_port, tunnel_tls=None)
    before = logins(exchange, 'pop3', 'XOAUTH2')
    with tunnel(tokend, 'work', '--pop3') as c:
        pop3_session(c)
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(exchange, 'pop3', 'XOAUTH2', before, secured=True)


# Failures -------------------------------------------------------------------

def test_refused_token_is_refreshed_once_then_accepted(tokend, dovecot):
    # The state says the token is good for an hour; the server has never
    # seen it: refused, one forced refresh, accepted.
    sign_in(tokend, dovecot)
    bogus = 'bogus-' + os.urandom(8).hex()
    tokend.token_file().write_text(bogus + '\n')
    with tunnel(tokend, 'work') as c:
        imap_session(c, dovecot)
        assert c.wait() == EX_OK, c.stderr
    assert 'refused the token' in c.stderr and 'trying once more' in c.stderr, c.stderr
    assert bogus not in c.stderr
    assert tokend.token_file().read_text().rstrip('\n') != bogus


def test_revoked_grant_says_bye_and_77(tokend, dovecot, authserver):
    token = sign_in(tokend, dovecot)
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    started = time.monotonic()
    with tunnel(tokend, 'work') as c:
        line = c.line()
        assert c.wait() == EX_NOPERM, c.stderr
    assert time.monotonic() - started < 10
    assert line.startswith('* BYE [AUTHENTICATIONFAILED] tokend: work: '), line
    assert line == f'* BYE [AUTHENTICATIONFAILED] {c.stderr.splitlines()[-1]}\r\n'
    assert 'tokend obtain work' in line
    assert token not in line + c.stderr


def test_pop3_revoked_grant_says_err(tokend, dovecot, authserver):
    sign_in(tokend, dovecot)
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    with tunnel(tokend, 'work', '--pop3') as c:
        line = c.line()
        assert c.wait() == EX_NOPERM, c.stderr
    assert line.startswith('-ERR tokend: work: '), line
    assert line == f'-ERR {c.stderr.splitlines()[-1]}\r\n'


def test_server_down_is_unavailable_and_75(tokend, dovecot):
    sign_in(tokend, dovecot)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        closed_port = s.getsockname()[1]
    for args, prefix in ((('work', '127.0.0.1', str(closed_port)), '* BYE [UNAVAILABLE] '),
                         (('work', '--pop3', '127.0.0.1', str(closed_port)), '-ERR ')):
        with tunnel(tokend, *args) as c:
            line = c.line()
            assert c.wait() == EX_TEMPFAIL, c.stderr
        assert line.startswith(prefix + 'tokend: work: cannot connect to 127.0.0.1'), line
        assert 'Connection refused' in line


def test_wrong_certificate_name_is_75(tokend, dovecot, authserver, tmp_path):
    # A TLS IMAP server whose certificate, from the same CA, names someone else.
    d = tmp_path
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'r.csr',
                    '-subj', '/CN=mail.example.org'], cwd=d, check=True, capture_output=True)
    (d / 'ext').write_text('subjectAltName=DNS:mail.example.org\n')
    ca_dir = Path(authserver.ca_file).parent
    subprocess.run(['openssl', 'x509', '-req', '-in', 'r.csr', '-CA', authserver.ca_file,
                    '-CAkey', str(ca_dir / 'ca.key'), '-CAcreateserial', '-days', '1',
                    '-extfile', 'ext', '-out', 'c.pem'], cwd=d, check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / 'c.pem', d / 'k.pem')
    srv = socket.create_server(('127.0.0.1', 0))

    def serve():
        with contextlib.suppress(OSError, ssl.SSLError):
            conn, _ = srv.accept()
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b'* OK IMAP4rev1 ready\r\n')
                tls.recv(100)
    threading.Thread(target=serve, daemon=True).start()
    sign_in(tokend, dovecot)
    try:
        with tunnel(tokend, 'work', 'localhost', str(srv.getsockname()[1])) as c:
            line = c.line()
            assert c.wait() == EX_TEMPFAIL, c.stderr
    finally:
        srv.close()
    assert line.startswith('* BYE [UNAVAILABLE] tokend: work: the certificate of localhost '
                           'was not accepted'), line


def test_unknown_account_is_78_in_the_protocol(tokend, dovecot):
    sign_in(tokend, dovecot)
    with tunnel(tokend, 'nosuch') as c:
        line = c.line()
        assert c.wait() == EX_CONFIG, c.stderr
    assert line.startswith('* BYE [UNAVAILABLE] tokend: nosuch: no such account'), line


def test_server_closing_mid_session_ends_the_tunnel(tokend, dovecot):
    sign_in(tokend, dovecot)
    with tunnel(tokend, 'work') as c:
        assert c.line().startswith('* PREAUTH')
        c.send('a1 SELECT INBOX\r\n')
        c.until('a1')
        c.send('a2 IDLE\r\n')
        assert c.line().startswith('+ ')
        r = subprocess.run(['doveadm', '-c', str(dovecot.config_path), 'kick', USER],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        started = time.monotonic()
        rest = []
        while (line := c.line()):
            rest.append(line)
        assert c.wait() == EX_OK, c.stderr
        assert time.monotonic() - started < 5
    assert any(line.startswith('* BYE') for line in rest), rest


def children_of(pid):
    out = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(pid)], capture_output=True,
                         text=True).stdout
    return out.split()


def test_client_closing_mid_session_ends_the_tunnel(tokend, dovecot):
    sign_in(tokend, dovecot)
    with tunnel(tokend, 'work') as c:
        assert c.line().startswith('* PREAUTH')
        c.send('a1 SELECT INBOX\r\n')
        c.until('a1')
        started = time.monotonic()
        c.proc.stdin.close()
        c.proc.stdout.close()
        assert c.wait(10) == EX_OK, c.stderr
        assert time.monotonic() - started < 5
        assert children_of(c.proc.pid) == []


def test_sigterm_ends_the_tunnel(tokend, dovecot):
    sign_in(tokend, dovecot)
    with tunnel(tokend, 'work') as c:
        assert c.line().startswith('* PREAUTH')
        c.send('a1 IDLE\r\n')
        assert c.line().startswith('+ ')
        c.proc.send_signal(signal.SIGTERM)
        assert c.wait(5) == -signal.SIGTERM


def test_token_never_on_argv_or_environment(tokend, dovecot):
    token = sign_in(tokend, dovecot)
    with tunnel(tokend, 'work') as c:
        assert c.line().startswith('* PREAUTH')
        pid = c.proc.pid
        cmdline = Path(f'/proc/{pid}/cmdline').read_bytes()
        environ = Path(f'/proc/{pid}/environ').read_bytes()
        assert token.encode() not in cmdline + environ
        c.send('a1 LOGOUT\r\n')
        c.until('a1')
        assert c.wait() == EX_OK


def test_bad_tunnel_mech_is_a_configuration_error(tokend, dovecot):
    sign_in(tokend, dovecot)
    tokend.accounts['work']['tunnel_mech'] = 'plain'
    tokend.write_config()
    with tunnel(tokend, 'work') as c:
        line = c.line()
        assert c.wait() == EX_CONFIG, c.stderr
    assert line.startswith('* BYE [UNAVAILABLE]'), line
    assert 'tunnel_mech: "plain" is not one of auto, xoauth2, oauthbearer' in line


def test_notify_cmd_runs_once_when_the_tunnel_finds_the_signin_lost(tokend, dovecot,
                                                                    authserver, tmp_path):
    out = tmp_path / 'notified'
    script = tmp_path / 'notify'
    script.write_text(f'#!/bin/sh\necho "$TOKEND_ACCOUNT $TOKEND_COMMAND" >> "{out}"\n')
    script.chmod(0o755)
    sign_in(tokend, dovecot, notify_cmd=str(script))
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    for _ in range(3):  # three polls of a fetchmail daemon
        with tunnel(tokend, 'work') as c:
            assert c.line().startswith('* BYE [AUTHENTICATIONFAILED]')
            assert c.wait() == EX_NOPERM, c.stderr
    assert out.read_text() == 'work tokend obtain work\n'


def test_notify_cmd_stays_out_of_the_imap_stream(tokend, dovecot, authserver, tmp_path):
    # The tunnel's stdin and stdout are the client's IMAP session: a
    # notify_cmd that echoes (to the log instead) or reads its stdin (the
    # client's commands) must touch neither.
    seen = tmp_path / 'stdin'
    script = tmp_path / 'notify'
    # Bounded, so that a cat holding the pipes cannot hang the test.
    script.write_text(f'#!/bin/sh\necho "* OK notify-cmd-was-here"\ntimeout 3 cat > "{seen}"\n')
    script.chmod(0o755)
    sign_in(tokend, dovecot, notify_cmd=str(script))
    revoke_grant(authserver, tokend.stored_refresh_token().strip())
    with tunnel(tokend, 'work') as c:
        c.send('a1 CAPABILITY\r\n')  # a client that speaks first
        stream = []
        while line := c.line():
            stream.append(line)
        assert c.wait() == EX_NOPERM, c.stderr
    assert len(stream) == 1 and stream[0].startswith('* BYE [AUTHENTICATIONFAILED]'), stream
    assert 'notify-cmd-was-here' in c.stderr
    assert seen.read_text() == ''


def test_token_expired_early_at_the_server_is_refreshed_once(make_authserver, tmp_path):
    # The server's tokens live 2 s; the state is edited to say an hour, as
    # when a server ends tokens early: refused, one forced refresh, accepted.
    srv = make_authserver(access_ttl=2)
    tokend = Tokend(tmp_path / 'home', srv)
    with dovecot_for(srv, pop3=True) as dc:
        first = sign_in(tokend, dc)
        wait_until(lambda: not srv.introspect(first)['active'], 15,
                   'the server ended the first access token', interval=0.05)
        state = tokend.state / 'work' / 'state.json'
        st = json.loads(state.read_text())
        st['expires_at'] = int(time.time()) + 3600
        state.write_text(json.dumps(st))
        before = srv.stats()
        with tunnel(tokend, 'work') as c:
            greeting = c.line()
            assert greeting.startswith('* PREAUTH'), (greeting, c.proc.stderr.read())
            c.send('a1 LOGOUT\r\n')
            c.until('a1')
            assert c.wait() == EX_OK, c.stderr
        assert 'refreshing and trying once more' in c.stderr
        assert tokend.token_file().read_text().strip() != first
        assert srv.stats() != before


@pytest.fixture(scope='module')
def plain_dovecot(authserver):
    """No TLS at all: no STARTTLS offered."""
    from harness.dovecot import Dovecot
    from harness.tunnelpeers import shared_dir
    with shared_dir('tokend-dovecot-') as workdir, \
            Dovecot(workdir, authserver.introspection_url, ca_file=authserver.ca_file) as dc:
        yield dc


def test_plain_text_only_to_loopback_without_starttls(tokend, plain_dovecot):
    dc = plain_dovecot
    sign_in(tokend, dc, imap_port=dc.imap_port, pop_port=None, tunnel_tls=None)
    before = logins(dc, 'imap', 'OAUTHBEARER')
    with tunnel(tokend, 'work') as c:
        imap_session(c, dc)
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(dc, 'imap', 'OAUTHBEARER', before)
    assert logins(dc, 'imap', 'OAUTHBEARER', secured=True) == 0


def test_starttls_demanded_but_not_offered_is_78(tokend, plain_dovecot):
    dc = plain_dovecot
    sign_in(tokend, dc, imap_port=dc.imap_port, pop_port=None, tunnel_tls='starttls')
    before = logins(dc, 'imap', 'OAUTHBEARER')
    with tunnel(tokend, 'work') as c:
        line = c.line()
        assert c.wait() == EX_CONFIG, c.stderr
    assert line.startswith('* BYE [UNAVAILABLE] tokend: work: 127.0.0.1 port '), line
    assert 'offers no STARTTLS; tokend sends no token in plain text' in line
    assert logins(dc, 'imap', 'OAUTHBEARER') == before
