"""Fixtures for the integration tests: the built tokend, a private home for
each test, the real authorization server, the real Secret Service."""

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

from harness.authserver import AuthServer  # noqa: E402
from harness.wait import wait_until  # noqa: E402

BUILD = Path(os.environ.get('TOKEND_BUILD_DIR', REPO / 'build'))
TOKEND = BUILD / 'src' / 'tokend'
BROWSER = REPO / 'tests' / 'harness' / 'browser.py'


def build_sanitizer(build):
    """The sanitizers a meson build folder was configured with
    (b_sanitize, e.g. 'address,undefined'), or None."""
    try:
        options = json.loads((build / 'meson-info' / 'intro-buildoptions.json').read_text())
    except (OSError, ValueError):
        return None
    value = next((o.get('value') for o in options if o.get('name') == 'b_sanitize'), None)
    return value if value and value != 'none' else None


# Which instrumented tokend runs the tests, if any: scripts/check-sanitizers
# exports TOKEND_SANITIZER (asan or valgrind) for the wrapper trees it hands
# over as TOKEND_BUILD_DIR; a sanitized meson build given directly says so
# in its options.  What cannot be measured the same way under them (peak
# memory) asks this.
SANITIZER = os.environ.get('TOKEND_SANITIZER') or build_sanitizer(BUILD)

# A test that cannot run fails ---------------------------------------------------
#
# A test skipped for a missing peer (the authorization server's modules,
# Dovecot, a mail client, gnome-keyring, the fetchmail 7 source, root for a
# mount or a namespace) tested nothing, and a run that tested less must not
# read as a pass: every skip, wherever it comes from (pytest.skip in a test
# or a fixture, a skipif mark, a module skipped at collection, an empty
# parametrization), is turned into a failure that says why.  An expected
# failure (xfail) proves nothing either and fails the same way.  On a
# machine that lacks a peer on purpose, TOKEND_ALLOW_SKIP=1 lets them skip;
# the runs list every skip with its reason (-rs).  A case that applies to
# some builds only is left out at collection (or deselected by the script
# that runs that build, saying so), never skipped.

ALLOW_SKIP = os.environ.get('TOKEND_ALLOW_SKIP') == '1'
ALLOW_SKIP_HINT = '(a test that cannot run fails; TOKEND_ALLOW_SKIP=1 lets it skip instead)'


class CouldNotRun:
    """A report's text whose first line also shows in the short summary."""

    def __init__(self, text):
        self.text = text
        self.reprcrash = types.SimpleNamespace(message=text.splitlines()[0])

    def toterminal(self, tw):
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self):
        return self.text


