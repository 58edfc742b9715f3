"""Microsoft 365 and Google, whose servers cannot be reached from here: their
documented behaviour (REFERENCE.md) is replayed by a scripted endpoint on
127.0.0.1 over TLS.  tokend runs with its real presets; `authority` points
the Microsoft endpoints at the replay, so the tenant path is exercised too.
Each documented error is one row of CASES."""

import base64
import hashlib
import json
import re
import secrets
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_OK, EX_TEMPFAIL, REPO, stored_binding,
                      stored_token)
from harness.authserver import make_certs
from harness.scripted import Reply, ScriptedEndpoint
from harness.wait import wait_until

TENANT = 'contoso.onmicrosoft.com'
TOKEN_PATH = f'/{TENANT}/oauth2/v2.0/token'
AUTHORIZE_PATH = f'/{TENANT}/oauth2/v2.0/authorize'
NATIVECLIENT = 'https://login.microsoftonline.com/common/oauth2/nativeclient'
FOLLOW = REPO / 'tests' / 'harness' / 'follow-redirects'
MS_SCOPES = ['https://outlook.office.com/IMAP.AccessAsUser.All',
             'https://outlook.office.com/POP.AccessAsUser.All',
             'https://outlook.office.com/SMTP.Send', 'offline_access', 'openid', 'profile']


def ms_success(access='eyJ0eXAiOiJKV1QiLCJub25jZSI6Im1zLWFjY2Vzcy10b2tlbi0x',
               refresh='0.AQoA-ms-refresh-1', **extra):
    body = {'token_type': 'Bearer', 'scope': ' '.join(MS_SCOPES[:3]), 'expires_in': 4177,
            'ext_expires_in': 4177, 'access_token': access}
    if refresh:
        body['refresh_token'] = refresh
    body.update(extra)
    return Reply(200, body)


def ms_error(error, code, text, status=400):
    return Reply(status, {
        'error': error,
        'error_description': f'AADSTS{code}: {text}\r\nTrace ID: 0ab1c2d3-0000-4e5f-8a9b-'
                             f'0123456789ab\r\nCorrelation ID: 7c6d5e4f-1111-4a2b-9c8d-'
                             f'abcdefabcdef\r\nTimestamp: 2026-11-23 10:00:00Z',
        'error_codes': [code], 'timestamp': '2026-11-23 10:00:00Z',
        'trace_id': '0ab1c2d3-0000-4e5f-8a9b-0123456789ab',
        'correlation_id': '7c6d5e4f-1111-4a2b-9c8d-abcdefabcdef',
        'error_uri': f'https://login.microsoftonline.com/error?code={code}'})


def authorize_redirect(extra=None):
    """Microsoft's authorize endpoint after a successful sign-in: a redirect
    to redirect_uri with code, state and session_state."""
    def reply(req):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)
        params = {'code': 'M.C507_BAY.2.U.' + secrets.token_hex(8), 'state': q['state'][0],
                  'session_state': '4f3e2d1c-aaaa-bbbb-cccc-123456789abc'}
        params.update(extra or {})
        return Reply(302, b'', {'Location': q['redirect_uri'][0] + '?' +
                                urllib.parse.urlencode(params)})
    return reply


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp('replay-certs'))


@pytest.fixture
def ms(tokend, certs):
    ca, cert, key = certs
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        ep.script(AUTHORIZE_PATH, authorize_redirect())
        ep.script(TOKEN_PATH, ms_success())
        tokend.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=ca)
        tokend.account(provider='microsoft', client_id='facd6cff-a294-4415-b59f-c5b01937d7bd',
                       tenant=TENANT, authority=f'127.0.0.1:{ep.port}', username='me@contoso.com',
                       ca_file=ca, store='file', authorize_url=None, token_url=None,
                       scopes=None)
        yield ep


def query_of(req):
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query).items()}


def form_of(req):
    return {k: v[0] for k, v in req.form.items()}


def s256(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b'=').decode()


def test_sign_in_through_localhost(tokend, ms):
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    auth = query_of(ms.last(AUTHORIZE_PATH))
    assert auth['client_id'] == 'facd6cff-a294-4415-b59f-c5b01937d7bd'
    assert auth['scope'].split() == MS_SCOPES
    assert auth['login_hint'] == 'me@contoso.com'
    assert re.fullmatch(r'http://localhost:\d+/', auth['redirect_uri'])
    assert auth['code_challenge_method'] == 'S256'
    token = form_of(ms.last(TOKEN_PATH))
    assert token['grant_type'] == 'authorization_code'
    assert token['redirect_uri'] == auth['redirect_uri']
    assert s256(token['code_verifier']) == auth['code_challenge']
    assert token['code'].startswith('M.C507_BAY.2.U.')
    # A public client: sending a secret is AADSTS700025.
    assert 'client_secret' not in token
    assert tokend.token_file().read_text() == 'eyJ0eXAiOiJKV1QiLCJub25jZSI6Im1zLWFjY2Vzcy10b2tlbi0x\n'
    status = json.loads(tokend.run('status', '--json').stdout)[0]
    assert 4100 < status['expires_in'] <= 4177


def state_from(stderr):
    url = next(l for l in stderr.splitlines() if l.startswith('https://'))
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)['state'][0]


