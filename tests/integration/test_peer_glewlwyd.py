"""The whole cycle against a second, independent authorization server:
glewlwyd 2.7 from Debian, run as shipped and configured through its REST
API (tests/harness/glewlwyd.py).  tokend adapts to it: nonce with openid,
token_type "bearer", scopes dropped silently, exact loopback redirect
matching, off-spec error answers."""

import json
import re
import subprocess
import urllib.parse

import pytest

from conftest import EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_OK, REPO, Tokend
from harness import glewlwyd
from harness.glewlwyd import CLIENT_SECRET, CONFIDENTIAL_CLIENT, PUBLIC_CLIENT, Glewlwyd
from harness.wait import wait_until

BROWSER = REPO / 'tests' / 'harness' / 'glewlwyd_browser.py'


# Loopback redirects are registered port and all; each sign-in takes the
# next one (a port just used lingers in TIME_WAIT for a minute).
REDIRECT_PORTS = 24


@pytest.fixture(scope='module')
def glew(tmp_path_factory):
    ports = glewlwyd.fixed_ports(REDIRECT_PORTS)
    with Glewlwyd(tmp_path_factory.mktemp('glewlwyd'), redirect_ports=ports) as server:
        server.unused = iter(server.redirect_uris)
        yield server


@pytest.fixture
def tk(tmp_path, glew):
    t = Tokend(tmp_path)
    t.env.update(BROWSER=str(BROWSER), TOKEND_TEST_CA=glew.ca_file)
    return t


def account(tk, glew, name='work', plugin='oidc', **keys):
    # The mailbox address is the user name: glewlwyd's id_token names the
    # user by the email claim (its sub is opaque), and tokend checks it.
    values = dict(provider='generic', client_id=PUBLIC_CLIENT, issuer=glew.issuer_of(plugin),
                  scopes='openid mail.imap', username=glewlwyd.USER_EMAIL,
                  redirect_uri=next(glew.unused), ca_file=glew.ca_file, store='file')
    values.update(keys)
    return tk.account(name, **values)


def signed_in(tk, glew, name='work', **keys):
    account(tk, glew, name, **keys)
    r = tk.run('obtain', name)
    assert r.returncode == EX_OK, r.stderr
    return tk.token_file(name).read_text(), tk.stored_refresh_token(name)


def printed_url(stderr):
    return next(line for line in stderr.splitlines() if line.startswith('https://'))


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def with_param(url, **changes):
    parts = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(parts.query), **changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(params)))


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def paste(tk, name, transform, *args):
    """obtain --manual: the browser prints the final URL, which is pasted
    (after transform) on tokend's stdin."""
    out = tk.home / 'final-url'
    out.unlink(missing_ok=True)
    proc = tk.popen('obtain', name, '--manual', *args, stdin=subprocess.PIPE,
                    env={'TOKEND_TEST_BROWSER_MODE': 'print',
                         'TOKEND_TEST_BROWSER_OUT': str(out)})

    def written():
        if out.exists():
            return True
        assert proc.poll() is None, f'obtain ended first: {proc.communicate()}'
    wait_until(written, 20, 'the browser wrote the final URL')
    final = out.read_text().strip()
    _, stderr = proc.communicate(transform(final) + '\n', timeout=30)
    return proc.returncode, stderr, final


def test_discovery_and_sign_in_through_the_catcher(tk, glew):
    log = tk.home / 'browser.log'
    account(tk, glew)
    r = tk.run('obtain', 'work', env={'TOKEND_TEST_BROWSER_LOG': str(log)})
    assert r.returncode == EX_OK, r.stderr
    # Only the issuer is configured: the endpoints come from discovery.
    assert glew.issuer == glew.base_url + '/api/oidc'
    url = printed_url(r.stderr)
    assert url.startswith(glew.base_url + '/api/oidc/auth?')
    params = query(url)
    assert params['redirect_uri'] == tk.accounts['work']['redirect_uri']
    # glewlwyd refuses an openid request without a nonce.
    assert re.fullmatch(r'[A-Za-z0-9_-]{32}', params['nonce'])
    assert log.read_text().startswith('200')
    token = tk.token_file().read_text()
    assert token.endswith('\n') and token.count('\n') == 1
    assert glew.token_valid(token.strip())
    claims = glew.claims(token)
    assert claims['client_id'] == PUBLIC_CLIENT
    assert set(claims['scope'].split()) == {'openid', 'mail.imap'}
    # token_type "bearer" was taken; the token is handed out.
    r = tk.run('token', 'work')
    assert r.returncode == EX_OK and r.stdout == token


