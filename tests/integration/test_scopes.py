"""Scopes on sign-in and refresh.  oidc-provider runs as shipped: without
prompt=consent it drops offline_access from the grant (OpenID Connect Core
section 11) and, by its own rule, issues no refresh token then.  Deployments
that configure issueRefreshToken to issue one anyway (the `lenient` server
here) refuse with invalid_scope a refresh that asks for offline_access again
(RFC 6749 section 6: never more than was granted).  Microsoft's and Google's
documented behaviour is replayed."""

import json

import pytest

from conftest import EX_NOPERM, EX_OK
from harness.authserver import AuthServer, make_certs
from harness.scripted import Reply, ScriptedEndpoint
from test_microsoft import (AUTHORIZE_PATH, FOLLOW, MS_SCOPES, TENANT, TOKEN_PATH,
                            authorize_redirect, form_of, ms_success, query_of)


@pytest.fixture(scope='module')
def lenient(tmp_path_factory):
    """oidc-provider configured to issue a refresh token for every code grant."""
    with AuthServer(tmp_path_factory.mktemp('lenient'), refresh_tokens='always') as srv:
        yield srv


@pytest.fixture
def on_lenient(tokend, lenient):
    tokend.server = lenient
    tokend.env['TOKEND_TEST_CA'] = lenient.ca_file
    return tokend


def status_json(tokend, name='work'):
    r = tokend.run('status', '--json')
    # 77 when a sign-in brought no refresh token (test_status.py).
    assert r.returncode in (EX_OK, EX_NOPERM), r.stderr
    return next(s for s in json.loads(r.stdout) if s['account'] == name)


def last_authorization(srv):
    return srv.stats()['authorization'][-1]


def refresh_twice(tokend, srv):
    """Two forced refreshes, each rotating; returns the scope parameters the
    server received."""
    srv.reset_stats()
    for _ in range(2):
        before = tokend.stored_refresh_token()
        r = tokend.run('refresh', '--force', 'work')
        assert r.returncode == EX_OK, r.stderr
        assert tokend.stored_refresh_token() != before
        assert srv.introspect(tokend.token_file().read_text().strip())['active']
    return srv.stats()['refresh_scopes']


@pytest.mark.parametrize('keys', [{'offline_consent': 'never'}, {'prompt': 'login'}],
                         ids=['offline-consent-never', 'explicit-prompt-wins'])
def test_refresh_works_when_the_server_dropped_offline_access(on_lenient, lenient, keys):
    tokend = on_lenient
    tokend.account(**keys)
    tokend.obtain()
    auth = last_authorization(lenient)
    assert 'offline_access' in auth['scope'].split()
    assert auth['prompt'] == keys.get('prompt')
    # The server granted less than asked, and a refresh token all the same.
    # Refreshing leaves scope out, so it never asks for more than the grant
    # (asking for offline_access again is invalid_scope).
    assert refresh_twice(tokend, lenient) == [None, None]
    st = status_json(tokend)
    assert 'last_error' not in st and st['needs_signin'] is False
    assert sorted(st['granted_scope'].split()) == ['mail.imap', 'openid']
    assert st['not_granted'] == ['offline_access']


def test_status_says_what_was_granted(on_lenient):
    tokend = on_lenient
    tokend.account(offline_consent='never')
    tokend.obtain()
    r = tokend.run('status', 'work')
    assert r.returncode == EX_OK, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.strip().startswith('granted:'))
    granted, _, rest = line.split(':', 1)[1].strip().partition(' (')
    assert sorted(granted.split()) == ['mail.imap', 'openid']
    assert rest == 'not granted: offline_access)'
    # A narrower grant is not a configuration problem.
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert 'granted:' in tokend.run('status', 'work').stdout


def test_sign_in_asks_for_consent_so_offline_access_is_granted(tokend, authserver):
    tokend.account()
    tokend.obtain()
    auth = last_authorization(authserver)
    assert auth['prompt'] == 'consent'
    st = status_json(tokend)
    assert sorted(st['granted_scope'].split()) == ['mail.imap', 'offline_access', 'openid']
    assert st['not_granted'] == []
    assert 'granted:' not in tokend.run('status', 'work').stdout
    assert refresh_twice(tokend, authserver) == [None, None]
    assert 'offline_access' in status_json(tokend)['granted_scope'].split()


def test_without_consent_the_server_keeps_its_refresh_token(tokend, authserver):
    tokend.account(offline_consent='never')
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'did not grant offline_access' in r.stderr
    assert 'offline_consent = always' in r.stderr
    st = status_json(tokend)
    assert st['not_granted'] == ['offline_access'] and st['needs_signin'] is True
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM and 'run: tokend obtain work' in r.stderr