@pytest.mark.parametrize('shape', [
    '{base}?code={code}&state={state}&session_state=4f3e2d1c-aaaa',
    '{base}/?code={code}&state={state}&session_state=4f3e2d1c-aaaa',
    '  "{base}?code={code}&state={state}&session_state=4f3e2d1c-aaaa"  ',
    "'{base}?session_state=4f3e2d1c-aaaa&code={code}&state={state}'",
    '{base}?code={code}&state={state}',
])
def test_nativeclient_paste_back(tokend, ms, shape):
    tokend.accounts['work']['redirect_uri'] = NATIVECLIENT
    tokend.write_config()
    proc = tokend.popen('obtain', 'work', '--no-browser', stdin=__import__('subprocess').PIPE)
    line = ''
    seen = []
    while not line.startswith('https://'):
        line = proc.stderr.readline()
        seen.append(line)
    state = state_from(line)
    code = 'M.C507_BAY.2.U.5e1b3f'
    out, err = proc.communicate(shape.format(base=NATIVECLIENT, code=code, state=state) + '\n',
                                timeout=20)
    assert proc.returncode == EX_OK, err
    token = form_of(ms.last(TOKEN_PATH))
    assert token['code'] == code and token['redirect_uri'] == NATIVECLIENT


def seeded(tokend, ms):
    assert tokend.run('obtain', 'work').returncode == EX_OK
    return tokend.token_file().read_text(), tokend.stored_refresh_token()


# name, reply, exit status, words the one-line message must carry
CASES = [
    ('mfa', ms_error('invalid_grant', 50076, 'Due to a configuration change made by your '
     'administrator, or because you moved to a new location, you must use multi-factor '
     'authentication to access.'), EX_NOPERM, ['multi-factor', 'AADSTS50076', 'run: tokend obtain work']),
    ('mfa-enrol', ms_error('interaction_required', 50079, 'The user is required to use '
     'multi-factor authentication.'), EX_NOPERM, ['multi-factor', 'AADSTS50079']),
    ('password-changed', ms_error('invalid_grant', 50173, 'The provided grant has expired due '
     'to it being revoked.'), EX_NOPERM, ['password', 'AADSTS50173']),
    ('unused-90-days', ms_error('invalid_grant', 700082, 'The refresh token has expired due to '
     'inactivity.'), EX_NOPERM, ['90 days', 'AADSTS700082',
                                 'timer running tokend refresh', 'run: tokend obtain work']),
    ('expired', ms_error('invalid_grant', 70008, 'The provided authorization code or refresh '
     'token has expired due to inactivity.'), EX_NOPERM, ['expired', 'AADSTS70008']),
    ('sign-in-frequency', ms_error('invalid_grant', 70043, 'The refresh token has expired or is '
     'invalid due to sign-in frequency checks by conditional access.'), EX_NOPERM,
     ['frequency', 'AADSTS70043']),
    ('invalid-grant', ms_error('invalid_grant', 70000, 'Provided grant is invalid or malformed.'),
     EX_NOPERM, ['AADSTS70000', 'run: tokend obtain work']),
    ('consent-missing', ms_error('invalid_grant', 65001, 'The user or administrator has not '
     'consented to use the application.'), EX_NOPERM, ['consent', 'AADSTS65001', 'prompt = consent',
                                                       'ask your administrator to consent',
                                                       'run: tokend obtain work']),
    ('spa-24h', ms_error('invalid_grant', 700084, 'The refresh token was issued to a single page '
     'app (SPA), and therefore has a fixed, limited lifetime of 1.00:00:00.'), EX_NOPERM,
     ['single-page', 'AADSTS700084']),
    ('admin-consent', ms_error('invalid_grant', 90094, 'Admin consent is required for the '
     'permissions requested by this application.'), EX_NOPERM, ['administrator', 'AADSTS90094']),
    ('conditional-access', ms_error('access_denied', 53003, 'Access has been blocked by '
     'Conditional Access policies.'), EX_NOPERM, ['administrator', 'Conditional Access', 'AADSTS53003',
                                                  'which policy', 'sign-in logs']),
    ('security-defaults', ms_error('invalid_grant', 530035, 'Access has been blocked by security '
     'defaults.'), EX_NOPERM, ['administrator', 'AADSTS530035']),
    ('guest', ms_error('invalid_grant', 50020, 'User account from identity provider does not exist '
     'in tenant.'), EX_NOPERM, ['administrator', 'tenant', 'AADSTS50020']),
    ('not-in-tenant', ms_error('invalid_grant', 90072, 'User account does not exist in tenant.'),
     EX_NOPERM, ['administrator', 'AADSTS90072']),
    ('unknown-client', ms_error('unauthorized_client', 700016, "Application with identifier "
     "'x' was not found in the directory."), EX_CONFIG, ['client_id', 'AADSTS700016']),
    ('redirect-mismatch', ms_error('invalid_request', 50011, 'The redirect URI specified in the '
     'request does not match.'), EX_CONFIG, ['redirect_uri', 'AADSTS50011']),
    ('confidential-app', ms_error('invalid_client', 7000218, "The request body must contain the "
     "following parameter: 'client_assertion' or 'client_secret'."), EX_CONFIG,
     ['public client', 'AADSTS7000218']),
    ('public-sends-secret', ms_error('invalid_client', 700025, 'Client is public so neither '
     "'client_assertion' nor 'client_secret' should be presented."), EX_CONFIG,
     ['client_secret', 'AADSTS700025']),
    ('resource-not-in-tenant', ms_error('invalid_resource', 500011, 'The resource principal '
     'named https://outlook.office.com was not found in the tenant.'), EX_CONFIG,
     ['scopes', 'AADSTS500011']),
    ('malformed', ms_error('invalid_request', 9002313, 'Invalid request. Request is malformed or '
     'invalid.'), EX_CONFIG, ['malformed', 'AADSTS9002313']),
    ('missing-parameter', ms_error('invalid_request', 900144, "The request body must contain the "
     "following parameter: 'grant_type'."), EX_CONFIG, ['lacks the parameter grant_type',
                                                         'AADSTS900144', 'scopes']),
    ('app-disabled', ms_error('invalid_client', 7000112, "Application '08162f7c-0fd2-4200-a84a-"
     "f25a4db0b584'(Mozilla Thunderbird) is disabled."), EX_CONFIG,
     ['application is disabled', 'AADSTS7000112', 'set client_id']),
    ('loop', ms_error('invalid_grant', 50196, 'The server terminated an operation because it '
     'encountered a client request loop.'), EX_TEMPFAIL, ['slow down', 'AADSTS50196']),
    ('throttled', Reply(429, {'error': 'temporarily_unavailable'}, {'Retry-After': '30'}),
     EX_TEMPFAIL, ['slow down', 'try again in 30 s']),
    ('throttled-bare', Reply(429, '<html>Too many requests</html>'), EX_TEMPFAIL,
     ['HTTP 429', 'try again later']),
    ('server-error', Reply(503, '<html><body>Service Unavailable</body></html>'), EX_TEMPFAIL,
     ['HTTP 503', 'try again later']),
    ('server-json', ms_error('temporarily_unavailable', 0, 'busy', status=503), EX_TEMPFAIL,
     ['try again later']),
    ('proxy-html-200', Reply(200, '<html><head><title>Sign in to the proxy</title></head></html>'),
     EX_DATAERR, ['malformed', 'not a JSON object']),
    ('proxy-html-403', Reply(403, '<html>Forbidden by policy</html>'), EX_DATAERR,
     ['HTTP 403', 'text/html']),
    ('no-access-token', Reply(200, {'token_type': 'Bearer', 'expires_in': 3599}), EX_DATAERR,
     ['access_token']),
    ('mac-token', Reply(200, {'token_type': 'mac', 'access_token': 'x', 'expires_in': 3599}),
     EX_DATAERR, ['Bearer']),
]


