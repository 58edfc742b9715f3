"""tokend import: another tool's refresh token becomes the account's after
one refresh with it, which rotates it at the test server (oidc-provider
rotates refresh tokens, and refuses a rotated one).

The other tools' files are made the way each tool makes them:
fetchmail-oauth2.py is run itself (from fetchmail's source tarball) against
the test server; mutt_oauth2.py's and oama's files are written as their
sources write them (json + gpg --encrypt --recipient, with a GnuPG key made
for the test) and mutt_oauth2.py itself then reads the file back;
email-oauth2-proxy's config is written with python3-cryptography's Fernet
and PBKDF2HMAC as emailproxy.py's Cryptographer does; pizauth's dump is
written as pizauth's source writes it (harness/pizauth_dump.py)."""

import base64
import pty
import select
import configparser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import (EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_OK, EX_USAGE,
                      TOKEND, Tokend)
from harness import browser
from harness.authserver import AuthServer
from harness.fetchmail7 import source_dir, _tarball
from harness.keyring import SecretService
from harness import pizauth_dump
from harness.scripted import Reply, ScriptedEndpoint

PYTHON = '/usr/bin/python3'
MUTT_OAUTH2 = Path('/usr/share/doc/mutt/examples/mutt_oauth2.py')
SECRET_CLIENT = dict(client_id='tokend-secret', client_secret='test-client-secret')


def refused(server, refresh_token, client_id='tokend-native'):
    status, body = server.refresh(refresh_token, client_id)
    return status == 400 and body.get('error') == 'invalid_grant'


def stored_refresh_token(tokend, name='work'):
    return tokend.stored_refresh_token(name).strip()


def assert_imported(tokend, server, old, client_id='tokend-native', result=None):
    """The account works with a new refresh token; the old one is retired."""
    if result is not None:
        assert result.returncode == EX_OK, result.stderr
        assert 'rotated' in result.stderr
    new = stored_refresh_token(tokend)
    assert new and new != old
    r = tokend.run('token', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert server.introspect(r.stdout.strip())['active'] is True
    # Last: oidc-provider revokes the whole grant when a rotated token is
    # used again.
    assert refused(server, old, client_id)


def assert_nothing_stored(tokend):
    assert not tokend.refresh_token_file().exists()
    assert not tokend.token_file().exists()
    r = tokend.run('token', 'work')
    assert r.returncode == EX_NOPERM, r.stderr


# fetchmail-oauth2.py, run itself -----------------------------------------------

@pytest.fixture(scope='module')
def fetchmail_script(tmp_path_factory):
    tarball = _tarball(source_dir())
    if not tarball:
        pytest.skip(f'no fetchmail source tarball in {source_dir()}')
    out = tmp_path_factory.mktemp('fetchmail') / 'fetchmail-oauth2.py'
    with tarfile.open(tarball) as t:
        member = next(m for m in t.getmembers()
                      if m.name.endswith('contrib/fetchmail-oauth2.py'))
        out.write_bytes(t.extractfile(member).read())
    return out


@pytest.fixture(scope='module')
def always_server(tmp_path_factory):
    """fetchmail-oauth2.py sends no prompt=consent, so it gets a refresh token
    only where the server gives one without offline_access, as Google does
    for access_type=offline."""
    with AuthServer(tmp_path_factory.mktemp('as-always'), refresh_tokens='always') as srv:
        yield srv


def fetchmail_config(dir, server, **more):
    keys = dict(client_id='tokend-secret', client_secret='test-client-secret',
                refresh_token_file=str(dir / 'refresh'), access_token_file=str(dir / 'access'),
                scope='openid', auth_url=server.authorize_url, token_url=server.token_url,
                redirect_uri='http://127.0.0.1/')
    keys.update(more)
    path = dir / 'oauth2Config.properties'
    path.write_text(''.join(f'{k}={v}\n' for k, v in keys.items()))
    path.chmod(0o600)
    return path


def run_fetchmail_obtain(script, config, server):
    """fetchmail-oauth2.py --obtain_refresh_token_file: it prints the URL and
    reads the code; the test's browser signs in at the URL."""
    env = dict(os.environ, SSL_CERT_FILE=server.ca_file, PYTHONUNBUFFERED='1')
    p = subprocess.Popen([PYTHON, str(script), '-c', str(config),
                          '--obtain_refresh_token_file'], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = None
    while url is None:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        if line.strip().startswith('https://'):
            url = line.strip()
    final = browser.authorize(url, ca_file=server.ca_file)
    code = dict(p for p in [kv.split('=', 1) for kv in final.split('?', 1)[1].split('&')])['code']
    out, err = p.communicate(code + '\n', timeout=60)
    assert p.returncode == 0, out + err
    assert 'Refresh token saved' in out


def test_fetchmail_oauth2_made_by_the_script_itself(tmp_path, always_server, fetchmail_script):
    tokend = Tokend(tmp_path / 'home', always_server)
    tokend.account(scopes='openid', **SECRET_CLIENT)
    (tmp_path / 'fm').mkdir()
    config = fetchmail_config(tmp_path / 'fm', always_server)
    run_fetchmail_obtain(fetchmail_script, config, always_server)
    old = (tmp_path / 'fm' / 'refresh').read_text().strip()

    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(config))
    assert_imported(tokend, always_server, old, 'tokend-secret', r)


def test_refused_token_stores_nothing_and_exits_with_the_refresh_status(tokend, authserver,
                                                                        tmp_path):
    tokend.account()
    (tmp_path / 'refresh').write_text('not-a-token-the-server-knows\n')
    config = fetchmail_config(tmp_path, authserver, client_id='tokend-native')
    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(config))
    assert r.returncode == EX_NOPERM, r.stderr
    assert 'refused the imported refresh token' in r.stderr
    assert 'not-a-token' not in r.stderr
    assert_nothing_stored(tokend)


