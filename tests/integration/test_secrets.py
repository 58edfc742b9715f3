"""Secrets stay secret.  A representative run of every command at -vv, with a
$BROWSER and a notify_cmd that record their own argv and environment, and a
recording proxy in front of the real authorization server's token, device and
revocation endpoints (it sees every code, PKCE verifier, device code, client
secret, access and refresh token).  Then every byte tokend printed, every
file it wrote outside the refresh-token store and the token file, and every
child's argv and environment is searched for each of those secrets.

Also: file and folder modes after every command (with umask 022 and 000),
repair or refusal of files others can read or own, core dumps and ptrace,
and that TLS verification cannot be turned off."""

import base64
import binascii
import json
import os
import pwd
import re
import shutil
import ssl
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import (EX_CANTCREAT, EX_CONFIG, EX_NOPERM, EX_OK, REPO, SANITIZER, TOKEND,
                      Tokend)
from harness import hostile
from harness.authserver import CLIENTS
from harness.scripted import Reply, ScriptedEndpoint
from harness.wait import wait_until

FOLLOW = REPO / 'tests' / 'harness' / 'follow-redirects'
CLIENT_SECRET = CLIENTS['tokend-secret'][0]
NOBODY = pwd.getpwnam('nobody')
SECRET_FIELDS = ('code', 'code_verifier', 'client_secret', 'refresh_token', 'device_code',
                 'token', 'access_token', 'id_token')


# The recording proxy ------------------------------------------------------------

class Proxy:
    """A scripted endpoint on 127.0.0.1 that forwards /token, /device/auth and
    /revoke to the authorization server and keeps every secret it sees."""

    def __init__(self, authserver):
        self.authserver = authserver
        self.secrets = set()
        self.ctx = ssl.create_default_context(cafile=authserver.ca_file)
        self.ep = ScriptedEndpoint()
        for path, target in (('/token', authserver.token_url),
                             ('/device/auth', authserver.device_url),
                             ('/revoke', authserver.revocation_url)):
            self.ep.script(path, self._forward(target))

    def _keep(self, mapping):
        for k in SECRET_FIELDS:
            v = mapping.get(k)
            if isinstance(v, list):
                v = v[0]
            if isinstance(v, str) and len(v) >= 8:
                self.secrets.add(v)

    def _forward(self, target):
        def reply(req):
            self._keep(req.form)
            ctype = req.headers.get('Content-Type', 'application/x-www-form-urlencoded')
            r = urllib.request.Request(target, data=req.body, method=req.method,
                                       headers={'Content-Type': ctype})
            try:
                with urllib.request.urlopen(r, timeout=10, context=self.ctx) as resp:
                    status, body, ctype = resp.status, resp.read(), resp.headers['Content-Type']
            except urllib.error.HTTPError as e:
                status, body, ctype = e.code, e.read(), e.headers['Content-Type']
            if body.strip().startswith(b'{'):
                data = json.loads(body)
                self._keep(data)
                if 'interval' in data:  # poll the device flow every second
                    data['interval'] = 1
                    body = json.dumps(data).encode()
            return Reply(status, body, {'Content-Type': ctype or 'application/json'})
        return reply

    def url(self, path):
        return self.ep.url(path)

    def __enter__(self):
        self.ep.__enter__()
        return self

    def __exit__(self, *exc):
        self.ep.__exit__(*exc)


@pytest.fixture
def proxy(authserver):
    with Proxy(authserver) as p:
        yield p


@pytest.fixture(scope='module')
def dovecot(authserver, tmp_path_factory):
    if not shutil.which('dovecot'):
        pytest.skip('needs dovecot-imapd (tokend check logs in with the token)')
    from harness.dovecot import Dovecot
    with Dovecot(tmp_path_factory.mktemp('dovecot'), authserver.introspection_url,
                 ca_file=authserver.ca_file) as dc:
        yield dc


# Scanning -----------------------------------------------------------------------

def variants(secret):
    """The forms a secret could leak in."""
    forms = {secret, urllib.parse.quote(secret, safe=''), urllib.parse.quote_plus(secret),
             json.dumps(secret)[1:-1]}
    # A long enough piece of it, in case it was cut or wrapped.
    if len(secret) >= 24:
        forms.add(secret[:16])
        forms.add(secret[-16:])
    return forms


