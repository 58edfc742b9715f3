"""Warning ahead of a needed sign-in: `status` says when a new sign-in will
be needed and by which rule, `refresh` runs notify_cmd once when that moment
is near.  The real authorization server for the generic rules, the replays
of Microsoft and Google (test_microsoft.py) for theirs.  Time is simulated
by moving the times in state.json back, as if the sign-in were older."""

import json
import time

from conftest import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL
from harness.scripted import Reply
from test_microsoft import TOKEN_PATH, certs, google, ms, ms_error, ms_success  # noqa: F401

DAY = 86400


def state_path(tokend, name='work'):
    return tokend.state / name / 'state.json'


def read_state(tokend, name='work'):
    return json.loads(state_path(tokend, name).read_text())


def age_state(tokend, seconds, name='work', expire=False, **extra):
    """The sign-in (and its last refresh) as if they happened `seconds`
    earlier; expire: the access token too."""
    st = read_state(tokend, name)
    for key in ('signed_in_at', 'last_refresh', 'obtained_at'):
        if st.get(key):
            st[key] -= seconds
    if expire:
        st['expires_at'] = int(time.time()) - 60
    st.update(extra)
    state_path(tokend, name).write_text(json.dumps(st))
    # The refresh schedule was written before the clock "moved".
    for f in tokend.state.glob('due-*.json'):
        f.unlink()
    return st


def status_of(tokend, name='work'):
    r = tokend.run('status', '--json', name)
    s = json.loads(r.stdout)[0]
    # 77 when the account has lost its sign-in.
    assert r.returncode == (EX_NOPERM if s['store'] and s['needs_signin'] else EX_OK), r.stderr
    return s


def status_text(tokend, name='work'):
    r = tokend.run('status', name)
    assert r.returncode in (EX_OK, EX_NOPERM), r.stderr
    return next(l for l in r.stdout.splitlines() if l.startswith('  next sign-in:'))


class Notes:
    """A notify_cmd that appends each run's environment to a file."""

    def __init__(self, tmp_path):
        self.out = tmp_path / 'notes'
        self.script = tmp_path / 'notify'
        self.script.write_text(f'#!/bin/sh\n{{ echo ---; env; }} >> "{self.out}"\n')
        self.script.chmod(0o755)

    def runs(self):
        if not self.out.exists():
            return []
        text = self.out.read_text()
        return [dict(l.split('=', 1) for l in part.splitlines() if '=' in l)
                for part in text.split('---\n')[1:]]


def test_signin_lifetime_warns_once_and_a_new_signin_resets(tokend, tmp_path):
    notes = Notes(tmp_path)
    tokend.account(signin_lifetime='7d', notify_cmd=str(notes.script))
    tokend.obtain()
    st = read_state(tokend)
    s = status_of(tokend)
    assert s['signin_expected_by'] == st['signed_in_at'] + 7 * DAY
    assert s['signin_rule'] == 'signin_lifetime'
    assert s['signin_warned_at'] is None
    assert 'signin_lifetime = 7 d' in status_text(tokend)
    # Fresh: nothing to warn about.
    assert tokend.run('refresh').returncode == EX_OK
    assert notes.runs() == []

    # Signed in 6 days ago: the sign-in ends within notify_before (2 days).
    st = age_state(tokend, 6 * DAY)
    r = tokend.run('refresh')
    assert r.returncode == EX_OK, r.stderr
    assert 'a new sign-in will be needed by' in r.stderr and 'run: tokend obtain work' in r.stderr
    runs = notes.runs()
    assert len(runs) == 1
    assert runs[0]['TOKEND_ACCOUNT'] == 'work'
    assert runs[0]['TOKEND_COMMAND'] == 'tokend obtain work'
    assert 'signin_lifetime = 7 d' in runs[0]['TOKEND_REASON']
    assert int(runs[0]['TOKEND_SIGNIN_BY']) == st['signed_in_at'] + 7 * DAY
    secrets = (tokend.token_file().read_text().strip(),
               tokend.stored_refresh_token().strip())
    assert not any(s in notes.out.read_text() for s in secrets)
    assert 'secret' not in json.dumps(read_state(tokend)).lower()

    # Once: neither the next tick nor a refresh through the engine warns again.
    assert tokend.run('refresh').returncode == EX_OK
    assert tokend.run('refresh', '--force').returncode == EX_OK
    assert tokend.run('refresh', 'work').returncode == EX_OK
    assert len(notes.runs()) == 1
    s = status_of(tokend)
    assert s['signin_warned_at'] and s['signin_expected_by'] == st['signed_in_at'] + 7 * DAY
    assert '; warned ' in status_text(tokend)

    # A new sign-in starts over: warned again when it, too, nears its end.
    tokend.obtain()
    assert status_of(tokend)['signin_warned_at'] is None
    age_state(tokend, 6 * DAY)
    assert tokend.run('-v', 'refresh', 'work').returncode == EX_OK
    assert len(notes.runs()) == 2