def test_each_sign_in_has_its_own_nonce(tk, glew):
    nonces = []
    for name in ('one', 'two'):
        account(tk, glew, name)
        r = tk.run('obtain', name)
        assert r.returncode == EX_OK, r.stderr
        nonces.append(query(printed_url(r.stderr))['nonce'])
    assert nonces[0] != nonces[1]
    # A nonce of the user's own (auth_params) is sent as it is, once.
    account(tk, glew, 'own', auth_params='nonce=my-own-nonce-1')
    r = tk.run('obtain', 'own')
    assert r.returncode == EX_OK, r.stderr
    url = printed_url(r.stderr)
    assert url.count('nonce=') == 1 and query(url)['nonce'] == 'my-own-nonce-1'


def test_without_openid_no_nonce_and_the_refusal_is_reported(tk, glew):
    # glewlwyd's OpenID plugin (not set to allow plain OAuth2) refuses a
    # request without openid; tokend sends no nonce there and says why.
    account(tk, glew, scopes='mail.imap')
    r = tk.run('obtain', 'work')
    assert r.returncode == EX_CONFIG
    assert 'nonce' not in query(printed_url(r.stderr))
    assert 'invalid_scope' in r.stderr.strip().splitlines()[-1]
    assert not tk.refresh_token_file().exists()


def test_sign_in_by_pasting_the_final_url(tk, glew):
    account(tk, glew)
    rc, err, final = paste(tk, 'work', lambda u: u)
    assert rc == EX_OK, err
    assert final.startswith(tk.accounts['work']['redirect_uri'] + '?')
    assert 'code' in query(final)
    assert glew.token_valid(tk.token_file().read_text().strip())


def test_sign_in_with_the_device_flow(tk, glew):
    account(tk, glew)
    r = tk.run('obtain', 'work', '--device', env={'TOKEND_TEST_BROWSER_MODE': 'device'})
    assert r.returncode == EX_OK, r.stderr
    assert glew.endpoint('oidc', 'device_authorization_endpoint') == \
        glew.base_url + '/api/oidc/device_authorization'
    assert glew.token_valid(tk.token_file().read_text().strip())
    assert tk.run('refresh', '--force', 'work').returncode == EX_OK


def test_refresh_with_rotation_and_the_old_token_refused(tk, glew):
    access1, refresh1 = signed_in(tk, glew)
    r = tk.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    access2, refresh2 = tk.token_file().read_text(), tk.stored_refresh_token()
    assert access2 != access1 and refresh2 != refresh1
    assert glew.token_valid(access2.strip())
    # The rotated-out token is refused: 400 with nothing in it.  The replay
    # also ends the chain, so the token tokend holds dies with it.
    assert glew.refresh(refresh1.strip()) == (400, None)
    r = tk.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM
    line = one_line(r.stderr)
    assert line.startswith('tokend: work: sign-in needed: ')
    assert 'HTTP 400' in line and line.endswith('run: tokend obtain work')
    # Nothing lost or overwritten.
    assert tk.stored_refresh_token() == refresh2
    assert tk.token_file().read_text() == access2
    status = json.loads(tk.run('status', '--json').stdout)[0]
    assert status['needs_signin'] is True
    # Signing in again mends it.
    account(tk, glew)
    assert tk.run('obtain', 'work').returncode == EX_OK
    assert tk.run('refresh', '--force', 'work').returncode == EX_OK


