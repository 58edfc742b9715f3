"""tokend add --app-only EMAIL: the account of an app (no person signs in),
its first token, the mail check and the administrator's one-time setup,
inside the private test internet (tests/harness/netns.py).  The generic
case runs against the real peers (oidc-provider with the app's
certificate, Dovecot letting the app into its mailboxes only); Microsoft
and Google are replays of their documented token answers at their real
host names, clearly test endpoints."""

import base64
import json
import urllib.parse

import pytest

from conftest import EX_OK, EX_USAGE, TOKEND, Tokend
from harness import netns
from harness.appkeys import AppKeys

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=f'test namespace: {netns.available()}')

MS = 'login.microsoftonline.com'
GOOGLE = 'oauth2.googleapis.com'
TENANT_ID = '7a1c0e25-3f4b-4c47-9d11-2b8e6f0a9c31'
APP_ID = '0b7c5a43-6a8e-4f53-9a37-1c3f1e2d4b5a'
OBJECT_ID = 'f3e2d1c0-b9a8-4765-8432-10fedcba9876'
SA_EMAIL = 'mailer@tokend-test.iam.gserviceaccount.com'
AUTOCONFIG = '''<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="imap">
      <hostname>127.0.0.1</hostname><port>{imap}</port><socketType>plain</socketType>
      <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>127.0.0.1</hostname><port>{smtp}</port><socketType>plain</socketType>
      <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
    </outgoingServer>
  </emailProvider>
  <oAuth2>
    <issuer>{issuer}</issuer>
    <scope>openid offline_access mail.imap</scope>
    <authURL>https://{issuer}/auth</authURL>
    <tokenURL>https://{issuer}/token</tokenURL>
  </oAuth2>
</clientConfig>
'''


