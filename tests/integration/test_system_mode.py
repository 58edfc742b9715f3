"""System mode (issue 22): `tokend --system` run by root hands over to the
service user before it reads anything; the configuration is /etc/tokend's
config plus accounts.d, the state /var/lib/tokend, the token files
/run/tokend (all three moved by TOKEND_* for the test); readers in the
token file's group get the token and nothing else.

Real users: the test creates a service user, a reader group with a reader
in it, and an outsider, and runs tokend as each with setpriv (CI runs as
root).  Everything lives in a 0755 folder under /tmp so that those users
can reach the binaries' inputs."""

import contextlib
import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BROWSER, EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_OK, TOKEND, mode
from harness.authserver import AuthServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates users: needs root')


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


@contextlib.contextmanager
def made_users():
    """(service, reader, outsider, reader_group): created here, removed after."""
    tag = secrets.token_hex(3)
    service, reader, outsider, group = (f'tkd{tag}', f'tkr{tag}', f'tko{tag}', f'tkg{tag}')
    made = []
    try:
        run('groupadd', '--system', group)
        for user in (service, reader, outsider):
            run('useradd', '--system', '--no-create-home', '--home-dir', '/nonexistent',
                '--shell', '/usr/sbin/nologin', user)
            made.append(user)
        run('usermod', '-aG', group, reader)
        # The admin's sysusers.d `m` line: the service user gives files to the group.
        run('usermod', '-aG', group, service)
        yield service, reader, outsider, group
    finally:
        for user in made:
            subprocess.run(['userdel', user], capture_output=True)
        subprocess.run(['groupdel', group], capture_output=True)


class System:
    """A mail host's tokend under base: etc (config, accounts.d), state, run."""

    def __init__(self, base, srv, service):
        self.base, self.srv, self.service = base, srv, service
        self.etc, self.state, self.run_dir = base / 'etc', base / 'state', base / 'run'
        (self.etc / 'accounts.d').mkdir(parents=True)
        pw = pwd.getpwnam(service)
        for d in (self.etc, self.etc / 'accounts.d'):
            os.chown(d, 0, pw.pw_gid)
            d.chmod(0o750)
        # As the package's tmpfiles.d makes them.
        for d, m in ((self.state, 0o700), (self.run_dir, 0o755)):
            d.mkdir()
            os.chown(d, pw.pw_uid, pw.pw_gid)
            d.chmod(m)
        self.env = {
            'PATH': os.environ['PATH'], 'LANG': 'C.UTF-8', 'BROWSER': str(BROWSER),
            'TOKEND_TEST_CA': srv.ca_file, 'TOKEND_SYSTEM_USER': service,
            'TOKEND_SYSCONFDIR': str(self.etc), 'TOKEND_STATEDIR': str(self.state),
            'TOKEND_RUNTIMEDIR': str(self.run_dir),
        }

    def write(self, path, text, file_mode=0o640):
        path.write_text(text)
        os.chown(path, 0, pwd.getpwnam(self.service).pw_gid)
        path.chmod(file_mode)

    def account(self, name, **keys):
        values = dict(provider='generic', client_id='tokend-native',
                      authorize_url=self.srv.authorize_url, token_url=self.srv.token_url,
                      scopes='openid offline_access mail.imap', username='alice',
                      ca_file=self.srv.ca_file)
        values.update(keys)
        text = f'[account {name}]\n' + ''.join(f'{k} = {v}\n' for k, v in values.items()
                                               if v is not None)
        self.write(self.etc / 'accounts.d' / f'{name}.conf', text)

    def tokend(self, *args, user=None, env=None):
        cmd = [str(TOKEND), '--system', *args]
        if user:
            cmd = ['setpriv', f'--reuid={user}', f'--regid={pwd.getpwnam(user).pw_gid}',
                   '--init-groups', '--', *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                              env=dict(self.env, **(env or {})))


