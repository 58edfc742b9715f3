"""What `meson install` ships: binaries, man pages, systemd user units
(checked with systemd-analyze verify), completions and examples; and that
the docs cover every command and configuration key the code knows."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, TOKEND

EXPECTED = [
    'bin/tokend',
    'share/man/man1/tokend.1',
    'share/man/man5/tokend.conf.5',
    'lib/systemd/user/tokend-refresh.service',
    'lib/systemd/user/tokend-refresh-failed.service',
    'lib/systemd/user/tokend-refresh.timer',
    *[f'lib/systemd/user/tokend-relay-{p}{s}' for p in ('smtp', 'imap', 'pop3')
      for s in ('.socket', '@.service')],
    'share/bash-completion/completions/tokend',
    'share/zsh/vendor-completions/_tokend',
    'share/fish/vendor_completions.d/tokend.fish',
    'share/doc/tokend/examples/microsoft.conf',
    'share/doc/tokend/examples/google.conf',
    'share/doc/tokend/examples/generic.conf',
    'share/doc/tokend/registration-microsoft.md',
    'share/doc/tokend/registration-google.md',
]


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """One build with a private prefix, installed into the prefix itself and
    into a DESTDIR."""
    tmp = tmp_path_factory.mktemp('install')
    prefix = tmp / 'prefix'
    build = tmp / 'build'
    subprocess.run(['meson', 'setup', str(build), str(REPO), f'--prefix={prefix}',
                    '-Dman=enabled', '--wrap-mode=nofallback'], check=True,
                   capture_output=True, timeout=120)
    subprocess.run(['meson', 'install', '-C', str(build), '--destdir', str(tmp / 'dest')],
                   check=True, capture_output=True, timeout=300)
    subprocess.run(['meson', 'install', '-C', str(build), '--no-rebuild'], check=True,
                   capture_output=True, timeout=120)
    return prefix, tmp / 'dest'


@pytest.mark.parametrize('engine', ['not a shared object', 'another library'])
def test_an_engine_that_cannot_be_loaded_is_one_line_and_70(installed, tmp_path, engine):
    """The launcher loads tokend-engine.so from beside itself: a broken
    installation (the file truncated, or another library under its name)
    is one line naming the file, exit 70 (tokend(1), EXIT STATUS).  The
    installed launcher (a plain build: a sanitizer run's tokend is a
    wrapper script) is copied beside the broken engine."""
    prefix, _ = installed
    shutil.copy(prefix / 'bin' / 'tokend', tmp_path / 'tokend')
    so = tmp_path / 'tokend-engine.so'
    if engine == 'not a shared object':
        so.write_bytes(b'\x7fELF truncated')
    else:
        # cJSON's library: a real shared object without the engine's symbol.
        shutil.copy(next(Path('/usr/lib').glob('*/libcjson.so.1')), so)
    r = subprocess.run([str(tmp_path / 'tokend'), 'status'], capture_output=True, text=True,
                       timeout=30, env={'PATH': os.environ['PATH'], 'HOME': str(tmp_path)})
    assert r.returncode == 70, r
    assert r.stdout == ''
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('tokend: cannot load its engine: '), lines
    assert lines[0].count(str(so)) == 1 and lines[0].endswith('; reinstall tokend'), lines


def test_destdir_layout(installed):
    prefix, dest = installed
    root = dest / str(prefix).lstrip('/')
    for rel in EXPECTED:
        assert (root / rel).is_file(), rel
    # The engine: a private shared object in the package's folder under
    # libdir (lib/x86_64-linux-gnu/tokend on Debian), nothing else there.
    engines = [p.relative_to(root) for p in root.glob('lib/**/tokend-engine.so')]
    assert len(engines) == 1 and engines[0].parent.name == 'tokend', engines
    assert sorted(q.name for q in (root / engines[0]).parent.iterdir()) == ['tokend-engine.so']
    assert os.access(root / 'bin' / 'tokend', os.X_OK)
    # Nothing lands outside DESTDIR's prefix.
    outside = [p for p in dest.rglob('*') if p.is_file() and not str(p).startswith(str(root))]
    assert outside == []


def test_installed_tokend_finds_its_engine(installed, tmp_path):
    prefix, _ = installed
    out = subprocess.run([str(prefix / 'bin' / 'tokend'), '--version'], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith('tokend ')
    # The launcher links neither libcurl nor libsecret nor libmicrohttpd.
    ldd = subprocess.run(['ldd', str(prefix / 'bin' / 'tokend')], capture_output=True,
                         text=True).stdout
    for lib in ('libcurl', 'libsecret', 'libmicrohttpd', 'libgio'):
        assert lib not in ldd


def needed(path):
    """The file's NEEDED entries, in order."""
    out = subprocess.run(['readelf', '-dW', str(path)], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r'\(NEEDED\)\s+Shared library: \[(.+?)\]', out)


