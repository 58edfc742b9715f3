"""What `meson install` ships for system mode (tokend --system): the
system manager's tokend-refresh.service/.timer (checked with
systemd-analyze verify, and scored with systemd-analyze security
--offline=yes, which systemd 252 has), sysusers.d and tmpfiles.d files
(checked with systemd-sysusers and systemd-tmpfiles against a private
root), the commented /etc/tokend/config example.  The units are not run
here: the test machine has no systemd as PID 1; test_system_mode.py runs
their command line as the service user with setpriv, as the unit would."""

import os
import re
import subprocess

from test_install import installed  # noqa: F401  (the module's install)

SYSTEM = ['lib/systemd/system/tokend-refresh.service', 'lib/systemd/system/tokend-refresh.timer',
          'lib/systemd/system/tokend-relay-smtp.socket',
          'lib/systemd/system/tokend-relay-smtp@.service',
          'lib/systemd/system/tokend-broker.socket', 'lib/systemd/system/tokend-broker@.service',
          'lib/sysusers.d/tokend.conf', 'lib/tmpfiles.d/tokend.conf',
          'share/doc/tokend/examples/system/config']


def test_system_pieces_are_installed(installed):  # noqa: F811
    prefix, dest = installed
    for rel in SYSTEM:
        assert (prefix / rel).is_file(), rel
        assert (dest / str(prefix).lstrip('/') / rel).is_file(), rel
    # Every line of the example is a comment: it activates nothing.
    text = (prefix / SYSTEM[-1]).read_text()
    assert all(not line.strip() or line.startswith('#') for line in text.splitlines())