def test_refresh_without_rotation_keeps_the_refresh_token(tk, glew):
    access1, refresh1 = signed_in(tk, glew, plugin='oidc-keep')
    for _ in range(2):
        r = tk.run('refresh', '--force', 'work')
        assert r.returncode == EX_OK, r.stderr
    access3 = tk.token_file().read_text()
    assert access3 != access1
    assert tk.stored_refresh_token() == refresh1
    assert glew.token_valid(access3.strip(), plugin='oidc-keep')


def test_scopes_the_server_drops_break_nothing(tk, glew):
    account(tk, glew, scopes='openid mail.imap mail.pop offline_access')
    r = tk.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    claims = glew.claims(tk.token_file().read_text())
    assert set(claims['scope'].split()) == {'openid', 'mail.imap'}
    r = tk.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert glew.token_valid(tk.token_file().read_text().strip())


def test_logout_of_a_public_client_says_revocation_is_refused(tk, glew):
    _, refresh = signed_in(tk, glew)
    r = tk.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    warning, done = r.stderr.strip().splitlines()
    assert 'lets no public client revoke (HTTP 401)' in warning
    assert 'forgetting it locally anyway' in warning
    assert 'removed the refresh token (file store)' in done
    assert not tk.token_file().exists() and not tk.refresh_token_file().exists()
    # What tokend said is true: the grant lives on at the server.
    status, body = glew.refresh(refresh.strip())
    assert status == 200 and body['access_token']


def test_logout_of_a_confidential_client_revokes(tk, glew):
    _, refresh = signed_in(tk, glew, client_id=CONFIDENTIAL_CLIENT, client_secret=CLIENT_SECRET)
    tk.config.chmod(0o600)  # it holds the client secret: tokend warns otherwise
    r = tk.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'revoked the refresh token at the provider' in one_line(r.stderr)
    assert not tk.refresh_token_file().exists()
    assert glew.refresh(refresh.strip(), client_id=CONFIDENTIAL_CLIENT) == (400, None)


def test_a_refused_code_is_reported_and_stores_nothing(tk, glew):
    access, refresh = signed_in(tk, glew)
    rc, err, _ = paste(tk, 'work', lambda u: with_param(u, code='forged'))
    assert rc == EX_NOPERM, err
    line = err.strip().splitlines()[-1]
    assert line.startswith('tokend: work: sign-in needed: ') and 'invalid_code' in line
    assert tk.token_file().read_text() == access
    assert tk.stored_refresh_token() == refresh


def test_iss_in_the_redirect_that_discovery_does_not_promise(tk, glew):
    assert 'authorization_response_iss_parameter_supported' not in glew.discovery['oidc-iss']
    issuer = glew.issuer_of('oidc-iss')
    account(tk, glew, plugin='oidc-iss')
    rc, err, final = paste(tk, 'work', lambda u: u)
    assert rc == EX_OK, err
    assert query(final)['iss'] == issuer
    # Present, it is checked: another issuer's redirect is refused.
    rc, err, _ = paste(tk, 'work', lambda u: with_param(u, iss='https://evil.example/'))
    assert rc == EX_DATAERR, err
    assert 'issuer' in err.strip().splitlines()[-1]


def test_a_sign_in_naming_another_user_is_refused(tk, glew):
    """glewlwyd names the user by email: a user name it does not match is
    refused before anything is stored, and `identity` settles it."""
    account(tk, glew, username='someone-else@example.com')
    r = tk.run('obtain', 'work')
    assert r.returncode == EX_NOPERM, r.stderr
    assert f'signed in as {glewlwyd.USER_EMAIL}' in r.stderr
    assert not tk.token_file().exists() and not tk.refresh_token_file().exists()
    account(tk, glew, username='someone-else@example.com', identity=glewlwyd.USER_EMAIL)
    assert tk.run('obtain', 'work').returncode == EX_OK
    st = json.loads(tk.run('status', '--json').stdout)[0]
    assert st['identity'] == glewlwyd.USER_EMAIL and st['identity_verified'] is True