def test_token_of_another_client_is_not_sent(tokend, authserver, tmp_path):
    tokend.account()
    rt = authserver.obtain_tokens()['refresh_token']
    (tmp_path / 'refresh').write_text(rt + '\n')
    config = fetchmail_config(tmp_path, authserver, client_id='someone-else')
    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(config))
    assert r.returncode == EX_CONFIG, r.stderr
    assert 'someone-else' in r.stderr and 'client_id' in r.stderr
    assert_nothing_stored(tokend)
    # Never sent: the token still works, unrotated.
    status, _ = authserver.refresh(rt)
    assert status == 200


def test_existing_signin_is_kept_unless_force(tokend, authserver, tmp_path):
    tokend.account()
    tokend.obtain()
    before = stored_refresh_token(tokend)
    rt = authserver.obtain_tokens()['refresh_token']
    (tmp_path / 'refresh').write_text(rt + '\n')
    config = fetchmail_config(tmp_path, authserver, client_id='tokend-native')

    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(config))
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert '--force' in r.stderr
    assert stored_refresh_token(tokend) == before
    status, _ = authserver.refresh(rt)  # not sent either
    assert status == 200

    rt = authserver.obtain_tokens()['refresh_token']
    (tmp_path / 'refresh').write_text(rt + '\n')
    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(config), '--force')
    assert_imported(tokend, authserver, rt, result=r)


# A failed import leaves the account as it was --------------------------------

def account_files(tokend):
    """What the account holds: the stored refresh token, the state, the
    access token file (bytes, None where absent)."""
    files = [tokend.refresh_token_file(), tokend.state / 'work' / 'state.json',
             tokend.token_file()]
    return [f.read_bytes() if f.exists() else None for f in files]


def alive(server, tokend):
    return server.introspect(tokend.stored_refresh_token())['active']


def test_import_of_someone_else_leaves_the_account_as_it_was(tokend, authserver, tmp_path):
    named = 'openid email profile offline_access mail.imap'
    tokend.account(scopes=named)
    tokend.obtain()
    before = account_files(tokend)
    t = authserver.obtain_tokens(scope=named, login='mallory')
    config = fetchmail_config(tmp_path, authserver, client_id='tokend-native')
    (tmp_path / 'refresh').write_text(t['refresh_token'] + '\n')
    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(config), '--force')
    assert r.returncode == EX_NOPERM, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert 'signed in as mallory@example.net, not as alice' in line
    assert 'the account is as it was before the import' in line
    assert "the other tool's copy no longer works" in line
    assert account_files(tokend) == before
    assert alive(authserver, tokend)
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK


@pytest.fixture(scope='session')
def fault_binary():
    from harness import faultbuild
    reason = faultbuild.meson_missing()
    if reason:
        pytest.skip(reason)
    return faultbuild.build()