def test_warning_needs_no_notify_cmd_and_notify_before_zero_turns_it_off(tokend):
    tokend.account(signin_lifetime='36h')
    tokend.obtain()
    age_state(tokend, DAY)
    r = tokend.run('refresh', 'work', '--force')
    assert r.returncode == EX_OK
    assert 'a new sign-in will be needed by' in r.stderr
    assert 'signin_lifetime = 1 d 12 h' in r.stderr

    tokend.accounts['work']['notify_before'] = '0'
    tokend.write_config()
    tokend.obtain()
    age_state(tokend, DAY)
    r = tokend.run('refresh', 'work', '--force')
    assert r.returncode == EX_OK and 'will be needed' not in r.stderr
    assert status_of(tokend)['signin_warned_at'] is None


def test_idle_tick_loads_the_engine_only_when_the_warning_is_due(tokend, tmp_path):
    notes = Notes(tmp_path)
    lead = 20
    # Warned `lead` seconds after signing in: notify_before is 2 days.
    tokend.account(signin_lifetime=str(2 * DAY + lead), notify_cmd=str(notes.script))
    tokend.obtain()
    warn_at = read_state(tokend)['signed_in_at'] + lead
    assert tokend.run('refresh').returncode == EX_OK
    assert time.time() < warn_at - 2, 'too slow to test the idle tick'
    # Nothing due: the launcher answers alone.
    r = tokend.run('refresh', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and 'libcurl' not in r.stderr
    assert notes.runs() == []
    # The clock is what tokend reads: there is nothing but time to wait for.
    time.sleep(max(warn_at + 1 - time.time(), 0))
    # The warning is due: the tick goes to the engine, which warns.
    r = tokend.run('refresh', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and 'libcurl' in r.stderr
    assert len(notes.runs()) == 1
    # Warned: idle again.
    r = tokend.run('refresh', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and 'libcurl' not in r.stderr
    assert len(notes.runs()) == 1


def test_refresh_naming_the_account_warns_as_the_timer_does(tokend, tmp_path):
    notes = Notes(tmp_path)
    lead = 6
    tokend.account(signin_lifetime=str(2 * DAY + lead), notify_cmd=str(notes.script))
    tokend.obtain()
    warn_at = read_state(tokend)['signed_in_at'] + lead
    # Nothing due: the launcher answers alone, and says nothing.
    r = tokend.run('refresh', 'work', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and 'libcurl' not in r.stderr
    assert notes.runs() == []
    assert time.time() < warn_at - 1, 'too slow to test the idle refresh'
    time.sleep(max(warn_at + 1 - time.time(), 0))
    # The warning is due: `refresh ACCOUNT` gives it, as `refresh` does.
    r = tokend.run('refresh', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'tokend: warning: work: a new sign-in will be needed by ' in r.stderr
    assert 'run: tokend obtain work' in r.stderr
    assert len(notes.runs()) == 1
    # Warned: the launcher's again, silent.
    r = tokend.run('refresh', 'work', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and 'libcurl' not in r.stderr
    assert len(notes.runs()) == 1


def test_durations_are_checked(tokend):
    for bad in ('soon', '7y', '-1d', '3651d', 'd'):
        tokend.account(signin_lifetime=bad)
        r = tokend.run('status')
        assert r.returncode == EX_CONFIG, bad
        assert 'signin_lifetime' in r.stderr and 'duration' in r.stderr, r.stderr
    for good, seconds in (('7d', 7 * DAY), ('36h', 36 * 3600), ('2w', 14 * DAY),
                          ('90m', 5400), ('600', 600)):
        tokend.account(signin_lifetime=good)
        tokend.obtain()
        s = status_of(tokend)
        assert s['signin_expected_by'] == read_state(tokend)['signed_in_at'] + seconds, good


def test_generic_without_a_rule_is_unknown(tokend):
    tokend.account()
    tokend.obtain()
    s = status_of(tokend)
    assert s['signin_expected_by'] is None and s['signin_rule'] is None
    assert 'unknown' in status_text(tokend) and 'signin_lifetime' in status_text(tokend)


# Microsoft ------------------------------------------------------------------

def test_microsoft_90_day_inactivity(tokend, ms, tmp_path):
    notes = Notes(tmp_path)
    tokend.accounts['work']['notify_cmd'] = str(notes.script)
    tokend.write_config()
    assert tokend.run('obtain', 'work').returncode == EX_OK
    st = read_state(tokend)
    s = status_of(tokend)
    assert s['signin_rule'] == 'microsoft-inactivity'
    assert s['signin_expected_by'] == st['signed_in_at'] + 90 * DAY
    assert 'estimated: Microsoft 90-day inactivity' in status_text(tokend)

    # Unused for 89 days, and the refresh works: the 90 days start again.
    age_state(tokend, 89 * DAY, expire=True)
    r = tokend.run('refresh')
    assert r.returncode == EX_OK, r.stderr
    assert notes.runs() == []
    st = read_state(tokend)
    assert status_of(tokend)['signin_expected_by'] == st['last_refresh'] + 90 * DAY

    # Unused for 89 days and the server does not answer: warned, once.
    st = age_state(tokend, 89 * DAY, expire=True)
    ms.script(TOKEN_PATH, Reply(503, 'down for maintenance'))
    assert tokend.run('refresh').returncode == EX_TEMPFAIL
    runs = notes.runs()
    assert len(runs) == 1
    assert 'Microsoft 90-day inactivity' in runs[0]['TOKEND_REASON']
    assert int(runs[0]['TOKEND_SIGNIN_BY']) == st['last_refresh'] + 90 * DAY
    assert tokend.run('refresh').returncode == EX_TEMPFAIL
    assert len(notes.runs()) == 1


def test_microsoft_sign_in_frequency_is_recorded_and_used(tokend, ms):
    assert tokend.run('obtain', 'work').returncode == EX_OK
    # Signed in 8 days ago, last refreshed a day ago; now the policy says no.
    age_state(tokend, 8 * DAY, expire=True)
    st = read_state(tokend)
    st['last_refresh'] = st['signed_in_at'] + 7 * DAY
    state_path(tokend).write_text(json.dumps(st))
    ms.script(TOKEN_PATH, ms_error('invalid_grant', 70043, 'The refresh token has expired or is '
                                   'invalid due to sign-in frequency checks by conditional '
                                   'access.'))
    before = int(time.time())
    r = tokend.run('refresh')
    assert r.returncode == EX_NOPERM and 'AADSTS70043' in r.stderr
    s = status_of(tokend)
    assert s['needs_signin'] is True
    assert before <= s['signin_frequency_seen_at'] <= time.time()
    assert s['signin_frequency_interval'] == 7 * DAY
    text = status_text(tokend)
    assert text.startswith('  next sign-in: now (AADSTS70043 on ')
    # Another tick with the same answer keeps the first sighting.
    seen = s['signin_frequency_seen_at']
    time.sleep(1.1)  # the next tick in a later second: a new sighting would show
    assert tokend.run('refresh').returncode == EX_NOPERM
    assert status_of(tokend)['signin_frequency_seen_at'] == seen

    # The next sign-in is expected to last as long as the last one did.
    ms.script(TOKEN_PATH, ms_success())
    assert tokend.run('obtain', 'work').returncode == EX_OK
    st = read_state(tokend)
    s = status_of(tokend)
    assert s['signin_rule'] == 'sign-in-frequency'
    assert s['signin_expected_by'] == st['signed_in_at'] + 7 * DAY
    text = status_text(tokend)
    assert 'estimated: Conditional Access sign-in frequency' in text
    assert 'AADSTS70043' in text and 'worked 7 d' in text


def test_microsoft_refresh_token_expires_in_is_authoritative(tokend, ms):
    # A single-page-app registration: Microsoft says its refresh tokens live
    # 24 hours.
    ms.script(TOKEN_PATH, ms_success(refresh_token_expires_in=86399))
    before = int(time.time())
    assert tokend.run('obtain', 'work').returncode == EX_OK
    s = status_of(tokend)
    assert s['signin_rule'] == 'server'
    assert before + 86399 <= s['signin_expected_by'] <= time.time() + 86399
    assert 'server said' in status_text(tokend)
    # A rotated refresh token without the word: back to the estimate.
    ms.script(TOKEN_PATH, ms_success(refresh='0.AQoA-ms-refresh-2'))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert status_of(tokend)['signin_rule'] == 'microsoft-inactivity'


# Google ---------------------------------------------------------------------

def test_google_testing_app_refresh_token_expires_in(tokend, google, tmp_path):
    notes = Notes(tmp_path)
    tokend.accounts['work'].update(notify_cmd=str(notes.script))
    tokend.write_config()
    # Without a word from the server, Google's rule is not known here.
    assert tokend.run('obtain', 'work').returncode == EX_OK
    s = status_of(tokend)
    assert s['signin_expected_by'] is None
    assert 'signin_lifetime = 7d' in status_text(tokend)

    # An app in Testing: Google says the refresh token lives 7 days.
    google.script('/token', Reply(200, {'access_token': 'ya29.a0-google-access',
                                        'expires_in': 3599, 'token_type': 'Bearer',
                                        'refresh_token': '1//0g-google-refresh',
                                        'refresh_token_expires_in': 604799,
                                        'scope': 'https://mail.google.com/'}))
    before = int(time.time())
    assert tokend.run('obtain', 'work').returncode == EX_OK
    s = status_of(tokend)
    assert s['signin_rule'] == 'server'
    assert before + 604799 <= s['signin_expected_by'] <= time.time() + 604799
    assert notes.runs() == []
    # A refresh tells the time left; Google does not rotate the token.
    google.script('/token', Reply(200, {'access_token': 'ya29.a0-second', 'expires_in': 3599,
                                        'token_type': 'Bearer',
                                        'refresh_token_expires_in': 86400}))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    s = status_of(tokend)
    assert s['signin_rule'] == 'server' and s['signin_expected_by'] <= time.time() + 86400
    # Within notify_before: the same refresh warned.
    runs = notes.runs()
    assert len(runs) == 1 and 'server said' in runs[0]['TOKEND_REASON']
    assert int(runs[0]['TOKEND_SIGNIN_BY']) == s['signin_expected_by']
