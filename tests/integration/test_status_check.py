"""`tokend status --check` for monitors (Nagios, Icinga, Zabbix): the
monitoring plugins convention, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN,
and a first line `TOKEND LEVEL - accounts in trouble | perfdata`.  Driven
against the real authorization server; time is moved by aging state.json
as test_reauth.py does.  The system mode run is in test_system_mode.py."""

import json
import re

from test_reauth import age_state

DAY = 86400
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def check(tokend, *args):
    r = tokend.run('status', '--check', *args)
    first = r.stdout.splitlines()[0] if r.stdout else ''
    summary, _, perf = first.partition(' |')
    return r.returncode, summary, perf, r


def seconds(perf, label):
    m = re.search(rf"'{re.escape(label)}'=(\d+)s;", perf)
    assert m, perf
    return int(m.group(1))


def test_a_signed_in_account_is_ok_with_seconds_left_as_perfdata(tokend):
    tokend.account(signin_lifetime='7d')
    tokend.obtain()
    code, summary, perf, r = check(tokend)
    assert code == OK, r.stdout + r.stderr
    assert summary == 'TOKEND OK - 1 account, none in trouble'
    assert 3000 < seconds(perf, 'work token') <= 3600
    assert 6 * DAY < seconds(perf, 'work signin') <= 7 * DAY
    # The warning threshold is notify_before (2 days by default).
    assert f"'work signin'={seconds(perf, 'work signin')}s;{2 * DAY}:;1:;0" in perf
    assert 'work: OK\n' in r.stdout
    # status and status --json are unchanged.
    assert tokend.run('status').returncode == 0
    assert json.loads(tokend.run('status', '--json').stdout)[0]['account'] == 'work'


def test_a_signin_due_within_notify_before_warns(tokend):
    tokend.account(signin_lifetime='7d')
    tokend.obtain()
    age_state(tokend, 6 * DAY)
    code, summary, perf, r = check(tokend)
    assert code == WARNING, r.stdout + r.stderr
    assert re.fullmatch(r'TOKEND WARNING - work: sign-in due in 2[34] h', summary), summary
    # notify_before = 0 turns the warning off.
    tokend.accounts['work']['notify_before'] = '0'
    tokend.write_config()
    assert check(tokend)[0] == OK


def test_needed_signins_and_a_failing_refresh_are_critical_and_named(tokend, authserver,
                                                                    make_authserver):
    tokend.account('work')
    tokend.obtain('work')
    private = make_authserver()  # stopped below
    tokend.account('home', server=private)
    tokend.obtain('home', env={'TOKEND_TEST_CA': private.ca_file})
    tokend.account('spent')
    tokend.obtain('spent')
    tokend.account('new')
    # Someone used spent's refresh token: its copy is refused.
    assert authserver.refresh(tokend.stored_refresh_token('spent'))[0] == 200
    assert tokend.run('refresh', '--force', 'spent').returncode == 77
    code, summary, perf, r = check(tokend)
    assert code == CRITICAL, r.stdout + r.stderr
    assert summary == 'TOKEND CRITICAL - spent: sign-in needed; new: sign-in needed'
    assert "'work token'=" in perf and "'home token'=" in perf
    # Only the accounts named are judged.
    assert check(tokend, 'work', 'home')[:2] == (OK, 'TOKEND OK - 2 accounts, none in trouble')
    # The server gone: refresh fails, and says so until it works again.
    private.stop()
    r = tokend.run('refresh', '--force', 'home', env={'TOKEND_TEST_CA': private.ca_file})
    assert r.returncode == 75, r.stderr
    code, summary, _, r = check(tokend, 'work', 'home')
    assert (code, summary) == (CRITICAL, 'TOKEND CRITICAL - home: refresh failing (exit 75)')
    assert 'work: OK\n' in r.stdout


def test_an_unreadable_state_is_unknown_but_critical_wins(tokend):
    tokend.account('work')
    tokend.obtain('work')
    tokend.account('new')
    (tokend.state / 'work' / 'state.json').write_text('{not json')
    code, summary, perf, r = check(tokend, 'work')
    assert (code, summary) == (UNKNOWN, 'TOKEND UNKNOWN - work: state unreadable'), r.stdout
    assert "'work token'" not in perf
    # A critical account weighs more than an unknown one.
    assert check(tokend)[:2] == (CRITICAL, 'TOKEND CRITICAL - work: state unreadable; '
                                           'new: sign-in needed')


def test_a_configuration_that_cannot_be_used_is_unknown(tokend):
    tokend.account('work')
    tokend.write_config(extra='[account broken]\nprovider = nosuch\n')
    code, summary, _, r = check(tokend)
    assert code == UNKNOWN and summary.startswith('TOKEND UNKNOWN - '), r.stdout
    assert r.stderr.startswith('tokend: ')
    code, summary, _, r = check(tokend, 'nosuch')
    assert code == UNKNOWN and summary.startswith('TOKEND UNKNOWN - '), r.stdout
    # --check and --json exclude each other (a usage error, 64).
    assert tokend.run('status', '--check', '--json').returncode == 64