@pytest.fixture
def system():
    base = Path(tempfile.mkdtemp(prefix='tokend-system-'))
    base.chmod(0o755)
    try:
        with made_users() as (service, reader, outsider, group), \
                AuthServer(base / 'authserver') as srv:
            (base / 'authserver').chmod(0o755)
            s = System(base, srv, service)
            s.reader, s.outsider, s.group = reader, outsider, group
            s.write(s.etc / 'config', '[defaults]\nrefresh_margin = 300\n')
            yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_signs_in_as_the_service_user_and_readers_get_only_the_token(system):
    service = pwd.getpwnam(system.service)
    system.account('work', token_file_group=system.group)

    r = system.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr

    # Everything was written by the service user, never by root.
    for path in (system.state, system.state / 'work', system.run_dir):
        assert os.stat(path).st_uid == service.pw_uid, path
    assert mode(system.state) == 0o700 and mode(system.run_dir) == 0o755
    for f in (system.state / 'work').iterdir():
        assert os.stat(f).st_uid == service.pw_uid and mode(f) & 0o077 == 0, f
    token_file = system.run_dir / 'work.token'
    st = os.stat(token_file)
    assert (st.st_uid, st.st_gid, mode(token_file)) == \
        (service.pw_uid, grp.getgrnam(system.group).gr_gid, 0o640)
    token = token_file.read_text().strip()
    assert system.srv.introspect(token)['active']
    view = json.loads((system.run_dir / 'work.info').read_text())
    assert 'refresh' not in json.dumps(view) and view['token_file'] == str(token_file)

    # The reader: the token, through the launcher and through the engine.
    r = system.tokend('token', 'work', user=system.reader)
    assert (r.returncode, r.stdout) == (EX_OK, token + '\n'), r.stderr
    r = system.tokend('-v', 'token', 'work', user=system.reader)
    assert (r.returncode, r.stdout) == (EX_OK, token + '\n'), r.stderr
    # ... and nothing else: not the state, not the other verbs.
    probe = subprocess.run(['setpriv', f'--reuid={system.reader}', '--regid=65534',
                            '--init-groups', 'ls', str(system.state / 'work')],
                           capture_output=True)
    assert probe.returncode != 0
    r = system.tokend('status', user=system.reader)
    assert r.returncode == EX_NOPERM and 'needs the' in r.stderr, r.stderr
    r = system.tokend('token', 'work', user=system.outsider)
    assert r.returncode == EX_NOPERM and token not in r.stdout, r.stderr

    # The service user itself works as root's hand-over did.
    r = system.tokend('token', 'work', user=system.service)
    assert (r.returncode, r.stdout) == (EX_OK, token + '\n'), r.stderr


def test_the_work_runs_as_the_service_user(system):
    """What tokend starts (here the command store) runs as the service
    user: root's process was replaced, not kept as a parent."""
    probe = system.base / 'probe'
    probe.mkdir(mode=0o777)
    probe.chmod(0o777)
    system.account('work', store='command', store_get='true', store_delete='true',
                   store_put=f'sh -c "id -u >{probe}/uid; ps -o user= -p $PPID >{probe}/parent;'
                             ' cat >/dev/null"')
    r = system.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert (probe / 'uid').read_text().strip() == str(pwd.getpwnam(system.service).pw_uid)
    assert (probe / 'parent').read_text().strip() in (system.service,
                                                      str(pwd.getpwnam(system.service).pw_uid))


def test_configuration_others_can_change_is_refused_with_the_fix(system):
    system.account('work')
    dropin = system.etc / 'accounts.d' / 'work.conf'
    dropin.chmod(0o664)
    r = system.tokend('status')
    assert r.returncode == EX_CONFIG, r.stderr
    assert f'chown root:{system.service} {dropin} && chmod 0640 {dropin}' in r.stderr
    dropin.chmod(0o640)
    os.chown(dropin, pwd.getpwnam(system.outsider).pw_uid, -1)
    r = system.tokend('status')
    assert r.returncode == EX_CONFIG and 'belongs to another user' in r.stderr, r.stderr


@pytest.mark.parametrize('where', ['/etc/tokend-work.token', 'RUN/../elsewhere.token',
                                   'relative.token'])
def test_a_token_file_outside_the_runtime_and_state_folders_is_refused(system, where):
    """The service user writes the token file: anywhere but its runtime and
    state folders it could replace a file it may write for another purpose.
    Refused as a configuration error, and nothing is written."""
    path = where.replace('RUN', str(system.run_dir))
    system.account('work', token_file=path)
    r = system.tokend('status')
    assert r.returncode == EX_CONFIG, r.stderr
    assert 'token_file' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    assert not Path(path).exists() and not (system.run_dir.parent / 'elsewhere.token').exists()
    system.account('work', token_file=str(system.run_dir / 'work.token'))
    r = system.tokend('status')
    assert r.returncode != EX_CONFIG, r.stderr


def test_secret_service_is_refused_plainly(system):
    system.account('work', store='secret-service')
    r = system.tokend('status')
    assert r.returncode == EX_CONFIG and 'Secret Service' in r.stderr, r.stderr


def test_a_group_tokend_is_not_in_is_said_with_the_sysusers_line(system):
    other = system.group + 'x'
    run('groupadd', '--system', other)
    try:
        system.account('work', token_file_group=other)
        r = system.tokend('obtain', 'work', user=system.service)
        assert r.returncode != EX_OK
        assert f'm {system.service} {other}' in r.stderr, r.stderr
        assert not (system.run_dir / 'work.token').exists()
    finally:
        subprocess.run(['groupdel', other], capture_output=True)


