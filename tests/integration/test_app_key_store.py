"""An app-only account's private key kept in its store instead of a file:
put there by `tokend import ACCOUNT --key FILE` (checked against the
certificate first), read back from the Secret Service (gnome-keyring on a
private bus), from pass through the command store (TOKEND_SECRET names the
secret, the PEM's lines kept), or from any command; a passphrase-protected
key stays encrypted in the store and opens with client_key_passphrase_file.
Every mint is a real token request to the test authorization server."""

import json
import shlex
import subprocess
import sys

import pytest

from conftest import EX_CONFIG, EX_DATAERR, EX_OK
from harness.appkeys import AppKeys
from harness.keyring import SecretService
from test_app_only import (APP_SCOPES, app_account, keys, run_ok, sa_keys, server,  # noqa: F401
                           tokend)
from test_store_command import RECORD_THEN_EXEC, age_keys, password_store, recipe  # noqa: F401

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


def test_a_key_kept_by_age_through_its_recipe_mints(tokend, server, keys, tmp_path):
    """doc/recipes/store-age.md's lines as a user copies them, for an
    app-only account: the key goes through the real age, encrypted to a
    key made here, and comes back whole for every mint."""
    identity, f, recipe_keys = age_keys(tmp_path, tokend)
    app_account(tokend, 'work', keys, 'box1@example.org', client_key=None, **recipe_keys)
    r = import_key(tokend, 'work', keys.key)
    assert 'kept in the command store' in r.stderr
    assert b'age-encryption.org' in f.read_bytes()
    assert b'PRIVATE KEY' not in f.read_bytes()
    assert not list(f.parent.glob('*.tmp'))
    plain = subprocess.run(['age', '--decrypt', '--identity', str(identity), str(f)],
                           check=True, capture_output=True, text=True).stdout
    assert plain == keys.key.read_text()
    mints(tokend, server, 'work', keys.key)


def test_a_key_kept_by_systemd_creds_through_its_recipe_mints(tokend, server, keys):
    """doc/recipes/store-systemd-creds.md's lines as a user copies them, for
    an app-only account, with the real systemd-creds and the host key
    (root's: the tests run as root, systemd need not be running)."""
    box = tokend.home / 'creds'
    box.mkdir(mode=0o700)
    f = box / 'work.cred'
    app_account(tokend, 'work', keys, 'box1@example.org', client_key=None,
                **recipe('store-systemd-creds.md', DIR=box))
    r = import_key(tokend, 'work', keys.key)
    assert 'kept in the command store' in r.stderr
    assert b'PRIVATE KEY' not in f.read_bytes()
    plain = subprocess.run(['systemd-creds', 'decrypt', '--name=tokend-work', str(f), '-'],
                           check=True, capture_output=True, text=True).stdout
    assert plain == keys.key.read_text()
    # Bound to its name: the same file under another name does not open.
    other = subprocess.run(['systemd-creds', 'decrypt', '--name=tokend-other', str(f), '-'],
                           capture_output=True, text=True)
    assert other.returncode != 0 and 'PRIVATE KEY' not in other.stdout
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
    assert 'import --key FILE or --secret FILE takes one ACCOUNT' in r.stderr
    r = tokend.run('import', 'box1', '--key', str(keys.key), '--secret', '-')
    assert r.returncode == 64


# A client secret in the store ------------------------------------------------
# The server's `tokend-app-secret` client takes its secret in the body only
# (client_secret_post): a mint that sent it another way would be refused.

SECRET_CLIENT, SECRET = 'tokend-app-secret', 'test-app-secret'


def secret_account(tokend, name='box1', **extra):
    """A client credentials account that names neither a secret nor a key."""
    values = dict(grant='client_credentials', client_id=SECRET_CLIENT, authorize_url=None,
                  scopes=APP_SCOPES, username=f'{name}@example.org')
    values.update(extra)
    tokend.account(name, **values)


def secret_file(tmp_path, text=SECRET + '\n', mode=0o600):
    f = tmp_path / 'secret'
    f.write_text(text)
    f.chmod(mode)
    return f


def mints_with_the_secret_in_the_body(tokend, server, name='box1'):
    server.reset_stats()
    r = run_ok(tokend, '-vv', 'token', name)
    info = server.introspect(r.stdout.strip())
    assert info['active'] and info['client_id'] == SECRET_CLIENT
    assert server.stats()['token_auth'] == ['post']
    assert SECRET not in r.stderr


def test_a_client_secret_imported_into_the_file_store_mints(tokend, server, tmp_path):
    secret_account(tokend, store='file')
    f = secret_file(tmp_path)
    r = run_ok(tokend, 'import', 'box1', '--secret', str(f))
    assert f'the client secret from {f} is kept in the file store' in r.stderr
    assert SECRET not in r.stdout + r.stderr
    kept = tokend.state / 'box1' / 'client_secret'
    assert kept.read_text() == SECRET  # the line end taken off
    assert oct(kept.stat().st_mode & 0o777) == '0o600'
    mints_with_the_secret_in_the_body(tokend, server)


def test_a_client_secret_from_standard_input_into_the_secret_service_mints(tokend, server,
                                                                           keyring):
    tokend.env.update(keyring.env)
    secret_account(tokend, store='secret-service')
    r = tokend.run('import', 'box1', '--secret', '-', input=SECRET + '\n')
    assert r.returncode == EX_OK, r.stderr
    assert 'the client secret is kept in the secret-service store' in r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert keyring.lookup(account='box1', kind='client_secret') == SECRET
    [item] = [i for i in keyring.items() if i['attributes'].get('kind') == 'client_secret']
    assert item['label'] == 'tokend client secret for box1'
    assert not (tokend.state / 'box1' / 'client_secret').exists()
    mints_with_the_secret_in_the_body(tokend, server)


