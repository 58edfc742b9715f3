"""`tokend status` as a check: it exits 77 when an account has lost its
sign-in (the server refused the refresh token, or the configuration now
names another server or client than the refresh token came from, which
tokend refused to send it to), and says which; an account never signed in
is shown as such without failing, as the timer passes it by."""

import json

from conftest import EX_NOPERM, EX_OK


def signed_in(tokend, **keys):
    tokend.account(**keys)
    tokend.obtain()


def status(tokend, *args):
    r = tokend.run('status', '--json', *args)
    return r.returncode, {a['account']: a for a in json.loads(r.stdout)}


def test_a_refused_refresh_token_makes_status_fail(tokend, authserver):
    signed_in(tokend)
    tokend.account('new')
    code, accounts = status(tokend)
    assert code == EX_OK
    assert accounts['new']['needs_signin'] and not accounts['work']['needs_signin']
    # Someone used the refresh token: tokend's copy is spent.
    assert authserver.refresh(tokend.stored_refresh_token())[0] == 200
    assert tokend.run('refresh', '--force', 'work').returncode == EX_NOPERM
    code, accounts = status(tokend)
    assert code == EX_NOPERM
    assert accounts['work']['needs_signin'] and not accounts['work']['binding_refused']
    r = tokend.run('status')
    assert r.returncode == EX_NOPERM
    assert 'sign-in:      needed\n' in r.stdout
    # The account never signed in does not fail the check by itself.
    assert tokend.run('status', 'new').returncode == EX_OK
    assert tokend.run('status', 'work').returncode == EX_NOPERM
    # Signed in again: all is well.
    tokend.obtain()
    assert tokend.run('status').returncode == EX_OK


def test_a_refusal_to_send_the_refresh_token_elsewhere_is_recorded_and_shown(tokend, authserver):
    signed_in(tokend)
    assert status(tokend)[1]['work']['binding_refused'] is False
    tokend.accounts['work']['token_url'] = 'https://127.0.0.1:9/token'
    tokend.write_config()
    # Nothing was refused yet.
    assert tokend.run('status').returncode == EX_OK
    r = tokend.run('refresh', '--force')
    assert r.returncode == EX_NOPERM and 'it is not sent there' in r.stderr
    code, accounts = status(tokend)
    assert code == EX_NOPERM
    work = accounts['work']
    assert work['binding_refused'] is True and work['needs_signin'] is True
    assert work['last_error'].startswith('the stored sign-in is for tokend-native at ')
    r = tokend.run('status')
    assert r.returncode == EX_NOPERM
    assert ('sign-in:      needed (the configuration now names another server or client than '
            'the refresh token came from; it is not sent there)') in r.stdout
    assert 'last error:   the stored sign-in is for tokend-native at ' in r.stdout
    # Pointed back where it came from, the next refresh works and clears it.
    tokend.accounts['work']['token_url'] = authserver.token_url
    tokend.write_config()
    assert tokend.run('refresh', '--force').returncode == EX_OK
    code, accounts = status(tokend)
    assert code == EX_OK
    assert not accounts['work']['binding_refused'] and not accounts['work']['needs_signin']
    assert 'last_error' not in accounts['work']
