"""How a client secret travels (RFC 6749 2.3.1): in the request body
(client_secret_post) unless the server's metadata lists client_secret_basic
and not client_secret_post; then in HTTP Basic.  oidc-provider configured
(TOKEND_TEST_SECRET_BASIC_ONLY) to take secrets in Basic only, and as
shipped (both)."""

import pytest

from conftest import EX_OK, Tokend
from harness.authserver import SERVER_DIR, AuthServer

pytestmark = pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                                reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}')


@pytest.fixture(scope='module')
def basic_only(tmp_path_factory):
    with AuthServer(tmp_path_factory.mktemp('basic'),
                    env={'TOKEND_TEST_SECRET_BASIC_ONLY': '1'}) as srv:
        yield srv


def secret_file(tmp_path, text):
    f = tmp_path / 'secret'
    f.write_text(text + '\n')
    f.chmod(0o600)
    return f


def app_account(t, srv, tmp_path):
    t.account('app', server=srv, grant='client_credentials', client_id='tokend-app-secret',
              client_secret_file=secret_file(tmp_path, 'test-app-secret'),
              issuer=srv.issuer, authorize_url=None, token_url=None,
              scopes='mail.imap mail.smtp', username='box1@example.org', store=None)


def test_metadata_lists_only_basic(basic_only, authserver):
    assert 'client_secret_post' not in \
        basic_only.discovery['token_endpoint_auth_methods_supported']
    assert 'client_secret_post' in authserver.discovery['token_endpoint_auth_methods_supported']


def test_app_secret_goes_in_basic_when_that_is_all_the_server_takes(tmp_path, basic_only):
    t = Tokend(tmp_path, basic_only)
    app_account(t, basic_only, tmp_path)
    basic_only.reset_stats()
    r = t.run('token', 'app')
    assert r.returncode == EX_OK, r.stderr
    assert basic_only.introspect(r.stdout.strip())['client_id'] == 'tokend-app-secret'
    assert basic_only.stats()['token_auth'] == ['basic']


def test_app_secret_goes_in_the_body_otherwise(tmp_path, authserver):
    t = Tokend(tmp_path, authserver)
    app_account(t, authserver, tmp_path)
    authserver.reset_stats()
    r = t.run('token', 'app')
    assert r.returncode == EX_OK, r.stderr
    assert authserver.stats()['token_auth'] == ['post']


def test_a_persons_sign_in_and_refresh_use_basic_too(tmp_path, basic_only):
    t = Tokend(tmp_path, basic_only)
    t.account('work', client_id='tokend-secret',
              client_secret_file=secret_file(tmp_path, 'test-client-secret'),
              issuer=basic_only.issuer, authorize_url=None, token_url=None,
              scopes='openid offline_access mail.imap', prompt='consent')
    basic_only.reset_stats()
    t.obtain()
    r = t.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    r = t.run('refresh', '--force')
    assert r.returncode == EX_OK, r.stderr
    assert basic_only.stats()['token_auth'] == ['basic', 'basic', 'basic']
    assert basic_only.introspect(t.token_file().read_text().strip())['active']