def test_logout_forgets_what_import_kept_in_the_store(tokend, server, keys, keyring, tmp_path):
    """`logout` of an app-only account forgets the key or client secret
    that `tokend import` put in its store, as it forgets a person's refresh
    token, and says so; the account then has nothing to mint with until
    the next import.  A key file the configuration names is the admin's
    and stays."""
    tokend.env.update(keyring.env)
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None,
                store='secret-service')
    import_key(tokend, 'box1', keys.key)
    secret_account(tokend, 'box2', store='file')
    run_ok(tokend, 'import', 'box2', '--secret', str(secret_file(tmp_path)))
    app_account(tokend, 'box3', keys, 'box3@example.org')
    for name in ('box1', 'box2', 'box3'):
        run_ok(tokend, 'token', name)

    r = run_ok(tokend, 'logout', 'box1')
    assert 'removed the client key (secret-service store)' in r.stdout + r.stderr
    assert keyring.lookup(account='box1', kind='client_key') is None
    assert not tokend.token_file('box1').exists()
    r = tokend.run('token', 'box1')
    assert r.returncode != EX_OK and 'key' in r.stderr, r.stderr

    r = run_ok(tokend, 'logout', 'box2')
    assert 'removed the client secret (file store)' in r.stdout + r.stderr
    assert not (tokend.state / 'box2' / 'client_secret').exists()
    assert SECRET not in r.stdout + r.stderr

    r = run_ok(tokend, 'logout', 'box3')
    assert 'client key' not in r.stdout + r.stderr
    assert keys.key.exists() and not tokend.token_file('box3').exists()
    # An import makes box1 whole again.
    import_key(tokend, 'box1', keys.key)
    mints(tokend, server, 'box1', keys.key)


def test_a_client_secret_through_the_command_store_is_named_and_never_seen(tokend, server,
                                                                           tmp_path):
    """TOKEND_SECRET=client_secret; the secret only on the pipes."""
    box = tmp_path / 'box'
    box.mkdir(mode=0o700)
    log, f = box / 'log', box / 'kept'
    rec = box / 'rec'
    rec.write_text(RECORD_THEN_EXEC.format(python=sys.executable, log=str(log)))
    rec.chmod(0o755)
    sh = f'{rec} sh -c '
    secret_account(tokend, store='command',
                   store_get=sh + shlex.quote(f'test ! -e {f} || cat {f}'),
                   store_put=sh + shlex.quote(f'cat > {f}.tmp && mv {f}.tmp {f}'),
                   store_delete=f'rm -f {f}')
    run_ok(tokend, 'import', 'box1', '--secret', str(secret_file(tmp_path)))
    assert f.read_text() == SECRET + '\n'
    mints_with_the_secret_in_the_body(tokend, server)
    runs = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert len(runs) >= 3  # put, get back, get for the mint
    for run in runs:
        assert run['env']['TOKEND_SECRET'] == 'client_secret'
        assert SECRET not in json.dumps(run)


def test_without_a_stored_secret_the_message_says_how_to_keep_one(tokend, server):
    secret_account(tokend, store='file')
    r = tokend.run('token', 'box1')
    assert r.returncode == EX_CONFIG, r.stderr
    assert ('no client secret or key is set, and the file store holds no client secret for '
            'box1') in r.stderr
    assert 'import box1 --secret FILE' in r.stderr


def test_a_wrong_stored_secret_is_refused_by_the_server_as_a_setting(tokend, server, tmp_path):
    secret_account(tokend, store='file')
    run_ok(tokend, 'import', 'box1', '--secret', str(secret_file(tmp_path, 'not-the-secret\n')))
    r = tokend.run('token', 'box1')
    assert r.returncode == EX_CONFIG, r.stderr
    assert 'invalid_client' in r.stderr and 'not-the-secret' not in r.stderr


def test_a_secret_others_may_read_is_refused_with_the_chmod(tokend, tmp_path):
    secret_account(tokend, store='file')
    f = secret_file(tmp_path, mode=0o644)
    r = tokend.run('import', 'box1', '--secret', str(f))
    assert r.returncode == EX_CONFIG
    assert f'run: chmod 600 {f}' in r.stderr and SECRET not in r.stderr
    assert not (tokend.state / 'box1' / 'client_secret').exists()


@pytest.mark.parametrize('text', ['', '\n', 'two\nlines\n', 'tab\there\n'])
def test_a_secret_that_is_not_one_visible_line_is_refused(tokend, tmp_path, text):
    secret_account(tokend, store='file')
    r = tokend.run('import', 'box1', '--secret', str(secret_file(tmp_path, text)))
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'client secret' in r.stderr
    assert not (tokend.state / 'box1' / 'client_secret').exists()


def test_only_an_account_that_names_no_secret_nor_key_keeps_one(tokend, keys, tmp_path):
    f = secret_file(tmp_path)
    secret_account(tokend, store='file', client_secret_file=f)
    r = tokend.run('import', 'box1', '--secret', str(f))
    assert r.returncode == EX_CONFIG
    assert 'client_secret_file names the client secret in the configuration' in r.stderr
    assert 'remove client_secret_file from [account box1]' in r.stderr
    app_account(tokend, 'box2', keys, 'box2@example.org', client_key=None, store='file')
    r = tokend.run('import', 'box2', '--secret', str(f))
    assert r.returncode == EX_CONFIG and 'signs in with a key' in r.stderr
    assert not list(tokend.state.glob('box*/client_secret'))
