"""A provider is one entry of the provider table (src/config/provider.c).

The test builds (-Dfault_injection=true, made by harness/faultbuild.py)
compile in an entry named "example" that exists nowhere else in the code:
the configuration takes it, `tokend add` recognises its domain, a sign-in
and a refresh go to the endpoints the entry templates, and `status` names
it.  The release build does not know it."""

import pytest

from conftest import EX_CONFIG, EX_OK, Tokend
from harness import faultbuild
from test_crash import BinaryTokend


@pytest.fixture(scope='module')
def test_build():
    try:
        return faultbuild.build()
    except faultbuild.FaultBuildError as e:
        pytest.fail(f'cannot build tokend with -Dfault_injection=true: {e}')


def example_account(t, authserver, **keys):
    authority = authserver.base_url.split('://', 1)[1]
    values = dict(provider='example', client_id='tokend-native', authority=authority,
                  username='alice', ca_file=authserver.ca_file, store='file')
    values.update(keys)
    t.accounts['work'] = values
    t.write_config()


def test_an_entry_is_all_a_provider_needs(tmp_path, authserver, test_build):
    t = BinaryTokend(tmp_path, authserver, test_build)
    example_account(t, authserver)
    authserver.reset_stats()
    t.obtain()
    token = t.token_file().read_text().strip()
    assert authserver.introspect(token)['active']
    # The endpoints are the entry's templates filled with the authority.
    endpoints = authserver.stats()['endpoints']
    assert endpoints.get('token', 0) >= 1, endpoints
    r = t.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert t.token_file().read_text().strip() != token
    r = t.run('status', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout.startswith('work: example'), r.stdout
    # A key the entry's templates do not use does not apply to it.
    example_account(t, authserver, tenant='common')
    r = t.run('status', 'work')
    assert r.returncode == EX_CONFIG and 'tenant' in r.stderr and 'example' in r.stderr


def test_add_recognises_the_entry_by_its_domain(tmp_path, authserver, test_build):
    t = BinaryTokend(tmp_path, authserver, test_build)
    r = t.run('-v', 'add', 'alice@example.test', '--client-id', 'tokend-native', '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    assert 'example.test is a Test Example consumer domain' in r.stderr
    text = t.config.read_text()
    assert '[account alice@example.test]\n' in text and 'provider = example\n' in text
    r = t.run('status', 'alice@example.test')
    assert r.stdout.startswith('alice@example.test: example, alice@example.test'), r.stdout


def test_the_release_build_does_not_know_it(tmp_path, authserver):
    t = Tokend(tmp_path, authserver)
    example_account(t, authserver)
    r = t.run('status', 'work')
    assert r.returncode == EX_CONFIG
    assert ('"example" is not one of: microsoft, google, microsoft-gcc-high, microsoft-dod, '
            'microsoft-china, microsoft-hve or generic') in r.stderr