@pytest.mark.parametrize('name,reply,status,words', CASES, ids=[c[0] for c in CASES])
def test_documented_refresh_errors(tokend, ms, name, reply, status, words):
    access, refresh = seeded(tokend, ms)
    ms.script(TOKEN_PATH, reply)
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == status, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('tokend: work: '), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert 'Trace ID' not in lines[0]
    # Nothing stored is lost or overwritten.
    assert tokend.token_file().read_text() == access
    assert tokend.stored_refresh_token() == refresh


def test_logout_without_revocation_says_the_server_was_not_told(tokend, ms):
    """Microsoft has no revocation endpoint: the sign-in lives on there, and
    the access token until it expires."""
    seeded(tokend, ms)
    expires_at = json.loads((tokend.state / 'work' / 'state.json').read_text())['expires_at']
    r = tokend.run('logout', 'work', env={'TZ': 'UTC'})
    assert r.returncode == EX_OK, r.stderr
    warning = r.stderr.strip().splitlines()[0]
    assert 'no revocation endpoint, so it could not be told of this logout' in warning
    assert 'Sign out everywhere' in warning
    until = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(expires_at))
    assert f'the access token stays usable until {until} (70 min from now)' in warning
    assert 'removed the refresh token (file store)' in r.stderr
    assert not any(q.path.endswith('/revoke') for q in ms.requests)


