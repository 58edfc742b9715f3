"""The login's edges against the real Dovecot, end to end through the built
tokend: tokens as long as Microsoft's JWT access tokens (over 255 bytes, so
that POP3 must send `AUTH XOAUTH2` alone and the response after the `+ `
prompt, RFC 5034 §4, and SMTP after `334`, RFC 4954 §4), and an IMAP server
that does not offer SASL-IR (Dovecot's `imap_capability` set without it),
where the initial response must wait for the `+` continuation.

The long token is no token the test authorization server issues (its
access tokens are 43 characters): the account signs in there, the token
file then holds a 2500-byte JWT-shaped token, and Dovecot validates it at a
scripted introspection endpoint (harness/scripted.py) that knows it.  What
tokend sent is read from its -vv log, which names each command (and whether
the initial response went with it) but never the response itself.
"""

import base64
import json
import secrets
import shutil

import pytest

from conftest import EX_NOPERM, EX_OK
from harness.authserver import SERVER_DIR
from harness.dovecot import Dovecot
from harness.scripted import Reply, ScriptedEndpoint
from harness.tunnelpeers import USER, logins, shared_dir, tunnel, wait_logged_in

pytestmark = [
    pytest.mark.skipif(not shutil.which('dovecot'), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]

TIMEOUT = 30


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def jwt_shaped(size):
    """A token shaped like Microsoft's access tokens: header.payload.signature."""
    header = b64url(json.dumps({'typ': 'JWT', 'alg': 'RS256', 'kid': 'test'}).encode())
    signature = b64url(secrets.token_bytes(256))
    room = size - len(header) - len(signature) - 2
    claims = {'aud': 'https://outlook.office.com', 'sub': USER, 'scp': 'IMAP.AccessAsUser.All',
              'pad': 'x' * room}
    payload = b64url(json.dumps(claims).encode())[:room]
    return f'{header}.{payload}.{signature}'


LONG_TOKEN = jwt_shaped(2500)


@pytest.fixture(scope='module')
def introspection():
    """Active for LONG_TOKEN only, as alice."""
    def answer(req):
        active = req.form.get('token') == [LONG_TOKEN]
        return Reply(200, {'active': active, 'sub': USER} if active else {'active': False})
    with ScriptedEndpoint() as ep:
        ep.script('/introspect', answer)
        yield ep


@pytest.fixture(scope='module')
def long_dovecot(introspection):
    with shared_dir('tokend-dovecot-') as workdir, \
            Dovecot(workdir, introspection.url('/introspect'), pop3=True) as dc:
        yield dc


@pytest.fixture(scope='module')
def no_sasl_ir(authserver):
    """IMAP without SASL-IR in its capabilities, before and after login."""
    with shared_dir('tokend-dovecot-') as workdir, \
            Dovecot(workdir, authserver.introspection_url, ca_file=authserver.ca_file,
                    extra_config='imap_capability = IMAP4rev1 LITERAL+ ID ENABLE IDLE\n') as dc:
        yield dc


def sign_in(tokend, dc, token=None, **keys):
    tokend.account(scopes='openid offline_access mail.imap mail.smtp', imap_host=dc.host,
                   imap_port=dc.imap_port, pop_host=dc.host, pop_port=dc.pop3_port or None,
                   smtp_host=dc.host, smtp_port=dc.submission_port, **keys)
    tokend.obtain()
    if token:
        tokend.token_file().write_text(token + '\n')
    return tokend.token_file().read_text().strip()


def debug_lines(stderr, what):
    return [line for line in stderr.splitlines() if what in line]


@pytest.mark.parametrize('mech,method', [('xoauth2', 'XOAUTH2'), ('oauthbearer', 'OAUTHBEARER')])
def test_pop3_long_token_goes_after_the_prompt(tokend, long_dovecot, mech, method):
    dc = long_dovecot
    sign_in(tokend, dc, LONG_TOKEN, tunnel_mech=mech)
    before = logins(dc, 'pop3', method)
    with tunnel(tokend, 'work', '--pop3', options=('-vv',)) as c:
        assert c.line(TIMEOUT) == '+OK tokend: logged in\r\n', c.proc.stderr
        c.send('STAT\r\n')
        assert c.line(TIMEOUT).startswith('+OK ')
        c.send('QUIT\r\n')
        assert c.line(TIMEOUT).startswith('+OK')
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(dc, 'pop3', method, before)
    # The command went alone; the response followed Dovecot's "+ ".
    assert debug_lines(c.stderr, f'C: AUTH {method}') == \
        [f'tokend: {dc.host}: C: AUTH {method}'], c.stderr
    assert LONG_TOKEN not in c.stderr


def test_imap_long_token_with_sasl_ir(tokend, long_dovecot):
    dc = long_dovecot
    sign_in(tokend, dc, LONG_TOKEN, tunnel_mech='xoauth2')
    before = logins(dc, 'imap', 'XOAUTH2')
    with tunnel(tokend, 'work', options=('-vv',)) as c:
        assert c.line(TIMEOUT).startswith('* PREAUTH [CAPABILITY IMAP4rev1'), c.proc.stderr
        c.send('a1 LOGOUT\r\n')
        assert c.until('a1')[-1].startswith('a1 OK')
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(dc, 'imap', 'XOAUTH2', before)
    assert debug_lines(c.stderr, 'C: AUTHENTICATE XOAUTH2 [initial response]'), c.stderr


def test_smtp_check_with_a_long_token(tokend, long_dovecot):
    dc = long_dovecot
    sign_in(tokend, dc, LONG_TOKEN)
    r = tokend.run('-vv', 'check', 'work', '--smtp', timeout=TIMEOUT)
    assert r.returncode == EX_OK, r.stderr
    assert f'work: SMTP login to {dc.host}:{dc.submission_port} as {USER}: ok' in r.stdout
    assert debug_lines(r.stderr, 'C: AUTH OAUTHBEARER') == \
        [f'tokend: {dc.host}: C: AUTH OAUTHBEARER'], r.stderr
    assert LONG_TOKEN not in r.stderr


def test_long_token_refused_is_said_without_it(tokend, long_dovecot):
    dc = long_dovecot
    wrong = jwt_shaped(2500)
    sign_in(tokend, dc, wrong)
    with tunnel(tokend, 'work', '--pop3') as c:
        line = c.line(TIMEOUT)
        assert c.wait() == EX_NOPERM, c.stderr
    # Refused, refreshed (to a token this Dovecot's introspection does not
    # know either), refused again.
    assert 'trying once more' in c.stderr
    assert line.startswith('-ERR tokend: work: POP3 login to 127.0.0.1 refused the token'), line
    assert wrong not in line + c.stderr


@pytest.mark.parametrize('mech,method', [('xoauth2', 'XOAUTH2'), ('oauthbearer', 'OAUTHBEARER')])
def test_imap_without_sasl_ir(tokend, no_sasl_ir, mech, method):
    dc = no_sasl_ir
    token = sign_in(tokend, dc, tunnel_mech=mech)
    before = logins(dc, 'imap', method)
    with tunnel(tokend, 'work', options=('-vv',)) as c:
        greeting = c.line(TIMEOUT)
        assert greeting.startswith('* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE IDLE'), \
            (greeting, c.proc.stderr)
        assert 'SASL-IR' not in greeting
        c.send('a1 SELECT INBOX\r\n')
        assert c.until('a1')[-1].startswith('a1 OK')
        c.send('a2 LOGOUT\r\n')
        assert c.until('a2')[-1].startswith('a2 OK')
        assert c.wait() == EX_OK, c.stderr
    wait_logged_in(dc, 'imap', method, before)
    greeting_caps = debug_lines(c.stderr, 'S: * OK [CAPABILITY')[0]
    assert 'SASL-IR' not in greeting_caps
    assert debug_lines(c.stderr, f'C: AUTHENTICATE {method}') == \
        [f'tokend: {dc.host}: C: AUTHENTICATE {method}'], c.stderr
    assert token not in c.stderr


def test_check_imap_without_sasl_ir(tokend, no_sasl_ir):
    dc = no_sasl_ir
    sign_in(tokend, dc)
    r = tokend.run('-vv', 'check', 'work', '--imap', timeout=TIMEOUT)
    assert r.returncode == EX_OK, r.stderr
    assert f'work: IMAP login to {dc.host}:{dc.imap_port} as {USER}: ok' in r.stdout
    assert debug_lines(r.stderr, 'C: AUTHENTICATE OAUTHBEARER') == \
        [f'tokend: {dc.host}: C: AUTHENTICATE OAUTHBEARER'], r.stderr
