"""The real Secret Service (gnome-keyring on a private session bus) as the
refresh token store, and store = auto."""

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import EX_NOPERM, EX_OK, EX_UNAVAILABLE, TOKEND, stored_token
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


# No DBUS_SESSION_BUS_ADDRESS (cron): the user's bus socket --------------------------

def without_address(tokend, runtime):
    """The environment cron gives: no bus address; XDG_RUNTIME_DIR as given
    (None: unset)."""
    tokend.env.pop('DBUS_SESSION_BUS_ADDRESS', None)
    if runtime is None:
        tokend.env.pop('XDG_RUNTIME_DIR', None)
    else:
        tokend.env['XDG_RUNTIME_DIR'] = str(runtime)


def test_the_bus_socket_in_the_runtime_dir_serves_without_an_address(tokend, keyring):
    # The keyring's bus listens at WORKDIR/bus: WORKDIR is the runtime dir.
    without_address(tokend, keyring.socket.parent)
    tokend.account(store='secret-service')
    r = tokend.run('-vv', 'obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert f'the session bus at {keyring.socket}' in r.stderr
    assert keyring.lookup(account='work', kind='refresh_token')
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr


@pytest.mark.parametrize('what', ['missing', 'file', 'unset'])
def test_no_bus_socket_says_what_to_do(tokend, tmp_path, what):
    runtime = tmp_path / 'runtime'
    runtime.mkdir(mode=0o700)
    if what == 'file':
        (runtime / 'bus').write_text('not a socket')
    without_address(tokend, None if what == 'unset' else runtime)
    bus = f'/run/user/{os.getuid()}/bus' if what == 'unset' else str(runtime / 'bus')
    if what == 'unset' and os.path.exists(bus):
        pytest.skip(f'{bus} exists here')
    tokend.account(store='secret-service')
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_UNAVAILABLE
    reason = 'is not a socket' if what == 'file' else 'does not exist'
    assert r.stderr == (f'tokend: work: no D-Bus session bus for the Secret Service '
                        f'(DBUS_SESSION_BUS_ADDRESS is not set and {bus} {reason}); from cron '
                        'or without a login, keep the user\'s session bus (and the keyring) '
                        'running with: loginctl enable-linger; or set store = file or store = '
                        'command\n')


def test_cron_finds_the_bus_at_run_user_uid(tokend, keyring):
    """Under cron neither the address nor XDG_RUNTIME_DIR is set; logind's
    /run/user/UID/bus is.  A private mount namespace puts the keyring's
    socket there."""
    if os.geteuid() != 0 or not shutil.which('unshare') or not os.path.isdir('/run/user'):
        pytest.skip('needs root, unshare and /run/user (mounted over privately)')
    tokend.account(store='secret-service')
    with_bus(tokend, keyring)
    tokend.obtain()
    stored = keyring.lookup(account='work', kind='refresh_token')
    without_address(tokend, None)
    uid = os.getuid()
    script = ('mount -t tmpfs -o mode=0755 tmpfs /run/user && '
              f'mkdir -m 0700 /run/user/{uid} && touch /run/user/{uid}/bus && '
              f'mount --bind "$1" /run/user/{uid}/bus && shift && exec "$@"')
    r = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script,
                        'sh', str(keyring.socket), str(TOKEND), 'refresh', '--force', 'work'],
                       capture_output=True, text=True, env=tokend.env, timeout=60)
    assert r.returncode == EX_OK, r.stderr
    assert keyring.lookup(account='work', kind='refresh_token') not in (None, stored)


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
