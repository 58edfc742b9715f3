"""Nothing lost on a full disk, and a refresh token sent only where it came
from, against the real authorization server (which rotates refresh tokens
and revokes the whole grant when a consumed one is replayed).

* Faults.  A build with -Dfault_injection=true (harness/faultbuild.py)
  numbers the file operations of a run (create, reserve, write, sync,
  rename, folder sync) and fails the one numbered $TOKEND_FAULT_IO_AT with
  ENOSPC or EIO.  For both refresh paths (`token`, one account; `refresh`,
  the bulk path with its writer threads) and both errors, every operation
  of a refresh is failed in turn.  Each run must end with 0 or 73 and one
  line; then a plain `refresh --force` must succeed and leave a refresh
  token the server still accepts (0 lost sign-ins).
* A tiny tmpfs (64 KiB, mounted as the state folder: tests run as root)
  filled up to leave 0 to 48 KiB before each refresh: no refresh may lose
  the sign-in; one without room is refused before anything is sent.  Also
  with the room reserved by writing zeros (as where there is no fallocate).
* A folder that is full or read-only makes `obtain` fail before the
  browser opens.
* After the configuration points the account at another token endpoint or
  client id, the refresh token is not sent (77) and the other endpoint hears
  nothing.

The counts are printed (pytest -s or -rP).
"""

import json
import os
import socket
import subprocess
import threading
from collections import Counter

import pytest

from conftest import EX_CANTCREAT, EX_DATAERR, EX_NOPERM, EX_OK, Tokend, stored_binding, stored_token
from harness import faultbuild

STATE_ROOM_KIB = 64


@pytest.fixture(scope='session')
def fault_binary():
    reason = faultbuild.meson_missing()
    if reason:
        pytest.skip(reason)
    try:
        return faultbuild.build()
    except faultbuild.FaultBuildError as e:
        pytest.fail(f'cannot build tokend with -Dfault_injection=true: {e}')


class BinaryTokend(Tokend):
    def __init__(self, home, server, binary):
        super().__init__(home, server)
        self.binary = str(binary)

    def run(self, *args, input=None, timeout=60, env=None):
        e = dict(self.env, **(env or {}))
        return subprocess.run([self.binary, *args], input=input, capture_output=True,
                              text=True, timeout=timeout, env=e)


def with_runtime(t):
    runtime = t.home / 'runtime'
    runtime.mkdir(mode=0o700, exist_ok=True)
    t.env['XDG_RUNTIME_DIR'] = str(runtime)
    return runtime


def refreshes(server):
    return server.stats()['token'].get('refresh_token', 0)


def alive(server, t):
    """The stored refresh token is the server's current one."""
    rt = t.stored_refresh_token().strip()
    return server.introspect(rt)['active']


def one_line(stderr, skip=0):
    lines = stderr.strip().splitlines()[skip:]
    return len(lines) == 1 and lines[0].startswith('tokend: work: ')


# obtain says first where the refresh token will go.
STORE_LINE = 'tokend: work: the refresh token will be kept in the file store'


def recovered(server, t):
    r = t.run('refresh', '--force', 'work')
    return r.returncode == EX_OK and alive(server, t), r


COMMANDS = {
    'token': ('token', 'work'),                # flow_refresh: one account
    'refresh': ('refresh', '--force', 'work'),  # flow_refresh_many: writer threads
}


