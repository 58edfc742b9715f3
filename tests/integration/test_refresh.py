"""Refreshing, handing out tokens, status and logout against the real
authorization server."""

import json
import os
import time

from conftest import (EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_USAGE, TOKEND, mode)


def signed_in(tokend, **keys):
    tokend.account(**keys)
    tokend.obtain()
    return tokend.token_file().read_text(), tokend.stored_refresh_token()


def test_refresh_force_rotates_and_saves_the_new_refresh_token(tokend, authserver):
    access1, refresh1 = signed_in(tokend)
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    access2, refresh2 = tokend.token_file().read_text(), tokend.stored_refresh_token()
    assert access2 != access1 and refresh2 != refresh1
    assert authserver.introspect(access2.strip())['active']
    # The server rotated: the old refresh token is refused.  Replaying it
    # also revokes the whole grant (oidc-provider does, as strict servers do).
    status, body = authserver.refresh(refresh1)
    assert status == 400 and body['error'] == 'invalid_grant'
    # Now tokend is told to sign in again, and loses nothing on the way.
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM
    assert 'run: tokend obtain work' in r.stderr
    assert tokend.stored_refresh_token() == refresh2
    assert tokend.token_file().read_text() == access2
    status = json.loads(tokend.run('status', '--json').stdout)[0]
    assert status['needs_signin'] is True


def test_refresh_does_nothing_while_fresh(tokend, authserver):
    access, refresh = signed_in(tokend)
    before = authserver.stats()['token'].get('refresh_token', 0)
    r = tokend.run('refresh')
    assert r.returncode == EX_OK and r.stderr == ''
    assert authserver.stats()['token'].get('refresh_token', 0) == before
    assert tokend.token_file().read_text() == access


def test_refresh_margin_decides(tokend, authserver):
    access, _ = signed_in(tokend)
    before = authserver.stats()['token'].get('refresh_token', 0)
    # The token lives 3600 s: a margin of 3650 s makes it due now.
    tokend.accounts['work']['refresh_margin'] = '3650'
    tokend.write_config()
    r = tokend.run('refresh')
    assert r.returncode == EX_OK, r.stderr
    assert authserver.stats()['token'].get('refresh_token', 0) == before + 1
    assert tokend.token_file().read_text() != access


def test_expired_token_is_refreshed_by_token(tokend, make_authserver):
    srv = make_authserver(access_ttl=3)
    tokend.server = srv
    tokend.env['TOKEND_TEST_CA'] = srv.ca_file
    tokend.account(server=srv, min_validity=0)
    tokend.obtain()
    old = tokend.token_file().read_text().strip()
    tokend.wait_expired(srv, old)
    r = tokend.run('token', 'work')
    assert r.returncode == EX_OK, r.stderr
    new = r.stdout.strip()
    assert new != old and srv.introspect(new)['active']
    assert r.stdout == tokend.token_file().read_text()