def test_verbose_shows_the_raw_description(tokend, ms):
    seeded(tokend, ms)
    ms.script(TOKEN_PATH, ms_error('invalid_grant', 70008, 'The refresh token has expired.'))
    r = tokend.run('-v', 'refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM
    # The description as the server wrote it, with its identifiers redacted
    # (redact.h: a run of letters and digits that long could be a token).
    assert 'AADSTS70008: The refresh token has expired. Trace ID: 0ab1c2d3' in r.stderr


def test_string_expires_in_and_rotation(tokend, ms):
    seeded(tokend, ms)
    ms.script(TOKEN_PATH, ms_success(access='new-access', refresh='0.AQoA-rotated',
                                     expires_in='3599'))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert tokend.stored_refresh_token() == '0.AQoA-rotated'
    assert tokend.token_file().read_text() == 'new-access\n'
    status = json.loads(tokend.run('status', '--json').stdout)[0]
    assert 3590 < status['expires_in'] <= 3599
    form = form_of(ms.last(TOKEN_PATH))
    assert form['grant_type'] == 'refresh_token' and form['refresh_token'] == '0.AQoA-ms-refresh-1'
    assert form['scope'].split() == MS_SCOPES


def test_refresh_without_a_new_refresh_token_keeps_the_old(tokend, ms):
    seeded(tokend, ms)
    ms.script(TOKEN_PATH, ms_success(access='second', refresh=None))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert tokend.stored_refresh_token() == '0.AQoA-ms-refresh-1'
    ms.script(TOKEN_PATH, ms_success(access='third', refresh=None))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert form_of(ms.last(TOKEN_PATH))['refresh_token'] == '0.AQoA-ms-refresh-1'
    assert tokend.token_file().read_text() == 'third\n'


MS_CLIENT = 'facd6cff-a294-4415-b59f-c5b01937d7bd'


def id_token(**claims):
    """An ID token as the token endpoint sends it (the signature is not
    looked at: it came over TLS from the token endpoint)."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b'=').decode()
    return part({'typ': 'JWT', 'alg': 'RS256', 'kid': 'nOo3ZDrODXEK1jKWhXslHR_KXEg'}) + '.' + \
        part(claims) + '.' + 'c2lnbmF0dXJlLW5vdC1jaGVja2Vk'


def ms_id_token(preferred_username, **extra):
    return id_token(aud=MS_CLIENT, iss='https://login.microsoftonline.com/9188040d-6c67-4c5b-'
                    'b112-36a304b66dad/v2.0', tid='9188040d-6c67-4c5b-b112-36a304b66dad',
                    sub='AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', name='Me',
                    oid='00000000-0000-0000-66f3-3332eca7ea81', ver='2.0',
                    preferred_username=preferred_username, **extra)


def test_id_token_names_the_signed_in_user(tokend, ms):
    ms.script(TOKEN_PATH, ms_success(id_token=ms_id_token('Me@Contoso.com')))
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    auth = query_of(ms.last(AUTHORIZE_PATH))
    assert {'openid', 'profile'} <= set(auth['scope'].split())
    st = json.loads(tokend.run('status', '--json').stdout)[0]
    assert st['identity'] == 'Me@Contoso.com' and st['identity_verified'] is True
    assert 'identity:     Me@Contoso.com (verified)' in tokend.run('status').stdout


def test_upn_other_than_the_mailbox(tokend, ms):
    # The mailbox is me@contoso.com; the sign-in name (UPN) is not.
    ms.script(TOKEN_PATH, ms_success(id_token=ms_id_token('m.e@contoso.onmicrosoft.com',
                                                           upn='m.e@contoso.onmicrosoft.com')))
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_NOPERM
    assert 'signed in as m.e@contoso.onmicrosoft.com, not as me@contoso.com' in r.stderr
    assert 'set identity = m.e@contoso.onmicrosoft.com' in r.stderr
    assert not tokend.token_file().exists() and not tokend.refresh_token_file().exists()
    assert not (tokend.state / 'work' / 'state.json').exists()
    tokend.accounts['work']['identity'] = 'M.E@contoso.onmicrosoft.com'
    tokend.write_config()
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert json.loads(tokend.run('status', '--json').stdout)[0]['identity_verified'] is True


def test_refresh_naming_someone_else_keeps_the_old_tokens(tokend, ms):
    access, refresh = seeded(tokend, ms)
    ms.script(TOKEN_PATH, ms_success(access='other-access', refresh='0.AQoA-other',
                                     id_token=ms_id_token('eve@fabrikam.com')))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM, r.stderr
    assert 'signed in as eve@fabrikam.com, not as me@contoso.com' in r.stderr
    assert tokend.token_file().read_text() == access
    assert tokend.stored_refresh_token() == refresh
    # A refresh that names the right user is saved and verifies it.
    ms.script(TOKEN_PATH, ms_success(access='next-access', id_token=ms_id_token('me@contoso.com')))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert tokend.token_file().read_text() == 'next-access\n'
    assert json.loads(tokend.run('status', '--json').stdout)[0]['identity_verified'] is True


def test_malformed_id_token_is_refused_when_identity_is_checked(tokend, ms):
    ms.script(TOKEN_PATH, ms_success(id_token='not-a-jwt'))
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_DATAERR
    assert 'malformed id_token' in r.stderr
    assert not tokend.refresh_token_file().exists()
    # With nobody to compare with, it is no reason to refuse the sign-in.
    tokend.accounts['work'].pop('username')
    tokend.write_config()
    assert tokend.run('obtain', 'work').returncode == EX_OK
    st = json.loads(tokend.run('status', '--json').stdout)[0]
    assert st['identity'] is None and st['identity_verified'] is False


def test_sign_in_error_redirect(tokend, ms):
    ms.script(AUTHORIZE_PATH, lambda req: Reply(302, b'', {'Location': query_of(req)['redirect_uri'] + '?' + urllib.parse.urlencode({
        'error': 'access_denied', 'error_description': 'AADSTS65004: User declined to consent.',
        'state': query_of(req)['state']})}))
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_NOPERM
    assert 'access_denied' in r.stderr or 'denied' in r.stderr


def test_prompt_and_domain_hint(tokend, ms):
    tokend.accounts['work'].update(prompt='select_account', auth_params='domain_hint=contoso.com')
    tokend.write_config()
    assert tokend.run('obtain', 'work').returncode == EX_OK
    auth = query_of(ms.last(AUTHORIZE_PATH))
    assert auth['prompt'] == 'select_account' and auth['domain_hint'] == 'contoso.com'


# Google ---------------------------------------------------------------------

@pytest.fixture
def google(tokend, certs):
    ca, cert, key = certs
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        ep.script('/o/oauth2/v2/auth', authorize_redirect({'iss': 'https://accounts.google.com',
                                                           'scope': 'https://mail.google.com/'}))
        ep.script('/token', Reply(200, {'access_token': 'ya29.a0-google-access', 'expires_in': 3599,
                                        'refresh_token': '1//0g-google-refresh',
                                        'scope': 'https://mail.google.com/',
                                        'token_type': 'Bearer'}))
        ep.script('/revoke', Reply(200, b''))
        tokend.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=ca)
        tokend.account(provider='google', client_id='1234-abc.apps.googleusercontent.com',
                       client_secret='GOCSPX-not-really-secret', username='me@gmail.com',
                       authorize_url=ep.url('/o/oauth2/v2/auth'), token_url=ep.url('/token'),
                       revocation_url=ep.url('/revoke'), ca_file=ca, store='file', scopes=None)
        yield ep


def test_google_sign_in_refresh_and_logout(tokend, google):
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    auth = query_of(google.last('/o/oauth2/v2/auth'))
    assert auth['scope'] == 'https://mail.google.com/ openid email'
    assert auth['access_type'] == 'offline' and auth['prompt'] == 'consent'
    token = form_of(google.last('/token'))
    assert token['client_secret'] == 'GOCSPX-not-really-secret'
    # Google does not rotate: the refresh token is kept.
    google.script('/token', Reply(200, {'access_token': 'ya29.a0-second', 'expires_in': 3599,
                                        'token_type': 'Bearer'}))
    assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
    assert tokend.stored_refresh_token() == '1//0g-google-refresh'
    r = tokend.run('logout', 'work')
    assert 'revoked the refresh token at the provider' in r.stderr
    revoke = form_of(google.last('/revoke'))
    assert revoke['token'] == '1//0g-google-refresh'
    assert revoke['token_type_hint'] == 'refresh_token'


def test_google_bare_stored_token_is_bound_at_the_next_refresh(tokend, google):
    """Google never sends a new refresh token, so nothing would be saved:
    a bare entry of before is stored again, bound, after its refresh."""
    assert tokend.run('obtain', 'work').returncode == EX_OK
    tokend.refresh_token_file().write_text('1//0g-google-refresh')
    google.script('/token', Reply(200, {'access_token': 'ya29.a0-second', 'expires_in': 3599,
                                        'token_type': 'Bearer'}))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    entry = tokend.refresh_token_file().read_text()
    assert stored_token(entry) == '1//0g-google-refresh'
    assert stored_binding(entry) == {'client_id': tokend.accounts['work']['client_id'],
                                     'issuer': 'https://accounts.google.com',
                                     'token_url': google.url('/token')}


def test_google_id_token_email_is_the_username(tokend, google):
    google.script('/token', Reply(200, {
        'access_token': 'ya29.a0-google-access', 'expires_in': 3599,
        'refresh_token': '1//0g-google-refresh', 'token_type': 'Bearer',
        'scope': 'openid https://mail.google.com/ https://www.googleapis.com/auth/userinfo.email',
        'id_token': id_token(iss='https://accounts.google.com', sub='110248495921238986420',
                             aud='1234-abc.apps.googleusercontent.com', email='Me@gmail.com',
                             email_verified=True)}))
    assert tokend.run('obtain', 'work').returncode == EX_OK
    st = json.loads(tokend.run('status', '--json').stdout)[0]
    assert st['identity'] == 'Me@gmail.com' and st['identity_verified'] is True
    # Google lists the email scope as userinfo.email: granted all the same.
    assert st['not_granted'] == []
    assert 'granted:' not in tokend.run('status', 'work').stdout


def test_google_redirect_from_another_issuer_is_refused(tokend, google):
    google.script('/o/oauth2/v2/auth', authorize_redirect({'iss': 'https://evil.example'}))
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_DATAERR
    assert 'issuer https://evil.example' in r.stderr
    assert google.count('/token') == 0


def test_google_needs_its_client_secret(tokend, google):
    tokend.accounts['work'].pop('client_secret')
    tokend.write_config()
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_CONFIG and 'client_secret' in r.stderr


# Discovery and the device flow in the providers' documented shapes ----------

def test_templated_issuer_of_common_breaks_nothing(tokend, certs):
    """Microsoft's multi-tenant metadata names the issuer
    https://login.microsoftonline.com/{tenantid}/v2.0; a strict issuer check
    would refuse it."""
    ca, cert, key = certs
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        base = f'https://127.0.0.1:{ep.port}'
        ep.script('/common/v2.0/.well-known/openid-configuration', Reply(200, {
            'issuer': base + '/{tenantid}/v2.0',
            'authorization_endpoint': base + '/common/oauth2/v2.0/authorize',
            'token_endpoint': base + '/common/oauth2/v2.0/token',
            'device_authorization_endpoint': base + '/common/oauth2/v2.0/devicecode',
            'response_types_supported': ['code']}))
        ep.script('/common/oauth2/v2.0/authorize', authorize_redirect())
        ep.script('/common/oauth2/v2.0/token', ms_success())
        tokend.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=ca)
        tokend.account(provider='generic', issuer=base + '/common/v2.0', client_id='x',
                       authorize_url=None, token_url=None, ca_file=ca, store='file')
        r = tokend.run('obtain', 'work')
        assert r.returncode == EX_OK, r.stderr
        assert tokend.run('refresh', '--force', 'work').returncode == EX_OK


def device_account(tokend, certs, ep):
    ca = certs[0]
    tokend.env.update(TOKEND_TEST_CA=ca)
    tokend.account(provider='google', client_id='1234-abc.apps.googleusercontent.com',
                   client_secret='GOCSPX-x', username='me@gmail.com', flow='device',
                   authorize_url=ep.url('/auth'), token_url=ep.url('/token'),
                   device_authorization_url=ep.url('/device/code'), ca_file=ca, store='file',
                   scopes='email')


def google_device_reply(interval=1):
    # Google spells it verification_url and sends no complete URI.
    return Reply(200, {'device_code': 'AH-1Ng2-device-code', 'user_code': 'GQVQ-JKEC',
                       'verification_url': 'https://www.google.com/device',
                       'expires_in': 1800, 'interval': interval})


def test_device_flow_google_spelling_and_slow_down(tokend, certs):
    with ScriptedEndpoint(tls=certs[1:]) as ep:
        device_account(tokend, certs, ep)
        ep.script('/device/code', google_device_reply())
        ep.script('/token', Reply(400, {'error': 'slow_down'}),
                  Reply(400, {'error': 'authorization_pending'}),
                  Reply(200, {'access_token': 'ya29.device', 'expires_in': 3599,
                              'refresh_token': '1//device-refresh', 'token_type': 'Bearer'}))
        r = tokend.run('obtain', 'work', '--no-browser', timeout=60)
        assert r.returncode == EX_OK, r.stderr
        assert 'open https://www.google.com/device and enter the code GQVQ-JKEC' in r.stderr
        polls = [q for q in ep.requests if q.path == '/token']
        assert len(polls) == 3
        assert form_of(polls[0])['grant_type'] == 'urn:ietf:params:oauth:grant-type:device_code'
        assert form_of(polls[0])['device_code'] == 'AH-1Ng2-device-code'
        assert form_of(polls[0])['client_secret'] == 'GOCSPX-x'
        assert tokend.token_file().read_text() == 'ya29.device\n'


def test_device_flow_slows_down_by_five_seconds(tokend, certs):
    import time as _time
    with ScriptedEndpoint(tls=certs[1:]) as ep:
        device_account(tokend, certs, ep)
        ep.script('/device/code', google_device_reply())
        ep.script('/token', Reply(400, {'error': 'slow_down'}),
                  Reply(200, {'access_token': 'ya29.device', 'expires_in': 3599,
                              'refresh_token': '1//r', 'token_type': 'Bearer'}))
        stamps = []
        orig = ep._answer

        def stamp(h, reply):
            stamps.append(_time.monotonic())
            orig(h, reply)
        ep._answer = stamp
        r = tokend.run('obtain', 'work', '--no-browser', timeout=60)
        assert r.returncode == EX_OK, r.stderr
        gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])]
        assert gaps and 5.5 <= gaps[0] < 9, stamps


@pytest.mark.parametrize('error,words', [
    ('access_denied', 'denied'),
    ('authorization_declined', 'declined'),
    ('expired_token', 'expired'),
])
def test_device_flow_ends_on_refusal(tokend, certs, error, words):
    with ScriptedEndpoint(tls=certs[1:]) as ep:
        device_account(tokend, certs, ep)
        ep.script('/device/code', google_device_reply())
        ep.script('/token', Reply(400, {'error': 'authorization_pending'}),
                  Reply(400, {'error': error}))
        r = tokend.run('obtain', 'work', '--no-browser', timeout=60)
        assert r.returncode == EX_NOPERM, r.stderr
        assert words in r.stderr
        assert not tokend.token_file().exists()


# After Microsoft's change: localhost and a paste, and what to try next ------

def test_localhost_address_pasted_over_ssh(tokend, ms, tmp_path):
    """The browser runs on another machine: Microsoft's redirect to
    http://localhost:PORT/ fails to load there, and the user pastes its
    address (with session_state) into tokend's prompt."""
    out = tmp_path / 'location'
    browser = tmp_path / 'remote-browser'
    browser.write_text('#!/bin/sh\n# Sign in, but reach nothing on this machine\'s loopback.\n'
                       f'curl -sS --cacert "$TOKEND_TEST_CA" -o /dev/null -w '
                       f"'%{{redirect_url}}' \"$1\" > {out}.tmp && mv {out}.tmp {out}\n")
    browser.chmod(0o755)
    tokend.env['BROWSER'] = str(browser)
    proc = tokend.popen('obtain', 'work', stdin=subprocess.PIPE)
    wait_until(out.exists, 20, 'the browser wrote the address it could not load', interval=0.05)
    final = out.read_text().strip()
    assert re.match(r'http://localhost:\d+/\?code=M\.C507_BAY\.2\.U\.[0-9a-f]+&state=.*'
                    r'&session_state=', final), final
    proc.stdin.write(final + '\n')
    proc.stdin.flush()
    proc.wait(timeout=30)
    err = proc.stderr.read()
    proc.stdin.close()
    assert proc.returncode == EX_OK, err
    assert 'or paste the address of the page the browser ended on' in err
    auth = query_of(ms.last(AUTHORIZE_PATH))
    token = form_of(ms.last(TOKEN_PATH))
    assert token['redirect_uri'] == auth['redirect_uri']
    assert final.startswith(auth['redirect_uri'])
    assert token['code'] == dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))['code']
    assert ms.count(TOKEN_PATH) == 1