@pytest.mark.parametrize('errno_name', faultbuild.IO_ERRNOS)
@pytest.mark.parametrize('path', sorted(COMMANDS))
def test_a_fault_at_every_file_operation_of_a_refresh_loses_nothing(
        tmp_path, authserver, fault_binary, path, errno_name):
    t = BinaryTokend(tmp_path, authserver, fault_binary)
    runtime = with_runtime(t)
    # min_validity above the token's lifetime: every `token` refreshes.
    t.account(min_validity=7200)
    t.obtain()
    log = tmp_path / 'faults.log'
    outcomes = Counter()
    lost = []
    n = 0
    while True:
        n += 1
        assert n < 200, 'the operations never ran out'
        log.unlink(missing_ok=True)
        before = refreshes(authserver)
        r = t.run(*COMMANDS[path], env=faultbuild.io_fault_env(n, errno_name, log))
        hit = faultbuild.io_fault_hit(log)
        if hit is None:
            assert r.returncode == EX_OK, r.stderr
            break
        point = f"{hit[0]} {os.path.basename(hit[1]).split('.tmp-')[0]}"
        sent = refreshes(authserver) > before
        assert r.returncode in (EX_OK, EX_CANTCREAT), f'#{n} {point}: {r.stderr}'
        if r.returncode == EX_CANTCREAT:
            assert one_line(r.stderr), f'#{n} {point}: {r.stderr}'
            if 'it is kept in' in r.stderr:
                rescued = r.stderr.split('it is kept in ')[1].split(';')[0]
                assert rescued.startswith(str(runtime)) and os.path.exists(rescued)
            outcome = 'rescued' if 'it is kept in' in r.stderr else \
                'refused before sending' if not sent else '73 after saving'
            if outcome == 'refused before sending':
                assert 'nothing was sent' in r.stderr
        else:
            outcome = 'ignored'
        outcomes[f'{point}: {outcome}'] += 1
        ok, rr = recovered(authserver, t)
        if not ok:
            lost.append((n, point, r.stderr, rr.stderr))
            t.obtain()
        assert not any(runtime.rglob('work')), 'a rescued token was not taken back'
    faults = sum(outcomes.values())
    print(f'\n{path} {errno_name}: {faults} faults injected, {len(lost)} lost sign-ins')
    for k, v in sorted(outcomes.items()):
        print(f'  {v:3d}  {k}')
    assert faults >= 15
    assert sum(v for k, v in outcomes.items() if k.startswith('reserve ')) == 3
    assert any('rescued' in k for k in outcomes), 'no fault hit the refresh token save'
    assert not lost, lost


def test_a_refresh_token_the_file_store_cannot_take_goes_to_the_keyring(
        tmp_path, authserver, fault_binary):
    from harness.keyring import SecretService
    t = BinaryTokend(tmp_path, authserver, fault_binary)
    with_runtime(t)
    t.account()
    t.obtain()
    log = tmp_path / 'faults.log'
    with SecretService(tmp_path / 'keyring') as keyring:
        t.env.update(keyring.env)
        for n in range(1, 40):
            log.unlink(missing_ok=True)
            r = t.run('refresh', '--force', 'work', env=faultbuild.io_fault_env(n, 'EIO', log))
            hit = faultbuild.io_fault_hit(log)
            if hit and hit[0] == 'write' and '/refresh_token.tmp-' in hit[1]:
                break
        else:
            pytest.fail('no write of the refresh token')
        assert r.returncode == EX_OK, r.stderr
        assert ('could not save the new refresh token in the file store (cannot write' in r.stderr
                and 'kept it in the secret-service store instead' in r.stderr)
        kept = stored_token(keyring.lookup(account='work', kind='refresh_token'))
        assert kept and authserver.introspect(kept)['active']
        assert state_of(t)['store'] == 'secret-service'
        # The next refresh goes on from the keyring, back into the file store.
        ok, rr = recovered(authserver, t)
        assert ok, rr.stderr


@pytest.fixture
def tiny_state(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    state = tmp_path / 'state'
    state.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={STATE_ROOM_KIB}k,mode=0700',
                        'tokend-test', str(state)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs: {r.stderr.strip()}')
    try:
        yield state
    finally:
        subprocess.run(['umount', '-l', str(state)], check=False)


def fill(folder, leave):
    """Fills the file system of folder, then frees `leave` bytes."""
    filler = folder / 'filler'
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b'\0' * 1024)
    except OSError:
        pass
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(size - leave, 0))
    return filler


@pytest.mark.parametrize('path', sorted(COMMANDS) + ['refresh-without-fallocate'])
def test_a_refresh_on_a_full_tmpfs_loses_no_sign_in(tmp_path, authserver, tiny_state, path,
                                                    request):
    if path == 'refresh-without-fallocate':
        # Reserving by writing zeros, as where the file system cannot allocate.
        t = BinaryTokend(tmp_path, authserver, request.getfixturevalue('fault_binary'))
        t.env['TOKEND_FAULT_NO_FALLOCATE'] = '1'
        path = 'refresh'
    else:
        t = Tokend(tmp_path, authserver)
    with_runtime(t)
    t.account(min_validity=7200)
    t.obtain()
    rows = []
    for leave_kib in range(0, 49, 2):
        filler = fill(tiny_state, leave_kib * 1024)
        before = refreshes(authserver)
        r = t.run(*COMMANDS[path])
        sent = refreshes(authserver) > before
        filler.unlink()
        assert r.returncode in (EX_OK, EX_CANTCREAT), r.stderr
        if r.returncode != EX_OK:
            assert one_line(r.stderr), r.stderr
            # No room: refused before the request, not after it.
            assert not sent and 'nothing was sent' in r.stderr, r.stderr
        ok, rr = recovered(authserver, t)
        rows.append((leave_kib, r.returncode, sent, ok))
        assert ok, (leave_kib, r.stderr, rr.stderr)
    print(f'\n{path} on a {STATE_ROOM_KIB} KiB tmpfs (KiB left, exit, request sent, '
          f'sign-in kept):')
    for row in rows:
        print('  %2d KiB  exit %2d  sent %-5s  kept %s' % row)
    assert any(code == EX_CANTCREAT for _, code, _, _ in rows)
    assert any(code == EX_OK for _, code, _, _ in rows)