def decoded(text):
    """text plus what its base64-looking runs decode to (an XOAUTH2 blob, a
    basic-auth header)."""
    out = [text]
    for run in re.findall(r'[A-Za-z0-9+/_-]{16,}={0,2}', text):
        for dec in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                out.append(dec(run + '=' * (-len(run) % 4)).decode('latin-1'))
            except (binascii.Error, ValueError):
                pass
    return '\n'.join(out)


def hits(secrets, where, text):
    text = decoded(text)
    return [(where, s[:10] + '...') for s in secrets for v in variants(s) if v in text]


class Recorder:
    """What the scan covers: outputs of every command, files tokend wrote,
    children's argv and environment."""

    def __init__(self, home):
        self.home = Path(home)
        self.outputs = []        # (label, text)
        self.files = {}          # path -> bytes, as last seen
        self.secrets = set()
        self.token_files = set()
        self.refresh_files = set()

    def output(self, label, text):
        self.outputs.append((label, text))

    def snapshot_files(self, *roots):
        for root in roots:
            if not root.exists():
                continue
            for p in [root, *root.rglob('*')]:
                if p.is_file() and not p.is_symlink():
                    self.files[p] = p.read_bytes()

    def keep_secret_files(self, tokend, *accounts):
        """The token files and refresh token files: their contents are
        secrets, and they are the only places where secrets may be."""
        for name in accounts:
            for f, kind in ((self.token_path(tokend, name), self.token_files),
                            (tokend.refresh_token_file(name), self.refresh_files)):
                kind.add(f)
                if f.exists():
                    self.secrets.add(f.read_text().strip())

    @staticmethod
    def token_path(tokend, name):
        path = tokend.accounts[name].get('token_file')
        return Path(path) if path else tokend.token_file(name)


def check_modes(home, label):
    """Every folder tokend made is 0700, every file 0600."""
    bad = []
    for root in (home / 'state', home / 'mail'):
        if not root.exists():
            continue
        for p in [root, *root.rglob('*')]:
            m = stat.S_IMODE(os.lstat(p).st_mode)
            want = 0o700 if p.is_dir() else 0o600
            if m != want:
                bad.append((str(p.relative_to(home)), oct(m)))
    assert not bad, (label, bad)


# The representative run -----------------------------------------------------------

def setup_home(tmp_path, authserver, proxy, dovecot):
    home = tmp_path / 'home'
    home.mkdir()
    tokend = Tokend(home, authserver)
    rec = home / 'rec'
    rec.mkdir()
    (home / 'bin').mkdir()
    browser = hostile.write_recorder(home / 'bin' / 'browser', rec / 'browser.jsonl', 'browser')
    notify = hostile.write_recorder(home / 'bin' / 'notify', rec / 'notify.jsonl', 'notify')
    secret_file = home / 'client-secret'
    secret_file.write_text(CLIENT_SECRET + '\n')
    secret_file.chmod(0o600)
    tokend.env['BROWSER'] = browser
    extra = dict(imap_host=dovecot.host, imap_port=dovecot.imap_port,
                 smtp_host=dovecot.host, smtp_port=dovecot.submission_port)
    tokend.account('work', client_id='tokend-secret', client_secret_file=str(secret_file),
                   issuer=authserver.issuer, authorize_url=None, token_url=proxy.url('/token'),
                   revocation_url=proxy.url('/revoke'),
                   token_file=str(home / 'mail' / 'work-token'),
                   notify_cmd=f'{notify} --reason "sign in again" %s', login_timeout=30, **extra)
    tokend.account('dev', token_url=proxy.url('/token'), authorize_url=authserver.authorize_url,
                   device_authorization_url=proxy.url('/device/auth'), login_timeout=30)
    return tokend, rec


def run(tokend, recorder, label, *args, umask=0o022, stdin=None, env=None, timeout=60):
    e = dict(tokend.env, **(env or {}))
    r = subprocess.run([str(TOKEND), '-vv', *args], input=stdin, capture_output=True, text=True,
                       timeout=timeout, env=e, preexec_fn=lambda: os.umask(umask))
    recorder.output(f'{label} stderr', r.stderr)
    if args[0] != 'token':
        recorder.output(f'{label} stdout', r.stdout)
    print(f'STEP {label}: exit {r.returncode}')
    return r


