"""`sudo tokend --system add` over SSH, from an address to a signed-in
system account (issue 22), inside the private test internet
(harness/netns.py): autoconfig.example.org names the test authorization
server, which the admin trusts with --issuer.

Only the network can place example.org, so no root process may be alive
while that happens: root execs as the service user, which detects the
provider and stages the account's text; the admin runs the same command
again; root installs the staged text in accounts.d (root:tokend 0640) and
execs as the service user for the sign-in (paste flow, no browser on the
server; the admin's browser is harness/browser.py, a separate process).
The autoconfig answer is held back a moment so that the test can look at
every tokend process (/proc) while the service user waits for it.

An address of a provider table domain (outlook.com) is one command: root
writes accounts.d from the command line and the table, asking nothing of
the network, and execs as the service user for the sign-in, against
login.microsoftonline.com replayed by the namespace's test HTTPS server
with a token set of the test authorization server (which Dovecot takes)."""

import grp
import json
import os
import pwd
import shutil
import tempfile
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BROWSER, EX_OK, REPO, TOKEND, mode, stored_token
from harness import netns
from harness.wait import wait_until
from test_system_mode import System, made_users

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=f'test namespace: {netns.available()}')

MS = 'login.microsoftonline.com'
AUTOCONFIG_HOST = 'autoconfig.example.org'
AUTOCONFIG_PATH = '/mail/config-v1.1.xml'
SSH_ENV = {'SSH_CONNECTION': '192.0.2.10 50022 192.0.2.20 22', 'SSH_TTY': '/dev/pts/0',
           'TERM': 'xterm-256color'}
TIMEOUT = 60
HOLD = 3  # seconds the autoconfig answer waits: the moment the test looks


def autoconfig(issuer, imap_port):
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="imap">
      <hostname>127.0.0.1</hostname>
      <port>{imap_port}</port>
      <socketType>plain</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>OAuth2</authentication>
    </incomingServer>
  </emailProvider>
  <oAuth2>
    <issuer>{issuer}</issuer>
    <scope>openid offline_access mail.imap</scope>
    <authURL>https://{issuer}/auth</authURL>
    <tokenURL>https://{issuer}/token</tokenURL>
  </oAuth2>
