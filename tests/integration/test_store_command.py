"""store = command: the refresh token kept by the user's own commands, with
the real pass, age and systemd-creds, and tokend migrate between stores."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import EX_CONFIG, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, REPO, stored_token
from harness import hostile
from harness.keyring import SecretService
from harness.wait import wait_until

# Records its argv and environment like the recorder of test_secrets, then
# becomes the real command.
RECORD_THEN_EXEC = '''#!{python}
import json, os, sys
with open({log!r}, 'a') as f:
    f.write(json.dumps({{'argv': sys.argv, 'env': dict(os.environ)}}) + '\\n')
os.execvp(sys.argv[1], sys.argv[1:])
'''


def recipe(name, **values):
    """The store keys of a recipe's first snippet, placeholders filled in."""
    block = (REPO / 'doc' / 'recipes' / name).read_text().split('```')[1]
    keys = {}
    for line in block.strip().splitlines():
        key, value = line.split(' = ', 1)
        for placeholder, v in values.items():
            value = value.replace(f'@{placeholder}@', str(v))
        assert '@' not in value, value
        keys[key] = value
    assert keys['store'] == 'command'
    return keys


def recorder(path, log):
    path = Path(path)
    path.write_text(RECORD_THEN_EXEC.format(python=sys.executable, log=str(log)))
    path.chmod(0o755)
    return str(path)


def command_keys(get, put, delete, **more):
    return dict(store='command', store_get=get, store_put=put, store_delete=delete, **more)


# pass with a GnuPG key made for the test ---------------------------------------

class Pass:
    def __init__(self, root):
        root.mkdir(mode=0o700)
        # Short: gpg-agent's sockets live in it, and socket paths are short.
        self.gnupghome = Path(tempfile.mkdtemp(prefix='gpg', dir='/tmp'))
        self.env = dict(os.environ, GNUPGHOME=str(self.gnupghome),
                        PASSWORD_STORE_DIR=str(root / 'password-store'))
        subprocess.run(['gpg', '--batch', '--passphrase', '', '--quick-gen-key',
                        'tokend test <test@example.invalid>', 'default', 'default', 'never'],
                       env=self.env, check=True, capture_output=True, timeout=60)
        out = subprocess.run(['gpg', '--batch', '--with-colons', '--list-keys'], env=self.env,
                             check=True, capture_output=True, text=True).stdout
        self.keyid = [ln.split(':')[9] for ln in out.splitlines() if ln.startswith('fpr')][0]
        self.run('init', self.keyid)

    def run(self, *args, input=None):
        return subprocess.run(['pass', *args], env=self.env, input=input, capture_output=True,
                              text=True, timeout=60)

    def show(self, name):
        r = self.run('show', name)
        return r.stdout.strip() if r.returncode == 0 else None

    def tokend_env(self):
        return {'GNUPGHOME': self.env['GNUPGHOME'],
                'PASSWORD_STORE_DIR': self.env['PASSWORD_STORE_DIR']}

    def close(self):
        subprocess.run(['gpgconf', '--kill', 'gpg-agent'], env=self.env, capture_output=True)
        shutil.rmtree(self.gnupghome, ignore_errors=True)


@pytest.fixture
def password_store(tmp_path):
    if not shutil.which('pass'):
        pytest.skip('pass is not installed (scripts/setup installs it)')
    p = Pass(tmp_path / 'pass')
    yield p
    p.close()


PASS_RECIPE = recipe('store-pass.md')


def use_pass(tokend, password_store, **keys):
    tokend.env.update(password_store.tokend_env())
    tokend.account(**dict(PASS_RECIPE, **keys))