def test_redirect_mismatch_names_what_to_register(tokend, ms):
    ms.script(AUTHORIZE_PATH, lambda req: Reply(302, b'', {'Location': query_of(req)['redirect_uri'] + '?' + urllib.parse.urlencode({
        'error': 'invalid_request',
        'error_description': "AADSTS50011: The redirect URI 'http://localhost:1234/' specified "
                             "in the request does not match the redirect URIs configured for "
                             "the application 'facd6cff-a294-4415-b59f-c5b01937d7bd'.",
        'state': query_of(req)['state']})}))
    r = tokend.run('obtain', 'work')
    assert r.returncode == EX_CONFIG, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('tokend: work: ') and 'AADSTS50011' in line
    assert 'register http://localhost as a "Mobile and desktop applications" redirect URI' in line
    assert 'set redirect_uri to the one registered there' in line
    assert ms.count(TOKEN_PATH) == 0


def ms_device_reply():
    return Reply(200, {'user_code': 'GTJ8FQ2LW', 'device_code': 'DAQABAAEAAAD-ms-device',
                       'verification_uri': 'https://microsoft.com/devicelogin',
                       'expires_in': 900, 'interval': 1,
                       'message': 'To sign in, use a web browser to open the page '
                                  'https://microsoft.com/devicelogin and enter the code '
                                  'GTJ8FQ2LW to authenticate.'})