def test_status_check_judges_the_system_accounts_for_a_monitor(system):
    """`sudo tokend --system status --check` as Nagios runs it: root hands
    over to the service user, which reads every account's state."""
    system.account('work', token_file_group=system.group)
    system.account('shop')
    assert system.tokend('obtain', 'work').returncode == EX_OK
    r = system.tokend('status', '--check')
    assert r.returncode == 2, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith('TOKEND CRITICAL - shop: sign-in needed |'), first
    assert "'work token'=" in first
    r = system.tokend('status', '--check', 'work', user=system.service)
    assert r.returncode == EX_OK and r.stdout.startswith('TOKEND OK - 1 account'), r.stdout
    # A reader may not read the state: its verdict comes from the token
    # files' public views it may read (work's, not shop's), in the same
    # convention.
    r = system.tokend('status', '--check', user=system.reader)
    assert r.returncode == EX_OK, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith('TOKEND OK - 1 account (token files only), none in trouble |'), first
    assert "'work token'=" in first and 'shop' not in r.stdout
    # An account it may not read, named: UNKNOWN, never 77.
    r = system.tokend('status', '--check', 'shop', user=system.reader)
    assert r.returncode == 3 and r.stdout.startswith('TOKEND UNKNOWN - shop: view unreadable'), \
        r.stdout
    # Nothing it may read: UNKNOWN.
    r = system.tokend('status', '--check', user=system.outsider)
    assert r.returncode == 3 and r.stdout.startswith('TOKEND UNKNOWN - no account'), r.stdout
    # The rest of status stays closed to readers.
    r = system.tokend('status', '--json', user=system.reader)
    assert r.returncode == EX_NOPERM and 'needs the' in r.stderr, r.stderr


def test_status_check_as_a_reader_reports_an_expired_token(system):
    """A reader's monitor: the view's expiry says the timer is not doing
    its work (CRITICAL), or that the token is about to go (WARNING)."""
    import time
    system.account('work', token_file_group=system.group, min_validity=600)
    assert system.tokend('obtain', 'work').returncode == EX_OK
    info = system.run_dir / 'work.info'
    view = json.loads(info.read_text())
    for expires_at, level, code, why in ((int(time.time()) + 300, 'WARNING', 1, 'expires in'),
                                         (int(time.time()) - 10, 'CRITICAL', 2, 'expired')):
        # As the service user writes it: same owner, group and mode.
        st = os.stat(info)
        info.write_text(json.dumps(dict(view, expires_at=expires_at)))
        os.chown(info, st.st_uid, st.st_gid)
        r = system.tokend('status', '--check', user=system.reader)
        assert r.returncode == code, r.stdout + r.stderr
        assert r.stdout.startswith(f'TOKEND {level} - work: access token {why}'), r.stdout