def lifecycle(tokend, authserver, read_stored):
    """obtain -> rotating refresh -> token -> logout, the token in the real
    store at each step and never in tokend's own files."""
    r = tokend.obtain()
    assert 'command store' in r.stderr
    assert not tokend.refresh_token_file().exists()
    first = stored_token(read_stored())
    assert first
    assert json.loads(tokend.run('status', '--json').stdout)[0]['store'] == 'command'
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    rotated = stored_token(read_stored())
    assert rotated and rotated != first
    assert authserver.refresh(first)[0] == 400  # the old one is dead: it rotated
    r = tokend.run('token', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout.strip() == tokend.token_file().read_text().strip()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'removed the refresh token (command store)' in r.stderr
    assert read_stored() is None
    assert not tokend.refresh_token_file().exists()


def test_pass_recipe(tokend, authserver, password_store):
    use_pass(tokend, password_store)
    lifecycle(tokend, authserver, lambda: password_store.show('tokend/work'))


# age ---------------------------------------------------------------------------

def age_keys(tmp_path, tokend):
    if not shutil.which('age'):
        pytest.skip('age is not installed (scripts/setup installs it)')
    home = tokend.home
    key = home / '.config' / 'tokend' / 'age-key.txt'
    key.parent.mkdir(parents=True)
    subprocess.run(['age-keygen', '-o', str(key)], check=True, capture_output=True)
    recipient = subprocess.run(['age-keygen', '-y', str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    (home / '.local' / 'share' / 'tokend').mkdir(mode=0o700, parents=True)
    f = home / '.local' / 'share' / 'tokend' / 'work.age'
    return key, f, recipe('store-age.md', HOME=home, RECIPIENT=recipient)


def test_age_recipe(tmp_path, tokend, authserver):
    key, f, keys = age_keys(tmp_path, tokend)
    tokend.account(**keys)

    def stored():
        if not f.exists():
            return None
        assert b'age-encryption.org' in f.read_bytes()
        return subprocess.run(['age', '-d', '-i', str(key), str(f)], check=True,
                              capture_output=True, text=True).stdout.strip()
    lifecycle(tokend, authserver, stored)


# systemd-creds -----------------------------------------------------------------

def test_systemd_creds_recipe(tmp_path, tokend, authserver):
    if not shutil.which('systemd-creds'):
        pytest.skip('systemd-creds is not installed')
    box = tokend.home / 'creds'
    box.mkdir(mode=0o700)
    f = box / 'work.cred'
    probe = subprocess.run(['systemd-creds', 'encrypt', '--with-key=host', '--name=probe', '-',
                            str(box / 'probe.cred')], input='x', capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip('systemd-creds cannot encrypt with the host key here: '
                    + probe.stderr.strip().splitlines()[-1])
    tokend.account(**recipe('store-systemd-creds.md', DIR=box))

    def stored():
        if not f.exists():
            return None
        return subprocess.run(['systemd-creds', 'decrypt', '--name=tokend-work', str(f), '-'],
                              check=True, capture_output=True, text=True).stdout.strip()
    lifecycle(tokend, authserver, stored)


# failures, bounds, secrets -------------------------------------------------------

def script_store(tokend, **more):
    """A plain store made of shell commands, that fails on demand."""
    box = tokend.home / 'box'
    box.mkdir(mode=0o700, exist_ok=True)
    f, fail = box / 'rt', box / 'fail-put'
    get = 'sh -c ' + shlex.quote(f'test ! -e {f} || cat {f}')
    put = 'sh -c ' + shlex.quote(f'if test -e {fail}; then echo "disk on fire" >&2; exit 3; fi; '
                                 f'cat > {f}.tmp && mv {f}.tmp {f}')
    tokend.account(**command_keys(get, put, f'rm -f {f}', **more))
    return f, fail


def test_failing_put_during_refresh_keeps_the_rotated_token(tokend, authserver):
    f, fail = script_store(tokend)
    tokend.obtain()
    first = stored_token(f.read_text())
    fail.touch()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'could not save the new refresh token in the command store' in r.stderr
    assert 'store_put command sh exited with status 3: disk on fire' in r.stderr
    # The rotated token was rescued into the file store; the dead one is gone.
    rescued = tokend.stored_refresh_token().strip()
    assert rescued != first
    assert not f.exists()
    assert json.loads(tokend.run('status', '--json').stdout)[0]['store'] == 'file'
    # Still failing: the next refresh works from the rescued token.
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    # Repaired: the token goes back to the commands, and the file copy goes.
    fail.unlink()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert f.exists() and not tokend.refresh_token_file().exists()
    assert json.loads(tokend.run('status', '--json').stdout)[0]['store'] == 'command'
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK


def pid_alive(pid):
    """Running, not a zombie waiting for a reaper."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.mark.parametrize('which', ['store_get', 'store_put'])
def test_hanging_command_is_stopped_within_its_bound(tokend, which):
    f, _ = script_store(tokend, store_timeout=2)
    tokend.obtain()
    before = f.read_text()
    pids = tokend.home / 'pids'
    # The command leaves a child behind, as pass does with gpg.
    hang = 'sh -c ' + shlex.quote(f'sleep 60 & echo $! > {pids}; wait')
    tokend.account(**dict(tokend.accounts['work'], **{which: hang}))
    start = time.monotonic()
    r = tokend.run('refresh', '--force', 'work')
    took = time.monotonic() - start
    print(f'{which} stopped after {took:.1f} s (bound 2 s)')
    assert took < 8, took
    sleeper = int(pids.read_text())
    # SIGKILL was sent before tokend returned; dying takes a moment (left
    # alone, it would live 60 s).
    wait_until(lambda: not pid_alive(sleeper), 10, 'the command\'s child died')
    if which == 'store_get':
        assert r.returncode == EX_TEMPFAIL
        assert 'store_get command sh did not finish within 2 seconds' in r.stderr
        assert f.read_text() == before
    else:
        # A put that never ends is a failed save: the rotated token is rescued.
        assert r.returncode == EX_OK, r.stderr
        assert 'store_put command sh did not finish within 2 seconds' in r.stderr
        assert tokend.refresh_token_file().exists()


def test_get_printing_something_else_is_an_error_that_shows_none_of_it(tokend):
    f, _ = script_store(tokend)
    tokend.obtain()
    rt = stored_token(f.read_text())
    noisy = 'sh -c ' + shlex.quote(f'cat {f}; echo; cat {f}; cat {f} >&2; exit 0')
    tokend.account(**dict(tokend.accounts['work'], store_get=noisy))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode != EX_OK
    assert 'printed something other than one line' in r.stderr
    assert rt not in r.stderr + r.stdout


def test_failing_get_names_the_command_and_hides_the_token_it_said(tokend):
    f, _ = script_store(tokend)
    tokend.obtain()
    rt = stored_token(f.read_text())
    leaky = 'sh -c ' + shlex.quote(f'cat {f} >&2; exit 4')
    tokend.account(**dict(tokend.accounts['work'], store_get=leaky))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_UNAVAILABLE
    assert 'store_get command sh exited with status 4' in r.stderr
    assert 'check store_get in the configuration' in r.stderr
    assert rt not in r.stderr


def test_missing_program_is_a_clear_error(tokend):
    script_store(tokend)
    tokend.obtain()
    tokend.account(**dict(tokend.accounts['work'], store_get='no-such-store-program show'))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_UNAVAILABLE
    assert 'store_get command no-such-store-program cannot be run' in r.stderr


def test_empty_output_means_nothing_stored(tokend):
    script_store(tokend)
    tokend.obtain()
    tokend.account(**dict(tokend.accounts['work'], store_get='true'))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == 77
    assert 'no refresh token is stored' in r.stderr


@pytest.mark.parametrize('answer', [' ', r'  \n', r'\t\r\n', r'\n\n', r' \n \n'])
def test_whitespace_output_means_nothing_stored(tokend, answer):
    # printf's escapes: a newline would end the configuration's line.
    script_store(tokend)
    tokend.obtain()
    tokend.account(**dict(tokend.accounts['work'], store_get='printf ' + shlex.quote(answer)))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == 77, r.stderr
    assert 'no refresh token is stored' in r.stderr


@pytest.mark.parametrize('verbose', [[], ['-vv']])
def test_failing_get_redacts_what_it_said(tokend, verbose):
    # A secret tokend does not know (another account's, the store's own),
    # in words that would otherwise be shown.
    script_store(tokend)
    tokend.obtain()
    secret = '1//0gZx9Qk3LmN7pR2sT5vW8yB4dF6hJ'
    said = f'gpg: decryption of {secret} failed'
    leaky = 'sh -c ' + shlex.quote(f'echo "{said}" >&2; exit 2')
    tokend.account(**dict(tokend.accounts['work'], store_get=leaky))
    r = tokend.run(*verbose, 'refresh', '--force', 'work')
    assert r.returncode == EX_UNAVAILABLE
    assert ('store_get command sh exited with status 2: gpg: decryption of [redacted] failed'
            in r.stderr), r.stderr
    assert secret not in r.stderr + r.stdout


def test_commands_get_no_fd_of_tokend(tokend):
    # tokend holds the account's lock, the state and token files and a
    # connection to the server while it saves: none of them reaches a
    # command, only its three pipes.
    f, _ = script_store(tokend)
    tokend.obtain()
    fds = tokend.home / 'box' / 'fds'
    listing = f'ls -l /proc/self/fd > {fds}; '
    put = tokend.accounts['work']['store_put']
    tokend.account(**dict(tokend.accounts['work'],
                          store_put='sh -c ' + shlex.quote(listing + shlex.split(put)[2])))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    links = {ln.split()[-3]: ln.split()[-1] for ln in fds.read_text().splitlines()
             if ' -> ' in ln}
    # ls's own listing of the folder is the fourth.
    assert sorted(links) == ['0', '1', '2', '3'], links
    # stdin and stderr are its pipes (stdout is the listing here).
    assert links['0'].startswith('pipe:') and links['2'].startswith('pipe:'), links


def test_secrets_never_in_argv_or_env_of_the_commands(tokend, authserver, password_store):
    log = tokend.home / 'store-commands.jsonl'
    rec = recorder(tokend.home / 'record', log)
    use_pass(tokend, password_store, **{k: f'{rec} {v}' for k, v in PASS_RECIPE.items()
                                        if k != 'store'})
    tokens = []
    tokend.obtain()
    tokens.append(stored_token(password_store.show('tokend/work')))
    for _ in range(2):
        assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
        tokens.append(stored_token(password_store.show('tokend/work')))
        tokens.append(tokend.token_file().read_text().strip())
    assert tokend.run('logout', 'work').returncode == EX_OK
    records = hostile.read_records(log)
    ops = [r['argv'][2] for r in records]
    assert {'show', 'insert', 'rm'} <= set(ops), ops
    for r in records:
        assert r['env']['TOKEND_ACCOUNT'] == 'work'
        blob = json.dumps(r)
        for t in tokens:
            assert t and t not in blob
    print(f'{len(records)} store commands recorded, {len(tokens)} secrets checked')


def test_config_needs_all_three_commands(tokend):
    tokend.account(store='command', store_get='pass show x', store_put='pass insert -m x')
    r = tokend.run('status')
    assert r.returncode == EX_CONFIG
    assert 'store_delete: missing' in r.stderr
    tokend.account(**command_keys('pass show "x', 'true', 'true'))
    r = tokend.run('status')
    assert r.returncode == EX_CONFIG
    assert 'store_get' in r.stderr and 'cannot be split into words' in r.stderr


# migrate -------------------------------------------------------------------------

def status_store(tokend):
    return json.loads(tokend.run('status', '--json').stdout)[0]['store']


def test_migrate_file_to_command_and_back(tokend, authserver, password_store):
    tokend.env.update(password_store.tokend_env())
    tokend.account(store='file', **{k: v for k, v in PASS_RECIPE.items() if k != 'store'})
    tokend.obtain()
    rt = tokend.stored_refresh_token().strip()
    # The configuration must name the target first, or a refresh would move
    # the token back.
    r = tokend.run('migrate', 'work', '--store', 'command')
    assert r.returncode == EX_CONFIG
    assert 'set store = command in [account work]' in r.stderr
    assert tokend.refresh_token_file().exists() and password_store.show('tokend/work') is None
    tokend.account(**dict(tokend.accounts['work'], store='command'))
    r = tokend.run('migrate', 'work', '--store', 'command')
    assert r.returncode == EX_OK, r.stderr
    assert 'moved the refresh token from the file store to the command store' in r.stderr
    assert stored_token(password_store.show('tokend/work')) == rt
    assert not tokend.refresh_token_file().exists()
    assert status_store(tokend) == 'command'
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    rotated = stored_token(password_store.show('tokend/work'))
    assert rotated != rt
    tokend.account(**dict(tokend.accounts['work'], store='file'))
    r = tokend.run('migrate', 'work', '--store', 'file')
    assert r.returncode == EX_OK, r.stderr
    assert tokend.stored_refresh_token().strip() == rotated
    assert password_store.show('tokend/work') is None
    assert status_store(tokend) == 'file'
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    r = tokend.run('migrate', 'work', '--store', 'file')
    assert r.returncode == EX_OK and 'already in the file store' in r.stderr


def test_migrate_keeps_the_token_when_the_new_store_fails(tokend):
    f, fail = script_store(tokend)
    tokend.account(**dict(tokend.accounts['work'], store='file'))
    tokend.obtain()
    rt = tokend.stored_refresh_token()
    tokend.account(**dict(tokend.accounts['work'], store='command'))
    fail.touch()
    r = tokend.run('migrate', 'work', '--store', 'command')
    assert r.returncode == EX_UNAVAILABLE
    assert 'cannot write to the command store' in r.stderr and 'disk on fire' in r.stderr
    assert tokend.stored_refresh_token() == rt
    assert status_store(tokend) == 'file'
    # A store that answers with something else than it was given.
    fail.unlink()
    tokend.account(**dict(tokend.accounts['work'], store_get='echo not-the-token'))
    r = tokend.run('migrate', 'work', '--store', 'command')
    assert r.returncode != EX_OK
    assert 'gave back something other than was written' in r.stderr
    assert tokend.stored_refresh_token() == rt and status_store(tokend) == 'file'
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK


@pytest.fixture
def keyring(tmp_path):
    with SecretService(tmp_path / 'keyring') as ss:
        yield ss


def test_migrate_secret_service_to_file(tokend, keyring):
    tokend.env.update(keyring.env)
    tokend.account(store='secret-service')
    tokend.obtain()
    rt = stored_token(keyring.lookup(account='work', kind='refresh_token'))
    assert rt
    tokend.account(store='file')
    r = tokend.run('migrate', 'work', '--store', 'file')
    assert r.returncode == EX_OK, r.stderr
    assert 'from the secret-service store to the file store' in r.stderr
    assert tokend.stored_refresh_token().strip() == rt
    assert not keyring.lookup(account='work', kind='refresh_token')
    assert status_store(tokend) == 'file'
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK


def test_migrate_needs_a_sign_in_first(tokend):
    tokend.account(store='file')
    r = tokend.run('migrate', 'work', '--store', 'file')
    assert r.returncode == 77
    assert 'not signed in' in r.stderr
    assert tokend.run('migrate', 'work').returncode == 64


def test_logout_asks_the_configured_commands_even_without_a_state(tokend):
    # A sign-in killed after its put but before its state leaves the token
    # with the commands only.
    f, _ = script_store(tokend)
    tokend.obtain()
    (tokend.state / 'work' / 'state.json').unlink()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'removed the refresh token (command store)' in r.stderr
    assert not f.exists()


def test_logout_whose_delete_fails_says_so_and_can_be_run_again(tokend):
    """The refresh token is still stored: logout must not say it is done."""
    f, _ = script_store(tokend)
    broken = tokend.home / 'box' / 'fail-delete'
    tokend.accounts['work']['store_delete'] = 'sh -c ' + shlex.quote(
        f'if test -e {broken}; then echo "vault sealed" >&2; exit 4; fi; rm -f {f}')
    tokend.write_config()
    tokend.obtain()
    broken.touch()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('tokend: work: the refresh token is still in the command store')
    assert 'vault sealed' in line and 'run tokend logout work again' in line
    assert f.exists()
    assert not tokend.token_file().exists()
    state = json.loads((tokend.state / 'work' / 'state.json').read_text())
    assert state['store'] == 'command' and state['needs_signin'] is True
    # Repaired: the same command finishes the job.
    broken.unlink()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'removed the refresh token (command store)' in r.stderr
    assert not f.exists() and not (tokend.state / 'work' / 'state.json').exists()


@pytest.fixture(scope='session')
def fault_binary():
    from harness import faultbuild
    reason = faultbuild.meson_missing()
    if reason:
        pytest.skip(reason)
    return faultbuild.build()


@pytest.mark.parametrize('point', ['migrate-after-put', 'migrate-after-state'])
def test_migrate_killed_midway_loses_nothing(tokend, fault_binary, point):
    f, _ = script_store(tokend)
    tokend.account(**dict(tokend.accounts['work'], store='file'))
    tokend.obtain()
    rt = tokend.stored_refresh_token()
    tokend.account(**dict(tokend.accounts['work'], store='command'))
    r = subprocess.run([str(fault_binary), 'migrate', 'work', '--store', 'command'],
                       env=dict(tokend.env, TOKEND_FAULT=point), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == -9, r.stderr
    # Wherever the state points, the token is there.
    where = status_store(tokend)
    held = stored_token(f.read_text()) if where == 'command' else tokend.stored_refresh_token()
    assert held.strip() == rt.strip()
    assert where == ('file' if point == 'migrate-after-put' else 'command')
    r = tokend.run('migrate', 'work', '--store', 'command')
    assert r.returncode == EX_OK, r.stderr
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert status_store(tokend) == 'command' and stored_token(f.read_text()) != rt.strip()


def test_get_printing_without_end_is_stopped_at_its_bound(tokend):
    script_store(tokend)
    tokend.obtain()
    tokend.account(**dict(tokend.accounts['work'], store_get='yes tokentokentoken'))
    start = time.monotonic()
    r = tokend.run('refresh', '--force', 'work')
    assert time.monotonic() - start < 10
    assert r.returncode == EX_UNAVAILABLE
    assert 'store_get command yes printed more than 65536 bytes and was stopped' in r.stderr