@pytest.mark.parametrize('how', ['option', 'config'])
def test_device_flow_blocked_by_conditional_access_names_the_browser_flow(tokend, ms, how):
    ms.script(f'/{TENANT}/oauth2/v2.0/devicecode', ms_device_reply())
    ms.script(TOKEN_PATH, Reply(400, {'error': 'authorization_pending'}),
              ms_error('invalid_grant', 53003, 'Access has been blocked by Conditional Access '
                       'policies. The access policy does not allow token issuance.'))
    args = ['--device'] if how == 'option' else []
    if how == 'config':
        tokend.accounts['work']['flow'] = 'device'
        tokend.write_config()
    r = tokend.run('obtain', 'work', '--no-browser', *args, timeout=60)
    assert r.returncode == EX_NOPERM, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('tokend: work: ') and 'AADSTS53003' in line
    assert 'Conditional Access' in line
    assert 'sign in with the browser' in line and 'tokend obtain work' in line
    if how == 'option':
        assert '(without --device)' in line
    else:
        assert 'set flow = code' in line
    assert not tokend.refresh_token_file().exists()


def test_conditional_access_on_a_refresh_still_asks_the_administrator(tokend, ms):
    seeded(tokend, ms)
    ms.script(TOKEN_PATH, ms_error('invalid_grant', 53003, 'Access has been blocked by '
                                   'Conditional Access policies.'))
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM
    assert 'ask your administrator' in r.stderr and 'device' not in r.stderr