def mapped(path):
    """soname -> file of every library the dynamic linker maps for path."""
    out = subprocess.run(['ldd', str(path)], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r'^\s*(\S+) => (/\S+)', out, re.M))


def dynamic_symbols(path, defined):
    out = subprocess.run(['nm', '-D', '--defined-only' if defined else '--undefined-only',
                          str(path)], capture_output=True, text=True, check=True).stdout
    return {ln.split()[-1].split('@')[0] for ln in out.splitlines() if ln.strip()}


def test_the_engine_names_first_the_libraries_searched_most(installed):
    """The dynamic linker looks each of some 9,000 symbol references up in
    the engine's libraries breadth first (src/meson.build): the big ones
    that libcurl brings come right after the C library and libcrypto, and
    naming them maps no library that would not be mapped anyway.  Checked
    on the installed engine (a sanitizer run's TOKEND is a wrapper)."""
    prefix, _ = installed
    [engine] = prefix.glob('lib/**/tokend-engine.so')
    order = needed(engine)
    by_engine = mapped(engine)
    by_curl = mapped(by_engine['libcurl.so.4'])
    # Each comes before libcurl when this libcurl brings it.
    first = [n for n in by_curl if re.match(r'lib(gnutls|nettle|unistring|ldap(-[0-9.]+)?'
                                            r'|hogweed|lber(-[0-9.]+)?|gmp|gssapi_krb5)\.so', n)]
    assert len(first) >= 5, sorted(by_curl)
    for n in first:
        assert n in order and order.index(n) < order.index('libcurl.so.4'), order
    # Every other entry is a library the engine calls itself.
    wanted = dynamic_symbols(engine, defined=False)
    for n in order:
        if n in by_curl or n == 'libcurl.so.4':
            continue
        lib = by_engine.get(n)
        assert lib and dynamic_symbols(lib, defined=True) & wanted, (n, order)


