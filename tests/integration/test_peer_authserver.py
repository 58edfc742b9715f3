"""The test authorization server and the headless browser behave like the
real thing that tokend's integration tests rely on."""

import http.server
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.authserver import AuthServer, pkce_pair  # noqa: E402

BROWSER = Path(__file__).resolve().parents[1] / 'harness' / 'browser.py'
ACCESS_TTL = 321
DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    with AuthServer(tmp_path_factory.mktemp('authserver'), access_ttl=ACCESS_TTL) as server:
        yield server


def run_browser(srv, url, mode, tmp_path, **env):
    out = tmp_path / 'browser.out'
    env = dict(os.environ, TOKEND_TEST_CA=srv.ca_file, TOKEND_TEST_BROWSER_MODE=mode,
               TOKEND_TEST_BROWSER_OUT=str(out), **env)
    result = subprocess.run([str(BROWSER), url], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.stdout == ''
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    return out.read_text().strip() if out.exists() else None


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def exchange(srv, params, verifier, redirect_uri='http://127.0.0.1/', client_id='tokend-native'):
    return srv.token_request({'grant_type': 'authorization_code', 'code': params['code'],
                              'redirect_uri': redirect_uri, 'code_verifier': verifier}, client_id)


def test_discovery_over_tls_with_test_ca(srv):
    assert srv.issuer == f'https://127.0.0.1:{srv.port}'
    d = srv.discovery
    assert d['authorization_response_iss_parameter_supported'] is True
    assert d['code_challenge_methods_supported'] == ['S256']
    assert {'openid', 'offline_access', 'mail.imap', 'mail.smtp'} <= set(d['scopes_supported'])
    assert srv.device_url.startswith(srv.issuer)
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(srv.issuer + '/.well-known/openid-configuration', timeout=5,
                               context=ssl.create_default_context())
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


def test_code_flow_in_print_mode(srv, tmp_path):
    verifier, challenge = pkce_pair()
    redirect = 'http://127.0.0.1:40123/callback'
    url = srv.authorization_url(scope='openid offline_access mail.imap', redirect_uri=redirect,
                                state='st-1', code_challenge=challenge)
    final = run_browser(srv, url, 'print', tmp_path)
    assert final.startswith(redirect + '?')
    params = query(final)
    assert params['state'] == 'st-1'
    assert params['iss'] == srv.issuer
    status, tokens = exchange(srv, params, verifier, redirect)
    assert status == 200, tokens
    assert tokens['token_type'] == 'Bearer'
    assert tokens['expires_in'] == ACCESS_TTL
    assert tokens['access_token'] and tokens['refresh_token']
    assert set(tokens['scope'].split()) == {'openid', 'offline_access', 'mail.imap'}
    # A code is single use.
    status, body = exchange(srv, params, verifier, redirect)
    assert (status, body['error']) == (400, 'invalid_grant')


def test_follow_mode_delivers_to_loopback_listener(srv, tmp_path):
    hits = []

    class Catcher(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'signed in')

        def log_message(self, *args):
            pass

    catcher = http.server.HTTPServer(('127.0.0.1', 0), Catcher)
    threading.Thread(target=catcher.handle_request, daemon=True).start()
    redirect = f'http://127.0.0.1:{catcher.server_port}/'
    verifier, challenge = pkce_pair()
    url = srv.authorization_url(redirect_uri=redirect, state='st-2', code_challenge=challenge)
    log = tmp_path / 'browser.log'
    run_browser(srv, url, 'follow', tmp_path, TOKEND_TEST_BROWSER_LOG=str(log))
    catcher.server_close()
    assert log.read_text() == '200\nsigned in'
    params = query(hits[0])
    assert params['state'] == 'st-2' and params['iss'] == srv.issuer
    assert exchange(srv, params, verifier, redirect)[0] == 200


def test_refresh_rotates_and_replay_kills_grant(srv):
    tokens = srv.obtain_tokens(scope='openid offline_access mail.imap')
    status, fresh = srv.refresh(tokens['refresh_token'])
    assert status == 200, fresh
    assert fresh['refresh_token'] != tokens['refresh_token']
    assert fresh['expires_in'] == ACCESS_TTL
    assert srv.introspect(fresh['access_token'])['active'] is True
    status, body = srv.refresh(tokens['refresh_token'])
    assert (status, body['error']) == (400, 'invalid_grant')
    status, body = srv.refresh(fresh['refresh_token'])
    assert (status, body['error']) == (400, 'invalid_grant')
    assert srv.introspect(fresh['access_token']) == {'active': False}


def test_refresh_token_needs_offline_access(srv):
    tokens = srv.obtain_tokens(scope='openid mail.imap')
    assert 'refresh_token' not in tokens


def test_offline_access_needs_a_consent_prompt(srv, tmp_path):
    # OpenID Connect Core section 11, as shipped: without prompt=consent the
    # provider drops offline_access from the grant and issues no refresh token.
    tokens = srv.obtain_tokens(scope='openid offline_access mail.imap', prompt=None)
    assert set(tokens['scope'].split()) == {'openid', 'mail.imap'}
    assert 'refresh_token' not in tokens
    # Configured to issue one anyway, it refuses a refresh asking for more
    # than the grant (RFC 6749 section 6); leaving scope out is "as granted".
    with AuthServer(tmp_path / 'lenient', refresh_tokens='always') as lenient:
        tokens = lenient.obtain_tokens(scope='openid offline_access mail.imap', prompt=None)
        assert set(tokens['scope'].split()) == {'openid', 'mail.imap'}
        status, body = lenient.token_request(
            {'grant_type': 'refresh_token', 'refresh_token': tokens['refresh_token'],
             'scope': 'openid offline_access mail.imap'}, 'tokend-native')
        assert (status, body['error']) == (400, 'invalid_scope')
        status, fresh = lenient.refresh(tokens['refresh_token'])
        assert status == 200, fresh
        assert set(fresh['scope'].split()) == {'openid', 'mail.imap'}


def test_introspection(srv):
    tokens = srv.obtain_tokens(scope='openid offline_access mail.smtp', login='carol')
    info = srv.introspect(tokens['access_token'])
    assert info['active'] is True
    assert info['sub'] == 'carol'
    assert info['client_id'] == 'tokend-native'
    assert 'mail.smtp' in info['scope'].split()
    assert info['exp'] - info['iat'] == ACCESS_TTL
    assert srv.introspect('not-a-token') == {'active': False}
    status, _ = srv.http('POST', srv.introspection_url, {'token': tokens['access_token']},
                         auth=('dovecot', 'wrong'))
    assert status == 401


def test_revoking_refresh_token_ends_grant(srv):
    tokens = srv.obtain_tokens()
    status, _ = srv.http('POST', srv.revocation_url,
                         {'token': tokens['refresh_token'], 'token_type_hint': 'refresh_token',
                          'client_id': 'tokend-native'})
    assert status == 200
    assert srv.refresh(tokens['refresh_token'])[0] == 400
    assert srv.introspect(tokens['access_token']) == {'active': False}


def test_confidential_client_post_secret(srv):
    tokens = srv.obtain_tokens(client_id='tokend-secret')
    assert srv.refresh(tokens['refresh_token'], 'tokend-secret')[0] == 200
    status, body = srv.http('POST', srv.token_url,
                            {'grant_type': 'refresh_token', 'refresh_token': 'x',
                             'client_id': 'tokend-secret', 'client_secret': 'wrong'})
    assert (status, body['error']) == (401, 'invalid_client')


def test_device_flow(srv, tmp_path):
    status, dev = srv.http('POST', srv.device_url,
                           {'client_id': 'tokend-native', 'scope': 'openid offline_access'})
    assert status == 200
    poll = {'grant_type': DEVICE_GRANT, 'device_code': dev['device_code']}
    status, body = srv.token_request(poll, 'tokend-native')
    assert (status, body['error']) == (400, 'authorization_pending')
    run_browser(srv, dev['verification_uri_complete'], 'device', tmp_path, TOKEND_TEST_LOGIN='bob')
    status, tokens = srv.token_request(poll, 'tokend-native')
    assert status == 200, tokens
    assert tokens['expires_in'] == ACCESS_TTL and tokens['refresh_token']
    assert srv.introspect(tokens['access_token'])['sub'] == 'bob'


def test_device_flow_denied(srv, tmp_path):
    _, dev = srv.http('POST', srv.device_url, {'client_id': 'tokend-native', 'scope': 'openid'})
    run_browser(srv, dev['verification_uri_complete'], 'device', tmp_path,
                TOKEND_TEST_BROWSER_DENY='1')
    status, body = srv.token_request({'grant_type': DEVICE_GRANT,
                                      'device_code': dev['device_code']}, 'tokend-native')
    assert (status, body['error']) == (400, 'access_denied')


def test_deny_mode_gives_access_denied(srv, tmp_path):
    url = srv.authorization_url(client_id='tokend-paste', state='st-3',
                                code_challenge=pkce_pair()[1])
    final = run_browser(srv, url, 'deny', tmp_path)
    assert final.startswith('https://login.example.invalid/common/oauth2/nativeclient?')
    params = query(final)
    assert params['error'] == 'access_denied'
    assert params['state'] == 'st-3' and params['iss'] == srv.issuer
    assert 'code' not in params


def test_browser_fails_cleanly_on_bad_request(srv, tmp_path):
    url = srv.authorization_url(redirect_uri='http://127.0.0.1/elsewhere',
                                code_challenge=pkce_pair()[1])
    env = dict(os.environ, TOKEND_TEST_CA=srv.ca_file, TOKEND_TEST_BROWSER_MODE='print',
               TOKEND_TEST_BROWSER_OUT=str(tmp_path / 'out'))
    result = subprocess.run([str(BROWSER), url], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith('browser.py: HTTP 400') and result.stderr.count('\n') == 1
    assert not (tmp_path / 'out').exists()


def test_stats_count_token_requests(srv):
    srv.reset_stats()
    assert srv.stats() == {'token': {}, 'endpoints': {}, 'authorization': [],
                           'refresh_scopes': [], 'token_auth': []}
    tokens = srv.obtain_tokens()
    srv.refresh(tokens['refresh_token'])
    srv.token_request({'grant_type': 'refresh_token', 'refresh_token': tokens['refresh_token'],
                       'scope': 'openid'}, 'tokend-native')
    srv.http('POST', srv.token_url, {'client_id': 'tokend-native'})
    stats = srv.stats()
    assert stats['token'] == {'authorization_code': 1, 'refresh_token': 2, 'none': 1}
    assert stats['endpoints']['token'] == 4
    assert stats['endpoints']['authorization'] == 1
    assert stats['authorization'] == [{'scope': 'openid offline_access', 'prompt': 'consent'}]
    assert stats['refresh_scopes'] == [None, 'openid']
    assert stats['token_auth'] == ['none'] * 4


def test_restart_time(tmp_path):
    started = time.monotonic()
    with AuthServer(tmp_path) as server:
        assert server.startup_seconds < 5
    assert time.monotonic() - started < 10
