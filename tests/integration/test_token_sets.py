"""One sign-in, several services: `tokend token ACCOUNT --scope SCOPE...` and
`--set NAME` (the account's token_sets) get tokens for other scopes with the
same refresh token.  Against a replay of Microsoft's token endpoint (one
resource per request, a new refresh token with every answer) and against the
real oidc-provider, which down-scopes a refresh to a subset of the grant and
refuses scopes the grant does not hold."""

import json
import os
import stat
import time

import pytest

from conftest import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_USAGE
from harness.authserver import make_certs
from harness.scripted import Reply, ScriptedEndpoint
from test_microsoft import FOLLOW, MS_SCOPES, TENANT, TOKEN_PATH, AUTHORIZE_PATH, \
    authorize_redirect, form_of

GRAPH = ['https://graph.microsoft.com/Calendars.Read', 'https://graph.microsoft.com/Contacts.Read']
EWS = 'https://outlook.office.com/EWS.AccessAsUser.All'
SIGNIN_SCOPES = ('offline_access', 'openid', 'profile')
ENGINE_LIBS = ('libcurl', 'libsecret', 'libmicrohttpd', 'libgio')


def resource_of(scope):
    return scope.rsplit('/', 1)[0] if scope.startswith('https://') else None


class MicrosoftTokens:
    """Microsoft's token endpoint as documented: each request names one
    resource (else AADSTS28000), the answer's `scope` lists what the user
    consented to for that resource, and every answer carries a new refresh
    token.  consented: the scopes the sign-in gave consent for."""

    def __init__(self, consented):
        self.consented = consented
        self.issued = 0
        self.refresh_tokens = []

    def __call__(self, req):
        form = form_of(req)
        # A code is redeemed for the scopes of the sign-in (the mail's).
        asked = form.get('scope', ' '.join(MS_SCOPES)).split()
        resources = {resource_of(s) for s in asked if s not in SIGNIN_SCOPES}
        if len(resources) != 1:
            return Reply(400, {'error': 'invalid_scope', 'error_codes': [28000],
                               'error_description': 'AADSTS28000: Provided value for the input '
                               'parameter scope is not valid because it contains more than one '
                               'resource.'})
        resource = resources.pop()
        self.issued += 1
        refresh = f'0.AQoA-ms-refresh-{self.issued + 1}'
        self.refresh_tokens.append(form.get('refresh_token', form.get('code')))
        granted = [s for s in self.consented if resource_of(s) == resource]
        return Reply(200, {'token_type': 'Bearer', 'scope': ' '.join(granted),
                           'expires_in': 4177, 'ext_expires_in': 4177,
                           'access_token': f'eyJ0eXAi.{resource.rsplit("/", 1)[-1]}.{self.issued}',
                           'refresh_token': refresh})


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp('replay-certs'))


@pytest.fixture
def ms(tokend, certs):
    ca, cert, key = certs
    tokens = MicrosoftTokens(MS_SCOPES[:3] + GRAPH + [EWS, 'https://graph.microsoft.com/User.Read'])
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        ep.script(AUTHORIZE_PATH, authorize_redirect())
        ep.script(TOKEN_PATH, tokens)
        ep.tokens = tokens
        tokend.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=ca)
        tokend.account(provider='microsoft', client_id='facd6cff-a294-4415-b59f-c5b01937d7bd',
                       tenant=TENANT, authority=f'127.0.0.1:{ep.port}', username='me@contoso.com',
                       ca_file=ca, store='file', authorize_url=None, token_url=None,
                       scopes=None)
        assert tokend.run('obtain', 'work').returncode == EX_OK
        yield ep


def state_of(tokend, name='work'):
    return json.loads((tokend.state / name / 'state.json').read_text())


def launcher_only(r):
    return not any(lib in r.stderr for lib in ENGINE_LIBS)


