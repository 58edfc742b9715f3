"""The private Secret Service harness behaves like a desktop keyring."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.keyring import SecretService  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (shutil.which('gnome-keyring-daemon') and shutil.which('secret-tool')
         and shutil.which('dbus-daemon')),
    reason='needs gnome-keyring, libsecret-tools and dbus')

ALICE = {'service': 'tokend', 'account': 'alice'}
ALICE_ARGS = [s for kv in ALICE.items() for s in kv]


@pytest.fixture
def keyring(tmp_path):
    with SecretService(tmp_path) as ss:
        yield ss


def test_starts_unlocked_with_a_default_collection(keyring):
    assert keyring.owner()
    assert keyring.default_collection() == '/org/freedesktop/secrets/collection/login'
    assert not keyring.is_locked()
    assert keyring.startup_seconds < 10
    assert os.stat(keyring.daemon_env['XDG_RUNTIME_DIR']).st_mode & 0o777 == 0o700
    assert keyring.items() == []


def test_store_and_lookup(keyring):
    assert keyring.lookup(**ALICE) is None
    keyring.store('tokend alice', 'refresh-1', **ALICE)
    assert keyring.lookup(**ALICE) == 'refresh-1'
    keyring.store('tokend alice', 'refresh-2', **ALICE)  # replaces
    assert keyring.lookup(**ALICE) == 'refresh-2'
    [item] = keyring.items()
    assert item['label'] == 'tokend alice'
    # gnome-keyring may add xdg:schema=org.freedesktop.Secret.Generic on replace
    item['attributes'].pop('xdg:schema', None)
    assert item['attributes'] == ALICE
    keyring.clear(**ALICE)
    assert keyring.lookup(**ALICE) is None


def test_secret_is_kept_verbatim(keyring):
    # passed on stdin, stored without a trailing newline
    keyring.store('x', 'with spaces and = signs', **ALICE)
    assert keyring.lookup(**ALICE) == 'with spaces and = signs'


def test_lock_hides_the_item_and_unlock_brings_it_back(keyring):
    keyring.store('tokend alice', 'refresh-1', **ALICE)
    started = time.monotonic()
    keyring.lock()
    assert keyring.is_locked()
    assert keyring.lookup(**ALICE) is None
    assert time.monotonic() - started < 5  # no prompt, no hang
    [item] = keyring.items()  # still listed, marked locked
    assert item['locked'] and item['attributes']['account'] == 'alice'
    with pytest.raises(RuntimeError, match='locked collection'):
        keyring.store('tokend alice', 'refresh-2', **ALICE)
    keyring.unlock()
    assert not keyring.is_locked()
    assert keyring.lookup(**ALICE) == 'refresh-1'


def test_kill_daemon_leaves_the_bus_without_a_secret_service(keyring):
    keyring.store('tokend alice', 'refresh-1', **ALICE)
    keyring.kill_daemon()
    assert keyring.owner() is None
    started = time.monotonic()
    r = keyring.secret_tool('lookup', *ALICE_ARGS)
    assert time.monotonic() - started < 5
    assert r.returncode != 0
    assert 'org.freedesktop.secrets' in r.stderr  # not provided by any .service files
    keyring.restart_daemon()  # the item was saved to disk
    assert keyring.lookup(**ALICE) == 'refresh-1'



def test_with_activation_a_killed_daemon_comes_back_locked(tmp_path):
    with SecretService(tmp_path, activation=True) as ss:
        ss.store('tokend alice', 'refresh-1', **ALICE)
        ss.kill_daemon()
        assert ss.lookup(**ALICE) is None  # activates a new daemon
        assert ss.owner() and ss.is_locked()
        # a keyring file loaded locked shows its items with hashed attributes
        [item] = ss.items()
        assert item['locked'] and 'gkr:compat:hashed:account' in item['attributes']
        ss.unlock()
        assert ss.lookup(**ALICE) == 'refresh-1'


def test_env_is_all_a_child_needs(keyring):
    keyring.store('tokend alice', 'refresh-1', **ALICE)
    assert list(keyring.env) == ['DBUS_SESSION_BUS_ADDRESS']
    env = {'PATH': os.environ['PATH'], **keyring.env}
    r = subprocess.run(['secret-tool', 'lookup', *ALICE_ARGS], env=env,
                       capture_output=True, text=True, timeout=10)
    assert r.stdout == 'refresh-1'


def test_two_instances_are_independent(tmp_path):
    with SecretService(tmp_path / 'a') as a, SecretService(tmp_path / 'b') as b:
        a.store('x', 'only in a', **ALICE)
        assert b.lookup(**ALICE) is None
        assert a.env['DBUS_SESSION_BUS_ADDRESS'] != b.env['DBUS_SESSION_BUS_ADDRESS']
