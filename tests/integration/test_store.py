"""The real Secret Service (gnome-keyring on a private session bus) as the
refresh token store, and store = auto."""

import json
import time

import pytest

from conftest import EX_NOPERM, EX_OK, EX_UNAVAILABLE, stored_token
from harness.keyring import SecretService


@pytest.fixture
def keyring(tmp_path):
    with SecretService(tmp_path / 'keyring') as ss:
        yield ss


def ours(keyring):
    return [i['attributes'] for i in keyring.items() if i['attributes'].get('account') == 'work']


def with_bus(tokend, keyring):
    tokend.env.update(keyring.env)
    tokend.env['HOME'] = str(tokend.home)


def test_refresh_token_goes_to_the_keyring(tokend, keyring, authserver):
    with_bus(tokend, keyring)
    tokend.account(store='secret-service')
    r = tokend.obtain()
    assert 'secret-service store' in r.stderr
    assert not tokend.refresh_token_file().exists()
    items = ours(keyring)
    assert len(items) == 1 and items[0]['kind'] == 'refresh_token'
    assert items[0]['xdg:schema'] == 'org.tokend.Secret'
    stored = stored_token(keyring.lookup(account='work', kind='refresh_token'))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    rotated = stored_token(keyring.lookup(account='work', kind='refresh_token'))
    assert rotated and rotated != stored
    assert authserver.refresh(stored)[0] == 400
    assert len(ours(keyring)) == 1


def test_auto_uses_the_keyring_when_it_is_there(tokend, keyring):
    with_bus(tokend, keyring)
    tokend.account(store='auto')
    r = tokend.obtain()
    assert 'secret-service store' in r.stderr
    assert json.loads(tokend.run('status', '--json').stdout)[0]['store'] == 'secret-service'


def test_auto_falls_back_to_files_without_a_session_bus(tokend):
    tokend.account(store='auto')
    r = tokend.obtain()
    assert 'file store' in r.stderr
    assert tokend.refresh_token_file().exists()


def test_forced_keyring_without_a_bus_fails_before_the_browser(tokend):
    tokend.account(store='secret-service')
    start = time.time()
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_UNAVAILABLE
    assert 'session bus' in r.stderr
    assert 'https://' not in r.stderr  # the user was not sent to sign in
    assert time.time() - start < 5


def test_locked_keyring_is_locked_not_missing(tokend, keyring):
    with_bus(tokend, keyring)
    tokend.account(store='secret-service')
    tokend.obtain()
    access = tokend.token_file().read_text()
    stored = keyring.lookup(account='work', kind='refresh_token')
    keyring.lock()
    start = time.time()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_UNAVAILABLE
    assert 'locked' in r.stderr and 'no refresh token' not in r.stderr
    assert time.time() - start < 10
    # Nothing was lost or overwritten; after unlocking all is well.
    assert tokend.token_file().read_text() == access
    keyring.unlock()
    assert keyring.lookup(account='work', kind='refresh_token') == stored
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr


def test_keyring_locked_since_login_is_locked_not_missing(tokend, keyring):
    # A daemon that starts with the collection locked hides the attributes,
    # so no search finds the item: the locked flag must still be reported.
    with_bus(tokend, keyring)
    tokend.account(store='secret-service')
    tokend.obtain()
    keyring.restart_daemon(unlock=False)
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_UNAVAILABLE
    assert 'locked' in r.stderr and 'no refresh token' not in r.stderr
    keyring.unlock()
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK


def test_keyring_daemon_gone_is_a_clear_error(tokend, keyring):
    with_bus(tokend, keyring)
    tokend.account(store='secret-service')
    tokend.obtain()
    keyring.kill_daemon()
    start = time.time()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_UNAVAILABLE
    assert 'keyring' in r.stderr
    assert time.time() - start < 12
    # The cached token is still handed out: it needs no keyring.
    assert tokend.run('token', 'work').returncode == EX_OK


def test_logout_with_the_keyring_locked_is_not_done(tokend, keyring):
    with_bus(tokend, keyring)
    tokend.account(store='secret-service')
    tokend.obtain()
    keyring.lock()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    assert 'the refresh token is still in the secret-service store' in r.stderr
    assert 'run tokend logout work again' in r.stderr
    keyring.unlock()
    assert len(ours(keyring)) == 1
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK and 'secret-service store' in r.stderr, r.stderr
    assert ours(keyring) == []


def test_logout_removes_the_keyring_item(tokend, keyring):
    with_bus(tokend, keyring)
    tokend.account(store='secret-service')
    tokend.obtain()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK and 'secret-service store' in r.stderr
    assert ours(keyring) == []
    assert tokend.run('token', 'work').returncode == EX_NOPERM
