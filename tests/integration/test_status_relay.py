"""`tokend status` shows where the relay listens: each `tokend relay
--listen` keeps a runtime file (its pid, configuration, protocol and the
addresses it bound), removed when it stops; status believes it only while
the process lives and a listening socket of ours holds the address.  The
socket units (tokend-relay-*.socket) are asked of the service manager with
`systemctl show` when one is reachable: this machine has no systemd as
PID 1 and no user manager, so here status must go without them, bounded,
whatever the runtime folder holds; tests/unit/test_relayrun.c reads
`systemctl show` output."""

import json
import os
import signal
import socket

from harness.dovecot import free_port
from harness.wait import wait_until

TIMEOUT = 30


def relay_rows(tokend, env=None):
    r = tokend.run('status', env=env)
    assert r.returncode == 0, r.stderr
    text = r.stdout.split('\nrelay:\n', 1)
    assert len(text) == 2, r.stdout
    return text[1]


def relay_json(tokend, env=None):
    r = tokend.run('status', '--json', env=env)
    assert r.returncode == 0, r.stderr
    accounts = json.loads(r.stdout)
    assert all(a['relay'] == accounts[0]['relay'] for a in accounts)
    return accounts[0]['relay']


def listening(port, family=socket.AF_INET, host='127.0.0.1'):
    try:
        with socket.socket(family) as s:
            s.settimeout(1)
            s.connect((host, port))
        return True
    except OSError:
        return False


def test_listen_relay_is_shown_while_it_runs(tokend):
    tokend.account()
    tokend.account('home')
    assert 'none listening' in relay_rows(tokend)
    assert relay_json(tokend) == []
    smtp, imap4, imap6 = free_port(), free_port(), free_port()
    relays = [tokend.popen('relay', '--listen', f'127.0.0.1:{smtp}', 'smtp'),
              tokend.popen('relay', '--listen', f'127.0.0.1:{imap4}', '--listen',
                           f'[::1]:{imap6}', 'imap')]
    try:
        wait_until(lambda: listening(smtp) and listening(imap4) and
                   listening(imap6, socket.AF_INET6, '::1'), 10, 'the relays listen')
        wait_until(lambda: len(relay_json(tokend)) == 3, 10, 'status shows three listeners')
        rows = {(r['protocol'], r['address']): r for r in relay_json(tokend)}
        assert set(rows) == {('smtp', f'127.0.0.1:{smtp}'), ('imap', f'127.0.0.1:{imap4}'),
                             ('imap', f'[::1]:{imap6}')}, rows
        smtp_row = rows[('smtp', f'127.0.0.1:{smtp}')]
        assert smtp_row['via'] == 'tokend relay --listen' and smtp_row['active'] is True
        assert smtp_row['pid'] == relays[0].pid
        assert smtp_row['state'] == f'listening (process {relays[0].pid})'
        text = relay_rows(tokend)
        assert f'smtp 127.0.0.1:{smtp}' in text and 'tokend relay --listen: listening' in text
        assert f'[::1]:{imap6}' in text, text
    finally:
        for r in relays:
            r.terminate()
            r.communicate(timeout=TIMEOUT)
    # Stopped: their runtime files went with them.
    assert relay_json(tokend) == []
    assert not list((tokend.state / '.relay').glob('*.json'))


def test_a_killed_listener_is_said_to_be_gone(tokend):
    tokend.account()
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'pop3')
    wait_until(lambda: listening(port), 10, 'the relay listens')
    wait_until(lambda: relay_json(tokend), 10, 'status shows the listener')
    relay.send_signal(signal.SIGKILL)
    relay.communicate(timeout=TIMEOUT)
    [row] = relay_json(tokend)
    assert row['active'] is False and row['pid'] == relay.pid, row
    assert row['state'] == f'process {relay.pid} is gone (its runtime file is left over)', row


def test_another_configurations_relay_is_not_shown(tokend, tmp_path):
    tokend.account()
    other = tmp_path / 'other.conf'
    other.write_text(tokend.config.read_text())
    port = free_port()
    relay = tokend.popen('-c', str(other), 'relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    try:
        wait_until(lambda: listening(port), 10, 'the relay listens')
        wait_until(lambda: list((tokend.state / '.relay').glob('*.json')), 10,
                   'the runtime file is written')
        assert relay_json(tokend) == []
        r = tokend.run('-c', str(other), 'status', '--json')
        assert [x['address'] for x in json.loads(r.stdout)[0]['relay']] == [f'127.0.0.1:{port}']
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)


def test_runtime_folder_and_unreachable_service_manager(tokend, tmp_path):
    """With a runtime folder of its own, the file goes there; a service
    manager socket that nothing answers on gives no rows and no error."""
    tokend.account()
    runtime = tmp_path / 'run'
    (runtime / 'systemd').mkdir(parents=True)
    runtime.chmod(0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(runtime / 'systemd' / 'private'))  # bound, never listening
    env = {'XDG_RUNTIME_DIR': str(runtime)}
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp', env=env)
    try:
        wait_until(lambda: listening(port), 10, 'the relay listens')
        wait_until(lambda: list((runtime / 'tokend' / 'relay').glob('*.json')), 10,
                   'the runtime file is in XDG_RUNTIME_DIR')
        [name] = os.listdir(runtime / 'tokend' / 'relay')
        assert name == f'{relay.pid}.json'
        assert (runtime / 'tokend' / 'relay').stat().st_mode & 0o777 == 0o700
        rows = relay_json(tokend, env=env)
        assert [(r['protocol'], r['active']) for r in rows] == [('smtp', True)], rows
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)
        dead.close()
    assert not (runtime / 'tokend' / 'relay' / f'{relay.pid}.json').exists()