def test_systemd_units_verify(installed, tmp_path):
    prefix, _ = installed
    runtime = tmp_path / 'runtime'
    runtime.mkdir(mode=0o700)
    units = prefix / 'lib' / 'systemd' / 'user'
    service = (units / 'tokend-refresh.service').read_text()
    assert f'ExecStart={prefix}/bin/tokend -q refresh' in service
    assert 'OnFailure=tokend-refresh-failed.service' in service
    # token_file may be under /tmp, where fetchmail reads it: the refresh must
    # write the same /tmp, not a private one.
    for name in ('tokend-refresh.service', 'tokend-refresh-failed.service'):
        assert 'PrivateTmp' not in (units / name).read_text(), name
    timer = (units / 'tokend-refresh.timer').read_text()
    assert 'OnUnitActiveSec=5min' in timer and 'Persistent=true' in timer
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), MANPATH=str(prefix / 'share' / 'man'),
               SYSTEMD_LOG_LEVEL='notice')
    r = subprocess.run(['systemd-analyze', 'verify', '--user',
                        *[str(units / u) for u in ('tokend-refresh.service',
                                                   'tokend-refresh-failed.service',
                                                   'tokend-refresh.timer')]],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


RELAY_PORTS = {'smtp': 1587, 'imap': 1993, 'pop3': 1995}


def test_relay_units_verify(installed, tmp_path):
    """Socket activation of `tokend relay`, inetd style: each accepted
    loopback connection is one service instance's stdin and stdout."""
    prefix, _ = installed
    runtime = tmp_path / 'runtime'
    runtime.mkdir(mode=0o700)
    units = prefix / 'lib' / 'systemd' / 'user'
    names = []
    for proto, port in RELAY_PORTS.items():
        socket_unit = (units / f'tokend-relay-{proto}.socket').read_text()
        assert f'ListenStream=127.0.0.1:{port}\n' in socket_unit
        assert 'Accept=yes\n' in socket_unit
        service = (units / f'tokend-relay-{proto}@.service').read_text()
        assert f'ExecStart={prefix}/bin/tokend relay {proto}\n' in service
        assert 'StandardInput=socket\n' in service
        names += [f'tokend-relay-{proto}.socket', f'tokend-relay-{proto}@.service']
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), MANPATH=str(prefix / 'share' / 'man'),
               SYSTEMD_LOG_LEVEL='notice')
    r = subprocess.run(['systemd-analyze', 'verify', '--user', *[str(units / u) for u in names]],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize('example', ['microsoft', 'google', 'generic'])
def test_examples_parse(example, tmp_path):
    conf = REPO / 'data' / 'examples' / f'{example}.conf'
    env = {'PATH': os.environ['PATH'], 'HOME': str(tmp_path),
           'XDG_STATE_HOME': str(tmp_path / 'state')}
    r = subprocess.run([str(TOKEND), '-c', str(conf), 'status', '--json'], capture_output=True,
                       text=True, env=env, timeout=10)
    assert r.returncode == 0, r.stderr


def test_completions_are_valid_scripts():
    assert subprocess.run(['bash', '-n', str(REPO / 'data' / 'completions' / 'tokend.bash')]
                          ).returncode == 0
    # zsh and fish are installed by scripts/setup: a missing one fails.
    for shell, name in (('zsh', '_tokend'), ('fish', 'tokend.fish')):
        assert shutil.which(shell), f'{shell} is not installed (scripts/setup installs it)'
        flag = ['-n'] if shell == 'zsh' else ['--no-execute']
        assert subprocess.run([shell, *flag, str(REPO / 'data' / 'completions' / name)]
                              ).returncode == 0


def commands_in_code():
    text = (REPO / 'src' / 'cli' / 'verbs.c').read_text()
    table = text[text.index('static const struct verb verbs[]'):]
    return re.findall(r'\{"([a-z]+)", verb_', table)


def keys_in_code():
    text = (REPO / 'src' / 'config' / 'config_keys.c').read_text()
    table = text[text.index('static const struct key_spec keys[]'):]
    table = table[:table.index('};')]
    return re.findall(r'\{"([a-z_]+)", KEY_', table)


def test_every_command_is_documented():
    commands = commands_in_code()
    assert len(commands) >= 6
    man = (REPO / 'doc' / 'tokend.1.scd').read_text()
    readme = (REPO / 'README.md').read_text()
    usage = subprocess.run([str(TOKEND), '--help'], capture_output=True, text=True).stdout
    bash = (REPO / 'data' / 'completions' / 'tokend.bash').read_text()
    for c in commands:
        assert f'*{c}*' in man, c
        assert f'tokend {c}' in readme, c
        assert f'  {c} ' in usage, c
        assert c in bash, c


def test_every_config_key_is_documented():
    keys = keys_in_code()
    assert len(keys) >= 25
    man = (REPO / 'doc' / 'tokend.conf.5.scd').read_text()
    for k in keys:
        assert f'*{k}*' in man, k


def doc_files():
    return ([REPO / 'README.md'] + sorted((REPO / 'doc').glob('*.scd')) +
            sorted((REPO / 'doc' / 'recipes').glob('*')) +
            sorted((REPO / 'data' / 'examples').glob('*')))


def test_nativeclient_is_never_recommended():
    """Since about December 2025 Microsoft's nativeclient redirect ends on a
    /common/wrongplace page for many users: every paragraph that names it
    warns of that, no example uses it, and the docs teach the localhost
    paste instead."""
    for path in doc_files():
        text = path.read_text()
        for para in re.split(r'\n\s*\n', text):
            if 'nativeclient' in para:
                assert 'wrongplace' in para, (path.name, para)
        if 'examples' in path.parts:
            assert 'nativeclient' not in text, path.name
    for path in (REPO / 'README.md', REPO / 'doc' / 'tokend.1.scd',
                 REPO / 'doc' / 'tokend.conf.5.scd', REPO / 'data' / 'examples' / 'microsoft.conf'):
        text = ' '.join(path.read_text().split())
        assert 'http://localhost:PORT/' in text and 'paste' in text, path.name
    assert 'Mobile and desktop applications' in ' '.join((REPO / 'README.md').read_text().split())


THUNDERBIRD = '9e5f94bc-e8a4-4e73-b8be-63364c29d753'


def test_the_borrowed_microsoft_client_id_is_labelled():
    """Wherever the docs show Thunderbird's client id, they say whose it
    is; the README says what using it means and how to register one's
    own."""
    for path in doc_files():
        for para in re.split(r'\n\s*\n', path.read_text()):
            if THUNDERBIRD in para:
                assert 'Thunderbird' in para, (path.name, para)
    readme = ' '.join((REPO / 'README.md').read_text().split())
    for words in ('Mozilla', 'public client', 'block', 'consent', 'Entra admin center',
                  'Public client/native', '`http://localhost`', 'IMAP.AccessAsUser.All',
                  'POP.AccessAsUser.All', 'SMTP.Send', 'offline_access',
                  'Application (client) ID'):
        assert words in readme, words


def test_ews_is_shown_as_legacy_and_graph_instead():
    """Microsoft blocks EWS for applications outside Microsoft from
    1 October 2026: every mention says so, and the token set examples use
    Microsoft Graph."""
    for path in doc_files():
        text = path.read_text()
        for para in re.split(r'\n\s*\n', text):
            if 'EWS' in para:
                assert 'legacy' in para or 'blocks' in para, (path.name, para)
                assert 'October 2026' in ' '.join(para.split()), (path.name, para)
        for line in text.splitlines():
            if 'token_sets =' in line:
                assert 'EWS' not in line and 'graph.microsoft.com' in line, (path.name, line)