def test_system_units_verify_and_their_hardening_scores(installed, capsys):  # noqa: F811
    prefix, _ = installed
    units = prefix / 'lib' / 'systemd' / 'system'
    service = (units / 'tokend-refresh.service').read_text()
    assert f'ExecStart={prefix}/bin/tokend --system -q refresh' in service
    for line in ('User=tokend', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/tokend /run/tokend',
                 'NoNewPrivileges=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=\n',
                 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
                 'SystemCallFilter=@system-service'):
        assert line in service, line
    # Shipped disabled: the service has no [Install]; the timer is enabled by the admin.
    assert '[Install]' not in service
    env = dict(os.environ, MANPATH=str(prefix / 'share' / 'man'), SYSTEMD_LOG_LEVEL='notice')
    r = subprocess.run(['systemd-analyze', 'verify', str(units / 'tokend-refresh.service'),
                        str(units / 'tokend-refresh.timer')],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(['systemd-analyze', 'security', '--offline=yes', '--no-pager',
                        str(units / 'tokend-refresh.service')],
                       capture_output=True, text=True, env=env, timeout=60)
    m = re.search(r'Overall exposure level for tokend-refresh.service: ([0-9.]+) (\w+)', r.stdout)
    assert m, r.stdout + r.stderr
    with capsys.disabled():
        print(f'\nsystemd-analyze security --offline=yes: tokend-refresh.service exposure '
              f'{m.group(1)} {m.group(2)} (0 best, 10 worst)')
    assert float(m.group(1)) <= 2.0, r.stdout


def test_system_relay_units_verify_and_their_hardening_scores(installed, capsys):  # noqa: F811
    """The relay Postfix sends through (test_system_postfix.py runs its
    command line under the unit's user): socket-activated, one process per
    connection as the tokend user, shipped disabled like the timer."""
    prefix, _ = installed
    units = prefix / 'lib' / 'systemd' / 'system'
    service = (units / 'tokend-relay-smtp@.service').read_text()
    assert f'ExecStart={prefix}/bin/tokend --system relay smtp' in service
    for line in ('User=tokend', 'StandardInput=socket', 'ProtectSystem=strict',
                 'ReadWritePaths=/var/lib/tokend /run/tokend', 'NoNewPrivileges=yes',
                 'CapabilityBoundingSet=\n', 'SystemCallFilter=@system-service'):
        assert line in service, line
    assert '[Install]' not in service
    socket = (units / 'tokend-relay-smtp.socket').read_text()
    assert 'ListenStream=127.0.0.1:1587' in socket and 'Accept=yes' in socket
    env = dict(os.environ, MANPATH=str(prefix / 'share' / 'man'), SYSTEMD_LOG_LEVEL='notice')
    r = subprocess.run(['systemd-analyze', 'verify', str(units / 'tokend-relay-smtp.socket'),
                        str(units / 'tokend-relay-smtp@.service')],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # An instance, as the socket starts it, for the offline score.
    instance = units.parent / 'tokend-relay-smtp@1.service'
    instance.write_text(service)
    try:
        r = subprocess.run(['systemd-analyze', 'security', '--offline=yes', '--no-pager',
                            str(instance)], capture_output=True, text=True, env=env, timeout=60)
    finally:
        instance.unlink()
    m = re.search(r'Overall exposure level for tokend-relay-smtp@1.service: ([0-9.]+) (\w+)',
                  r.stdout)
    assert m, r.stdout + r.stderr
    with capsys.disabled():
        print(f'\nsystemd-analyze security --offline=yes: tokend-relay-smtp@.service exposure '
              f'{m.group(1)} {m.group(2)} (0 best, 10 worst)')
    assert float(m.group(1)) <= 2.5, r.stdout


def test_sysusers_and_tmpfiles_make_the_user_and_folders(installed, tmp_path):  # noqa: F811
    prefix, _ = installed
    root = tmp_path / 'root'
    (root / 'etc').mkdir(parents=True)
    for name in ('passwd', 'group'):
        (root / 'etc' / name).write_text('root:x:0:0:root:/root:/bin/bash\n' if name == 'passwd'
                                         else 'root:x:0:\n')
    sysusers = prefix / 'lib' / 'sysusers.d' / 'tokend.conf'
    r = subprocess.run(['systemd-sysusers', f'--root={root}', str(sysusers)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    entry = next(line for line in (root / 'etc' / 'passwd').read_text().splitlines()
                 if line.startswith('tokend:'))
    fields = entry.split(':')
    assert int(fields[2]) < 1000 and fields[5:] == ['/var/lib/tokend', '/usr/sbin/nologin']
    assert '\nm tokend' not in sysusers.read_text()  # the reader groups are the admin's
    tmpfiles = prefix / 'lib' / 'tmpfiles.d' / 'tokend.conf'
    r = subprocess.run(['systemd-tmpfiles', '--create', f'--root={root}', str(tmpfiles)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    uid = int(fields[2])
    for path, want in (('var/lib/tokend', 0o700), ('run/tokend', 0o755)):
        st = os.stat(root / path)
        assert (st.st_uid, st.st_mode & 0o7777) == (uid, want), path


def test_broker_units_verify_and_their_hardening_scores(installed, capsys):  # noqa: F811
    """tokend-broker.socket starts one tokend-broker@.service per request,
    as tokend, on a socket only the readers' group may open; shipped
    disabled (the socket has an [Install] for the admin's enable)."""
    prefix, _ = installed
    units = prefix / 'lib' / 'systemd' / 'system'
    sock = (units / 'tokend-broker.socket').read_text()
    for line in ('ListenStream=/run/tokend/broker\n', 'SocketGroup=tokend-readers\n',
                 'SocketMode=0660\n', 'Accept=yes\n'):
        assert line in sock, line
    service = (units / 'tokend-broker@.service').read_text()
    assert f'ExecStart={prefix}/bin/tokend --system broker\n' in service
    refresh = (units / 'tokend-refresh.service').read_text()
    hardening = [line for line in refresh.splitlines()
                 if line.split('=')[0] in ('User', 'ProtectSystem', 'ReadWritePaths',
                                          'NoNewPrivileges', 'PrivateTmp', 'CapabilityBoundingSet',
                                          'RestrictAddressFamilies', 'SystemCallFilter')]
    for line in hardening + ['StandardInput=socket', 'StandardOutput=socket']:
        assert line + '\n' in service, line
    assert '[Install]' not in service
    env = dict(os.environ, MANPATH=str(prefix / 'share' / 'man'), SYSTEMD_LOG_LEVEL='notice')
    r = subprocess.run(['systemd-analyze', 'verify', str(units / 'tokend-broker.socket'),
                        str(units / 'tokend-broker@.service')],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout + r.stderr == '', r.stdout + r.stderr
    # An instance, as the socket starts it.
    instance = units.parent / 'tokend-broker@0.service'
    instance.write_text(service)
    try:
        r = subprocess.run(['systemd-analyze', 'security', '--offline=yes', '--no-pager',
                            str(instance)], capture_output=True, text=True, env=env, timeout=60)
    finally:
        instance.unlink()
    m = re.search(r'Overall exposure level for tokend-broker@0.service: ([0-9.]+) (\w+)', r.stdout)
    assert m, r.stdout + r.stderr
    with capsys.disabled():
        print(f'\nsystemd-analyze security --offline=yes: tokend-broker@.service exposure '
              f'{m.group(1)} {m.group(2)} (0 best, 10 worst)')
    assert float(m.group(1)) <= 2.0, r.stdout