# App-only accounts: client credentials -----------------------------------------
# glewlwyd 2.7.5 (Debian 12) takes the client credentials grant from a
# confidential client with a secret (HTTP Basic or the body) and, on a plugin
# that allows JWT request parameters, with a signed client assertion
# (private_key_jwt: RFC 7523 2.2) verified against the client's `pubkey`
# property (src/plugin/protocol_oidc.c of 2.7.5: callback_oidc_token ->
# validate_jwt_assertion_request -> verify_request_signature, whose result
# check_auth_type_client_credentials_grant accepts as the client).  It
# checks iss = sub = client_id, aud = the token endpoint, exp at most
# request-maximum-exp ahead, and refuses a jti it has seen.  The tokens are
# checked as a resource server checks glewlwyd's JWT access tokens (its
# signature): its introspection does not know tokens got without HTTP Basic
# (harness.glewlwyd.Glewlwyd.app_token_valid says why).

APP_SCOPES = 'mail.imap mail.smtp'


@pytest.fixture(scope='module')
def glew_app(glew, tmp_path_factory):
    from harness.appkeys import AppKeys
    keys = AppKeys(tmp_path_factory.mktemp('glewlwyd-appkeys'))
    pub = subprocess.run(['openssl', 'pkey', '-in', str(keys.key), '-pubout'], check=True,
                         capture_output=True, text=True).stdout
    glew.add_apps(pub)
    glew.app_keys = keys
    return glew


def app_account(tk, glew, name, client, tmp_path, **keys):
    values = dict(provider='generic', grant='client_credentials', client_id=client,
                  issuer=glew.issuer_of('oidc-app'), scopes=APP_SCOPES,
                  username='box1@example.org', ca_file=glew.ca_file)
    if client == glewlwyd.APP_SECRET_CLIENT:
        secret = tmp_path / f'{name}.secret'
        secret.write_text(glewlwyd.APP_SECRET + '\n')
        secret.chmod(0o600)
        values['client_secret_file'] = secret
    else:
        values.update(client_certificate=glew.app_keys.cert, client_key=glew.app_keys.key)
    values.update(keys)
    tk.config.parent.chmod(0o700)
    return tk.account(name, **values)


@pytest.mark.parametrize('client', [glewlwyd.APP_SECRET_CLIENT, glewlwyd.APP_JWT_CLIENT],
                         ids=['client-secret', 'private-key-jwt'])
def test_app_mints_with_client_credentials(tk, glew_app, tmp_path, client):
    app_account(tk, glew_app, 'box', client, tmp_path)
    r = tk.run('token', 'box')
    assert r.returncode == EX_OK, r.stderr
    token = r.stdout.strip()
    assert glew_app.app_token_valid(token)
    claims = Glewlwyd.claims(token)
    assert claims['client_id'] == claims['sub'] == client
    assert set(claims['scope'].split()) == set(APP_SCOPES.split())
    # No person, no refresh token: the launcher serves the minted token.
    assert not list(tk.home.rglob('*refresh_token*'))
    assert tk.run('token', 'box').stdout.strip() == token
    # A forced mint signs a new assertion (a fresh jti: glewlwyd refuses a
    # jti it has seen) and gets a new token.
    r = tk.run('refresh', '--force', 'box')
    assert r.returncode == EX_OK, r.stderr
    second = tk.token_file('box').read_text().strip()
    assert second != token and glew_app.app_token_valid(second)


def test_app_key_glewlwyd_does_not_know_is_refused(tk, glew_app, tmp_path):
    from harness.appkeys import AppKeys
    other = AppKeys(tmp_path / 'other', name='other')
    app_account(tk, glew_app, 'box', glewlwyd.APP_JWT_CLIENT, tmp_path,
                client_certificate=other.cert, client_key=other.key)
    r = tk.run('token', 'box')
    # glewlwyd answers an assertion it cannot verify with an empty 403.
    assert r.returncode == EX_CONFIG, r.stderr
    line = one_line(r.stderr)
    assert line == ("tokend: box: the server refused the app's credentials (HTTP 403, no reason "
                    "given); check that client_id and the certificate or key are those "
                    "registered for the app"), line
    assert not tk.token_file('box').exists()
