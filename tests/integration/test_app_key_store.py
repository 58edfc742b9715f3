"""An app-only account's private key kept in its store instead of a file:
put there by `tokend import ACCOUNT --key FILE` (checked against the
certificate first), read back from the Secret Service (gnome-keyring on a
private bus), from pass through the command store (TOKEND_SECRET names the
secret, the PEM's lines kept), or from any command; a passphrase-protected
key stays encrypted in the store and opens with client_key_passphrase_file.
Every mint is a real token request to the test authorization server."""

import json
import shlex
import sys

import pytest

from conftest import EX_CONFIG, EX_OK
from harness.appkeys import AppKeys
from harness.keyring import SecretService
from test_app_only import app_account, keys, run_ok, sa_keys, server, tokend  # noqa: F401
from test_store_command import RECORD_THEN_EXEC, password_store, recipe  # noqa: F401

def key_lines(path):
    """Lines of the key's base64 body: none may show outside the store."""
    return [ln for ln in path.read_text().splitlines() if not ln.startswith('-----')]


def assert_no_key_in(text, path):
    for line in key_lines(path):
        assert line not in text


def import_key(tokend, name, path):
    r = tokend.run('import', name, '--key', str(path))
    assert r.returncode == EX_OK, r.stderr
    assert 'kept in the' in r.stderr
    assert_no_key_in(r.stdout + r.stderr, path)
    return r


def mints(tokend, server, name, path):
    r = run_ok(tokend, '-vv', 'token', name)
    assert server.introspect(r.stdout.strip())['active']
    assert_no_key_in(r.stderr, path)


@pytest.fixture
def keyring(tmp_path):
    with SecretService(tmp_path / 'keyring') as ss:
        yield ss


def test_a_key_imported_into_the_secret_service_mints(tokend, server, keys, keyring):
    tokend.env.update(keyring.env)
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None,
                store='secret-service')
    r = import_key(tokend, 'box1', keys.key)
    assert 'kept in the secret-service store' in r.stderr
    assert keyring.lookup(account='box1', kind='client_key') == keys.key.read_text()
    [item] = [i for i in keyring.items() if i['attributes'].get('kind') == 'client_key']
    assert item['label'] == 'tokend client key for box1'
    assert not (tokend.state / 'box1' / 'client_key').exists()
    mints(tokend, server, 'box1', keys.key)


def test_a_key_in_pass_through_the_command_store_mints(tokend, server, keys, password_store):
    tokend.env.update(password_store.tokend_env())
    app_account(tokend, 'work', keys, 'box1@example.org', client_key=None,
                **recipe('store-pass.md'))
    r = import_key(tokend, 'work', keys.key)
    assert 'kept in the command store' in r.stderr
    # pass keeps the PEM's lines as they were.
    assert password_store.run('show', 'tokend/work').stdout == keys.key.read_text()
    mints(tokend, server, 'work', keys.key)


def test_the_commands_are_told_which_secret_and_never_see_it(tokend, server, keys, tmp_path):
    """TOKEND_SECRET names the key; neither argv nor the environment of any
    command holds a line of it; the key reaches the store whole."""
    box = tmp_path / 'box'
    box.mkdir(mode=0o700)
    log, f = box / 'log', box / 'key'
    rec = box / 'rec'
    rec.write_text(RECORD_THEN_EXEC.format(python=sys.executable, log=str(log)))
    rec.chmod(0o755)
    sh = f'{rec} sh -c '
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None, store='command',
                store_get=sh + shlex.quote(f'test ! -e {f} || cat {f}'),
                store_put=sh + shlex.quote(f'cat > {f}.tmp && mv {f}.tmp {f}'),
                store_delete=f'rm -f {f}')
    import_key(tokend, 'box1', keys.key)
    assert f.read_text() == keys.key.read_text()
    mints(tokend, server, 'box1', keys.key)
    runs = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert len(runs) >= 3  # put, get back, get for the mint
    for run in runs:
        assert run['env']['TOKEND_SECRET'] == 'client_key'
        assert run['env']['TOKEND_ACCOUNT'] == 'box1'
        assert_no_key_in(json.dumps(run), keys.key)


def test_a_passphrase_key_stays_encrypted_in_the_store(tokend, server, keys, keyring, tmp_path):
    tokend.env.update(keyring.env)
    enc = keys.encrypted_key('correct horse')
    phrase = tmp_path / 'passphrase'
    phrase.write_text('correct horse\n')
    phrase.chmod(0o600)
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None,
                store='secret-service', client_key_passphrase_file=phrase)
    import_key(tokend, 'box1', enc)
    stored = keyring.lookup(account='box1', kind='client_key')
    assert stored == enc.read_text() and 'ENCRYPTED PRIVATE KEY' in stored
    mints(tokend, server, 'box1', enc)


def test_a_key_without_its_passphrase_is_refused_before_it_is_stored(tokend, keys):
    """No client_key_passphrase_file: it would never open at a mint."""
    enc = keys.encrypted_key('correct horse')
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None, store='file')
    r = tokend.run('import', 'box1', '--key', str(enc))
    assert r.returncode == EX_CONFIG, r.stderr
    assert not (tokend.state / 'box1' / 'client_key').exists()


def test_a_key_others_may_read_is_refused_with_the_chmod(tokend, keys, tmp_path):
    loose = tmp_path / 'loose.key'
    loose.write_bytes(keys.key.read_bytes())
    loose.chmod(0o644)
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None, store='file')
    r = tokend.run('import', 'box1', '--key', str(loose))
    assert r.returncode == EX_CONFIG
    assert f'run: chmod 600 {loose}' in r.stderr
    assert not (tokend.state / 'box1' / 'client_key').exists()


def test_a_key_of_another_certificate_is_refused(tokend, keys, tmp_path):
    other = AppKeys(tmp_path / 'other', name='other')
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None, store='file')
    r = tokend.run('import', 'box1', '--key', str(other.key))
    assert r.returncode == EX_CONFIG
    assert 'is not the key of client_certificate' in r.stderr
    assert_no_key_in(r.stderr, other.key)
    assert not (tokend.state / 'box1' / 'client_key').exists()


def test_an_account_naming_its_key_file_keeps_nothing(tokend, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org', store='file')
    r = tokend.run('import', 'box1', '--key', str(keys.key))
    assert r.returncode == EX_CONFIG
    assert f'client_key names the key\'s file ({keys.key})' in r.stderr
    assert 'remove client_key from [account box1]' in r.stderr


def test_import_key_takes_one_account_and_no_other_option(tokend, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None, store='file')
    r = tokend.run('import', 'box1', '--key', str(keys.key), '--from', 'oama')
    assert r.returncode == 64
    assert 'import --key FILE takes one ACCOUNT' in r.stderr