def test_import_failing_at_any_file_operation_leaves_the_account_as_it_was(
        tmp_path, authserver, fault_binary):
    """Every file operation of an import over a signed-in account fails in
    turn (ENOSPC): after each failure the account holds exactly what it did,
    and its own sign-in still works."""
    from harness import faultbuild
    from test_full_disk import BinaryTokend, with_runtime
    t = BinaryTokend(tmp_path / 'home', authserver, fault_binary)
    runtime = with_runtime(t)
    t.account()
    t.obtain()
    config = fetchmail_config(tmp_path, authserver, client_id='tokend-native')
    log = tmp_path / 'faults.log'
    before = account_files(t)
    failed = []
    for n in range(1, 200):
        (tmp_path / 'refresh').write_text(authserver.obtain_tokens()['refresh_token'] + '\n')
        log.unlink(missing_ok=True)
        r = t.run('import', 'work', '--from', 'fetchmail-oauth2', str(config), '--force',
                  env=faultbuild.io_fault_env(n, 'ENOSPC', log))
        hit = faultbuild.io_fault_hit(log)
        if hit is None:
            assert r.returncode == EX_OK, r.stderr
            break
        where = f"#{n} {hit[0]} {hit[1].rsplit('/', 1)[-1].split('.tmp-')[0]}"
        if r.returncode == EX_OK:  # a fault the import may ignore (a folder sync)
            before = account_files(t)
            continue
        failed.append(where)
        assert r.returncode == EX_CANTCREAT, f'{where}: {r.stderr}'
        assert account_files(t) == before, f'{where}: {r.stderr}'
        assert not any(runtime.rglob('work')), f'{where}: a rescue file was left'
        assert alive(authserver, t), f'{where}: {r.stderr}'
    else:
        pytest.fail('the file operations never ran out')
    print(f'\n{len(failed)} failed imports: {failed}')
    assert any('refresh_token' in f for f in failed) and any('state' in f for f in failed)
    assert any(' token' in f for f in failed)
    assert t.run('refresh', '--force', 'work').returncode == EX_OK


# Servers that do not rotate, and servers that are down (scripted replies) -----

GOOGLE_REFRESH = Reply(200, {'access_token': 'ya29.imported-access', 'expires_in': 3599,
                             'scope': 'https://mail.google.com/', 'token_type': 'Bearer'})


@pytest.fixture
def scripted(tmp_path):
    with ScriptedEndpoint() as ep:
        t = Tokend(tmp_path / 'home')
        t.account(provider='generic', client_id='cid', authorize_url=ep.url('/authorize'),
                  token_url=ep.url('/token'), scopes='https://mail.google.com/',
                  username='me@example.com', store='file')
        (tmp_path / 'refresh').write_text('1//google-style-refresh-token\n')
        (tmp_path / 'cfg').write_text(f'client_id=cid\nclient_secret=s\n'
                                      f'refresh_token_file={tmp_path / "refresh"}\n')
        yield t, ep, tmp_path / 'cfg'


def test_token_the_server_does_not_rotate_is_kept_and_said(scripted):
    """Google's refresh answer carries no refresh_token (REFERENCE.md)."""
    tokend, ep, cfg = scripted
    ep.script('/token', GOOGLE_REFRESH)
    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(cfg))
    assert r.returncode == EX_OK, r.stderr
    assert 'did not rotate' in r.stderr
    assert ep.requests[-1].form['refresh_token'] == ['1//google-style-refresh-token']
    assert ep.requests[-1].form['grant_type'] == ['refresh_token']
    assert stored_refresh_token(tokend) == '1//google-style-refresh-token'
    r = tokend.run('token', 'work')
    assert r.returncode == EX_OK and r.stdout.strip() == 'ya29.imported-access', r.stderr


def test_server_unavailable_is_try_later_and_stores_nothing(scripted):
    tokend, ep, cfg = scripted
    ep.script('/token', Reply(503, 'down for maintenance'))
    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(cfg))
    assert r.returncode == 75, r.stderr
    assert 'nothing was stored' in r.stderr
    assert 'google-style' not in r.stderr
    assert_nothing_stored(tokend)


# mutt_oauth2.py and oama: gpg-encrypted JSON -----------------------------------