def obtain_by_paste(tokend, recorder, umask):
    out = tokend.home / 'final-url'
    e = dict(tokend.env, TOKEND_TEST_BROWSER_MODE='print', TOKEND_TEST_BROWSER_OUT=str(out))
    proc = subprocess.Popen([str(TOKEND), '-vv', 'obtain', 'work', '--manual'], env=e, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.umask(umask))
    wait_until(out.exists, 30, 'the browser wrote the final URL', interval=0.05)
    stdout, stderr = proc.communicate(f'  "{out.read_text().strip()}"  \n', timeout=30)
    out.unlink()
    recorder.output('obtain --manual stderr', stderr)
    recorder.output('obtain --manual stdout', stdout)
    print(f'STEP obtain --manual: exit {proc.returncode}')
    return proc.returncode, stderr


@pytest.mark.parametrize('umask', [0o022, 0o000], ids=['umask022', 'umask000'])
def test_no_secret_leaks_anywhere(tmp_path, authserver, proxy, dovecot, umask):
    tokend, rec = setup_home(tmp_path, authserver, proxy, dovecot)
    home = tokend.home
    recorder = Recorder(home)
    accounts = ('work', 'dev')

    def after(label, r=None, status=EX_OK):
        if r is not None:
            assert r.returncode == status, (label, r.stderr)
        check_modes(home, label)
        recorder.keep_secret_files(tokend, *accounts)
        recorder.snapshot_files(home / 'state', home / 'config', home / 'mail')

    r = run(tokend, recorder, 'obtain', 'obtain', 'work', umask=umask)
    after('obtain', r)
    access = Recorder.token_path(tokend, 'work').read_text().strip()
    r = run(tokend, recorder, 'token', 'token', 'work', umask=umask)
    after('token', r)
    assert r.stdout == access + '\n'
    r = run(tokend, recorder, 'token xoauth2', 'token', 'work', '--format', 'xoauth2',
            umask=umask)
    after('token xoauth2', r)
    assert base64.b64decode(r.stdout.strip()) == \
        f'user=alice\x01auth=Bearer {access}\x01\x01'.encode()
    r = run(tokend, recorder, 'token oauthbearer', 'token', 'work', '--format', 'oauthbearer',
            '--service', 'smtp', umask=umask)
    after('token oauthbearer', r)
    assert f'auth=Bearer {access}' in base64.b64decode(r.stdout.strip()).decode()
    r = run(tokend, recorder, 'refresh --force', 'refresh', '--force', 'work', umask=umask)
    after('refresh --force', r)
    r = run(tokend, recorder, 'status', 'status', umask=umask)
    after('status', r)
    r = run(tokend, recorder, 'status --json', 'status', '--json', umask=umask)
    after('status --json', r)
    json.loads(r.stdout)
    r = run(tokend, recorder, 'check', 'check', 'work', umask=umask)
    after('check', r)
    assert 'IMAP login' in r.stdout and 'SMTP login' in r.stdout
    # The grant is revoked behind tokend's back: refresh needs a sign-in and
    # runs notify_cmd.
    rt = tokend.stored_refresh_token('work').strip()
    status, _ = authserver.http('POST', authserver.revocation_url, {
        'token': rt, 'client_id': 'tokend-secret', 'client_secret': CLIENT_SECRET})
    assert status == 200
    r = run(tokend, recorder, 'refresh after revocation', 'refresh', '--force', 'work',
            umask=umask)
    after('refresh after revocation', r, EX_NOPERM)
    assert hostile.read_records(rec / 'notify.jsonl'), 'notify_cmd did not run'
    rc, err = obtain_by_paste(tokend, recorder, umask)
    assert rc == EX_OK, err
    after('obtain --manual')
    r = run(tokend, recorder, 'obtain --device', 'obtain', 'dev', '--device', umask=umask,
            env={'TOKEND_TEST_BROWSER_MODE': 'device'})
    after('obtain --device', r)
    r = run(tokend, recorder, 'refresh all', 'refresh', '--force', umask=umask)
    after('refresh all', r)
    logout = {}
    for name in accounts:
        logout[name] = run(tokend, recorder, f'logout {name}', 'logout', name, umask=umask)
        after(f'logout {name}', logout[name])
    # work has a revocation_url (through the proxy); dev has none.
    assert 'revoked the refresh token at the provider' in logout['work'].stderr
    assert 'revoked' not in logout['dev'].stderr

    # Everything that must be found is known.
    secrets = (proxy.secrets | recorder.secrets | {CLIENT_SECRET}) - {''}
    browser_records = hostile.read_records(rec / 'browser.jsonl')
    codes = [urllib.parse.parse_qs(urllib.parse.urlsplit(b['final_url']).query)['code'][0]
             for b in browser_records if 'final_url' in b]
    assert len(codes) == 2
    secrets |= set(codes)
    assert any(len(s) >= 43 for s in proxy.secrets)  # a PKCE verifier, at least
    kinds = {k for req in proxy.ep.requests for k in req.form}
    assert {'code', 'code_verifier', 'client_secret', 'refresh_token', 'device_code',
            'token'} <= kinds, kinds
    print(f'{len(secrets)} secrets, {len(recorder.outputs)} outputs, '
          f'{len(recorder.files)} files, {len(browser_records)} browser and '
          f'{len(hostile.read_records(rec / "notify.jsonl"))} notify records')

    found = []
    for label, text in recorder.outputs:
        found += hits(secrets, label, text)
    allowed = recorder.token_files | recorder.refresh_files
    for path, data in recorder.files.items():
        if path in allowed or path == tokend.config:
            continue
        found += hits(secrets, str(path.relative_to(home)), data.decode('latin-1'))
    for who in ('browser', 'notify'):
        for entry in hostile.read_records(rec / f'{who}.jsonl'):
            if 'argv' in entry:
                found += hits(secrets, f'{who} argv', '\0'.join(entry['argv']))
                found += hits(secrets, f'{who} environment',
                              '\n'.join(f'{k}={v}' for k, v in entry['env'].items()))
    assert not found, found
    # tokend writes nothing into the configuration folder, nor anywhere else
    # in the home (no caches, no logs).
    assert sorted(p.name for p in tokend.config.parent.iterdir()) == ['config']
    assert {p.name for p in home.iterdir()} <= {'bin', 'rec', 'client-secret', 'config',
                                                'state', 'mail'}, list(home.iterdir())
    # The notify_cmd got its documented environment and its own arguments.
    note = hostile.read_records(rec / 'notify.jsonl')[0]
    assert note['argv'][1:] == ['--reason', 'sign in again', '%s']
    assert note['env']['TOKEND_ACCOUNT'] == 'work'
    assert note['env']['TOKEND_COMMAND'] == 'tokend obtain work'


