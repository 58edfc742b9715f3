"""Signing in a system account over SSH (issue 22): `sudo tokend --system
obtain ACCOUNT` on a server with no browser and no display, as an SSH
session has it (no BROWSER, DISPLAY or WAYLAND_DISPLAY; SSH_CONNECTION
set).  The admin opens the URL tokend prints on another machine: with the
paste flow they paste the address the sign-in ended on (the server's
loopback catcher is out of that browser's reach), with the device flow
they enter the code.  The other machine is harness/browser.py run as a
separate process, never started by tokend.  Either way the refresh token
lands in the system store, owned by the service user: the file 0600 in a
0700 folder, the state folder 0700; root owns nothing tokend wrote."""

import os
import pwd
import re
import subprocess
import sys
import time

from conftest import BROWSER, EX_OK, TOKEND, mode, stored_token
from harness.wait import wait_until
from test_system_mode import system  # noqa: F401  (the fixture)

SSH_ENV = {'SSH_CONNECTION': '192.0.2.10 50022 192.0.2.20 22', 'SSH_TTY': '/dev/pts/0',
           'TERM': 'xterm-256color'}
TIMEOUT = 60


def ssh_env(system):
    """What `sudo` keeps of an SSH session: no browser, no display."""
    env = {k: v for k, v in system.env.items() if k != 'BROWSER'}
    env.update(SSH_ENV)
    return env


def start_obtain(system, *args):
    proc = subprocess.Popen([str(TOKEND), '--system', 'obtain', 'work', *args],
                            env=ssh_env(system), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc


def read_until(proc, pattern, seen):
    """stderr lines until one matches pattern (bounded); returns the match."""
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


def other_machine(system, url, mode, **extra):
    """The admin's own browser, elsewhere: browser.py as its own process."""
    env = dict(PATH=os.environ['PATH'], TOKEND_TEST_CA=system.srv.ca_file,
               TOKEND_TEST_BROWSER_MODE=mode, **extra)
    r = subprocess.run([sys.executable, str(BROWSER), url], env=env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr


def check_system_store(system):
    service = pwd.getpwnam(system.service)
    folder = system.state / 'work'
    kept = folder / 'refresh_token'
    for path, want in ((system.state, 0o700), (folder, 0o700), (kept, 0o600)):
        assert (os.stat(path).st_uid, mode(path)) == (service.pw_uid, want), path
    refresh_token = stored_token(kept.read_text())
    status, body = system.srv.refresh(refresh_token)
    assert status == 200 and body['access_token'], body
    # Nothing tokend wrote belongs to root.
    for path in [system.state, *system.state.rglob('*'), *system.run_dir.rglob('*')]:
        assert os.stat(path).st_uid == service.pw_uid, path
    return refresh_token


def test_paste_flow_over_ssh_stores_the_refresh_token_for_the_service_user(system):  # noqa: F811
    system.account('work')
    proc = start_obtain(system)
    seen = []
    try:
        url = read_until(proc, r'^(https://\S+)$', seen).group(1)
        assert 'a browser was opened' not in ''.join(seen)
        final = system.base / 'final-url'
        other_machine(system, url, 'print', TOKEND_TEST_BROWSER_OUT=str(final))
        wait_until(final.exists, 20, 'the other browser ended the sign-in', interval=0.05)
        out, err = proc.communicate(final.read_text().strip() + '\n', timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = ''.join(seen) + err
    assert proc.returncode == EX_OK, err
    refresh_token = check_system_store(system)
    assert refresh_token not in out + err
    assert system.srv.introspect((system.run_dir / 'work.token').read_text().strip())['active']


def test_device_flow_over_ssh_stores_the_refresh_token_for_the_service_user(system):  # noqa: F811
    system.account('work', device_authorization_url=system.srv.device_url)
    before = system.srv.stats()['token'].get('urn:ietf:params:oauth:grant-type:device_code', 0)
    proc = start_obtain(system, '--device')
    seen = []
    try:
        m = read_until(proc, r'open (https://\S+) and enter the code ([A-Z]{4}-[A-Z]{4})', seen)
        assert 'a browser was opened' not in ''.join(seen)
        # The admin types the code at the verification page on their laptop.
        other_machine(system, f'{m.group(1)}?user_code={m.group(2)}', 'device')
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = ''.join(seen) + err
    assert proc.returncode == EX_OK, err
    after = system.srv.stats()['token'].get('urn:ietf:params:oauth:grant-type:device_code', 0)
    assert after > before
    refresh_token = check_system_store(system)
    assert refresh_token not in out + err