# App-only accounts (client credentials) ------------------------------------
# Microsoft's documented answers to an app's token request, replayed; the
# account uses the real microsoft preset, pointed at the replay by authority.

APP_CLIENT = '0b7c5a43-6a8e-4f53-9a37-1c3f1e2d4b5a'
SECRET_CLIENT = '5d2e9f61-0c4b-4e8a-b1f7-9a6c3d2e1f08'
APP_SCOPE = 'https://outlook.office365.com/.default'


def ms_app_success(access='eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.ms-app-token-1'):
    # No scope, no refresh token, no id_token: an app's answer.
    return Reply(200, {'token_type': 'Bearer', 'expires_in': 3599, 'ext_expires_in': 3599,
                       'access_token': access})


@pytest.fixture(scope='module')
def app_keys(tmp_path_factory):
    from harness.appkeys import AppKeys
    return AppKeys(tmp_path_factory.mktemp('ms-appkeys'))


@pytest.fixture
def ms_app(tokend, certs, app_keys, tmp_path):
    """An app-only account 'box' (certificate) and 'sbox' (client secret)
    at the replayed tenant: two apps (one app shares its token among its
    mailboxes, whatever credential each account names)."""
    ca, cert, key = certs
    secret = tmp_path / 'client-secret'
    secret.write_text('Xy8Q~replayed-secret-value\n')
    secret.chmod(0o600)
    tokend.config.parent.chmod(0o700)
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        ep.script(TOKEN_PATH, ms_app_success())
        tokend.env.update(TOKEND_TEST_CA=ca)
        common = dict(provider='microsoft', grant='client_credentials', tenant=TENANT,
                      authority=f'127.0.0.1:{ep.port}', client_id=APP_CLIENT, ca_file=ca,
                      authorize_url=None, token_url=None, scopes=None, store=None)
        tokend.account('box', username='scanner@contoso.com', client_certificate=app_keys.cert,
                       client_key=app_keys.key, **common)
        tokend.account('sbox', username='printer@contoso.com', client_secret_file=secret,
                       **dict(common, client_id=SECRET_CLIENT))
        yield ep


def app_files(tokend, name):
    """Every token file of the account and of its app, with contents."""
    files = [tokend.token_file(name), *tokend.state.glob('.apps/*/token')]
    return {f: f.read_bytes() for f in files if f.exists()}


def test_app_request_is_what_microsoft_documents(tokend, ms_app, app_keys):
    r = tokend.run('token', 'box')
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout == 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.ms-app-token-1\n'
    form = form_of(ms_app.last(TOKEN_PATH))
    assert form['grant_type'] == 'client_credentials' and form['scope'] == APP_SCOPE
    assert form['client_id'] == APP_CLIENT
    assert form['client_assertion_type'] == \
        'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
    assert 'client_secret' not in form
    head, claims, _ = form['client_assertion'].split('.')
    pad = lambda s: base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))  # noqa: E731
    assert json.loads(pad(head))['alg'] == 'RS256' and 'x5t#S256' in json.loads(pad(head))
    claims = json.loads(pad(claims))
    assert claims['aud'] == f'https://127.0.0.1:{ms_app.port}{TOKEN_PATH}'
    assert claims['iss'] == claims['sub'] == APP_CLIENT
    # The secret account sends the secret in the body, and nothing signed.
    ms_app.script(TOKEN_PATH, ms_app_success('eyJ.ms-app-token-2'))
    assert tokend.run('token', 'sbox').returncode == EX_OK
    form = form_of(ms_app.last(TOKEN_PATH))
    assert form['client_secret'] == 'Xy8Q~replayed-secret-value'
    assert form['client_id'] == SECRET_CLIENT and 'client_assertion' not in form


