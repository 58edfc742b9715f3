"""A small office's mail host (issue 22): thirty accounts in accounts.d and
one run of the timer's command, `tokend --system -q refresh` run as the
service user as tokend-refresh.service would (the test machine has no
systemd as PID 1).

- Thirty people's accounts, each signed in with `tokend --system obtain`
  (root hands over to the service user) against the local oidc-provider;
  one of them has lost its grant (revoked at the server).  One timer run:
  the other twenty-nine token files are new and active at the server, each
  owned by the service user with the reader group and mode 0640 (stat), the
  refresh tokens 0600 in 0700 folders; the broken one does not hold them
  up, and `status --check` names exactly it.
- Thirty app-only mailboxes of one app: one timer run mints one token
  (counted at the authorization server) and every mailbox's file has it."""

import grp
import json
import os
import pwd
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import EX_OK, mode, stored_token
from harness.appkeys import AppKeys
from harness.authserver import AuthServer
from harness.tunnelpeers import revoke_grant
from test_system_mode import System, made_users

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates users: needs root')

COUNT = 30
# Every token obtain hands out is already within the margin: the first
# timer run refreshes all of them (no waiting for an expiry).
ACCESS_TTL = 600
MARGIN = 900
APP_SCOPES = 'mail.imap mail.smtp'


@pytest.fixture
def host():
    base = Path(tempfile.mkdtemp(prefix='tokend-sysscale-'))
    base.chmod(0o755)
    try:
        with made_users() as (service, reader, outsider, group):
            keys = AppKeys(base / 'keys')
            env = {'TOKEND_TEST_APP_CERT': str(keys.cert)}
            with AuthServer(base / 'authserver', access_ttl=ACCESS_TTL, env=env) as srv:
                (base / 'authserver').chmod(0o755)
                s = System(base, srv, service)
                s.reader, s.outsider, s.group, s.keys = reader, outsider, group, keys
                # The app's key is the service user's alone, as tokend demands.
                pw = pwd.getpwnam(service)
                for p in (keys.dir, keys.key, keys.cert):
                    os.chown(p, pw.pw_uid, pw.pw_gid)
                keys.dir.chmod(0o700)
                s.write(s.etc / 'config', f'[defaults]\nrefresh_margin = {MARGIN}\n'
                                          'max_parallel = 8\n')
                yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def timer_run(host):
    """What tokend-refresh.service runs, as its User= would."""
    started = time.monotonic()
    r = host.tokend('-q', 'refresh', user=host.service)
    return r, time.monotonic() - started


def obtain_all(host, names):
    def one(name):
        r = host.tokend('obtain', name)
        assert r.returncode == EX_OK, f'{name}: {r.stderr}'
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, names))


def check_token_file(host, name, gid):
    service = pwd.getpwnam(host.service)
    path = host.run_dir / f'{name}.token'
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, mode(path)) == (service.pw_uid, gid, 0o640), name
    return path.read_text()


def test_thirty_accounts_one_timer_run_one_broken_holds_up_none(host):
    names = [f'user{i:02d}' for i in range(COUNT)]
    for name in names:
        host.account(name, token_file_group=host.group, store='file')
    obtain_all(host, names)
    gid = grp.getgrnam(host.group).gr_gid
    before = {n: check_token_file(host, n, gid) for n in names}
    broken = names[13]
    revoke_grant(host.srv, stored_token((host.state / broken / 'refresh_token').read_text()))
    host.srv.reset_stats()

    r, seconds = timer_run(host)
    print(f'\none timer run over {COUNT} system accounts (one broken): {seconds:.2f} s, '
          f'{host.srv.stats()["token"].get("refresh_token", 0)} refresh requests, '
          f'exit {r.returncode}')
    # One account needs a sign-in: the run says so, and did all the rest.
    assert r.returncode != EX_OK and broken in r.stderr, r.stderr
    assert host.srv.stats()['token'].get('refresh_token', 0) == COUNT
    service = pwd.getpwnam(host.service)
    now = time.time()
    for name in names:
        token = check_token_file(host, name, gid)
        if name == broken:
            assert token == before[name]
            continue
        assert token != before[name], name
        assert host.srv.introspect(token.strip())['active'], name
        assert json.loads((host.run_dir / f'{name}.info').read_text())['expires_at'] > now
        folder = host.state / name
        assert (os.stat(folder).st_uid, mode(folder)) == (service.pw_uid, 0o700), name
        kept = folder / 'refresh_token'
        assert (os.stat(kept).st_uid, mode(kept)) == (service.pw_uid, 0o600), name
    assert (os.stat(host.state).st_uid, mode(host.state)) == (service.pw_uid, 0o700)

    # The monitor's verdict names exactly the broken account.
    r = host.tokend('status', '--check')
    assert r.returncode == 2, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith(f'TOKEND CRITICAL - {broken}: sign-in needed |'), first
    verdict = first.split('|', 1)[0]
    assert [n for n in names if n in verdict] == [broken], verdict
    # The readers still read every good token; the broken one is theirs to retry.
    for name in (names[0], names[-1]):
        r = host.tokend('token', name, user=host.reader)
        assert (r.returncode, r.stdout) == (EX_OK, before[name] if name == broken
                                            else (host.run_dir / f'{name}.token').read_text())


def test_thirty_mailboxes_of_one_app_cost_one_token_request(host):
    names = [f'box{i:02d}' for i in range(COUNT)]
    host.write(host.etc / 'config', '[defaults]\nrefresh_margin = 300\n')
    for name in names:
        host.account(name, grant='client_credentials', client_id='tokend-app',
                     authorize_url=None, scopes=APP_SCOPES, username=f'{name}@example.org',
                     client_certificate=host.keys.cert, client_key=host.keys.key,
                     token_file_group=host.group)
    host.srv.reset_stats()
    r, seconds = timer_run(host)
    requests = host.srv.stats()['token'].get('client_credentials', 0)
    print(f'\none timer run over {COUNT} app-only mailboxes of one app: {seconds:.2f} s, '
          f'{requests} token request(s)')
    assert r.returncode == EX_OK, r.stderr
    assert requests == 1
    gid = grp.getgrnam(host.group).gr_gid
    tokens = {check_token_file(host, n, gid) for n in names}
    assert len(tokens) == 1
    token = tokens.pop().strip()
    info = host.srv.introspect(token)
    assert info['active'] and info['client_id'] == 'tokend-app'
    # The next tick has nothing to do: still one request.
    r, _ = timer_run(host)
    assert r.returncode == EX_OK, r.stderr
    assert host.srv.stats()['token'].get('client_credentials', 0) == 1
    r = host.tokend('status', '--check')
    assert r.returncode == EX_OK and r.stdout.startswith(f'TOKEND OK - {COUNT} account'), \
        r.stdout + r.stderr