def skip_reason(longrepr):
    """The reason of a skipped report ((path, line, 'Skipped: why'))."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix('Skipped: ')
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if ALLOW_SKIP or not report.skipped:
        return
    if hasattr(report, 'wasxfail'):
        why = f'expected to fail ({report.wasxfail or "no reason given"}), which proves nothing'
        del report.wasxfail
        details = f'\n{report.longrepr}' if report.longrepr else ''
    else:
        why, details = f'could not run: {skip_reason(report.longrepr)}', ''
    report.outcome = 'failed'
    report.longrepr = CouldNotRun(f'{why}\n{ALLOW_SKIP_HINT}{details}')


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    report = (yield).get_result()
    if not ALLOW_SKIP and report.skipped:
        report.outcome = 'failed'
        report.longrepr = CouldNotRun(f'{collector.nodeid} could not run: '
                                      f'{skip_reason(report.longrepr)}\n{ALLOW_SKIP_HINT}')


# Where a run's time goes: each file's setup, call and teardown summed,
# the slowest ten at the end (what scripts/check-sanitizers' quick list is
# chosen by).

FILE_SECONDS = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split('::', 1)[0]
    FILE_SECONDS[path] = FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if len(FILE_SECONDS) < 2:
        return
    slowest = sorted(FILE_SECONDS.items(), key=lambda kv: -kv[1])[:10]
    terminalreporter.write_line('slowest files: ' + ', '.join(
        f'{Path(path).name} {seconds:.0f} s' for path, seconds in slowest))


# sysexits, as documented in tokend(1)
EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE = 0, 64, 65, 69
EX_CANTCREAT, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 73, 75, 77, 78


@pytest.fixture(scope='session')
def authserver(tmp_path_factory):
    with AuthServer(tmp_path_factory.mktemp('authserver')) as srv:
        yield srv


@pytest.fixture
def make_authserver(tmp_path_factory):
    """A private server, for tests that need another token lifetime."""
    servers = []

    def make(access_ttl=3600):
        srv = AuthServer(tmp_path_factory.mktemp('authserver'), access_ttl=access_ttl)
        srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


class Tokend:
    """The built tokend with a private home, config and state."""

    def __init__(self, home, server=None):
        self.home = Path(home)
        self.config = self.home / 'config' / 'tokend' / 'config'
        self.state = self.home / 'state' / 'tokend'
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.env = {
            'PATH': os.environ['PATH'],
            'HOME': str(self.home),
            'XDG_CONFIG_HOME': str(self.home / 'config'),
            'XDG_STATE_HOME': str(self.home / 'state'),
            'XDG_RUNTIME_DIR': str(self.home / 'no-runtime'),
            'BROWSER': str(BROWSER),
            'LANG': 'C.UTF-8',
        }
        if server:
            self.env['TOKEND_TEST_CA'] = server.ca_file
        self.accounts = {}

    def account(self, name='work', server=None, **keys):
        """Writes an [account NAME] for the test server (or explicit keys)."""
        server = server or self.server
        values = {}
        if server:
            values = dict(provider='generic', client_id='tokend-native',
                          authorize_url=server.authorize_url, token_url=server.token_url,
                          scopes='openid offline_access mail.imap', username='alice',
                          ca_file=server.ca_file, store='file')
        values.update({k: v for k, v in keys.items()})
        self.accounts[name] = {k: v for k, v in values.items() if v is not None}
        self.write_config()
        return self

    def write_config(self, extra=''):
        text = ''
        for name, keys in self.accounts.items():
            text += f'[account {name}]\n' + ''.join(f'{k} = {v}\n' for k, v in keys.items())
            text += '\n'
        self.config.write_text(text + extra)

    def run(self, *args, input=None, timeout=60, env=None):
        e = dict(self.env, **(env or {}))
        return subprocess.run([str(TOKEND), *args], input=input, capture_output=True,
                              text=True, timeout=timeout, env=e)

    def popen(self, *args, env=None, **kw):
        e = dict(self.env, **(env or {}))
        return subprocess.Popen([str(TOKEND), *args], env=e, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    def token_file(self, name='work'):
        return self.state / name / 'token'

    def refresh_token_file(self, name='work'):
        return self.state / name / 'refresh_token'

    def stored_refresh_token(self, name='work'):
        """The refresh token in the file store, without its binding."""
        return stored_token(self.refresh_token_file(name).read_text())

    def obtain(self, name='work', *args, env=None):
        r = self.run('obtain', name, *args, env=env)
        assert r.returncode == EX_OK, r.stderr
        return r

    def wait_expired(self, server, token, name='work', timeout=15):
        """Waits until the access token has expired for tokend (now is past
        expires_at in state.json: stale whatever the margin) and at the
        server (introspection says inactive)."""
        state = self.state / name / 'state.json'

        def expired():
            return time.time() >= json.loads(state.read_text())['expires_at'] and \
                not server.introspect(token.strip())['active']
        wait_until(expired, timeout, f'the access token of {name} expired', interval=0.05)


def stored_token(text):
    """A store entry as tokend writes it, tokend-rt1:BINDING:TOKEN (the
    binding: base64url of JSON naming client_id, issuer and token_url), or
    a bare one of before: the refresh token."""
    text = text.strip()
    if text.startswith('tokend-rt1:'):
        return text.split(':', 2)[2]
    return text


def stored_binding(text):
    """The binding of a store entry as a dict, or None for a bare one."""
    text = text.strip()
    if not text.startswith('tokend-rt1:'):
        return None
    b64 = text.split(':', 2)[1]
    return json.loads(base64.urlsafe_b64decode(b64 + '=' * (-len(b64) % 4)))


@pytest.fixture
def tokend(tmp_path, authserver):
    return Tokend(tmp_path, authserver)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)
