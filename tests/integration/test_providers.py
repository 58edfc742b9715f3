"""Any OpenID provider: discovery, the RFC 9207 iss check, the device flow,
revocation on logout and extra authorization parameters, against the real
authorization server."""

import json
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import EX_DATAERR, EX_NOPERM, EX_OK, EX_CONFIG
from test_obtain import wait_for_url, catcher_base


def discovered(tokend, authserver, name='work', **keys):
    """An account that names only the issuer."""
    values = dict(provider='generic', client_id='tokend-native', issuer=authserver.issuer,
                  scopes='openid offline_access mail.imap', ca_file=authserver.ca_file,
                  store='file', authorize_url=None, token_url=None)
    values.update(keys)
    tokend.accounts[name] = {k: v for k, v in values.items() if v is not None}
    tokend.write_config()


def test_discovery_configures_an_account_from_the_issuer(tokend, authserver):
    discovered(tokend, authserver)
    tokend.obtain()
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']
    cache = tokend.state / 'work' / 'discovery.json'
    assert json.loads(cache.read_text())['issuer'] == authserver.issuer
    # Later runs use the cached metadata: no further discovery request.
    before = authserver.stats()['endpoints'].get('discovery', 0)
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert authserver.stats()['endpoints'].get('discovery', 0) == before


def test_discovery_with_a_wrong_issuer_is_refused(tokend, authserver):
    discovered(tokend, authserver, issuer=authserver.issuer + '/other')
    r = tokend.run('obtain', 'work')
    assert r.returncode in (EX_DATAERR,)
    assert 'metadata' in r.stderr


def send_to_catcher(url, **params):
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(catcher_base(url) + '?' + query, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def state_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)['state'][0]


def test_redirect_from_another_issuer_is_refused(tokend, authserver):
    discovered(tokend, authserver)
    proc = tokend.popen('obtain', 'work', '--no-browser')
    url = wait_for_url(proc)
    send_to_catcher(url, code='stolen', state=state_of(url), iss='https://evil.example')
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == EX_DATAERR
    assert 'issuer https://evil.example' in err
    assert not tokend.token_file().exists()


def test_redirect_without_the_promised_iss_is_refused(tokend, authserver):
    assert authserver.discovery['authorization_response_iss_parameter_supported']
    discovered(tokend, authserver)
    proc = tokend.popen('obtain', 'work', '--no-browser')
    url = wait_for_url(proc)
    send_to_catcher(url, code='stolen', state=state_of(url))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == EX_DATAERR
    assert 'iss' in err


def test_device_flow(tokend, authserver):
    discovered(tokend, authserver)
    before = authserver.stats()['token'].get('urn:ietf:params:oauth:grant-type:device_code', 0)
    r = tokend.run('obtain', 'work', '--device', env={'TOKEND_TEST_BROWSER_MODE': 'device'})
    assert r.returncode == EX_OK, r.stderr
    assert re.search(r'open https://127\.0\.0\.1:\d+/device and enter the code [A-Z]{4}-[A-Z]{4}',
                     r.stderr)
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']
    after = authserver.stats()['token'].get('urn:ietf:params:oauth:grant-type:device_code', 0)
    assert after > before
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK


def test_device_flow_from_config_and_denied(tokend, authserver):
    discovered(tokend, authserver, flow='device')
    r = tokend.run('obtain', 'work', env={'TOKEND_TEST_BROWSER_MODE': 'device',
                                          'TOKEND_TEST_BROWSER_DENY': '1'})
    assert r.returncode == EX_NOPERM
    assert 'denied' in r.stderr
    assert not tokend.token_file().exists()


def test_device_flow_stops_cleanly_on_ctrl_c(tokend, authserver):
    discovered(tokend, authserver)
    proc = tokend.popen('obtain', 'work', '--device', '--no-browser')
    deadline = time.time() + 10
    line = ''
    while 'enter the code' not in line and time.time() < deadline:
        line = proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 130
    assert 'interrupted' in err


def test_logout_revokes_the_refresh_token(tokend, authserver):
    discovered(tokend, authserver)
    tokend.obtain()
    rt = tokend.stored_refresh_token()
    assert authserver.stats()  # server is up
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK
    assert 'revoked the refresh token at the provider' in r.stderr
    status, body = authserver.refresh(rt)
    assert status == 400 and body['error'] == 'invalid_grant'


def test_logout_forgets_even_when_revocation_fails(tokend, authserver):
    discovered(tokend, authserver, revocation_url='https://127.0.0.1:9/revoke')
    tokend.obtain()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK
    assert 'could not revoke' in r.stderr and 'forgetting it locally anyway' in r.stderr
    assert not tokend.refresh_token_file().exists()


def test_extra_authorization_parameters(tokend, authserver):
    tokend.account(auth_params='ui_locales=de acr_values=urn:mace', prompt='consent',
                   login_timeout=1)
    r = tokend.run('obtain', 'work', '--no-browser')
    url = next(l for l in r.stderr.splitlines() if l.startswith('https://'))
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q['ui_locales'] == ['de'] and q['acr_values'] == ['urn:mace']
    assert q['prompt'] == ['consent']
    # ... and the server accepts them in a real sign-in.
    tokend.account(auth_params='ui_locales=de')
    tokend.obtain()


def test_reserved_authorization_parameters_are_refused(tokend, authserver):
    tokend.account(auth_params='state=fixed')
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_CONFIG
    assert 'state' in r.stderr and 'auth_params' in r.stderr


def test_confidential_client_sends_its_secret_from_a_file(tokend, authserver, tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('test-client-secret\n')
    secret.chmod(0o600)
    tokend.account(client_id='tokend-secret', client_secret_file=str(secret))
    tokend.obtain()
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    secret.write_text('wrong-secret\n')
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_CONFIG and 'invalid_client' in r.stderr