# Modes: repaired or refused -----------------------------------------------------------

@pytest.fixture
def seeded(tmp_path):
    """An account signed in through a scripted provider (quick)."""
    with ScriptedEndpoint() as ep:
        def authorize(req):
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.path).query))
            return Reply(302, b'', {'Location': q['redirect_uri'] + '?' + urllib.parse.urlencode(
                {'code': 'seeded-code-123456', 'state': q['state']})})
        ep.script('/authorize', authorize)
        ep.script('/token', Reply(200, {'access_token': 'seeded-access-123456',
                                        'refresh_token': 'seeded-refresh-123456',
                                        'token_type': 'Bearer', 'expires_in': 3600}))
        tokend = Tokend(tmp_path)
        tokend.env['BROWSER'] = str(FOLLOW)
        tokend.account(provider='generic', client_id='modes', authorize_url=ep.url('/authorize'),
                       token_url=ep.url('/token'), store='file', min_validity=60)
        assert tokend.run('obtain', 'work').returncode == EX_OK
        yield tokend


def test_token_file_readable_by_others_is_repaired_with_a_warning(seeded):
    f = seeded.token_file()
    f.chmod(0o644)
    r = seeded.run('token', 'work')
    print('token file 0644:', r.returncode, r.stderr.strip())
    assert r.returncode == EX_OK and r.stdout == 'seeded-access-123456\n'
    assert str(f) in r.stderr and 'setting 0600' in r.stderr
    assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_refresh_token_file_readable_by_others_is_repaired_with_a_warning(seeded):
    f = seeded.refresh_token_file()
    f.chmod(0o644)
    r = seeded.run('refresh', '--force', 'work')
    print('refresh_token 0644:', r.returncode, r.stderr.strip())
    assert r.returncode == EX_OK, r.stderr
    assert str(f) in r.stderr and 'setting 0600' in r.stderr
    assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_state_folder_open_to_others_is_repaired_with_a_warning(seeded):
    d = seeded.state / 'work'
    d.chmod(0o755)
    r = seeded.run('refresh', '--force', 'work')
    print('folder 0755:', r.returncode, r.stderr.strip())
    assert r.returncode == EX_OK, r.stderr
    assert str(d) in r.stderr and '0700' in r.stderr
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