def browser_marker(tmp_path, t):
    marker = tmp_path / 'browser-opened'
    script = tmp_path / 'browser.sh'
    script.write_text(f'#!/bin/sh\ntouch {marker}\n')
    script.chmod(0o755)
    t.env['BROWSER'] = str(script)
    return marker


def test_obtain_with_a_full_state_folder_fails_before_the_browser(tmp_path, authserver,
                                                                  tiny_state):
    t = Tokend(tmp_path, authserver)
    marker = browser_marker(tmp_path, t)
    t.account()
    (tiny_state / 'tokend').mkdir(mode=0o700)
    fill(tiny_state, 0)
    r = t.run('obtain', 'work', timeout=30)
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert r.stderr.startswith(STORE_LINE), r.stderr
    assert one_line(r.stderr, 1) and 'a sign-in could not be kept' in r.stderr, r.stderr
    assert str(tiny_state) in r.stderr and 'No space left' in r.stderr
    assert 'URL' not in r.stderr and not marker.exists()


def test_obtain_with_a_read_only_token_folder_fails_before_the_browser(tmp_path, authserver):
    if os.geteuid() != 0:
        pytest.skip('mounting needs root')
    folder = tmp_path / 'ro'
    folder.mkdir(mode=0o700)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,ro,mode=0700', 'tokend-ro',
                        str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f'cannot mount: {r.stderr.strip()}')
    try:
        t = Tokend(tmp_path, authserver)
        marker = browser_marker(tmp_path, t)
        t.account(token_file=str(folder / 'token'))
        r = t.run('obtain', 'work', timeout=30)
        assert r.returncode == EX_CANTCREAT, r.stderr
        assert r.stderr.startswith(STORE_LINE), r.stderr
        assert one_line(r.stderr, 1) and 'Read-only file system' in r.stderr, r.stderr
        assert str(folder) in r.stderr
        assert not marker.exists()
    finally:
        subprocess.run(['umount', '-l', str(folder)], check=False)