class GnuPG:
    def __init__(self):
        # Short: gpg-agent's sockets live in it.
        self.home = Path(tempfile.mkdtemp(prefix='gpg', dir='/tmp'))
        self.env = dict(os.environ, GNUPGHOME=str(self.home))
        subprocess.run(['gpg', '--batch', '--passphrase', '', '--quick-gen-key',
                        'tokend test <test@example.invalid>', 'default', 'default', 'never'],
                       env=self.env, check=True, capture_output=True, timeout=60)
        out = subprocess.run(['gpg', '--batch', '--with-colons', '--list-keys'], env=self.env,
                             check=True, capture_output=True, text=True).stdout
        self.keyid = [ln.split(':')[9] for ln in out.splitlines() if ln.startswith('fpr')][0]

    def close(self):
        subprocess.run(['gpgconf', '--kill', 'gpg-agent'], env=self.env, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def gnupg():
    if not shutil.which('gpg'):
        pytest.skip('gpg is not installed')
    g = GnuPG()
    yield g
    g.close()


def write_mutt_token_file(path, gnupg, token):
    """mutt_oauth2.py's writetokenfile(), with ENCRYPTION_PIPE set to the
    user's key as its README says."""
    if not path.exists():
        path.touch(mode=0o600)
    sub2 = subprocess.run(['gpg', '--encrypt', '--recipient', gnupg.keyid], check=True,
                          input=json.dumps(token).encode(), capture_output=True, env=gnupg.env)
    path.write_bytes(sub2.stdout)


def test_mutt_oauth2(tokend, authserver, gnupg, tmp_path):
    tokend.account()
    t = authserver.obtain_tokens()
    path = tmp_path / 'alice.tokens'
    write_mutt_token_file(path, gnupg, {
        'registration': 'google', 'authflow': 'localhostauthcode', 'email': 'alice@example.org',
        'access_token': t['access_token'],
        'access_token_expiration': (datetime.now() + timedelta(seconds=t['expires_in']))
        .isoformat(),
        'refresh_token': t['refresh_token']})
    # mutt_oauth2.py itself reads it (its access token is still valid, so
    # it prints it without asking any server), where mutt's examples are
    # installed (scripts/setup keeps them).
    if MUTT_OAUTH2.exists():
        check = subprocess.run([PYTHON, str(MUTT_OAUTH2), str(path)], capture_output=True,
                               text=True, env=gnupg.env, timeout=60)
        assert check.returncode == 0 and check.stdout.strip() == t['access_token'], \
            check.stderr

    r = tokend.run('import', 'work', '--from', 'mutt-oauth2', str(path),
                   env={'GNUPGHOME': str(gnupg.home)})
    assert_imported(tokend, authserver, t['refresh_token'], result=r)


def test_mutt_oauth2_undecryptable_file(tokend, authserver, gnupg, tmp_path):
    tokend.account()
    path = tmp_path / 'alice.tokens'
    path.write_bytes(b'-----BEGIN PGP MESSAGE-----\n\nnonsense\n-----END PGP MESSAGE-----\n')
    r = tokend.run('import', 'work', '--from', 'mutt-oauth2', str(path),
                   env={'GNUPGHOME': str(gnupg.home)})
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'gpg could not decrypt' in r.stderr
    assert_nothing_stored(tokend)


def gpg_recorder(tmp_path, gnupg):
    """A gpg first in PATH that notes its fds and GPG_TTY, then is gpg."""
    fake = tmp_path / 'fakebin'
    fake.mkdir()
    record = tmp_path / 'gpg-fds'
    real = shutil.which('gpg')
    (fake / 'gpg').write_text(f'#!/bin/sh\nls -l /proc/self/fd > {record}\n'
                              f'echo "GPG_TTY=$GPG_TTY" >> {record}\nexec {real} "$@"\n')
    (fake / 'gpg').chmod(0o755)
    return {'GNUPGHOME': str(gnupg.home), 'PATH': f'{fake}:{os.environ["PATH"]}'}, record


def fd_links(record):
    return {ln.split()[-3]: ln.split()[-1] for ln in record.read_text().splitlines()
            if ' -> ' in ln}


def test_gpg_gets_neither_stdin_nor_other_fds(tokend, authserver, gnupg, tmp_path):
    # tokend's stdin may hold what the user pipes in; gpg reads no stdin
    # here, and it gets its stdout pipe (the listing's file here) and
    # tokend's stderr, nothing else.
    tokend.account()
    t = authserver.obtain_tokens()
    path = tmp_path / 'alice.tokens'
    write_mutt_token_file(path, gnupg, {'registration': 'google', 'email': 'alice@example.org',
                                        'refresh_token': t['refresh_token']})
    env, record = gpg_recorder(tmp_path, gnupg)
    r = tokend.run('import', 'work', '--from', 'mutt-oauth2', str(path), env=env,
                   input='not for gpg\n')
    assert_imported(tokend, authserver, t['refresh_token'], result=r)
    links = fd_links(record)
    assert sorted(links) == ['0', '1', '2', '3'], links  # 3: ls's listing
    assert links['0'] == '/dev/null', links


def test_gpg_learns_the_terminal_from_gpg_tty(tokend, authserver, gnupg, tmp_path):
    # With stdin /dev/null, a pinentry on the terminal needs GPG_TTY.
    tokend.account()
    t = authserver.obtain_tokens()
    path = tmp_path / 'alice.tokens'
    write_mutt_token_file(path, gnupg, {'registration': 'google', 'email': 'alice@example.org',
                                        'refresh_token': t['refresh_token']})
    env, record = gpg_recorder(tmp_path, gnupg)
    env.pop('GPG_TTY', None)
    controller, terminal = pty.openpty()
    try:
        r = subprocess.run([str(TOKEND), 'import', 'work', '--from', 'mutt-oauth2', str(path)],
                           stdin=terminal, capture_output=True, text=True, timeout=60,
                           env=dict({k: v for k, v in tokend.env.items() if k != 'GPG_TTY'},
                                    **env))
        name = os.ttyname(terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert r.returncode == EX_OK, r.stderr
    assert f'GPG_TTY={name}' in record.read_text()


def write_oama_record(state_dir, gnupg, email, record):
    """oama's putAuthRecord with encryption GPG: Aeson's encode of the
    AuthRecord, `gpg --encrypt --recipient KEY -o FILE.tmp`, renamed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f'{email}.oama'
    p = subprocess.run(['gpg', '--encrypt', '--recipient', gnupg.keyid, '-o', f'{path}.tmp'],
                       input=json.dumps(record, separators=(',', ':')).encode(),
                       env=gnupg.env, capture_output=True, check=True)
    assert p.returncode == 0
    os.rename(f'{path}.tmp', path)
    return path


def test_oama(tokend, authserver, gnupg, tmp_path):
    tokend.account()
    t = authserver.obtain_tokens()
    path = write_oama_record(tmp_path / 'state' / 'oama', gnupg, 'alice@example.org', {
        'email': {'unEmailAddress': 'alice@example.org'}, 'service': 'microsoft',
        'scope': t.get('scope'), 'refresh_token': t['refresh_token'],
        'access_token': t['access_token'], 'token_type': 'Bearer',
        'exp_date': (datetime.now() + timedelta(seconds=t['expires_in'])).isoformat(),
        'expires_in': t['expires_in']})
    r = tokend.run('-v', '-v', 'import', 'work', '--from', 'oama', str(path),
                   env={'GNUPGHOME': str(gnupg.home)})
    assert t['refresh_token'] not in r.stderr + r.stdout
    assert stored_refresh_token(tokend) not in r.stderr + r.stdout
    assert_imported(tokend, authserver, t['refresh_token'], result=r)


def test_oama_record_without_refresh_token(tokend, gnupg, tmp_path):
    tokend.account()
    path = write_oama_record(tmp_path, gnupg, 'alice@example.org', {
        'email': None, 'service': 'google', 'scope': None, 'refresh_token': None,
        'access_token': 'x', 'token_type': 'Bearer', 'exp_date': None, 'expires_in': 3599})
    r = tokend.run('import', 'work', '--from', 'oama', str(path),
                   env={'GNUPGHOME': str(gnupg.home)})
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'no refresh_token' in r.stderr
    assert_nothing_stored(tokend)


def test_oama_keyring_through_secret_tool(tokend, authserver, tmp_path):
    """oama's encryption KEYRING: `secret-tool store --label 'oama - EMAIL'
    oama EMAIL` with the JSON record on stdin; the user pipes `secret-tool
    lookup oama EMAIL` into tokend import --from oama -."""
    if not shutil.which('secret-tool'):
        pytest.skip('secret-tool is not installed')
    tokend.account()
    t = authserver.obtain_tokens()
    record = json.dumps({
        'email': {'unEmailAddress': 'alice@example.org'}, 'service': 'google', 'scope': None,
        'refresh_token': t['refresh_token'], 'access_token': t['access_token'],
        'token_type': 'Bearer', 'exp_date': None, 'expires_in': t['expires_in']},
        separators=(',', ':'))
    with SecretService(tmp_path / 'keyring') as ring:
        r = ring.secret_tool('store', '--label', 'oama - alice@example.org', 'oama',
                             'alice@example.org', input=record)
        assert r.returncode == 0, r.stderr
        looked_up = ring.secret_tool('lookup', 'oama', 'alice@example.org')
        assert looked_up.returncode == 0, looked_up.stderr
    r = tokend.run('import', 'work', '--from', 'oama', '-', input=looked_up.stdout)
    assert_imported(tokend, authserver, t['refresh_token'], result=r)


# email-oauth2-proxy: Fernet under a key from the account's password -----------

PROXY_ITERATIONS = 1_200_000  # Cryptographer.ITERATIONS


def proxy_fernet(password, salt, iterations):
    from cryptography.fernet import Fernet
    from cryptography.hazmat.backends import default_backend
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    return Fernet(base64.urlsafe_b64encode(
        PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations,
                   backend=default_backend()).derive(password.encode('utf-8'))))


def write_proxy_config(path, server, username, password, tokens, iterations=PROXY_ITERATIONS,
                       client_id='tokend-native'):
    """What emailproxy.py saves after a sign-in: configparser sections, the
    account's tokens encrypted by its Cryptographer."""
    pytest.importorskip('cryptography')
    salt = os.urandom(16)
    f = proxy_fernet(password, salt, iterations or 100_000)  # LEGACY_ITERATIONS
    config = configparser.ConfigParser(interpolation=None)
    config['Server setup'] = {}
    config['IMAP-1993'] = {'server_address': 'imap.example.org', 'server_port': '993'}
    config[username] = {
        'permission_url': server.authorize_url, 'token_url': server.token_url,
        'oauth2_scope': 'openid offline_access', 'redirect_uri': 'http://localhost',
        'client_id': client_id,
    }
    section = config[username]
    section['token_salt'] = base64.b64encode(salt).decode('utf-8')
    if iterations is not None:
        section['token_iterations'] = str(iterations)
    section['access_token'] = f.encrypt(tokens['access_token'].encode('utf-8')).decode('utf-8')
    section['access_token_expiry'] = str(int(time.time()) + tokens['expires_in'])
    section['refresh_token'] = f.encrypt(tokens['refresh_token'].encode('utf-8')).decode('utf-8')
    with open(path, mode='w', encoding='utf-8') as out:
        config.write(out)


def test_email_oauth2_proxy(tokend, authserver, tmp_path):
    tokend.account(username='alice@example.org', identity='alice')
    t = authserver.obtain_tokens()
    path = tmp_path / 'emailproxy.config'
    write_proxy_config(path, authserver, 'alice@example.org', 'the IMAP pässword', t)
    r = tokend.run('import', 'work', '--from', 'email-oauth2-proxy', str(path),
                   input='the IMAP pässword\n')
    assert 'pässword' not in r.stderr + r.stdout
    assert_imported(tokend, authserver, t['refresh_token'], result=r)


def test_email_oauth2_proxy_password_on_a_terminal_is_not_echoed(tokend, authserver, tmp_path):
    tokend.account(username='alice@example.org', identity='alice')
    t = authserver.obtain_tokens()
    path = tmp_path / 'emailproxy.config'
    write_proxy_config(path, authserver, 'alice@example.org', 'typed-secret-pw', t)
    master, slave = pty.openpty()
    p = tokend.popen('import', 'work', '--from', 'email-oauth2-proxy', str(path), stdin=slave)
    os.close(slave)
    prompt = b''
    while b'Password of alice@example.org' not in prompt:
        ready, _, _ = select.select([p.stderr], [], [], 10)
        assert ready, 'no prompt'
        prompt += os.read(p.stderr.fileno(), 1024)
    os.write(master, b'typed-secret-pw\n')
    out, err = p.communicate(timeout=60)
    echoed = b''
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        echoed += chunk
    os.close(master)
    assert b'typed-secret-pw' not in echoed
    assert 'typed-secret-pw' not in out + err
    assert p.returncode == EX_OK, err
    assert_imported(tokend, authserver, t['refresh_token'])


def test_email_oauth2_proxy_legacy_iterations(tokend, authserver, tmp_path):
    """Sections saved before token_iterations existed: 100000 rounds."""
    tokend.account(username='alice@example.org', identity='alice')
    t = authserver.obtain_tokens()
    path = tmp_path / 'emailproxy.config'
    write_proxy_config(path, authserver, 'alice@example.org', 'pw', t, iterations=None)
    assert 'token_iterations' not in path.read_text()
    r = tokend.run('import', 'work', '--from', 'email-oauth2-proxy', str(path), input='pw\n')
    assert_imported(tokend, authserver, t['refresh_token'], result=r)


def test_email_oauth2_proxy_wrong_password(tokend, authserver, tmp_path):
    tokend.account(username='alice@example.org', identity='alice')
    t = authserver.obtain_tokens()
    path = tmp_path / 'emailproxy.config'
    write_proxy_config(path, authserver, 'alice@example.org', 'right', t)
    r = tokend.run('import', 'work', '--from', 'email-oauth2-proxy', str(path),
                   input='wrong\n')
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'password does not decrypt' in r.stderr
    assert_nothing_stored(tokend)
    status, _ = authserver.refresh(t['refresh_token'])
    assert status == 200


def test_email_oauth2_proxy_iterations_beyond_the_bound_are_refused(tokend, authserver,
                                                                   tmp_path):
    """The file says how many PBKDF2 rounds to run before the password can be
    judged: two thousand million would hold tokend for many minutes."""
    tokend.account(username='alice@example.org', identity='alice')
    t = authserver.obtain_tokens()
    path = tmp_path / 'emailproxy.config'
    write_proxy_config(path, authserver, 'alice@example.org', 'pw', t)
    text = path.read_text().replace(f'token_iterations = {PROXY_ITERATIONS}',
                                    'token_iterations = 2000000000')
    assert 'token_iterations = 2000000000' in text
    path.write_text(text)
    started = time.monotonic()
    r = tokend.run('import', 'work', '--from', 'email-oauth2-proxy', str(path), input='pw\n',
                   timeout=30)
    assert time.monotonic() - started < 10
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'token_iterations is 2000000000, more than the 10000000 rounds' in r.stderr
    assert 'Password of' not in r.stderr  # refused before the password is asked
    assert_nothing_stored(tokend)


@pytest.mark.parametrize('fmt', ['fetchmail-oauth2', 'oama', 'email-oauth2-proxy', 'pizauth'])
def test_fifo_is_refused_without_waiting(tokend, tmp_path, fmt):
    """A FIFO no one writes to would hold tokend (or its gpg) forever."""
    tokend.account()
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    started = time.monotonic()
    r = tokend.run('import', 'work', '--from', fmt, str(fifo), input='pw\n', timeout=30)
    assert time.monotonic() - started < 10
    assert r.returncode == EX_USAGE, r.stderr
    assert f'{fifo} is not a regular file' in r.stderr
    assert_nothing_stored(tokend)


def test_refresh_token_file_named_by_a_config_may_not_be_a_fifo(tokend, tmp_path):
    tokend.account()
    os.mkfifo(tmp_path / 'refresh')
    config = tmp_path / 'oauth2Config.properties'
    config.write_text(f'client_id=tokend-native\nrefresh_token_file={tmp_path / "refresh"}\n')
    r = tokend.run('import', 'work', '--from', 'fetchmail-oauth2', str(config), timeout=30)
    assert r.returncode == EX_USAGE, r.stderr
    assert 'refresh_token_file' in r.stderr and 'not a regular file' in r.stderr


# pizauth ----------------------------------------------------------------------

def pizauth_account(server, client_id='tokend-native', **more):
    """Account::dump() of a pizauth.conf account for the test server."""
    return pizauth_dump.account_dump(server.authorize_url, client_id, server.token_url,
                                     scopes=['openid', 'offline_access'], **more)


def write_pizauth_dump(path, accounts, **more):
    path.write_bytes(pizauth_dump.dump(accounts, **more))
    return path


def test_pizauth_dump(tokend, authserver, tmp_path):
    tokend.account()
    t = authserver.obtain_tokens()
    dump = write_pizauth_dump(tmp_path / 'dump', {
        'work': (pizauth_account(authserver, client_secret=None,
                                 auth_uri_fields=[('login_hint', 'alice@example.org')]),
                 pizauth_dump.token_state_active(t['access_token'], t['refresh_token'],
                                                 t['expires_in'])),
        'personal': (pizauth_account(authserver, client_id='another', client_secret='s3'),
                     pizauth_dump.token_state_empty())})
    r = tokend.run('-v', '-v', 'import', 'work', '--from', 'pizauth', str(dump))
    assert t['refresh_token'] not in r.stderr + r.stdout
    assert_imported(tokend, authserver, t['refresh_token'], result=r)


def test_pizauth_account_named_otherwise(tokend, authserver, tmp_path):
    tokend.account()
    t = authserver.obtain_tokens()
    dump = write_pizauth_dump(tmp_path / 'dump', {
        'office': (pizauth_account(authserver),
                   pizauth_dump.token_state_active(t['access_token'], t['refresh_token']))})
    r = tokend.run('import', 'work', '--from', 'pizauth', str(dump))
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'no account work (it has: office)' in r.stderr and '--pizauth-account' in r.stderr
    assert_nothing_stored(tokend)

    r = tokend.run('import', 'work', '--from', 'pizauth', '--pizauth-account', 'office',
                   str(dump))
    assert_imported(tokend, authserver, t['refresh_token'], result=r)


def test_pizauth_account_of_another_client_is_not_sent(tokend, authserver, tmp_path):
    tokend.account()
    t = authserver.obtain_tokens()
    dump = write_pizauth_dump(tmp_path / 'dump', {
        'work': (pizauth_account(authserver, client_id='someone-else'),
                 pizauth_dump.token_state_active(t['access_token'], t['refresh_token']))})
    r = tokend.run('import', 'work', '--from', 'pizauth', str(dump))
    assert r.returncode == EX_CONFIG, r.stderr
    assert 'someone-else' in r.stderr
    assert_nothing_stored(tokend)
    status, _ = authserver.refresh(t['refresh_token'])
    assert status == 200


@pytest.mark.parametrize('state, said', [
    (pizauth_dump.token_state_empty(), 'held no token for account work'),
    (pizauth_dump.token_state_active('at', None), 'held no refresh token for account work'),
])
def test_pizauth_account_not_signed_in(tokend, authserver, tmp_path, state, said):
    tokend.account()
    dump = write_pizauth_dump(tmp_path / 'dump', {'work': (pizauth_account(authserver), state)})
    r = tokend.run('import', 'work', '--from', 'pizauth', str(dump))
    assert r.returncode == EX_DATAERR, r.stderr
    assert said in r.stderr and 'tokend obtain' in r.stderr
    assert_nothing_stored(tokend)


def tampered(plain):
    sealed = bytearray(pizauth_dump.seal(plain))
    sealed[len(sealed) // 2] ^= 1
    return bytes(sealed)


def test_pizauth_files_that_are_not_its_dump(tokend, authserver, tmp_path):
    tokend.account()
    good = {'work': (pizauth_account(authserver),
                     pizauth_dump.token_state_active('at', 'rt-never-sent'))}
    plain = pizauth_dump.plaintext(good)
    cases = [
        (os.urandom(200), 'does not decrypt under pizauth\'s dump key'),
        (b'', 'not a pizauth dump (0 bytes)'),
        (tampered(plain), 'does not decrypt'),
        (pizauth_dump.seal(pizauth_dump.plaintext(good, version=2)),
         'dump is of version 2; tokend reads version 1'),
        (pizauth_dump.seal(plain + b'\0'), 'bytes follow the last account'),
        (pizauth_dump.seal(plain[:-3]), 'a count is larger than the data'),
        # Cut inside the expiry's nanoseconds, before Some(refresh token).
        (pizauth_dump.seal(plain[:-(2 + 1 + 8 + len('rt-never-sent'))]), 'ends inside a field'),
        (pizauth_dump.seal(plain.replace(pizauth_dump.u32(1) + pizauth_dump.string('at'),
                                         pizauth_dump.u32(2) + pizauth_dump.string('at'))),
         'unknown token state'),
    ]
    for content, said in cases:
        (tmp_path / 'dump').write_bytes(content)
        r = tokend.run('import', 'work', '--from', 'pizauth', str(tmp_path / 'dump'))
        assert r.returncode == EX_DATAERR, (said, r.stderr)
        assert said in r.stderr, r.stderr
        assert 'rt-never-sent' not in r.stderr
    assert_nothing_stored(tokend)


def test_usage_errors(tokend):
    tokend.account()
    r = tokend.run('import', 'work', '--from', 'thunderbird', '/dev/null')
    assert r.returncode == EX_USAGE
    assert 'fetchmail-oauth2' in r.stderr
    r = tokend.run('import', 'work', '/dev/null')
    assert r.returncode == EX_USAGE
    r = tokend.run('import', 'work', '--from', 'oama', '--pizauth-account', 'x', '/dev/null')
    assert r.returncode == EX_USAGE and '--pizauth-account' in r.stderr