# (what is owned by nobody, command, exit status, the refused path in the message)
OWNED_BY_ANOTHER = [
    ('folder', ('refresh', '--force', 'work'), EX_CANTCREAT, True),
    ('folder', ('token', 'work', '--format', 'xoauth2'), EX_CANTCREAT, True),
    ('folder', ('token', 'work'), EX_CANTCREAT, True),
    ('token', ('token', 'work'), EX_CANTCREAT, True),
    ('refresh_token', ('refresh', '--force', 'work'), EX_CANTCREAT, True),
    # Not read, so not refused: a fresh token is handed out ...
    ('refresh_token', ('token', 'work'), EX_OK, False),
    # ... and a refresh replaces the foreign token file (rename in our folder).
    ('token', ('refresh', '--force', 'work'), EX_OK, False),
]


@pytest.mark.parametrize('what,args,status,named', [
    pytest.param(*c,
                 id=f'{c[0]}-{"-".join(c[1][:1] + c[1][2:3])}') for c in OWNED_BY_ANOTHER])
def test_files_owned_by_another_user(seeded, what, args, status, named):
    """tokend runs as root here, and root could read them anyway: tokend
    compares owners itself, so it refuses them all the same."""
    target = {'folder': seeded.state / 'work', 'token': seeded.token_file(),
              'refresh_token': seeded.refresh_token_file()}[what]
    rt = seeded.refresh_token_file().read_bytes()
    os.chown(target, NOBODY.pw_uid, NOBODY.pw_gid)
    r = seeded.run(*args)
    print(f'{what} owned by nobody, {" ".join(args)}: exit {r.returncode}: {r.stderr.strip()}')
    assert r.returncode == status, r.stderr
    if named:
        assert str(target) in r.stderr and 'another user' in r.stderr
        assert r.stdout == ''
    assert seeded.refresh_token_file().read_bytes() == rt
    if status == EX_OK and what == 'token':
        assert os.stat(target).st_uid == os.geteuid()
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_planted_state_cannot_make_token_print_another_secret(seeded):
    """Whoever owns the state folder can plant a state.json whose token_file
    is the refresh token file: `token` must not print it."""
    folder = seeded.state / 'work'
    state = json.loads((folder / 'state.json').read_text())
    state['token_file'] = str(seeded.refresh_token_file())
    (folder / 'state.json').write_text(json.dumps(state))
    for p in (folder, folder / 'state.json'):
        os.chown(p, NOBODY.pw_uid, NOBODY.pw_gid)
    r = seeded.run('token', 'work')
    print('planted state.json:', r.returncode, r.stderr.strip())
    assert 'seeded-refresh' not in r.stdout
    assert r.returncode == EX_CANTCREAT


