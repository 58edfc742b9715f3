"""App-only accounts (grant = client_credentials, jwt_bearer): no person, no
browser, no refresh token.  The real peers: oidc-provider configured with a
private_key_jwt client whose certificate the test makes with openssl, a
client_secret_post client and a jwt-bearer grant that acts only for allowed
mailboxes (tests/authserver/server.mjs); Dovecot configured as an admin
would, letting the app into the mailboxes it may act for and no other
(tests/harness/dovecot.py APP_PASSDB); `tokend tunnel` and the token file.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import EX_CONFIG, EX_NOPERM, EX_OK, TOKEND, Tokend
from harness.appkeys import AppKeys
from harness.authserver import SERVER_DIR, AuthServer
from harness.tunnelpeers import dovecot_for

pytestmark = [
    pytest.mark.skipif(not Path('/usr/sbin/dovecot').exists() and
                       not Path('/usr/bin/dovecot').exists(), reason='needs dovecot-imapd'),
    pytest.mark.skipif(not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir(),
                       reason=f'oidc-provider not installed: run `npm ci` in {SERVER_DIR}'),
]

SA_EMAIL = 'mailer@tokend-test.iam.gserviceaccount.com'
ALLOWED = ['box1@example.org', 'box2@example.org']
APP_SCOPES = 'mail.imap mail.smtp'


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    return AppKeys(tmp_path_factory.mktemp('appkeys'))


@pytest.fixture(scope='module')
def sa_keys(tmp_path_factory):
    return AppKeys(tmp_path_factory.mktemp('sakeys'), name='sa')


@pytest.fixture(scope='module')
def server(tmp_path_factory, keys, sa_keys):
    env = {'TOKEND_TEST_APP_CERT': str(keys.cert), 'TOKEND_TEST_SA_CERT': str(sa_keys.cert),
           'TOKEND_TEST_SA_ISSUER': SA_EMAIL, 'TOKEND_TEST_SA_SUBJECTS': ','.join(ALLOWED)}
    with AuthServer(tmp_path_factory.mktemp('authserver'), env=env) as srv:
        yield srv


@pytest.fixture(scope='module')
def dovecot(server):
    with dovecot_for(server, apps={'tokend-app': ALLOWED}) as dc:
        yield dc


@pytest.fixture
def tokend(tmp_path, server):
    t = Tokend(tmp_path, server)
    t.config.parent.chmod(0o700)
    return t


def app_account(tokend, name, keys, username, **extra):
    values = dict(grant='client_credentials', client_id='tokend-app', authorize_url=None,
                  scopes=APP_SCOPES, username=username, client_certificate=keys.cert,
                  client_key=keys.key)
    values.update(extra)
    tokend.account(name, **values)


def token_requests(server, grant='client_credentials'):
    return server.stats()['token'].get(grant, 0)


def run_ok(tokend, *args):
    r = tokend.run(*args)
    assert r.returncode == EX_OK, r.stderr
    return r


# The certificate grant --------------------------------------------------

def test_certificate_grant_mints_a_token_the_server_vouches_for(tokend, server, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org')
    server.reset_stats()
    r = run_ok(tokend, 'token', 'box1')
    token = r.stdout.strip()
    info = server.introspect(token)
    assert info['active'] and info['client_id'] == 'tokend-app'
    assert info['scope'] == APP_SCOPES
    assert tokend.token_file('box1').read_text() == token + '\n'
    # No browser, no refresh token anywhere.
    assert server.stats()['endpoints'].get('authorization', 0) == 0
    assert not list(tokend.state.glob('box1/refresh_token*'))
    state = json.loads((tokend.state / 'box1' / 'state.json').read_text())
    assert state['app_only'] and 'store' not in state
    # The launcher answers the next call from the token file.
    assert run_ok(tokend, 'token', 'box1').stdout.strip() == token
    assert token_requests(server) == 1


def test_pss_signatures_are_accepted(tokend, server, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org', assertion_alg='PS256')
    token = run_ok(tokend, 'token', 'box1').stdout.strip()
    assert server.introspect(token)['active']


def test_obtain_mints_a_new_token_without_a_browser(tokend, server, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org')
    first = run_ok(tokend, 'token', 'box1').stdout.strip()
    server.reset_stats()
    r = run_ok(tokend, 'obtain', 'box1')
    assert 'no sign-in needed' in r.stderr
    assert token_requests(server) == 1
    assert tokend.token_file('box1').read_text().strip() != first


def test_thirty_mailboxes_share_one_app_token(tokend, server, keys):
    names = [f'box{i}' for i in range(30)]
    for i, name in enumerate(names):
        app_account(tokend, name, keys, f'box{i}@example.org')
    server.reset_stats()
    run_ok(tokend, 'refresh')
    tokens = {tokend.token_file(n).read_text() for n in names}
    assert len(tokens) == 1
    assert token_requests(server) == 1
    # Each `token` call of another mailbox takes the same token.
    for name in names[:5]:
        assert run_ok(tokend, 'token', name).stdout in tokens
    # A forced refresh mints once more for all of them, not thirty times.
    run_ok(tokend, 'refresh', '--force')
    assert token_requests(server) == 2
    assert len({tokend.token_file(n).read_text() for n in names}) == 1


def test_a_token_within_the_margin_is_minted_again_once_for_all(tmp_path_factory, keys):
    """The app's token is due once it expires within refresh_margin: the
    next refresh mints one, and every mailbox takes it."""
    env = {'TOKEND_TEST_APP_CERT': str(keys.cert)}
    with AuthServer(tmp_path_factory.mktemp('short'), access_ttl=900, env=env) as srv:
        t = Tokend(tmp_path_factory.mktemp('home'), srv)
        for i in range(3):
            app_account(t, f'box{i}', keys, f'box{i}@example.org', refresh_margin=100)
        run_ok(t, 'refresh')
        first = t.token_file('box0').read_text()
        run_ok(t, 'refresh')
        assert t.token_file('box0').read_text() == first
        # 850 s later, as the next timer tick sees it: 50 s left, within the
        # margin (the states say when the tokens expire).
        for state in [*t.state.glob('box*/state.json'), *t.state.glob('.apps/*/state.json')]:
            st = json.loads(state.read_text())
            st['expires_at'] = int(time.time()) + 50
            st['obtained_at'] = st['expires_at'] - 900
            state.write_text(json.dumps(st))
        # (by name: the timer's schedule still says "nothing due until then")
        run_ok(t, 'refresh', 'box0', 'box1', 'box2')
        assert t.token_file('box0').read_text() != first
        assert len({t.token_file(f'box{i}').read_text() for i in range(3)}) == 1
        assert srv.stats()['token']['client_credentials'] == 2


def test_a_state_torn_by_a_power_cut_is_made_again_by_the_next_mint(tokend, server, keys):
    """An app's token and the states of its accounts are written without
    waiting for the disk (the token file clients read is synced): after a
    power cut they may be empty or torn.  The next call mints again and
    writes them whole, instead of stopping the account."""
    app_account(tokend, 'box1', keys, 'box1@example.org')
    first = run_ok(tokend, 'token', 'box1').stdout.strip()
    [app] = list(tokend.state.glob('.apps/*'))
    (tokend.state / 'box1' / 'state.json').write_text('')
    (app / 'state.json').write_text('{"expires_at": 17')
    (app / 'token').write_text('')
    server.reset_stats()
    r = run_ok(tokend, 'token', 'box1')
    token = r.stdout.strip()
    assert token != first and server.introspect(token)['active']
    assert token_requests(server) == 1
    assert 'state.json' in r.stderr and 'starting it again' in r.stderr, r.stderr
    assert json.loads((tokend.state / 'box1' / 'state.json').read_text())['app_only']
    assert json.loads((app / 'state.json').read_text())['expires_at'] > time.time()
    assert (app / 'token').read_text() == token + '\n'
    # Whole again: the next call is answered from the files.
    assert run_ok(tokend, 'token', 'box1').stdout.strip() == token
    assert token_requests(server) == 1


# Keys ----------------------------------------------------------------------

def test_the_apps_token_lives_in_the_runtime_folder_and_a_reboot_only_costs_a_mint(
        tokend, server, keys, tmp_path):
    """With a login session's runtime folder ($XDG_RUNTIME_DIR, in memory),
    the app's shared token is kept there, private, and nothing of it under
    the state folder; the mailbox's token file stays in the state folder.
    A reboot empties the runtime folder: the mailbox's token is still read
    from its file, and the next refresh mints once and keeps the app's
    token there again."""
    runtime = tmp_path / 'runtime'
    runtime.mkdir(mode=0o700)
    tokend.env['XDG_RUNTIME_DIR'] = str(runtime)
    for i in (1, 2):
        app_account(tokend, f'box{i}', keys, f'box{i}@example.org')
    server.reset_stats()
    first = run_ok(tokend, 'token', 'box1').stdout.strip()
    assert run_ok(tokend, 'token', 'box2').stdout.strip() == first
    assert token_requests(server) == 1
    [app] = list((runtime / 'tokend' / '.apps').glob('*'))
    assert (app / 'token').read_text() == first + '\n'
    for d in (runtime / 'tokend', runtime / 'tokend' / '.apps', app):
        assert d.stat().st_mode & 0o777 == 0o700, d
    assert (app / 'token').stat().st_mode & 0o777 == 0o600
    assert not (tokend.state / '.apps').exists()
    assert tokend.token_file('box1').read_text().strip() == first
    # A reboot: the runtime folder is made again, empty.
    shutil.rmtree(runtime / 'tokend')
    assert run_ok(tokend, 'token', 'box1').stdout.strip() == first
    assert token_requests(server) == 1
    run_ok(tokend, 'refresh', '--force', 'box1', 'box2')
    assert token_requests(server) == 2
    [again] = list((runtime / 'tokend' / '.apps').glob('*'))
    minted = (again / 'token').read_text().strip()
    assert minted != first and server.introspect(minted)['active']
    assert {tokend.token_file(f'box{i}').read_text().strip() for i in (1, 2)} == {minted}


def test_a_key_others_can_read_is_refused_with_the_chmod(tokend, keys, tmp_path):
    loose = tmp_path / 'loose.key'
    loose.write_bytes(keys.key.read_bytes())
    loose.chmod(0o640)
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=loose)
    r = tokend.run('token', 'box1')
    assert r.returncode == EX_CONFIG, r.stderr
    assert f'run: chmod 600 {loose}' in r.stderr
    assert 'PRIVATE KEY' not in r.stderr
    assert oct(loose.stat().st_mode & 0o777) == '0o640'  # refused, not repaired


def test_a_passphrase_key_opens_with_its_passphrase_file(tokend, server, keys, tmp_path):
    enc = keys.encrypted_key('correct horse')
    phrase = tmp_path / 'passphrase'
    phrase.write_text('correct horse\n')
    phrase.chmod(0o600)
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=enc,
                client_key_passphrase_file=phrase)
    assert server.introspect(run_ok(tokend, 'token', 'box1').stdout.strip())['active']
    phrase.write_text('wrong\n')
    # Another scope: another app token, so the key is opened again.
    app_account(tokend, 'box2', keys, 'box2@example.org', client_key=enc,
                client_key_passphrase_file=phrase, scopes='mail.imap')
    r = tokend.run('token', 'box2')
    assert r.returncode == EX_CONFIG and 'passphrase does not open it' in r.stderr, r.stderr


def test_a_key_of_another_certificate_is_refused(tokend, keys, tmp_path):
    other = AppKeys(tmp_path / 'other', name='other')
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=other.key)
    r = tokend.run('token', 'box1')
    assert r.returncode == EX_CONFIG
    assert 'client_key is not the key of client_certificate' in r.stderr


def test_an_unregistered_certificate_is_a_configuration_error(tokend, tmp_path):
    other = AppKeys(tmp_path / 'other', name='other')
    app_account(tokend, 'box1', other, 'box1@example.org')
    r = tokend.run('token', 'box1')
    assert r.returncode == EX_CONFIG, r.stderr
    assert 'invalid_client' in r.stderr


# Client secret and JWT bearer --------------------------------------------

def test_client_secret_grant(tokend, server, tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('test-app-secret\n')
    secret.chmod(0o600)
    tokend.account('box1', grant='client_credentials', client_id='tokend-app-secret',
                   client_secret_file=secret, authorize_url=None, scopes=APP_SCOPES,
                   username='box1@example.org')
    info = server.introspect(run_ok(tokend, 'token', 'box1').stdout.strip())
    assert info['client_id'] == 'tokend-app-secret'


def test_jwt_bearer_acts_for_the_subject(tokend, server, sa_keys):
    sa = sa_keys.service_account(SA_EMAIL)
    tokend.account('g1', grant='jwt_bearer', client_id='tokend-sa', service_account_file=sa,
                   authorize_url=None, scopes='mail.imap', username='box2@example.org')
    info = server.introspect(run_ok(tokend, 'token', 'g1').stdout.strip())
    assert info['sub'] == 'box2@example.org'


def test_jwt_bearer_for_a_subject_not_allowed_says_what_the_admin_must_do(tokend, sa_keys):
    sa = sa_keys.service_account(SA_EMAIL)
    tokend.account('g1', grant='jwt_bearer', client_id='tokend-sa', service_account_file=sa,
                   authorize_url=None, scopes='mail.imap', username='nobody@example.org')
    r = tokend.run('token', 'g1')
    assert r.returncode == EX_NOPERM
    assert 'the service account may not act for nobody@example.org (invalid_grant)' in r.stderr
    assert 'Domain-wide delegation' in r.stderr and '1234567890' in r.stderr
    assert 'tokend obtain' not in r.stderr


# Mail ----------------------------------------------------------------------

def tunnel_login(tokend, name, dc):
    p = subprocess.run([str(TOKEND), '-c', str(tokend.config), 'tunnel', name],
                       input=b'a1 LOGOUT\r\n', capture_output=True, timeout=30, env=tokend.env)
    return p


def test_tunnel_logs_in_to_the_mailboxes_the_app_may_use_and_no_other(tokend, server, keys,
                                                                       dovecot):
    for i, box in enumerate(ALLOWED + ['box3@example.org']):
        app_account(tokend, f'm{i}', keys, box, imap_host=dovecot.host,
                    imap_port=dovecot.imaps_port, tunnel_tls='implicit')
    for i, box in enumerate(ALLOWED):
        p = tunnel_login(tokend, f'm{i}', dovecot)
        assert p.returncode == 0, p.stderr
        assert f'tokend: logged in as {box}'.encode() in p.stdout
    server.reset_stats()
    p = tunnel_login(tokend, 'm2', dovecot)
    assert p.returncode == EX_NOPERM, p.stderr
    err = p.stderr.decode()
    # Plainly: this mailbox is not the app's, and what the admin must do;
    # not a sign-in to redo.
    assert ('tokend: m2: the app may not use mailbox box3@example.org: IMAP login to '
            f'{dovecot.host} refused the token (NO [AUTHENTICATIONFAILED]') in err, err
    assert ("the mail server's administrator must let client tokend-app use "
            'box3@example.org') in err, err
    assert 'tokend obtain' not in err and 'refresh --force' not in err
    # The client hears it too, in its protocol.
    assert b"the app may not use mailbox box3@example.org" in p.stdout, p.stdout
    # One new token (the refused one may have been revoked), then no more.
    assert token_requests(server) == 1


def test_check_says_the_app_may_not_use_a_mailbox_outside_its_list(tokend, server, keys,
                                                                   dovecot):
    for name, box in (('in', ALLOWED[0]), ('out', 'box3@example.org')):
        app_account(tokend, name, keys, box, imap_host=dovecot.host,
                    imap_port=dovecot.imap_port, smtp_host=dovecot.host,
                    smtp_port=dovecot.submission_port)
    r = run_ok(tokend, 'check', 'in', '--imap')
    assert f'IMAP login to {dovecot.host}:{dovecot.imap_port} as {ALLOWED[0]}: ok' in r.stdout
    for service in ('imap', 'smtp'):
        r = tokend.run('check', 'out', f'--{service}')
        assert r.returncode == EX_NOPERM, r.stderr
        assert (f'tokend: out: the app may not use mailbox box3@example.org: '
                f'{service.upper()} login to {dovecot.host} refused the token') in r.stderr, \
            r.stderr
        assert "administrator must let client tokend-app use box3@example.org" in r.stderr
        assert 'refresh --force' not in r.stderr


def test_token_file_serves_a_real_imap_login(tokend, server, keys, dovecot):
    import imaplib
    app_account(tokend, 'box1', keys, 'box1@example.org')
    token = run_ok(tokend, 'token', 'box1').stdout.strip()
    m = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    auth = f'user=box1@example.org\x01auth=Bearer {token}\x01\x01'.encode()
    m.authenticate('XOAUTH2', lambda challenge: auth if not challenge else b'')
    assert m.select('INBOX')[0] == 'OK'
    m.logout()


def test_the_key_may_live_in_the_accounts_store(tokend, server, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None, store='file')
    folder = tokend.state / 'box1'
    folder.mkdir(parents=True, mode=0o700)
    (folder / 'client_key').write_bytes(keys.key.read_bytes())
    (folder / 'client_key').chmod(0o600)
    assert server.introspect(run_ok(tokend, 'token', 'box1').stdout.strip())['active']


def test_without_a_stored_key_the_message_names_the_key(tokend, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org', client_key=None, store='file')
    r = tokend.run('token', 'box1')
    assert r.returncode == EX_CONFIG
    assert 'no client_key is set, and the file store holds no key for box1' in r.stderr


def test_status_shows_the_certificate_expiry(tokend, keys):
    app_account(tokend, 'box1', keys, 'box1@example.org')
    run_ok(tokend, 'token', 'box1')
    out = run_ok(tokend, 'status', 'box1').stdout
    assert 'app-only (client_credentials)' in out
    assert 'certificate:' in out
    js = json.loads(run_ok(tokend, 'status', '--json', 'box1').stdout)
    acct = js['accounts'][0] if 'accounts' in js else js[0]
    assert acct['certificate_expires_at'] > time.time() + 300 * 86400


# Certificate lifetime -------------------------------------------------------

def test_a_certificate_expiring_within_notify_before_warns_once(tmp_path_factory, tmp_path):
    """A certificate made to expire within notify_before (2 days by default):
    the first refresh mints with it and warns, once, on standard error and
    through notify_cmd; nothing of the key or token reaches the note."""
    from test_reauth import Notes
    short = AppKeys(tmp_path / 'short', name='short', days=1)
    notes = Notes(tmp_path)
    env = {'TOKEND_TEST_APP_CERT': str(short.cert)}
    with AuthServer(tmp_path_factory.mktemp('shortcert'), env=env) as srv:
        t = Tokend(tmp_path / 'home', srv)
        app_account(t, 'box1', short, 'box1@example.org', notify_cmd=str(notes.script))
        r = run_ok(t, 'refresh')
        assert "box1: the app's certificate expires on" in r.stderr, r.stderr
        assert 'upload a new certificate to the app registration' in r.stderr
        assert 'tokend obtain' not in r.stderr
        runs = notes.runs()
        assert len(runs) == 1 and runs[0]['TOKEND_ACCOUNT'] == 'box1'
        assert f'client_certificate {short.cert} expires' in runs[0]['TOKEND_REASON']
        token = t.token_file('box1').read_text().strip()
        assert srv.introspect(token)['active']
        note = notes.out.read_text()
        assert token not in note and 'PRIVATE KEY' not in note
        # Once per certificate: later refreshes (timer ticks, forced) stay quiet.
        run_ok(t, 'refresh')
        run_ok(t, 'refresh', '--force')
        assert len(notes.runs()) == 1
        js = json.loads(run_ok(t, 'status', '--json', 'box1').stdout)
        acct = js['accounts'][0] if 'accounts' in js else js[0]
        assert acct['signin_rule'] == 'certificate'
        assert acct['certificate_expires_at'] < time.time() + 2 * 86400


def test_a_certificate_far_from_expiry_does_not_warn(tokend, keys, tmp_path):
    from test_reauth import Notes
    notes = Notes(tmp_path)
    app_account(tokend, 'box1', keys, 'box1@example.org', notify_cmd=str(notes.script))
    r = run_ok(tokend, 'refresh')
    assert 'certificate expires' not in r.stderr
    assert notes.runs() == []