def test_the_systemd_creds_host_key_recipe_fails_plainly_as_the_service_user(system):
    """doc/recipes/store-systemd-creds.md, system mode: the host key is
    root's alone and tokend never runs as root, so the recipe's put fails
    with systemd-creds' own words; the token is kept in the file store.  Root's own
    systemd-creds works here (the check below), so the failure is the
    service user's, not the machine's."""
    from test_store_command import recipe
    box = system.state / 'creds'
    probe = subprocess.run(['systemd-creds', 'encrypt', '--with-key=host', '--name=probe', '-',
                            '-'], input='x', capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    system.account('work', **recipe('store-systemd-creds.md', DIR=box))
    pw = pwd.getpwnam(system.service)
    box.mkdir(mode=0o700)
    os.chown(box, pw.pw_uid, pw.pw_gid)
    r = system.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert ('could not save the new refresh token in the command store (the store_put command '
            'sh exited with status 1: Failed to determine local credential host secret: '
            'Permission denied); kept it in the file store instead') in r.stderr, r.stderr
    assert list(box.iterdir()) == []
    # The file store's copy: the service user's alone.
    kept = system.state / 'work' / 'refresh_token'
    assert os.stat(kept).st_uid == pw.pw_uid and mode(kept) == 0o600


def test_add_writes_the_account_to_accounts_d_as_root_tokend_0640(system):
    """`sudo tokend --system add` for an address the provider table knows:
    root writes accounts.d/NAME.conf from the command line and the table
    (no network), owned by root, group tokend, 0640, in one atomic step;
    the main file is untouched."""
    main = (system.etc / 'config').read_text()
    r = system.tokend('-v', 'add', 'alice@outlook.com', 'home', '--client-id',
                      '00000000-0000-0000-0000-000000000001', '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    dropin = system.etc / 'accounts.d' / 'home.conf'
    st = os.stat(dropin)
    assert (st.st_uid, st.st_gid, mode(dropin)) == \
        (0, pwd.getpwnam(system.service).pw_gid, 0o640)
    text = dropin.read_text()
    assert '[account home]\n' in text and 'provider = microsoft\n' in text, text
    assert (system.etc / 'config').read_text() == main
    assert [p.name for p in (system.etc / 'accounts.d').iterdir()] == ['home.conf']
    assert 'sudo tokend --system obtain home' in r.stderr, r.stderr
    # The service user reads it as part of the system configuration.
    r = system.tokend('status', 'home', user=system.service)
    assert r.stdout.startswith('home: microsoft'), r.stdout + r.stderr
    # A name the configuration has already: refused, nothing written.
    system.account('work')
    r = system.tokend('add', 'bob@outlook.com', 'work', '--client-id',
                      '00000000-0000-0000-0000-000000000001', '--no-signin')
    assert r.returncode == EX_CANTCREAT and 'already has an [account work]' in r.stderr, r.stderr
    assert sorted(p.name for p in (system.etc / 'accounts.d').iterdir()) == \
        ['home.conf', 'work.conf']
    # A usage error is said once (by root, before any hand-over); nothing written.
    r = system.tokend('add', 'not-an-address')
    assert r.returncode == 64 and r.stderr.count('tokend:') == 1, r.stderr
    # The service user itself may not write into root's accounts.d: said so.
    r = system.tokend('add', 'carol@outlook.com', 'carol', '--client-id',
                      '00000000-0000-0000-0000-000000000001', '--no-signin', user=system.service)
    assert r.returncode == EX_CANTCREAT and 'accounts.d' in r.stderr, r.stderr
    assert not (system.etc / 'accounts.d' / 'carol.conf').exists()


def staged_text(address, name='mail', extra=''):
    return (f'# added by tokend add {address}: test\n[account {name}]\nprovider = generic\n'
            f'client_id = tokend-native\nauthorize_url = https://idp.example/auth\n'
            f'token_url = https://idp.example/token\nusername = alice\n{extra}')


def test_add_installs_only_what_the_service_user_staged_for_this_address(system):
    """An address only the network can place is detected by the service
    user into STATEDIR/add/NAME.conf; root, run again, installs that text
    only if it is the service user's own file (not a link, 0600), one
    [account NAME] added for this very address.  Anything else: refused
    with the rm to run, accounts.d untouched."""
    pw = pwd.getpwnam(system.service)
    folder = system.state / 'add'
    folder.mkdir(mode=0o700)
    os.chown(folder, pw.pw_uid, pw.pw_gid)
    staged = folder / 'mail.conf'
    dropin = system.etc / 'accounts.d' / 'mail.conf'
    args = ('add', 'alice@example.org', 'mail', '--no-signin')

    def stage(text, owner=pw.pw_uid, file_mode=0o600):
        staged.unlink(missing_ok=True)
        staged.write_text(text)
        os.chown(staged, owner, pw.pw_gid)
        staged.chmod(file_mode)

    bad = [(dict(text=staged_text('alice@example.org'), owner=0), 'is not what tokend stages'),
           (dict(text=staged_text('alice@example.org'), file_mode=0o640),
            'is not what tokend stages'),
           (dict(text=staged_text('bob@example.org')), 'not the one for alice@example.org'),
           (dict(text=staged_text('alice@example.org', 'other')), 'not one [account mail]'),
           (dict(text=staged_text('alice@example.org') + '\0'), 'NUL'),
           (dict(text=staged_text('alice@example.org', extra=staged_text('alice@example.org',
                                                                         'two'))),
            'not one [account mail]')]
    for kw, words in bad:
        stage(**kw)
        r = system.tokend(*args)
        assert r.returncode == EX_DATAERR and words in r.stderr, (kw, r.stderr)
        assert not dropin.exists()
    # A link to a file of the service user's elsewhere: not followed.
    elsewhere = system.state / 'elsewhere.conf'
    stage(staged_text('alice@example.org'))
    staged.rename(elsewhere)
    staged.symlink_to(elsewhere)
    r = system.tokend(*args)
    assert r.returncode == EX_DATAERR and 'cannot open' in r.stderr, r.stderr
    assert not dropin.exists()
    # The service user's own staging: installed, and the staged file gone.
    staged.unlink()
    stage(staged_text('alice@example.org'))
    r = system.tokend('-v', *args)
    assert r.returncode == EX_OK, r.stderr
    st = os.stat(dropin)
    assert (st.st_uid, st.st_gid, mode(dropin)) == (0, pw.pw_gid, 0o640)
    assert dropin.read_text() == staged_text('alice@example.org')
    assert not staged.exists()
    assert 'sudo tokend --system obtain mail' in r.stderr, r.stderr
