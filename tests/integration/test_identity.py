"""Who signed in: the id_token's claims against the account's username and
identity, with the real authorization server.  Its users' profile claims
(email, preferred_username) come with the `email` and `profile` scopes;
the login name typed in its login form is the subject."""

import base64
import json

import pytest

from conftest import EX_NOPERM, EX_OK, Tokend
from harness.authserver import AuthServer

NAMED = 'openid email profile offline_access mail.imap'


def claims_of(id_token):
    payload = id_token.split('.')[1]
    return json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))


def status(tokend):
    r = tokend.run('status', '--json')
    # 77 when a refusal left the account needing a sign-in (test_status.py).
    assert r.returncode in (EX_OK, EX_NOPERM), r.stderr
    return json.loads(r.stdout)[0]


def stored(tokend):
    """What a sign-in leaves behind, as bytes (None where absent)."""
    files = [tokend.token_file(), tokend.refresh_token_file(), tokend.state / 'work' / 'state.json']
    return [f.read_bytes() if f.exists() else None for f in files]


def test_server_names_its_users_in_the_id_token(authserver):
    claims = claims_of(authserver.obtain_tokens(scope='openid email profile')['id_token'])
    assert claims['sub'] == 'alice' and claims['email'] == 'Alice.Smith@Example.ORG'
    assert claims['preferred_username'] == 'alice' and claims['aud'] == 'tokend-native'


def test_match_on_the_subject(tokend):
    tokend.account()  # username alice, the login name
    tokend.obtain()
    st = status(tokend)
    assert st['identity'] == 'alice' and st['identity_verified'] is True
    assert 'identity:     alice (verified)' in tokend.run('status').stdout


def test_match_on_email_ignores_case(tokend):
    tokend.account(username='alice.smith@example.org', scopes=NAMED)
    tokend.obtain()
    st = status(tokend)
    assert st['identity'] == 'Alice.Smith@Example.ORG' and st['identity_verified'] is True


def test_someone_else_is_refused_before_anything_is_stored(tokend):
    tokend.account(scopes=NAMED)
    r = tokend.run('obtain', 'work', env={'TOKEND_TEST_LOGIN': 'mallory'})
    assert r.returncode == EX_NOPERM, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('tokend: work: signed in as mallory@example.net, not as alice')
    assert 'sign in as alice' in line and 'identity = mallory@example.net' in line
    assert stored(tokend) == [None, None, None]


def test_someone_else_leaves_the_previous_sign_in_intact(tokend):
    tokend.account(scopes=NAMED)
    tokend.obtain()
    before = stored(tokend)
    assert None not in before
    r = tokend.run('obtain', 'work', env={'TOKEND_TEST_LOGIN': 'mallory'})
    assert r.returncode == EX_NOPERM, r.stderr
    assert 'signed in as mallory@example.net' in r.stderr
    assert stored(tokend) == before
    # The first sign-in still works.
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert status(tokend)['identity_verified'] is True


def test_identity_key_for_a_sign_in_name_other_than_the_mailbox(tokend):
    tokend.account(username='sales@example.org', scopes=NAMED)
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_NOPERM
    assert 'set identity = Alice.Smith@Example.ORG' in r.stderr
    assert stored(tokend) == [None, None, None]
    tokend.accounts['work']['identity'] = 'alice.smith@example.org'
    tokend.write_config()
    tokend.obtain()
    st = status(tokend)
    assert st['identity'] == 'Alice.Smith@Example.ORG' and st['identity_verified'] is True
    assert st['username'] == 'sales@example.org'


def test_no_id_token_means_identity_not_verified(tokend):
    tokend.account(scopes='offline_access mail.imap')
    tokend.obtain()
    st = status(tokend)
    assert st['identity'] is None and st['identity_verified'] is False
    assert 'identity:     not verified (the provider named nobody)' in tokend.run('status').stdout


def test_an_opaque_subject_alone_does_not_refuse(tokend):
    # Only sub (no email/profile scope): a subject is an opaque identifier
    # at most providers, so it can confirm an account but not refuse one.
    tokend.account()
    tokend.obtain(env={'TOKEND_TEST_LOGIN': 'mallory'})
    st = status(tokend)
    assert st['identity'] == 'mallory' and st['identity_verified'] is False
    assert 'identity:     not verified (the sign-in named mallory)' in tokend.run('status').stdout


# oidc-provider as shipped: the ID token names the user by sub alone --------------