def test_no_consent_without_offline_access(tokend, authserver):
    tokend.account(scopes='openid mail.imap', offline_consent='always')
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert last_authorization(authserver)['prompt'] is None


# Microsoft and Google, replayed ----------------------------------------------

@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp('replay-certs'))


@pytest.fixture
def ms(tokend, certs):
    ca, cert, key = certs
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        ep.script(AUTHORIZE_PATH, authorize_redirect())
        ep.script(TOKEN_PATH, ms_success())
        tokend.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=ca)
        tokend.account(provider='microsoft', client_id='facd6cff-a294-4415-b59f-c5b01937d7bd',
                       tenant=TENANT, authority=f'127.0.0.1:{ep.port}', username='me@contoso.com',
                       ca_file=ca, store='file', authorize_url=None, token_url=None,
                       scopes=None)
        yield ep


# What Microsoft lists as granted: the resource's scopes only, never
# offline_access or the OpenID scopes (openid, profile, email).
MS_LISTED = [s for s in MS_SCOPES if s.startswith('https://')]


def test_microsoft_refresh_sends_its_scopes(tokend, ms):
    ms.script(TOKEN_PATH, ms_success(scope=' '.join(MS_LISTED)))
    assert tokend.run('obtain', 'work').returncode == EX_OK
    # Microsoft issues refresh tokens for offline_access without a consent
    # prompt, and never lists offline_access in the granted scope.
    assert 'prompt' not in query_of(ms.last(AUTHORIZE_PATH))
    st = status_json(tokend)
    assert st['granted_scope'].split() == MS_LISTED and st['not_granted'] == []
    ms.script(TOKEN_PATH, ms_success(access='second', refresh='0.AQoA-rotated'))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    form = form_of(ms.last(TOKEN_PATH))
    assert form['grant_type'] == 'refresh_token'
    assert form['scope'].split() == MS_SCOPES


def test_microsoft_narrower_grant_is_reported(tokend, ms):
    ms.script(TOKEN_PATH, ms_success(scope=MS_SCOPES[0]))
    assert tokend.run('obtain', 'work').returncode == EX_OK
    st = status_json(tokend)
    assert st['granted_scope'] == MS_SCOPES[0]
    assert st['not_granted'] == MS_LISTED[1:]
    text = tokend.run('status', 'work').stdout
    assert f'granted:      {MS_SCOPES[0]} (not granted: {" ".join(MS_LISTED[1:])})' in text


def test_offline_consent_always_asks_microsoft_too(tokend, ms):
    tokend.accounts['work']['offline_consent'] = 'always'
    tokend.write_config()
    assert tokend.run('obtain', 'work').returncode == EX_OK
    assert query_of(ms.last(AUTHORIZE_PATH))['prompt'] == 'consent'


def test_response_without_scope_grants_what_was_asked(tokend, ms):
    reply = ms_success()
    del reply.body['scope']
    ms.script(TOKEN_PATH, reply)
    assert tokend.run('obtain', 'work').returncode == EX_OK
    assert status_json(tokend)['granted_scope'].split() == MS_SCOPES
    # A refresh answer without scope keeps the grant as it was.
    ms.script(TOKEN_PATH, ms_success(scope=MS_SCOPES[0]))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert status_json(tokend)['granted_scope'] == MS_SCOPES[0]
    reply = ms_success(access='third')
    del reply.body['scope']
    ms.script(TOKEN_PATH, reply)
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert status_json(tokend)['granted_scope'] == MS_SCOPES[0]


def test_google_refresh_leaves_scope_out(tokend, certs):
    ca, cert, key = certs
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        ep.script('/auth', authorize_redirect({'iss': 'https://accounts.google.com'}))
        ep.script('/token', Reply(200, {'access_token': 'ya29.a0-google-access',
                                        'expires_in': 3599, 'token_type': 'Bearer',
                                        'refresh_token': '1//0g-google-refresh',
                                        'scope': 'https://mail.google.com/'}))
        tokend.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=ca)
        tokend.account(provider='google', client_id='1234-abc.apps.googleusercontent.com',
                       client_secret='GOCSPX-not-really-secret', username='me@gmail.com',
                       authorize_url=ep.url('/auth'), token_url=ep.url('/token'),
                       ca_file=ca, store='file', scopes=None)
        assert tokend.run('obtain', 'work').returncode == EX_OK
        assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
        form = form_of(ep.last('/token'))
        assert form['grant_type'] == 'refresh_token' and 'scope' not in form
        assert form['refresh_token'] == '1//0g-google-refresh'