# name, account, reply, exit status, words of the one-line message
APP_CASES = [
    ('certificate-not-registered', 'box', ms_error(
        'invalid_client', 700027, 'Client assertion failed signature validation.', status=401),
     EX_CONFIG, ['certificate is not registered', 'AADSTS700027',
                 'upload client_certificate to the app registration']),
    ('secret-wrong', 'sbox', ms_error(
        'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being '
        'sent in the request is the client secret value, not the client secret ID.',
        status=401),
     EX_CONFIG, ['client secret is wrong', 'AADSTS7000215', 'Value (not its ID)']),
    ('secret-expired', 'sbox', ms_error(
        'invalid_client', 7000222, f"The provided client secret keys for app '{APP_CLIENT}' "
        'are expired.', status=401),
     EX_CONFIG, ['client secret has expired', 'AADSTS7000222', 'client_secret_file']),
    ('clock-skew', 'box', ms_error(
        'invalid_client', 700024, 'Client assertion is not within its valid time range. '
        'Current time: 2026-11-23T10:00:00Z, assertion valid from 2026-11-23T11:00:00Z.'),
     EX_CONFIG, ['clock skew', 'AADSTS700024', 'timedatectl']),
    ('no-service-principal', 'box', ms_error(
        'invalid_resource', 500011, 'The resource principal named https://outlook.office365.com '
        'was not found in the tenant named Contoso.'),
     EX_CONFIG, ['not available in this tenant', 'AADSTS500011', 'New-ServicePrincipal']),
]


@pytest.mark.parametrize('name,account,reply,status,words', APP_CASES,
                         ids=[c[0] for c in APP_CASES])
def test_documented_app_errors(tokend, ms_app, name, account, reply, status, words):
    assert tokend.run('token', account).returncode == EX_OK
    before = app_files(tokend, account)
    ms_app.script(TOKEN_PATH, reply)
    r = tokend.run('refresh', '--force', account)
    assert r.returncode == status, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'tokend: {account}: '), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    # No person can sign in for an app; nothing about the request leaks.
    assert 'tokend obtain' not in lines[0] and 'Trace ID' not in lines[0]
    assert 'replayed-secret-value' not in r.stderr
    assert app_files(tokend, account) == before
    st = json.loads((tokend.state / account / 'state.json').read_text())
    assert st['last_status'] == status


# Google: a service account with domain-wide delegation (jwt_bearer) ---------

SA_EMAIL = 'mailer@tokend-replay.iam.gserviceaccount.com'


@pytest.fixture
def google_sa(tokend, certs, app_keys):
    ca, cert, key = certs
    sa = app_keys.service_account(SA_EMAIL, client_id='106789012345678901234')
    tokend.config.parent.chmod(0o700)
    with ScriptedEndpoint(tls=(cert, key)) as ep:
        ep.script('/token', Reply(200, {'access_token': 'ya29.c.sa-token', 'expires_in': 3599,
                                        'token_type': 'Bearer'}))
        tokend.env.update(TOKEND_TEST_CA=ca)
        tokend.account('gbox', provider='google', grant='jwt_bearer', service_account_file=sa,
                       username='scanner@example.com', token_url=ep.url('/token'), ca_file=ca,
                       authorize_url=None, scopes=None, store=None, client_id=None)
        yield ep


def test_google_service_account_acts_for_the_mailbox(tokend, google_sa):
    r = tokend.run('token', 'gbox')
    assert r.returncode == EX_OK, r.stderr
    form = form_of(google_sa.last('/token'))
    assert form['grant_type'] == 'urn:ietf:params:oauth:grant-type:jwt-bearer'
    claims = form['assertion'].split('.')[1]
    claims = json.loads(base64.urlsafe_b64decode(claims + '=' * (-len(claims) % 4)))
    assert claims['iss'] == SA_EMAIL and claims['sub'] == 'scanner@example.com'
    assert claims['scope'] == 'https://mail.google.com/'
    assert claims['exp'] - claims['iat'] <= 3600


@pytest.mark.parametrize('reply,status,words', [
    # The mailbox is not a user of the domain (or not one the delegation covers).
    (Reply(400, {'error': 'invalid_grant', 'error_description': 'Invalid email or User ID'}),
     EX_NOPERM, ['the service account may not act for scanner@example.com (invalid_grant)',
                 'Domain-wide delegation', '106789012345678901234']),
    # No delegation for this client id and scope at all.
    (Reply(401, {'error': 'unauthorized_client', 'error_description':
                 'Client is unauthorized to retrieve access tokens using this method, or client '
                 'not authorized for any of the scopes requested.'}),
     EX_NOPERM, ['the service account may not act for scanner@example.com (unauthorized_client)',
                 'Domain-wide delegation', '106789012345678901234']),
], ids=['invalid-grant', 'unauthorized-client'])
def test_google_refusals_say_what_the_admin_must_do(tokend, google_sa, reply, status, words):
    assert tokend.run('token', 'gbox').returncode == EX_OK
    before = app_files(tokend, 'gbox')
    google_sa.script('/token', reply)
    r = tokend.run('refresh', '--force', 'gbox')
    assert r.returncode == status, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('tokend: gbox: '), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert 'tokend obtain' not in lines[0]
    assert app_files(tokend, 'gbox') == before