class Listener:
    """A loopback port that counts the connections it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            c.close()

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    ln = Listener()
    yield ln
    ln.close()


def state_of(t):
    return json.loads((t.state / 'work' / 'state.json').read_text())


def test_refresh_token_is_not_sent_to_another_token_endpoint(tokend, authserver, listener):
    tokend.account(min_validity=7200)
    tokend.obtain()
    st = state_of(tokend)
    assert st['refresh_token_url'] == authserver.token_url
    assert st['refresh_token_client_id'] == 'tokend-native'
    rt = tokend.stored_refresh_token()
    before = refreshes(authserver)
    other = f'https://127.0.0.1:{listener.port}/token'
    tokend.accounts['work']['token_url'] = other
    tokend.write_config()
    for args in (('refresh', '--force', 'work'), ('refresh', '--force'), ('token', 'work')):
        r = tokend.run(*args)
        assert r.returncode == EX_NOPERM, r.stderr
        assert (f'the stored sign-in is for tokend-native at {authserver.token_url}, the '
                f'configuration now says tokend-native at {other}') in r.stderr
        assert 'run: tokend obtain work' in r.stderr
    assert listener.connections == 0
    assert refreshes(authserver) == before
    assert tokend.stored_refresh_token() == rt
    # Back to the server it came from: it works.
    tokend.accounts['work']['token_url'] = authserver.token_url
    tokend.write_config()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    # logout forgets it without revoking it at another endpoint.
    tokend.accounts['work']['token_url'] = other
    tokend.accounts['work']['revocation_url'] = f'https://127.0.0.1:{listener.port}/revoke'
    tokend.write_config()
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert not tokend.refresh_token_file().exists()
    assert listener.connections == 0


def test_refresh_token_is_not_sent_for_another_client_id(tokend, authserver):
    tokend.account()
    tokend.obtain()
    before = refreshes(authserver)
    rt = tokend.stored_refresh_token()
    tokend.accounts['work']['client_id'] = 'someone-else'
    tokend.write_config()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM, r.stderr
    assert ('the stored sign-in is for tokend-native at '
            f'{authserver.token_url}, the configuration now says someone-else at') in r.stderr
    assert one_line(r.stderr)
    assert refreshes(authserver) == before
    assert authserver.introspect(rt.strip())['active']


def test_refresh_token_is_not_sent_to_another_issuer(tokend, authserver, listener):
    tokend.account(issuer=authserver.issuer, authorize_url=None, token_url=None)
    tokend.obtain()
    assert state_of(tokend)['refresh_token_issuer'] == authserver.issuer
    before = refreshes(authserver)
    other = f'https://127.0.0.1:{listener.port}'
    tokend.accounts['work']['issuer'] = other
    tokend.write_config()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM, r.stderr
    assert (f'the stored sign-in is for tokend-native at {authserver.issuer}, the '
            f'configuration now says tokend-native at {other};') in r.stderr
    # Not even the other issuer's metadata was asked for.
    assert listener.connections == 0
    assert refreshes(authserver) == before


@pytest.mark.parametrize('moved', ['token_url', 'issuer', 'client_id'])
def test_binding_goes_with_the_stored_token_not_the_state(tokend, authserver, listener, moved):
    """Deleting state.json does not let the refresh token go elsewhere: the
    store entry itself names where it came from."""
    if moved == 'issuer':
        tokend.account(issuer=authserver.issuer, authorize_url=None, token_url=None)
    else:
        tokend.account()
    tokend.obtain()
    entry = tokend.refresh_token_file().read_text()
    binding = stored_binding(entry)
    assert binding['client_id'] == 'tokend-native'
    if moved == 'issuer':
        assert binding['issuer'] == authserver.issuer and 'token_url' not in binding
    else:
        assert binding['token_url'] == authserver.token_url and 'issuer' not in binding
    (tokend.state / 'work' / 'state.json').unlink()
    before = refreshes(authserver)
    elsewhere = {'token_url': f'https://127.0.0.1:{listener.port}/token',
                 'issuer': f'https://127.0.0.1:{listener.port}',
                 'client_id': 'someone-else'}[moved]
    tokend.accounts['work'][moved] = elsewhere
    tokend.write_config()
    for args in (('refresh', '--force', 'work'), ('token', 'work'), ('refresh', '--force')):
        r = tokend.run(*args)
        assert r.returncode == EX_NOPERM, (args, r.stderr)
        assert 'the stored sign-in is for tokend-native at ' in r.stderr
        assert 'it is not sent there' in r.stderr and 'run: tokend obtain work' in r.stderr
    assert listener.connections == 0
    assert refreshes(authserver) == before
    assert tokend.refresh_token_file().read_text() == entry
    # Back where it came from, the same entry works.
    tokend.account()
    if moved == 'issuer':
        tokend.account(issuer=authserver.issuer, authorize_url=None, token_url=None)
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr


def test_a_bare_stored_token_of_before_is_read_and_bound_at_its_next_save(tokend, authserver,
                                                                         listener):
    tokend.account()
    tokend.obtain()
    rt = tokend.stored_refresh_token()
    tokend.refresh_token_file().write_text(rt)
    assert stored_binding(tokend.refresh_token_file().read_text()) is None
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert stored_binding(tokend.refresh_token_file().read_text())['token_url'] == \
        authserver.token_url
    (tokend.state / 'work' / 'state.json').unlink()
    tokend.accounts['work']['token_url'] = f'https://127.0.0.1:{listener.port}/token'
    tokend.write_config()
    assert tokend.run('refresh', '--force', 'work').returncode == EX_NOPERM
    assert listener.connections == 0


def test_a_damaged_binding_sends_nothing(tokend, authserver):
    tokend.account()
    tokend.obtain()
    rt = tokend.stored_refresh_token()
    tokend.refresh_token_file().write_text(f'tokend-rt1:not*base64:{rt}')
    before = refreshes(authserver)
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'not as tokend wrote it' in r.stderr and rt not in r.stderr
    assert refreshes(authserver) == before


def test_a_state_without_binding_is_accepted_once_and_bound(tokend, authserver, listener):
    tokend.account()
    tokend.obtain()
    path = tokend.state / 'work' / 'state.json'
    st = state_of(tokend)
    for key in ('refresh_token_client_id', 'refresh_token_issuer', 'refresh_token_url'):
        st.pop(key, None)
    path.write_text(json.dumps(st))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert state_of(tokend)['refresh_token_url'] == authserver.token_url
    tokend.accounts['work']['token_url'] = f'https://127.0.0.1:{listener.port}/token'
    tokend.write_config()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM, r.stderr
    assert listener.connections == 0