def test_symlinked_token_file_is_not_followed(seeded, tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.write_text('not-a-token-of-ours\n')
    f = seeded.token_file()
    f.unlink()
    f.symlink_to(elsewhere)
    r = seeded.run('token', 'work')
    print('symlinked token file:', r.returncode, r.stderr.strip())
    assert r.returncode == EX_CANTCREAT and 'not-a-token' not in r.stdout
    r = seeded.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert elsewhere.read_text() == 'not-a-token-of-ours\n'
    assert not f.is_symlink() and stat.S_IMODE(f.stat().st_mode) == 0o600


# Core dumps and ptrace ---------------------------------------------------------------

def proc_status(pid):
    return dict(line.split(':\t', 1) for line in Path(f'/proc/{pid}/status').read_text()
                .splitlines() if ':\t' in line)


def waiting_obtain(tokend, preexec=None):
    proc = subprocess.Popen([str(TOKEND), 'obtain', 'work', '--no-browser'], env=tokend.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec)
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.stderr.readline().startswith('https://'):
            return proc
    proc.kill()
    raise AssertionError('obtain printed no URL')


def test_obtain_cannot_dump_core(tmp_path):
    tokend = Tokend(tmp_path)
    tokend.account(provider='generic', client_id='x', authorize_url='https://127.0.0.1:9/a',
                   token_url='https://127.0.0.1:9/t', login_timeout=20, store='file')
    proc = waiting_obtain(tokend)
    try:
        limits = Path(f'/proc/{proc.pid}/limits').read_text()
        core = next(l for l in limits.splitlines() if l.startswith('Max core file size'))
        print(core)
        assert core.split()[4:6] == ['0', '0'], core
        # The engine runs in it (under valgrind, in valgrind's process).
        assert 'tokend-engine.so' in Path(f'/proc/{proc.pid}/maps').read_text()
    finally:
        proc.kill()
        proc.communicate()


def test_obtain_is_not_dumpable_nor_traceable_by_its_user():
    """Run as nobody (tokend checks as root prove nothing: root may read
    anything).  A non-dumpable process's /proc files belong to root, so
    another process of the same user cannot read its environment or memory;
    a plain process of nobody (the control) can."""
    home = Path(tempfile.mkdtemp(prefix='tokend-nobody-'))
    try:
        tokend = Tokend(home)
        tokend.account(provider='generic', client_id='x', authorize_url='https://127.0.0.1:9/a',
                       token_url='https://127.0.0.1:9/t', login_timeout=20, store='file')
        for p in [home, *home.rglob('*')]:
            os.chown(p, NOBODY.pw_uid, NOBODY.pw_gid)
        home.chmod(0o700)

        def as_nobody():
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)

        if subprocess.run(['test', '-x', str(TOKEND)], preexec_fn=as_nobody).returncode:
            pytest.skip(f'nobody cannot run {TOKEND}')
        proc = waiting_obtain(tokend, as_nobody)
        control = subprocess.Popen(['sleep', '30'], preexec_fn=as_nobody)
        try:
            assert proc_status(proc.pid)['Uid'].split()[0] == str(NOBODY.pw_uid)
            owner = {pid: os.stat(f'/proc/{pid}/environ').st_uid
                     for pid in (proc.pid, control.pid)}
            print('owner of /proc/PID/environ:', owner)
            assert owner[control.pid] == NOBODY.pw_uid
            assert owner[proc.pid] == 0, 'tokend obtain is dumpable'
            reads = {}
            for pid in (proc.pid, control.pid):
                for what in ('environ', 'mem'):
                    r = subprocess.run(['dd', f'if=/proc/{pid}/{what}', 'bs=1', 'count=1',
                                        'skip=0', 'status=none', 'of=/dev/null'],
                                       preexec_fn=as_nobody, capture_output=True, text=True,
                                       timeout=10)
                    reads[(pid == proc.pid and 'tokend' or 'control', what)] = \
                        r.returncode == 0 or 'Input/output error' in r.stderr
            print('readable by another process of nobody:', reads)
            assert reads[('control', 'environ')]
            assert not reads[('tokend', 'environ')] and not reads[('tokend', 'mem')]
        finally:
            control.kill()
            control.wait()
            proc.kill()
            proc.communicate()
    finally:
        shutil.rmtree(home, ignore_errors=True)


# Closed standard streams; hardening that fails --------------------------------------

def files_holding(root, needle):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*')
                  if p.is_file() and needle in p.read_bytes())


@pytest.mark.parametrize('closed', [1, 2])
@pytest.mark.parametrize('due', [False, True], ids=['cached', 'refreshed'])
def test_closed_stdout_or_stderr_is_dev_null(tmp_path, authserver, closed, due):
    """Run with fd 1 or 2 closed (a cron line's >&-), the next file tokend
    opened (the account's lock, a token file) became its stdout or stderr,
    to get the token or the log written into it.  Both binaries: the
    launcher answers from the cache, the engine refreshes (at -vv)."""
    tokend = Tokend(tmp_path, authserver)
    tokend.account()
    tokend.obtain()
    args = ['token', 'work']
    if due:
        state = tokend.state / 'work' / 'state.json'
        st = json.loads(state.read_text())
        st['expires_at'] = 1
        state.write_text(json.dumps(st))
        args = ['-vv', *args]
    r = subprocess.run([str(TOKEND), *args], env=tokend.env, capture_output=True,
                       preexec_fn=lambda: os.close(closed), timeout=60)
    assert r.returncode == EX_OK, r.stderr
    token = tokend.token_file().read_bytes().strip()
    if closed == 2:
        assert r.stdout.strip() == token
    assert files_holding(tokend.home, token) == ['state/tokend/work/token']
    assert files_holding(tokend.home, b'tokend:') == []