def test_token_with_a_fresh_cache_needs_no_network_nor_engine(tokend, authserver):
    access, _ = signed_in(tokend)
    # Point the account at a port where nothing listens: a fresh token must
    # not need the server at all.
    tokend.accounts['work']['token_url'] = 'https://127.0.0.1:9/token'
    tokend.write_config()
    before = authserver.stats()
    # The first call after an edit of the configuration goes through the
    # engine, which notes the new settings (no network: the token is fresh).
    r = tokend.run('token', 'work', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and r.stdout == access
    assert 'libcurl' in r.stderr
    # From then on only the launcher runs: libcurl, libsecret and
    # libmicrohttpd are never loaded, and the server hears nothing.
    for _ in range(3):
        r = tokend.run('token', 'work', env={'LD_DEBUG': 'libs'})
        assert r.returncode == EX_OK
        assert r.stdout == access
        for lib in ('libcurl', 'libsecret', 'libmicrohttpd', 'libgio'):
            assert lib not in r.stderr
    assert authserver.stats() == before


# Loaded (dlopen) only by what uses them: the sign-in's loopback catcher,
# the sandbox of a tunnel or relay session, the relay's passwords, the
# Secret Service store, the relay's Graph backend.
ON_DEMAND = ('libmicrohttpd.so', 'libseccomp.so', 'libcrypt.so', 'libsecret-1.so',
             'libgmime-3.0.so')


def loaded(stderr):
    """The libraries LD_DEBUG=libs says the process loaded."""
    return {ln.split('find library=', 1)[1].split()[0] for ln in stderr.splitlines()
            if 'find library=' in ln}


def test_a_refresh_maps_only_what_a_refresh_uses(tokend, authserver):
    tokend.account()
    # A sign-in through the browser serves its redirect with libmicrohttpd,
    # loaded then and only then.
    r = tokend.obtain(env={'LD_DEBUG': 'libs'})
    libs = loaded(r.stderr)
    assert any(n.startswith('libmicrohttpd.so') for n in libs), sorted(libs)
    r = tokend.run('refresh', '--force', 'work', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK, r.stderr
    libs = loaded(r.stderr)
    assert any(n.startswith('libcurl.so') for n in libs), sorted(libs)
    assert not [n for n in libs if n.startswith(ON_DEMAND)], sorted(libs)


def test_refresh_tick_with_nothing_due_reads_no_account(tokend, authserver):
    for n in ('one', 'two'):
        tokend.account(n)
        tokend.obtain(n)
    # The first full refresh notes when the next one has work.
    assert tokend.run('refresh').returncode == EX_OK
    r = tokend.run('refresh', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and 'libcurl' not in r.stderr
    # Editing the configuration, signing in or out invalidates the note.
    tokend.accounts['two']['refresh_margin'] = '3650'
    tokend.write_config()
    before = authserver.stats()['token'].get('refresh_token', 0)
    r = tokend.run('refresh')
    assert r.returncode == EX_OK
    assert authserver.stats()['token'].get('refresh_token', 0) == before + 1
    # 'two' is due at every tick now: the launcher keeps handing over.
    r = tokend.run('refresh', env={'LD_DEBUG': 'libs'})
    assert 'libcurl' in r.stderr
    tokend.accounts['two']['refresh_margin'] = '600'
    tokend.write_config()
    assert tokend.run('refresh').returncode == EX_OK
    assert 'libcurl' not in tokend.run('refresh', env={'LD_DEBUG': 'libs'}).stderr
    assert tokend.run('logout', 'one').returncode == EX_OK
    r = tokend.run('-v', 'refresh', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and 'libcurl' in r.stderr
    assert 'one: not signed in yet; passed by' in r.stderr


def test_token_prints_only_the_token(tokend):
    access, _ = signed_in(tokend)
    r = tokend.run('token', 'work')
    assert r.stdout == access and r.stdout.count('\n') == 1


def test_server_down_is_a_temporary_failure_and_keeps_tokens(tokend, make_authserver):
    srv = make_authserver()
    tokend.env['TOKEND_TEST_CA'] = srv.ca_file
    access, refresh = signed_in(tokend, server=srv)
    srv.stop()
    start = time.time()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_TEMPFAIL
    assert 'cannot reach 127.0.0.1' in r.stderr and 'try again later' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert time.time() - start < 15
    assert tokend.token_file().read_text() == access
    assert tokend.stored_refresh_token() == refresh
    # `token` still hands out the valid token while the server is away.
    r = tokend.run('token', 'work')
    assert r.returncode == EX_OK and r.stdout == access


def test_no_refresh_token_means_sign_in(tokend):
    tokend.account()
    r = tokend.run('token', 'work')
    assert r.returncode == EX_NOPERM
    assert r.stderr.strip() == ('tokend: work: not signed in yet (no refresh token stored); '
                                'run: tokend obtain work')


def test_configuration_errors(tokend):
    tokend.account(bogus_key='1')
    r = tokend.run('token', 'work')
    assert r.returncode == EX_CONFIG
    assert 'bogus_key' in r.stderr and str(tokend.config) in r.stderr
    tokend.accounts['work'].pop('bogus_key')
    tokend.write_config()
    r = tokend.run('token', 'nobody')
    assert r.returncode == EX_CONFIG and 'nobody' in r.stderr
    r = tokend.run('token', 'work', '-c', '/nonexistent/config')
    assert r.returncode == EX_USAGE or r.returncode == EX_CONFIG
    r = tokend.run('-c', '/nonexistent/config', 'status')
    assert r.returncode == EX_CONFIG and '/nonexistent/config' in r.stderr
    tokend.config.write_text('[account work\nprovider = generic\n')
    r = tokend.run('status')
    assert r.returncode == EX_CONFIG and 'line' in r.stderr


def test_config_from_environment_variable(tokend, tmp_path):
    tokend.account()
    moved = tmp_path / 'elsewhere.conf'
    tokend.config.rename(moved)
    assert tokend.run('status').returncode == EX_CONFIG
    r = tokend.run('status', env={'TOKEND_CONFIG': str(moved)})
    assert r.returncode == EX_OK and 'work' in r.stdout


def test_status_reports_each_account(tokend):
    signed_in(tokend)
    tokend.account('other')
    r = tokend.run('status', '--json')
    assert r.returncode == EX_OK
    data = {a['account']: a for a in json.loads(r.stdout)}
    assert data['work']['valid'] and not data['work']['needs_signin']
    assert data['work']['store'] == 'file'
    assert 3500 < data['work']['expires_in'] <= 3600
    assert data['other']['needs_signin'] and data['other']['store'] is None
    text = tokend.run('status', 'work').stdout
    assert 'store:        file' in text and 'sign-in:      not needed' in text


def test_logout_forgets_everything_local(tokend):
    signed_in(tokend)
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK
    assert 'refresh token (file store)' in r.stderr and 'access token file' in r.stderr
    assert not tokend.token_file().exists() and not tokend.refresh_token_file().exists()
    assert tokend.run('token', 'work').returncode == EX_NOPERM
    assert 'nothing was stored' in tokend.run('logout', 'work').stderr


def test_custom_token_file_and_modes_under_permissive_umask(tokend, tmp_path):
    target = tmp_path / 'fetchmail' / 'token'
    tokend.account(token_file=str(target))
    old = os.umask(0)
    try:
        tokend.obtain()
    finally:
        os.umask(old)
    assert mode(target) == 0o600
    assert mode(tokend.state / 'work') == 0o700
    assert tokend.run('token', 'work').stdout == target.read_text()


def test_version_and_help():
    import subprocess
    out = subprocess.run([str(TOKEND), '--version'], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith('tokend ')
    out = subprocess.run([str(TOKEND), '--help'], capture_output=True, text=True)
    assert out.returncode == 0 and 'obtain ACCOUNT' in out.stdout


def test_bulk_refresh_many_accounts_at_once(tokend, authserver):
    names = [f'box{i:02d}' for i in range(12)]
    for n in names:
        tokend.account(n)
    tokend.write_config('[defaults]\nmax_parallel = 4\n')
    for n in names:
        tokend.obtain(n)
    before = {n: (tokend.token_file(n).read_text(), tokend.stored_refresh_token(n))
              for n in names}
    count = authserver.stats()['token'].get('refresh_token', 0)
    r = tokend.run('refresh', '--force')
    assert r.returncode == EX_OK, r.stderr
    assert authserver.stats()['token'].get('refresh_token', 0) == count + len(names)
    for n in names:
        access, refresh = tokend.token_file(n).read_text(), tokend.stored_refresh_token(n)
        assert access != before[n][0] and refresh != before[n][1]
        assert authserver.introspect(access.strip())['active']
    assert r.stderr.count(': refreshed') == len(names)


def test_bulk_refresh_only_touches_what_is_due(tokend, authserver):
    for n in ('due', 'fresh'):
        tokend.account(n)
        tokend.obtain(n)
    tokend.accounts['due']['refresh_margin'] = '3650'
    tokend.write_config()
    fresh = tokend.token_file('fresh').read_text()
    count = authserver.stats()['token'].get('refresh_token', 0)
    r = tokend.run('-v', 'refresh')
    assert r.returncode == EX_OK, r.stderr
    assert authserver.stats()['token'].get('refresh_token', 0) == count + 1
    assert tokend.token_file('fresh').read_text() == fresh
    assert 'due: refreshed' in r.stderr and 'fresh: the access token is fresh' in r.stderr


def test_bulk_refresh_reports_each_failure_and_goes_on(tokend, authserver, make_authserver):
    srv = make_authserver()
    tokend.account('good')
    tokend.obtain('good')
    tokend.account('broken', server=srv)
    tokend.obtain('broken', env={'TOKEND_TEST_CA': srv.ca_file})
    srv.stop()
    r = tokend.run('refresh', '--force')
    assert r.returncode == EX_TEMPFAIL
    assert 'good: refreshed' in r.stderr and 'tokend: broken: cannot reach' in r.stderr


def test_the_timer_passes_by_an_account_never_signed_in(tokend, tmp_path):
    """A timer (cron every five minutes) must not fail, and mail, at every
    tick over an account nobody has signed in to yet; named, it still
    says what to do."""
    notes = tmp_path / 'notes'
    notify = tmp_path / 'notify'
    notify.write_text(f'#!/bin/sh\necho "$TOKEND_ACCOUNT" >> "{notes}"\n')
    notify.chmod(0o755)
    signed_in(tokend)
    tokend.account('new', notify_cmd=str(notify))
    for args in (('refresh',), ('refresh', '--force'), ('-q', 'refresh'), ('refresh',)):
        r = tokend.run(*args)
        assert r.returncode == EX_OK, (args, r.stderr)
        assert r.stderr == '' or args == ('refresh', '--force'), (args, r.stderr)
        assert 'new' not in r.stderr
    r = tokend.run('-v', 'refresh')
    assert r.returncode == EX_OK, r.stderr
    assert ('tokend: new: not signed in yet; passed by (run: tokend obtain new)\n'
            in r.stderr)
    assert not notes.exists()
    # Named, it needs a sign-in, as before.
    r = tokend.run('refresh', 'new')
    assert r.returncode == EX_NOPERM
    assert r.stderr == ('tokend: new: not signed in yet (no refresh token stored); '
                        'run: tokend obtain new\n')
    r = tokend.run('refresh', 'work', 'new')
    assert r.returncode == EX_NOPERM and 'tokend: new: not signed in yet' in r.stderr
    # status shows it, without failing on its account.
    r = tokend.run('status', 'new')
    assert r.returncode == EX_OK and 'sign-in:      needed (not signed in)' in r.stdout
    # Signed in, it is refreshed by the timer like any other.
    tokend.obtain('new')
    r = tokend.run('refresh', '--force')
    assert r.returncode == EX_OK and 'new: refreshed' in r.stderr


def test_the_timer_still_fails_on_a_lost_sign_in(tokend, authserver):
    _, refresh = signed_in(tokend)
    tokend.account('new')
    assert authserver.refresh(refresh)[0] == 200  # rotated: tokend's copy is spent
    r = tokend.run('refresh', '--force')
    assert r.returncode == EX_NOPERM
    assert 'tokend: work: ' in r.stderr and 'run: tokend obtain work' in r.stderr
    assert 'new' not in r.stderr