def test_scope_gets_a_graph_token_from_the_mail_sign_in(tokend, ms):
    mail = tokend.token_file().read_text()
    r = tokend.run('token', 'work', '--scope', GRAPH[0], '--scope', GRAPH[1])
    assert r.returncode == EX_OK, r.stderr
    graph = r.stdout
    assert graph == 'eyJ0eXAi.graph.microsoft.com.2\n'
    form = form_of(ms.last(TOKEN_PATH))
    assert form['grant_type'] == 'refresh_token'
    assert form['refresh_token'] == '0.AQoA-ms-refresh-2'
    # One resource per request: the Graph scopes, and offline_access for the
    # next refresh token; no mail scope.
    assert sorted(form['scope'].split()) == sorted(GRAPH + ['offline_access'])
    # The rotated refresh token is saved; the mail token is left alone.
    assert tokend.stored_refresh_token() == '0.AQoA-ms-refresh-3'
    assert tokend.token_file().read_text() == mail
    sets = state_of(tokend)['token_sets']
    (key, entry), = sets.items()
    assert entry['scopes'] == ' '.join(sorted(GRAPH))
    assert 4100 < entry['expires_at'] - entry['obtained_at'] <= 4177
    path = tokend.state / 'work' / f'token.{key}'
    assert path.read_text() == graph
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Again, in another order and spelling: answered from the cache by the
    # launcher alone, without the server.
    before = ms.count(TOKEN_PATH)
    r = tokend.run('token', 'work', '--scope', f'{GRAPH[1]}  {GRAPH[0]}', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and r.stdout == graph
    assert launcher_only(r), r.stderr
    assert ms.count(TOKEN_PATH) == before
    # The mail token is still the launcher's too.
    r = tokend.run('token', 'work', env={'LD_DEBUG': 'libs'})
    assert r.stdout == mail and launcher_only(r)


def test_the_next_mail_refresh_uses_the_rotated_refresh_token(tokend, ms):
    assert tokend.run('token', 'work', '--scope', EWS).returncode == EX_OK
    assert tokend.stored_refresh_token() == '0.AQoA-ms-refresh-3'
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    form = form_of(ms.last(TOKEN_PATH))
    assert form['refresh_token'] == '0.AQoA-ms-refresh-3'
    assert form['scope'].split() == MS_SCOPES
    assert tokend.stored_refresh_token() == '0.AQoA-ms-refresh-4'
    assert tokend.token_file().read_text() == 'eyJ0eXAi.outlook.office.com.3\n'
    # The EWS token is still cached; an expired one is fetched again with
    # the newest refresh token.
    r = tokend.run('token', 'work', '--scope', EWS, env={'LD_DEBUG': 'libs'})
    assert r.stdout == 'eyJ0eXAi.outlook.office.com.2\n' and launcher_only(r)
    st = state_of(tokend)
    for entry in st['token_sets'].values():
        entry['expires_at'] = entry['obtained_at'] + 30
    (tokend.state / 'work' / 'state.json').write_text(json.dumps(st))
    r = tokend.run('token', 'work', '--scope', EWS)
    assert r.returncode == EX_OK and r.stdout == 'eyJ0eXAi.outlook.office.com.4\n'
    assert form_of(ms.last(TOKEN_PATH))['refresh_token'] == '0.AQoA-ms-refresh-4'
    assert tokend.stored_refresh_token() == '0.AQoA-ms-refresh-5'


def test_server_away_hands_out_the_still_valid_set_token(tokend, ms):
    graph = tokend.run('token', 'work', '--scope', GRAPH[0]).stdout
    st = state_of(tokend)
    for entry in st['token_sets'].values():
        entry['expires_at'] = entry['obtained_at'] + 30
    (tokend.state / 'work' / 'state.json').write_text(json.dumps(st))
    ms.script(TOKEN_PATH, Reply(503, 'Service Unavailable'))
    r = tokend.run('token', 'work', '--scope', GRAPH[0])
    assert r.returncode == EX_OK and r.stdout == graph
    assert 'handed out the current token, which is still valid' in r.stderr
    for entry in st['token_sets'].values():
        entry['expires_at'] = entry['obtained_at'] - 1
    (tokend.state / 'work' / 'state.json').write_text(json.dumps(st))
    r = tokend.run('token', 'work', '--scope', GRAPH[0])
    assert r.returncode == EX_TEMPFAIL and r.stdout == ''


def test_named_sets_from_the_configuration(tokend, ms):
    tokend.accounts['work']['token_sets'] = f'graph:{" ".join(GRAPH)}; ews:{EWS};'
    tokend.write_config()
    r = tokend.run('token', 'work', '--set', 'ews')
    assert r.returncode == EX_OK, r.stderr
    assert sorted(form_of(ms.last(TOKEN_PATH))['scope'].split()) == [EWS, 'offline_access']
    ews = tokend.state / 'work' / 'token.ews'
    assert ews.read_text() == r.stdout and stat.S_IMODE(os.stat(ews).st_mode) == 0o600
    r = tokend.run('token', 'work', '--set', 'graph')
    assert r.returncode == EX_OK
    assert sorted(form_of(ms.last(TOKEN_PATH))['scope'].split()) == sorted(GRAPH + ['offline_access'])
    graph = r.stdout
    sets = state_of(tokend)['token_sets']
    assert sets['graph']['scopes'] == ' '.join(sorted(GRAPH))
    assert sets['ews']['scopes'] == EWS
    assert sets['graph']['granted'].split() == GRAPH + ['https://graph.microsoft.com/User.Read']
    before = ms.count(TOKEN_PATH)
    r = tokend.run('token', 'work', '--set', 'graph', env={'LD_DEBUG': 'libs'})
    assert r.stdout == graph and launcher_only(r), r.stderr
    assert ms.count(TOKEN_PATH) == before
    # The configuration now names other scopes for the set: the cached token
    # is not handed out, the engine asks for the new scopes.
    tokend.accounts['work']['token_sets'] = f'graph:{GRAPH[0]}; ews:{EWS}'
    tokend.write_config()
    r = tokend.run('token', 'work', '--set', 'graph', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and r.stdout != graph and 'libcurl' in r.stderr
    assert sorted(form_of(ms.last(TOKEN_PATH))['scope'].split()) == [GRAPH[0], 'offline_access']
    # The other set, unchanged, is the launcher's again after the engine has
    # seen the edited configuration once.
    r = tokend.run('token', 'work', '--set', 'ews')
    assert r.returncode == EX_OK
    count = ms.count(TOKEN_PATH)
    r = tokend.run('token', 'work', '--set', 'ews', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and launcher_only(r), r.stderr
    assert ms.count(TOKEN_PATH) == count


def sets_in_status(tokend):
    r = tokend.run('status', '--json', 'work')
    assert r.returncode == EX_OK, r.stderr
    return json.loads(r.stdout)[0]['token_sets']


def test_status_lists_the_sets_and_refresh_keeps_them_fresh(tokend, ms):
    tokend.accounts['work']['token_sets'] = f'graph:{" ".join(GRAPH)}; ews:{EWS}'
    tokend.write_config()
    text = tokend.run('status', 'work').stdout
    assert ('  token set:    graph: not fetched yet (tokend refresh work, or tokend token work '
            '--set graph)\n') in text
    assert '  token set:    ews: not fetched yet' in text
    assert [(t['name'], t['configured'], t['expires_at'], t['valid'])
            for t in sets_in_status(tokend)] == [('graph', True, None, False),
                                                 ('ews', True, None, False)]
    # The timer fetches them, with the mail token fresh.
    mail = tokend.token_file().read_text()
    before = ms.count(TOKEN_PATH)
    r = tokend.run('refresh')
    assert r.returncode == EX_OK, r.stderr
    assert ms.count(TOKEN_PATH) == before + 2
    assert tokend.token_file().read_text() == mail
    folder = tokend.state / 'work'
    graph, ews = (folder / 'token.graph').read_text(), (folder / 'token.ews').read_text()
    assert tokend.run('token', 'work', '--set', 'graph').stdout == graph
    # A token of `token --scope` is listed too, after the configured sets.
    r = tokend.run('token', 'work', '--scope', 'https://graph.microsoft.com/User.Read')
    assert r.returncode == EX_OK, r.stderr
    sets = {t['name'] or t['scopes']: t for t in sets_in_status(tokend)}
    assert list(sets) == ['graph', 'ews', 'https://graph.microsoft.com/User.Read']
    assert not sets['https://graph.microsoft.com/User.Read']['configured']
    st = state_of(tokend)
    for name in ('graph', 'ews'):
        assert sets[name]['valid'] and sets[name]['expires_at'] == st['token_sets'][name][
            'expires_at']
        assert sets[name]['token_file'] == str(folder / f'token.{name}')
    text = tokend.run('status', 'work').stdout
    assert '  token set:    graph: valid until ' in text and ' min left)' in text
    assert ('  token set:    --scope https://graph.microsoft.com/User.Read: valid until '
            in text)

    # All fresh: the timer's tick and `refresh work` stay in the launcher.
    assert tokend.run('refresh').returncode == EX_OK
    for args in (('refresh',), ('refresh', 'work')):
        r = tokend.run(*args, env={'LD_DEBUG': 'libs'})
        assert r.returncode == EX_OK and launcher_only(r), args
    assert ms.count(TOKEN_PATH) == before + 3

    # The EWS token expires within refresh_margin: the timer refreshes it
    # alone, with the newest refresh token.
    st['token_sets']['ews']['expires_at'] = int(time.time()) + 60
    (folder / 'state.json').write_text(json.dumps(st))
    for f in tokend.state.glob('due-*.json'):
        f.unlink()
    r = tokend.run('-v', 'refresh')
    assert r.returncode == EX_OK, r.stderr
    assert 'work: token set ews refreshed' in r.stderr
    assert ms.count(TOKEN_PATH) == before + 4
    assert sorted(form_of(ms.last(TOKEN_PATH))['scope'].split()) == [EWS, 'offline_access']
    assert (folder / 'token.ews').read_text() != ews
    assert (folder / 'token.graph').read_text() == graph
    assert tokend.token_file().read_text() == mail
    assert tokend.stored_refresh_token() == f'0.AQoA-ms-refresh-{ms.tokens.issued + 1}'

    # A set added to the configuration is fetched by `refresh work` too.
    tokend.accounts['work']['token_sets'] += f'; me:https://graph.microsoft.com/User.Read'
    tokend.write_config()
    r = tokend.run('refresh', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert (folder / 'token.me').exists() and ms.count(TOKEN_PATH) == before + 5
    # --force refreshes the sets too.
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert ms.count(TOKEN_PATH) == before + 9


def test_a_set_the_server_refuses_fails_the_timer_and_leaves_the_mail_token(tokend, ms):
    tokend.accounts['work']['token_sets'] = 'files:https://graph.microsoft.com/Files.Read'
    tokend.write_config()
    mail = tokend.token_file().read_text()
    r = tokend.run('refresh')
    assert r.returncode == EX_NOPERM
    assert r.stderr.startswith('tokend: work: token set files: the server did not grant '
                               'https://graph.microsoft.com/Files.Read')
    assert tokend.token_file().read_text() == mail
    assert not state_of(tokend)['needs_signin']
    # The mail token is what matters to status.
    assert tokend.run('status').returncode == EX_OK


def test_unknown_set_and_bad_options(tokend, ms):
    r = tokend.run('token', 'work', '--set', 'calendar')
    assert r.returncode == EX_CONFIG
    assert r.stderr == ('tokend: work: no token set "calendar"; name it in token_sets of '
                        '[account work] (see tokend.conf(5))\n')
    r = tokend.run('token', 'work', '--set', 'a', '--scope', 'b')
    assert r.returncode == EX_USAGE
    r = tokend.run('token', 'work', '--scope', 'bad"scope')
    assert r.returncode == EX_USAGE and 'scope' in r.stderr
    tokend.accounts['work']['token_sets'] = 'graph https://graph.microsoft.com/Calendars.Read'
    tokend.write_config()
    r = tokend.run('token', 'work')
    assert r.returncode == EX_CONFIG and 'token_sets' in r.stderr and 'NAME:SCOPE' in r.stderr


def test_a_token_for_less_than_was_asked_is_refused(tokend, ms):
    mail = tokend.token_file().read_text()
    ms.script(TOKEN_PATH, Reply(200, {'token_type': 'Bearer', 'expires_in': 4177,
                                      'scope': 'https://graph.microsoft.com/User.Read',
                                      'access_token': 'eyJ-user-read-only',
                                      'refresh_token': '0.AQoA-rotated-anyway'}))
    r = tokend.run('token', 'work', '--scope', GRAPH[0])
    assert r.returncode == EX_NOPERM
    assert r.stderr.startswith(f'tokend: work: the server did not grant {GRAPH[0]} (it granted: '
                               'https://graph.microsoft.com/User.Read); ')
    assert r.stdout == ''
    # The new refresh token is kept all the same; nothing else changed.
    assert tokend.stored_refresh_token() == '0.AQoA-rotated-anyway'
    assert tokend.token_file().read_text() == mail
    st = state_of(tokend)
    assert 'token_sets' not in st and not st['needs_signin']
    assert not any(p.name.startswith('token.') for p in (tokend.state / 'work').iterdir())


# The real oidc-provider: a refresh may ask for a subset of the grant.

@pytest.fixture
def oidc(tokend, authserver):
    tokend.account(scopes='openid offline_access mail.imap mail.smtp')
    tokend.obtain()
    return authserver


def test_oidc_provider_down_scopes_to_a_subset(tokend, oidc):
    mail = tokend.token_file().read_text().strip()
    refresh = tokend.stored_refresh_token()
    oidc.reset_stats()
    r = tokend.run('token', 'work', '--scope', 'mail.smtp')
    assert r.returncode == EX_OK, r.stderr
    token = r.stdout.strip()
    assert oidc.stats()['refresh_scopes'] == ['mail.smtp']
    assert oidc.introspect(token)['scope'] == 'mail.smtp'
    assert set(oidc.introspect(mail)['scope'].split()) >= {'mail.imap', 'mail.smtp'}
    # oidc-provider rotates: the new refresh token is saved, the old one is
    # spent, and the mail token's next refresh works with the new one.
    assert tokend.stored_refresh_token() != refresh
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert oidc.introspect(tokend.token_file().read_text().strip())['active']
    r = tokend.run('token', 'work', '--scope', 'mail.smtp', env={'LD_DEBUG': 'libs'})
    assert r.stdout.strip() == token and launcher_only(r)


def test_oidc_provider_scope_never_granted_is_a_clear_error(tokend, oidc):
    mail = tokend.token_file().read_text()
    refresh = tokend.stored_refresh_token()
    state = state_of(tokend)
    r = tokend.run('token', 'work', '--scope', 'email')
    assert r.returncode == EX_CONFIG
    line, = r.stderr.splitlines()
    assert line.startswith('tokend: work: a token for email: configuration error: the server '
                           'rejected the scopes (invalid_scope); ')
    assert line.endswith(f'the sign-in granted {state["scope"]}; for more, add them to scopes '
                         'and run: tokend obtain work')
    assert 'mail.imap' in state['scope']
    # Nothing of the mail token, the refresh token or the state changed.
    assert tokend.token_file().read_text() == mail
    assert tokend.stored_refresh_token() == refresh
    assert state_of(tokend) == state
    r = tokend.run('token', 'work', env={'LD_DEBUG': 'libs'})
    assert r.returncode == EX_OK and r.stdout == mail and launcher_only(r)
    assert oidc.refresh(refresh)[0] == 200


def test_logout_removes_the_token_sets(tokend, ms):
    tokend.accounts['work']['token_sets'] = f'ews:{EWS}'
    tokend.write_config()
    assert tokend.run('token', 'work', '--set', 'ews').returncode == EX_OK
    assert tokend.run('token', 'work', '--scope', GRAPH[0]).returncode == EX_OK
    folder = tokend.state / 'work'
    assert len([p for p in folder.iterdir() if p.name.startswith('token.')]) == 2
    r = tokend.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'removed 2 tokens of token sets' in r.stderr
    assert not any(p.name.startswith('token') for p in folder.iterdir())
    r = tokend.run('token', 'work', '--set', 'ews')
    assert r.returncode == EX_NOPERM and r.stdout == ''


# glewlwyd ignores `scope` on a refresh and grants the sign-in's scopes.

from test_peer_glewlwyd import glew, tk, signed_in as glew_signed_in  # noqa: E402,F401


def test_glewlwyd_ignores_the_scopes_of_a_refresh(tk, glew):
    mail, refresh = glew_signed_in(tk, glew)
    r = tk.run('token', 'work', '--scope', 'mail.imap')
    assert r.returncode == EX_OK, r.stderr
    assert set(glew.claims(r.stdout)['scope'].split()) == {'openid', 'mail.imap'}
    assert glew.token_valid(r.stdout.strip())
    rotated = tk.stored_refresh_token()
    assert rotated != refresh
    # A scope it never granted: the answer covers less than was asked.
    r = tk.run('token', 'work', '--scope', 'mail.smtp')
    assert r.returncode == EX_NOPERM
    assert r.stderr.startswith('tokend: work: the server did not grant mail.smtp (it granted: ')
    # Its new refresh token is saved all the same, and the mail token's next
    # refresh works with it.
    assert tk.stored_refresh_token() != rotated
    assert tk.token_file().read_text() == mail
    assert tk.run('refresh', '--force', 'work').returncode == EX_OK
    assert glew.token_valid(tk.token_file().read_text().strip())