FAIL_DUMPABLE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
typedef int (*prctl_fn)(int, unsigned long, unsigned long, unsigned long, unsigned long);
int prctl(int option, unsigned long a, unsigned long b, unsigned long c, unsigned long d)
{
    if (option == 4) { /* PR_SET_DUMPABLE, as a seccomp filter could refuse it */
        errno = EPERM;
        return -1;
    }
    return ((prctl_fn)dlsym(RTLD_NEXT, "prctl"))(option, a, b, c, d);
}
"""


def test_hardening_that_fails_is_said_once(tmp_path, authserver):
    cc = shutil.which('cc')
    if not cc:
        pytest.skip('no C compiler for the LD_PRELOAD shim')
    (tmp_path / 'shim.c').write_text(FAIL_DUMPABLE)
    shim = tmp_path / 'shim.so'
    subprocess.run([cc, '-shared', '-fPIC', '-o', str(shim), str(tmp_path / 'shim.c'), '-ldl'],
                   check=True, timeout=60)
    preload = str(shim)
    if SANITIZER == 'asan':
        # ASan's runtime must come first among the preloaded libraries.
        asan = subprocess.run([cc, '-print-file-name=libasan.so'], capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()
        preload = f'{asan} {shim}'
    tokend = Tokend(tmp_path / 'home', authserver)
    tokend.account()
    tokend.obtain()
    token = tokend.token_file().read_text().strip()
    # The launcher's cached answer, handed to the engine, which says it.
    r = tokend.run('token', 'work', env={'LD_PRELOAD': preload})
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout.strip() == token
    assert r.stderr.splitlines() == [
        'tokend: warning: core dumps could not be disabled: a crash could write tokens to '
        'disk (prctl PR_SET_DUMPABLE: Operation not permitted)'], r.stderr
    r = tokend.run('-q', 'token', 'work', env={'LD_PRELOAD': preload})
    assert r.returncode == EX_OK and r.stderr == '', r.stderr


# TLS verification cannot be turned off -------------------------------------------------

@pytest.mark.parametrize('key,value', [
    ('token_url', 'http://login.example.com/token'),
    ('token_url', 'http://127.0.0.1.nip.io/token'),
    ('token_url', 'http://localhost:80@evil.example/token'),
    ('token_url', 'http://192.0.2.1/token'),
    ('token_url', 'ftp://127.0.0.1/token'),
    ('authorize_url', 'http://login.example.com/authorize'),
    ('revocation_url', 'http://login.example.com/revoke'),
    ('device_authorization_url', 'http://login.example.com/device'),
    ('issuer', 'http://login.example.com'),
    ('tls_verify', 'no'),
    ('ssl_verify', 'false'),
    ('insecure', 'true'),
    ('verify_peer', '0'),
])
def test_no_way_to_turn_tls_off(tmp_path, key, value):
    tokend = Tokend(tmp_path)
    keys = dict(provider='generic', client_id='x', authorize_url='https://a.example/auth',
                token_url='https://a.example/token', store='file')
    keys[key] = value
    tokend.account(**keys)
    for args in (('refresh', '--force', 'work'), ('obtain', 'work', '--no-browser')):
        r = tokend.run(*args, timeout=30)
        print(f'{key} = {value}: {args[0]} exit {r.returncode}: {r.stderr.strip()[:150]}')
        assert r.returncode == EX_CONFIG, r.stderr
    assert not tokend.state.exists() or not any(tokend.state.rglob('token'))


def test_tls_session_keys_are_not_written_out(tmp_path, authserver):
    """SSLKEYLOGFILE makes libcurl write every TLS session secret to a file:
    with a capture of the traffic, that file decrypts the tokens."""
    tokend = Tokend(tmp_path, authserver)
    tokend.account()
    log = tmp_path / 'tls-keys.log'
    r = tokend.run('obtain', 'work', env={'SSLKEYLOGFILE': str(log)})
    assert r.returncode == EX_OK, r.stderr
    assert not log.exists(), log.read_text()[:80]
