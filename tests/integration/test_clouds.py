"""Microsoft's national clouds and High Volume Email as provider entries
(src/config/provider.c, doc/clouds.md): an account names the entry and
nothing else, and tokend signs in (a person) or mints (an app) at that
cloud's own login host, asking for its own mail resource.  Inside the
private test internet (tests/harness/netns.py) the real host names answer
with replays of Microsoft's documented token answers: test endpoints."""

import base64
import json
import urllib.parse
from pathlib import Path

import pytest

from conftest import EX_OK, TOKEND, Tokend
from harness import netns
from harness.appkeys import AppKeys

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=f'test namespace: {netns.available()}')

TENANT = '7a1c0e25-3f4b-4c47-9d11-2b8e6f0a9c31'
CLIENT = '0b7c5a43-6a8e-4f53-9a37-1c3f1e2d4b5a'
FOLLOW = Path(__file__).resolve().parents[1] / 'harness' / 'follow-redirects'
# entry: (login host, mail resource, IMAP host or None, SMTP host)
CLOUDS = {
    'microsoft-gcc-high': ('login.microsoftonline.us', 'outlook.office365.us',
                           'outlook.office365.us', 'outlook.office365.us'),
    'microsoft-dod': ('login.microsoftonline.us', 'outlook-dod.office365.us',
                      'outlook-dod.office365.us', 'outlook-dod.office365.us'),
    'microsoft-china': ('login.partner.microsoftonline.cn', 'partner.outlook.cn',
                        'partner.outlook.cn', 'partner.outlook.cn'),
    'microsoft-hve': ('login.microsoftonline.com', 'outlook.office365.com', None,
                      'smtp-hve.office365.com'),
}


def jwt(**claims):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b'=').decode()
    return f'{part({"typ": "JWT", "alg": "RS256"})}.{part(claims)}.c2ln'


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    hosts = sorted({login for login, *_ in CLOUDS.values()})
    with netns.NetNS(tmp_path_factory.mktemp('netns'), hosts=hosts) as ns:
        yield ns


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    return AppKeys(tmp_path_factory.mktemp('appkeys'))


class NsTokend(Tokend):
    def __init__(self, home, ns):
        super().__init__(home)
        self.ns = ns

    def run(self, *args, input=None, timeout=60, env=None):
        e = dict(self.env, **(env or {}))
        return self.ns.run([TOKEND, *args], input=input, timeout=timeout, env=e)


@pytest.fixture
def td(tmp_path, world):
    t = NsTokend(tmp_path, world)
    t.config.parent.chmod(0o700)
    t.env['BROWSER'] = str(FOLLOW)
    return t


def last_request(world, host, path):
    seen = [q for q in world.requests() if q['host'] == host and q['path'].startswith(path)]
    assert seen, f'nothing asked at https://{host}{path}'
    return seen


@pytest.mark.parametrize('entry', sorted(CLOUDS))
def test_an_app_mints_at_its_cloud(td, world, keys, entry):
    login, resource, _, _ = CLOUDS[entry]
    path = f'/{TENANT}/oauth2/v2.0/token'
    world.serve(login, path, {'token_type': 'Bearer', 'expires_in': 3599,
                              'access_token': f'{entry}-app-token'})
    td.account('app', provider=entry, grant='client_credentials', tenant=TENANT,
               client_id=CLIENT, client_certificate=keys.cert, client_key=keys.key,
               username='scanner@contoso.example')
    r = td.run('token', 'app')
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout == f'{entry}-app-token\n'
    form = urllib.parse.parse_qs(last_request(world, login, path)[-1]['form'])
    assert form['scope'] == [f'https://{resource}/.default']
    assert form['grant_type'] == ['client_credentials']
    claims = json.loads(base64.urlsafe_b64decode(form['client_assertion'][0].split('.')[1]
                                                 + '=='))
    assert claims['aud'] == f'https://{login}{path}'


@pytest.mark.parametrize('entry', sorted(CLOUDS))
def test_a_person_signs_in_at_its_cloud(td, world, entry):
    login, resource, imap, smtp = CLOUDS[entry]
    # High Volume Email: a person's scopes are Microsoft's usual ones.
    resource = 'outlook.office.com' if entry == 'microsoft-hve' else resource
    base = f'/{TENANT}/oauth2/v2.0'
    world.serve(login, f'{base}/authorize', '', authorize=True)
    world.serve(login, f'{base}/token', {
        'token_type': 'Bearer', 'expires_in': 3599, 'access_token': f'{entry}-user-token',
        'refresh_token': f'{entry}-refresh', 'scope': f'https://{resource}/SMTP.Send',
        'id_token': jwt(aud=CLIENT, tid=TENANT, preferred_username='me@contoso.example',
                        sub='AAAAAAAAAAAAAAAAAAAAAIkz', ver='2.0')})
    td.account('me', provider=entry, tenant=TENANT, client_id=CLIENT,
               username='me@contoso.example', store='file')
    r = td.run('obtain', 'me')
    assert r.returncode == EX_OK, r.stderr
    assert td.token_file('me').read_text() == f'{entry}-user-token\n'
    authorize = last_request(world, login, f'{base}/authorize')[-1]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize['path']).query)
    scopes = query['scope'][0].split()
    assert f'https://{resource}/SMTP.Send' in scopes and 'offline_access' in scopes
    assert all(s.startswith(f'https://{resource}/') for s in scopes if '/' in s)
    # The mail hosts come from the entry.
    msmtp = td.run('snippet', 'me', 'msmtp')
    assert msmtp.returncode == EX_OK, msmtp.stderr
    assert f'host {smtp}\n' in msmtp.stdout and 'port 587\n' in msmtp.stdout
    if imap:
        fetchmail = td.run('snippet', 'me', 'fetchmail7')
        assert f'poll {imap} protocol IMAP' in fetchmail.stdout