@pytest.fixture(scope='module')
def conform(tmp_path_factory):
    with AuthServer(tmp_path_factory.mktemp('conform'), id_token_claims='conform') as srv:
        yield srv


def discovered(tmp_path, server, **keys):
    """An account found through the server's discovery (which lists the
    email scope and the userinfo endpoint), asking for no email itself."""
    t = Tokend(tmp_path / 'home', server)
    t.account(issuer=server.issuer, authorize_url=None, token_url=None,
              scopes='openid offline_access mail.imap', **keys)
    return t


def state_json(tokend):
    return json.loads((tokend.state / 'work' / 'state.json').read_text())


def test_server_gives_email_only_at_userinfo(conform):
    t = conform.obtain_tokens(scope='openid email offline_access')
    assert set(claims_of(t['id_token'])) & {'email', 'preferred_username'} == set()
    status, info = conform.http('GET', conform.userinfo_url,
                                headers={'Authorization': f'Bearer {t["access_token"]}'})
    assert status == 200 and info['email'] == 'Alice.Smith@Example.ORG'


def test_email_asked_for_and_read_at_userinfo(conform, tmp_path):
    tokend = discovered(tmp_path, conform, username='alice.smith@example.org')
    conform.reset_stats()
    tokend.obtain()
    asked = conform.stats()['authorization'][-1]['scope'].split()
    assert asked == ['openid', 'offline_access', 'mail.imap', 'email']
    assert conform.stats()['endpoints']['userinfo'] == 1
    st = status(tokend)
    assert st['identity'] == 'Alice.Smith@Example.ORG' and st['identity_verified'] is True
    assert state_json(tokend)['identity_check'] == 'verified'


def test_someone_else_named_at_userinfo_is_refused(conform, tmp_path):
    tokend = discovered(tmp_path, conform, username='alice.smith@example.org')
    r = tokend.run('obtain', 'work', env={'TOKEND_TEST_LOGIN': 'mallory'})
    assert r.returncode == EX_NOPERM, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('tokend: work: signed in as mallory@example.net, not as '
                           'alice.smith@example.org: nothing was saved'), line
    assert stored(tokend) == [None, None, None]


def test_nobody_named_is_recorded_as_not_verified(conform, tmp_path):
    """A login the server knows by its subject only: nothing to compare with
    the username, so the sign-in is kept and the state says so."""
    tokend = discovered(tmp_path, conform, username='alice.smith@example.org')
    tokend.obtain(env={'TOKEND_TEST_LOGIN': 'bob'})
    st = state_json(tokend)
    assert st['identity_check'] == 'not verified'
    assert st['identity'] == 'bob' and st['identity_verified'] is False
    assert status(tokend)['identity_verified'] is False


def test_account_without_a_username_asks_nothing_more(conform, tmp_path):
    tokend = discovered(tmp_path, conform, username=None)
    conform.reset_stats()
    tokend.obtain()
    assert conform.stats()['authorization'][-1]['scope'] == 'openid offline_access mail.imap'
    assert conform.stats()['endpoints'].get('userinfo', 0) == 0
    assert 'identity_check' not in state_json(tokend)


def test_refresh_naming_someone_else_is_not_saved(tokend):
    tokend.account(scopes=NAMED)
    tokend.obtain()
    before = stored(tokend)
    # The account now says it is someone else's: the refresh's id_token
    # (still alice) no longer matches.
    tokend.accounts['work']['username'] = 'bob@example.org'
    tokend.write_config()
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM, r.stderr
    assert 'signed in as Alice.Smith@Example.ORG, not as bob@example.org' in r.stderr
    after = stored(tokend)
    assert after[:2] == before[:2]  # token file and refresh token untouched
    st = status(tokend)
    assert st['needs_signin'] is True and st['identity_verified'] is False


def test_device_flow_by_someone_else_is_refused(tokend, authserver):
    tokend.account(scopes=NAMED, issuer=authserver.issuer, authorize_url=None, token_url=None)
    r = tokend.run('obtain', 'work', '--device', env={'TOKEND_TEST_BROWSER_MODE': 'device',
                                                      'TOKEND_TEST_LOGIN': 'mallory'})
    assert r.returncode == EX_NOPERM, r.stderr
    assert 'signed in as mallory@example.net, not as alice' in r.stderr
    assert stored(tokend) == [None, None, None]
    r = tokend.run('obtain', 'work', '--device', env={'TOKEND_TEST_BROWSER_MODE': 'device'})
    assert r.returncode == EX_OK, r.stderr
    assert status(tokend)['identity'] == 'alice'
