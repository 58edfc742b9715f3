"""Dovecot validates tokens from the test authorization server, and the real
mail clients log in with them."""

import imaplib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.authserver import SERVER_DIR, AuthServer  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not shutil.which('dovecot'), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    with AuthServer(tmp_path_factory.mktemp('authserver')) as srv:
        yield srv


@pytest.fixture(scope='module')
def token(server):
    return server.obtain_tokens(login='alice')['access_token']


@pytest.fixture(scope='module')
def dovecot(server, tmp_path_factory):
    with Dovecot(tmp_path_factory.mktemp('dovecot'), server.introspection_url,
                 ca_file=server.ca_file) as dc:
        yield dc


def xoauth2(user, token):
    return f'user={user}\x01auth=Bearer {token}\x01\x01'.encode()


def oauthbearer(user, token, host, port):
    return f'n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01'.encode()


def sasl(initial, on_challenge=b''):
    """An imaplib authobject: the initial response, then on_challenge for the
    error challenge a failing server sends."""
    answers = iter([initial])
    return lambda challenge: next(answers, on_challenge)


def imap(dc):
    return imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)


def test_imap_xoauth2(dovecot, token):
    m = imap(dovecot)
    assert 'AUTH=XOAUTH2' in m.capabilities and 'AUTH=OAUTHBEARER' in m.capabilities
    typ, _ = m.authenticate('XOAUTH2', sasl(xoauth2('alice', token)))
    assert typ == 'OK'
    assert m.select('INBOX')[0] == 'OK'
    m.logout()
    assert 'user=<alice>, method=XOAUTH2' in dovecot.log()


def test_imap_oauthbearer(dovecot, token):
    m = imap(dovecot)
    initial = oauthbearer('alice', token, dovecot.host, dovecot.imap_port)
    assert m.authenticate('OAUTHBEARER', sasl(initial, b'\x01'))[0] == 'OK'
    m.logout()
    assert 'user=<alice>, method=OAUTHBEARER' in dovecot.log()


@pytest.mark.parametrize('mech', ['XOAUTH2', 'OAUTHBEARER'])
def test_bad_token_fails_quickly(dovecot, mech):
    for _ in range(2):  # the second attempt would be delayed by an auth penalty
        m = imap(dovecot)
        initial = (xoauth2('alice', 'not-a-token') if mech == 'XOAUTH2' else
                   oauthbearer('alice', 'not-a-token', dovecot.host, dovecot.imap_port))
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error, match=r'\[AUTHENTICATIONFAILED\]'):
            m.authenticate(mech, sasl(initial, b'\x01'))
        assert time.monotonic() - started < 1.5  # Dovecot flushes failures every 0.5 s
        m.shutdown()


def test_token_of_another_user_fails(dovecot, token):
    m = imap(dovecot)
    with pytest.raises(imaplib.IMAP4.error, match=r'\[AUTHENTICATIONFAILED\]'):
        m.authenticate('XOAUTH2', sasl(xoauth2('bob', token)))
    m.shutdown()


@pytest.mark.skipif(not shutil.which('curl'), reason='needs curl')
def test_curl_oauth2_bearer(dovecot, token):
    config = (f'url = "imap://alice@{dovecot.host}:{dovecot.imap_port}/"\n'
              f'oauth2-bearer = "{token}"\n'
              'silent\nshow-error\nmax-time = 10\n')
    r = subprocess.run(['curl', '-K', '-'], input=config, capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr
    assert 'INBOX' in r.stdout
    assert 'user=<alice>, method=OAUTHBEARER' in dovecot.log()


@pytest.mark.skipif(not shutil.which('msmtp'), reason='needs msmtp')
def test_msmtp_submission_xoauth2(dovecot, token, tmp_path):
    token_file = tmp_path / 'token'
    token_file.write_text(token + '\n')
    config = tmp_path / 'msmtprc'
    config.write_text(f'account default\nhost {dovecot.host}\nport {dovecot.submission_port}\n'
                      'tls off\nauth xoauth2\nuser alice\nfrom alice@example.org\n'
                      f'passwordeval "cat {token_file}"\ntimeout 10\n')
    config.chmod(0o600)
    message = 'Subject: tokend test\n\nhello from msmtp\n'
    r = subprocess.run(['msmtp', '-C', str(config), 'bob@example.org'], input=message,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    [sent] = [m for m in dovecot.messages() if b'hello from msmtp' in m['data']]
    assert sent['mail_from'].startswith('<alice@example.org>')
    assert sent['rcpt_tos'] == ['<bob@example.org>']
    assert 'user=<alice>, method=XOAUTH2' in dovecot.log()


def test_xoauth2_only_config_mimics_exchange_online(server, token, tmp_path):
    with Dovecot(tmp_path, server.introspection_url, ca_file=server.ca_file,
                 mechanisms=('xoauth2',)) as dc:
        m = imap(dc)
        assert 'AUTH=XOAUTH2' in m.capabilities
        assert 'AUTH=OAUTHBEARER' not in m.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            m.authenticate('OAUTHBEARER',
                           sasl(oauthbearer('alice', token, dc.host, dc.imap_port), b'\x01'))
        m.shutdown()
        m = imap(dc)
        assert m.authenticate('XOAUTH2', sasl(xoauth2('alice', token)))[0] == 'OK'
        m.logout()


def test_unreachable_authorization_server_is_unavailable(server, token, tmp_path):
    with Dovecot(tmp_path, 'https://127.0.0.1:9/token/introspection',
                 ca_file=server.ca_file) as dc:
        m = imap(dc)
        with pytest.raises(imaplib.IMAP4.error, match=r'\[UNAVAILABLE\]'):
            m.authenticate('XOAUTH2', sasl(xoauth2('alice', token)))
        m.shutdown()


def test_startup_is_quick(dovecot):
    assert dovecot.startup_seconds < 10