</clientConfig>
'''


@pytest.fixture
def host(tmp_path):
    """The mail host: users, /etc/tokend, state and run folders, and the
    namespace with DNS, autoconfig and the authorization server."""
    base = Path(tempfile.mkdtemp(prefix='tokend-sysadd-'))
    base.chmod(0o755)
    try:
        with made_users() as (service, reader, outsider, group), \
                netns.NetNS(tmp_path / 'netns', hosts=[MS, AUTOCONFIG_HOST]) as ns:
            auth = netns.NsAuthServer(ns, base / 'authserver')
            auth.start()
            try:
                (base / 'authserver').chmod(0o755)
                with netns.NsDovecot(ns, auth, tmp_path / 'dovecot') as dovecot:
                    issuer = f'127.0.0.1:{auth.port}'
                    ns.serve(AUTOCONFIG_HOST, AUTOCONFIG_PATH,
                             autoconfig(issuer, dovecot.imap_port), delay=HOLD,
                             content_type='text/xml')
                    s = System(base, auth, service)
                    s.ns, s.issuer, s.dovecot = ns, issuer, dovecot
                    s.reader, s.outsider, s.group = reader, outsider, group
                    # Every account's token file goes to the readers' group.
                    s.write(s.etc / 'config', f'[defaults]\ntoken_file_group = {group}\n')
                    yield s
            finally:
                auth.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def ssh_env(s):
    """What `sudo` keeps of an SSH session: no browser, no display."""
    env = {k: v for k, v in s.env.items() if k not in ('BROWSER', 'DISPLAY', 'WAYLAND_DISPLAY')}
    env.update(SSH_ENV)
    return env


def add_command(s):
    return [TOKEND, '--system', '-v', 'add', 'alice@example.org', 'mail', '--client-id',
            'tokend-native', '--issuer', f'https://{s.issuer}']


def tokend_processes(netns):
    """{pid: (uids, gids, groups, ppid)} of every process of this build in
    the network namespace netns (a /proc/PID/ns/net link): the test's own,
    not those of tests that run beside it (the sanitizer run has two
    lanes)."""
    binaries = {os.path.realpath(TOKEND)}
    found = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / 'ns' / 'net') != netns:
                continue
            exe = os.path.realpath(entry / 'exe')
            # Under the sanitizer runs TOKEND is a wrapper that execs a
            # binary of another build folder of this tree.
            if exe not in binaries and not (
                    exe.startswith(str(REPO) + '/')
                    and os.path.basename(exe) == 'tokend'):
                continue
            fields = dict(line.split(':', 1) for line in
                          (entry / 'status').read_text().splitlines() if ':' in line)
        except OSError:
            continue  # gone meanwhile
        found[int(entry.name)] = ([int(x) for x in fields['Uid'].split()],
                                  [int(x) for x in fields['Gid'].split()],
                                  [int(x) for x in fields['Groups'].split()],
                                  int(fields['PPid']))
    return found


def assert_only_the_service_user(s, pid):
    """pid is alive as the service user (all uids, gids and groups) and no
    process of tokend is root's, nor waits for pid."""
    pw = pwd.getpwnam(s.service)
    procs = tokend_processes(os.readlink(f'/proc/{pid}/ns/net'))
    assert pid in procs, f'tokend {pid} is not running: {procs}'
    uids, gids, groups, ppid = procs[pid]
    assert uids == [pw.pw_uid] * 4 and gids == [pw.pw_gid] * 4, procs[pid]
    assert set(groups) == set(os.getgrouplist(s.service, pw.pw_gid)), groups
    assert ppid == os.getpid() or ppid not in procs, procs
    for other, (u, _, _, parent) in procs.items():
        assert 0 not in u, (other, procs)
        assert parent != pid, (other, procs)


def autoconfig_requests(s):
    return [q for q in s.ns.requests() if q['host'] == AUTOCONFIG_HOST]


def read_until(proc, pattern, seen):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    proc.kill()
    raise AssertionError(f'tokend never printed {pattern!r}: {"".join(seen)}')


def stage(s):
    """Run 1: the service user detects over the network and stages."""
    proc = s.ns.popen(add_command(s), env=ssh_env(s), stdin=subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: autoconfig_requests(s) or proc.poll() is not None, TIMEOUT,
                   'tokend asked for the autoconfig document', interval=0.02)
        # The autoconfig answer is held back: tokend is waiting for it now.
        assert proc.poll() is None, proc.communicate()
        assert_only_the_service_user(s, proc.pid)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def test_add_over_ssh_detects_as_the_service_user_then_signs_in(host):  # noqa: C901
    s = host
    pw = pwd.getpwnam(s.service)
    rc, out, err = stage(s)
    assert rc == EX_OK, err
    staged = s.state / 'add' / 'mail.conf'
    assert 'run the same command again' in err and str(staged) in err, err
    assert (os.stat(staged).st_uid, mode(staged), mode(staged.parent)) == \
        (pw.pw_uid, 0o600, 0o700)
    assert 'provider = generic\n' in staged.read_text()
    assert not (s.etc / 'accounts.d' / 'mail.conf').exists()

    # Run 2, the same command: root installs, the service user signs in.
    asked = len(autoconfig_requests(s))
    proc = s.ns.popen(add_command(s), env=ssh_env(s), stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        url = read_until(proc, r'^(https://\S+)$', seen).group(1)
        assert 'a browser was opened' not in ''.join(seen)
        # Signing in, tokend is the service user's alone.
        assert_only_the_service_user(s, proc.pid)
        final = s.base / 'final-url'
        r = s.ns.run([sys.executable, BROWSER, url], timeout=TIMEOUT,
                     env=dict(PATH=os.environ['PATH'], TOKEND_TEST_CA=s.srv.ca_file,
                              TOKEND_TEST_BROWSER_MODE='print',
                              TOKEND_TEST_BROWSER_OUT=str(final)))
        assert r.returncode == 0, r.stderr
        out, err = proc.communicate(final.read_text().strip() + '\n', timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = ''.join(seen) + err
    assert proc.returncode == EX_OK, err
    # add's check: Dovecot takes the new token for alice.
    assert f'mail: IMAP login to 127.0.0.1:{s.dovecot.imap_port} as alice: ok' in out, out + err
    assert len(autoconfig_requests(s)) == asked  # root detected nothing

    dropin = s.etc / 'accounts.d' / 'mail.conf'
    st = os.stat(dropin)
    assert (st.st_uid, st.st_gid, mode(dropin)) == (0, pw.pw_gid, 0o640)
    assert f'issuer = https://{s.issuer}\n' in dropin.read_text()
    assert not staged.exists()

    # The refresh token: the service user's, 0600 in 0700 folders.
    folder = s.state / 'mail'
    kept = folder / 'refresh_token'
    for path, want in ((s.state, 0o700), (folder, 0o700), (kept, 0o600)):
        assert (os.stat(path).st_uid, mode(path)) == (pw.pw_uid, want), path
    refresh_token = stored_token(kept.read_text())
    assert refresh_token not in out + err
    # Nothing tokend wrote belongs to root.
    for path in [s.state, *s.state.rglob('*'), *s.run_dir.rglob('*')]:
        assert os.stat(path).st_uid == pw.pw_uid, path

    # The readers' group reads the token file, and `token` works for them.
    token_file = s.run_dir / 'mail.token'
    st = os.stat(token_file)
    assert (st.st_gid, mode(token_file)) == (grp.getgrnam(s.group).gr_gid, 0o640)
    r = s.tokend('token', 'mail', user=s.reader)
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout.strip() == token_file.read_text().strip()
    assert s.srv.introspect(r.stdout.strip())['active']
    r = s.tokend('token', 'mail', user=s.outsider)
    assert r.returncode != EX_OK and not r.stdout


TOKENS_IN_NS = '''
import json, ssl, sys
from harness.authserver import AuthServer
s = AuthServer.__new__(AuthServer)
s.base_url, s.issuer, s.ca_file, s.authorize_url, s.token_url = sys.argv[1:6]
s._ssl = ssl.create_default_context(cafile=s.ca_file)
print(json.dumps(s.obtain_tokens(login=sys.argv[6], scope='openid offline_access')))
'''


def microsoft_replay(s, login):
    """login.microsoftonline.com, replayed by the namespace's test HTTPS
    server: the consumers tenant's authorize endpoint redirects back with a
    code, its token endpoint answers with a token set that the test
    authorization server issued for login (so Dovecot takes it)."""
    a = s.srv
    r = s.ns.run([sys.executable, '-c', TOKENS_IN_NS, a.base_url, a.issuer, a.ca_file,
                  a.authorize_url, a.token_url, login], check=True,
                 env=dict(PATH=os.environ['PATH'],
                          PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    tokens = json.loads(r.stdout)
    s.ns.serve(MS, '/consumers/oauth2/v2.0/authorize', '', authorize=True)
    s.ns.serve(MS, '/consumers/oauth2/v2.0/token', {
        'token_type': 'Bearer', 'expires_in': 3599, 'access_token': tokens['access_token'],
        'refresh_token': tokens['refresh_token'],
        'scope': 'https://outlook.office.com/IMAP.AccessAsUser.All '
                 'https://outlook.office.com/SMTP.Send'})
    return tokens


def test_add_for_a_table_provider_is_one_command_over_ssh(host):
    """outlook.com is in the provider table: root writes accounts.d from the
    command line and the table alone (nothing asked of the network), then
    becomes the service user by exec for the sign-in, in one command."""
    s = host
    pw = pwd.getpwnam(s.service)
    tokens = microsoft_replay(s, 'alice@outlook.com')
    # The mail check goes to the namespace's Dovecot.
    s.write(s.etc / 'config', f'[defaults]\ntoken_file_group = {s.group}\n'
            f'imap_host = 127.0.0.1\nimap_port = {s.dovecot.imap_port}\n'
            f'smtp_host = 127.0.0.1\nsmtp_port = {s.dovecot.submission_port}\n')
    before = len(s.ns.requests())
    proc = s.ns.popen([TOKEND, '--system', '-v', 'add', 'alice@outlook.com', 'home',
                       '--client-id', '00000000-0000-0000-0000-000000000001'],
                      env=ssh_env(s), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        url = read_until(proc, r'^(https://\S+)$', seen).group(1)
        # Written by root before any network; nothing asked of it yet.
        assert len(s.ns.requests()) == before, s.ns.requests()[before:]
        assert 'outlook.com is a Microsoft consumer domain' in ''.join(seen)
        assert_only_the_service_user(s, proc.pid)
        # The admin's browser, elsewhere: the address the sign-in ended on.
        r = s.ns.run(['curl', '-s', '-o', '/dev/null', '-w', '%{redirect_url}', url],
                     timeout=TIMEOUT)
        assert r.returncode == 0 and r.stdout.startswith('http'), r
        out, err = proc.communicate(r.stdout.strip() + '\n', timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = ''.join(seen) + err
    assert proc.returncode == EX_OK, err
    assert 'run the same command again' not in err
    assert f'home: IMAP login to 127.0.0.1:{s.dovecot.imap_port} as alice@outlook.com: ok' \
        in out, out + err
    assert [q['host'] for q in s.ns.requests()[before:]] == [MS, MS], s.ns.requests()[before:]

    dropin = s.etc / 'accounts.d' / 'home.conf'
    st = os.stat(dropin)
    assert (st.st_uid, st.st_gid, mode(dropin)) == (0, pw.pw_gid, 0o640)
    assert 'provider = microsoft\n' in dropin.read_text()
    assert not (s.state / 'add').exists()
    folder = s.state / 'home'
    kept = folder / 'refresh_token'
    for path, want in ((s.state, 0o700), (folder, 0o700), (kept, 0o600)):
        assert (os.stat(path).st_uid, mode(path)) == (pw.pw_uid, want), path
    assert stored_token(kept.read_text()) == tokens['refresh_token']
    assert tokens['refresh_token'] not in out + err
    for path in [s.state, *s.state.rglob('*'), *s.run_dir.rglob('*')]:
        assert os.stat(path).st_uid == pw.pw_uid, path
    token_file = s.run_dir / 'home.token'
    assert (os.stat(token_file).st_gid, mode(token_file)) == (grp.getgrnam(s.group).gr_gid, 0o640)
    r = s.tokend('token', 'home', user=s.reader)
    assert r.returncode == EX_OK and r.stdout.strip() == tokens['access_token'], r.stderr