def jwt(**claims):
    """An access token as Microsoft's are: a JWT (tokend reads its oid and
    tid only to fill in the administrator's commands)."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b'=').decode()
    return f'{part({"typ": "JWT", "alg": "RS256"})}.{part(claims)}.c2ln'


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    return AppKeys(tmp_path_factory.mktemp('appkeys'))


@pytest.fixture(scope='module')
def world(tmp_path_factory, keys):
    hosts = [MS, GOOGLE, 'autoconfig.example.org']
    with netns.NetNS(tmp_path_factory.mktemp('netns'), hosts=hosts) as ns:
        auth = netns.NsAuthServer(ns, tmp_path_factory.mktemp('nsauth'),
                                  env={'TOKEND_TEST_APP_CERT': str(keys.cert)})
        auth.start()
        try:
            with netns.NsDovecot(ns, auth, tmp_path_factory.mktemp('nsdovecot'),
                                 apps={'tokend-app': ['box1@example.org']}) as dovecot:
                issuer = f'127.0.0.1:{auth.port}'
                ns.serve('autoconfig.example.org', '/mail/config-v1.1.xml',
                         AUTOCONFIG.format(imap=dovecot.imap_port, smtp=dovecot.submission_port,
                                           issuer=issuer))
                ns.auth, ns.dovecot = auth, dovecot
                yield ns
        finally:
            auth.stop()


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
    t.config.parent.rmdir()
    return t


def form_of(world, host, path):
    seen = [q for q in world.requests() if q['host'] == host and q['path'] == path]
    assert seen, f'no request to https://{host}{path}'
    return urllib.parse.parse_qs(seen[-1]['form'])


def test_generic_app_is_added_minted_and_checked(td, world, keys):
    """From an address to a working app-only account at a real server:
    autoconfig names oidc-provider and Dovecot; the app's certificate
    mints the first token, and Dovecot lets the app into the mailbox."""
    # The test's server is on this machine: named, as a user would.
    r = td.run('add', '--app-only', 'box1@example.org', 'box1', '--client-id', 'tokend-app',
               '--certificate', str(keys.cert), '--key', str(keys.key),
               '--scopes', 'mail.imap mail.smtp', '--issuer', world.auth.issuer)
    assert r.returncode == EX_OK, r.stderr
    text = td.config.read_text()
    assert 'grant = client_credentials\n' in text
    assert f'client_certificate = {keys.cert}\n' in text and f'client_key = {keys.key}\n' in text
    assert 'scopes = mail.imap mail.smtp\n' in text and 'authorize_url' not in text
    token = td.token_file('box1').read_text().strip()
    info = world.auth.introspect(token)
    assert info['active'] and info['client_id'] == 'tokend-app'
    assert not list(td.state.glob('box1/refresh_token*'))
    port = world.dovecot.imap_port
    assert f'box1: IMAP login to 127.0.0.1:{port} as box1@example.org: ok' in r.stdout
    assert ("box1: The server's administrator lets client tokend-app use the scopes "
            'mail.imap,mail.smtp for box1@example.org.') in r.stdout


def test_a_mailbox_the_app_may_not_use_fails_the_check(td, world, keys):
    # The test's server is on this machine: named, as a user would.
    r = td.run('add', '--app-only', 'box9@example.org', 'box9', '--client-id', 'tokend-app',
               '--certificate', str(keys.cert), '--key', str(keys.key),
               '--scopes', 'mail.imap mail.smtp', '--issuer', world.auth.issuer)
    assert r.returncode != EX_OK
    # The token was minted; the mail server refused the mailbox, and the
    # administrator's setup was said before the check.
    assert world.auth.introspect(td.token_file('box9').read_text().strip())['active']
    assert 'for box9@example.org.' in r.stdout
    said = r.stdout + r.stderr
    assert 'box9: the app may not use mailbox box9@example.org: IMAP login' in said, said
    assert 'must let client tokend-app use box9@example.org' in said


def test_microsoft_app_prints_the_exchange_powershell(td, world, keys):
    base = f'/{TENANT_ID}/oauth2/v2.0/token'
    world.serve(MS, base, {
        'token_type': 'Bearer', 'expires_in': 3599, 'ext_expires_in': 3599,
        'access_token': jwt(aud='https://outlook.office365.com', appid=APP_ID, oid=OBJECT_ID,
                            tid=TENANT_ID, roles=['IMAP.AccessAsApp'])})
    r = td.run('add', '--app-only', 'scanner@contoso.example', 'scanner', '--provider',
               'microsoft', '--tenant', TENANT_ID, '--client-id', APP_ID, '--certificate',
               str(keys.cert), '--key', str(keys.key))
    # The mail check cannot reach outlook.office365.com from the namespace.
    assert 'scanner: IMAP check of outlook.office365.com:993 failed' in r.stderr
    out = r.stdout
    assert f'Connect-ExchangeOnline -Organization {TENANT_ID}\n' in out
    assert (f'New-ServicePrincipal -AppId {APP_ID} -ObjectId {OBJECT_ID} '
            '-DisplayName "tokend scanner"\n') in out
    assert (f'Add-MailboxPermission -Identity "scanner@contoso.example" -User {OBJECT_ID} '
            '-AccessRights FullAccess\n') in out
    assert (f'Add-RecipientPermission -Identity "scanner@contoso.example" -Trustee {OBJECT_ID} '
            '-AccessRights SendAs\n') in out
    assert 'New-ManagementScope -Name "tokend scanner"' in out
    assert f'New-ManagementRoleAssignment -App {OBJECT_ID}' in out
    form = form_of(world, MS, base)
    assert form['grant_type'] == ['client_credentials']
    assert form['scope'] == ['https://outlook.office365.com/.default']
    assert form['client_assertion_type'] == \
        ['urn:ietf:params:oauth:client-assertion-type:jwt-bearer']
    text = td.config.read_text()
    assert f'tenant = {TENANT_ID}\n' in text and 'grant = client_credentials\n' in text


def test_microsoft_app_needs_its_tenant(td, keys):
    r = td.run('add', '--app-only', 'scanner@contoso.example', '--provider', 'microsoft',
               '--client-id', APP_ID, '--certificate', str(keys.cert), '--key', str(keys.key))
    assert r.returncode == EX_USAGE
    assert 'not common' in r.stderr and '--tenant TENANT_ID' in r.stderr
    assert not td.config.exists()


def test_google_service_account_prints_the_admin_console_steps(td, world, keys):
    world.serve(GOOGLE, '/token', {'token_type': 'Bearer', 'expires_in': 3599,
                                   'access_token': 'ya29.c.service-account-token-1'})
    sa = keys.service_account(SA_EMAIL)
    r = td.run('add', '--app-only', 'scanner@corp.example', 'gscan', '--provider', 'google',
               '--service-account-file', str(sa))
    assert 'gscan: IMAP check of imap.gmail.com:993 failed' in r.stderr
    assert 'Manage Domain Wide Delegation' in r.stdout
    assert '  Client ID: 1234567890\n  OAuth scopes: https://mail.google.com/\n' in r.stdout
    assert 'grant = jwt_bearer\n' in td.config.read_text()
    form = form_of(world, GOOGLE, '/token')
    assert form['grant_type'] == ['urn:ietf:params:oauth:grant-type:jwt-bearer']
    claims = json.loads(base64.urlsafe_b64decode(form['assertion'][0].split('.')[1] + '=='))
    assert claims['iss'] == SA_EMAIL and claims['sub'] == 'scanner@corp.example'
    assert td.token_file('gscan').read_text() == 'ya29.c.service-account-token-1\n'


def test_app_options_need_app_only(td, keys):
    r = td.run('add', 'box1@example.org', '--certificate', str(keys.cert))
    assert r.returncode == EX_USAGE and 'go with --app-only' in r.stderr
    r = td.run('add', '--app-only', 'box1@example.org', '--client-id', 'x')
    assert r.returncode == EX_USAGE and 'no credential for the app' in r.stderr
    assert not td.config.exists()
