"""tokend add EMAIL [ACCOUNT]: provider detection, the appended account and
the sign-in, inside the private test internet (tests/harness/netns.py),
where tokend talks to the presets' real host names."""

import base64
import json
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (BROWSER, EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_OK, EX_TEMPFAIL,
                      EX_USAGE, TOKEND, Tokend, mode)
from harness import netns

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=f'test namespace: {netns.available()}')

MS = 'login.microsoftonline.com'
TENANT_ID = '7a1c0e25-3f4b-4c47-9d11-2b8e6f0a9c31'
AUTOCONFIG_PATH = '/mail/config-v1.1.xml'
WELL_KNOWN_PATH = '/.well-known/autoconfig/mail/config-v1.1.xml'
MALFORMED = ['malformed', 'entity', 'deep', 'types', 'huge', 'notroot']
HOSTS = [MS, 'autoconfig.example.org', 'wellknown.example', 'autoconfig.noauth.example',
         'autoconfig.msac.example', 'autoconfig.plain.example', 'autoconfig.other.example'] + \
        [f'autoconfig.{m}.example' for m in MALFORMED]
RECORDS = [
    'mx-host=fabrikam.example,fabrikam-example.mail.protection.outlook.com,10',
    'mx-host=corp.example,alt1.aspmx.l.google.com,20',
    'mx-host=corp.example,aspmx.l.google.com,10',
    'mx-host=plain.example,mx.plain.example,10',
    'host-record=mx.plain.example,127.0.0.1',
    'txt-record=plain.example,"v=spf1 -all"',
]
CLIENT = ['--client-id', 'tokend-native']


def autoconfig(issuer, imap=None, smtp=None, scope='openid offline_access mail.imap',
               username='%EMAILLOCALPART%'):
    host, port = imap or ('imap.example.org', 993)
    smtp_host, smtp_port = smtp or ('smtp.example.org', 465)
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <displayName>Example Mail</displayName>
    <incomingServer type="pop3">
      <hostname>pop.example.org</hostname>
      <port>995</port>
      <socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>{host}</hostname>
      <port>{port}</port>
      <socketType>{"plain" if host == "127.0.0.1" else "SSL"}</socketType>
      <username>{username}</username>
      <authentication>OAuth2</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{smtp_host}</hostname>
      <port>{smtp_port}</port>
      <socketType>{"plain" if smtp_host == "127.0.0.1" else "SSL"}</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>OAuth2</authentication>
    </outgoingServer>
  </emailProvider>
  <oAuth2>
    <issuer>{issuer}</issuer>
    <scope>{scope}</scope>
    <authURL>https://{issuer}/auth</authURL>
    <tokenURL>https://{issuer}/token</tokenURL>
  </oAuth2>
</clientConfig>
'''


HOSTILE = {
    'malformed': '<clientConfig version="1.1"><emailProvider id="x"><incomingServer type="imap">'
                 '<hostname>imap.x</hostname></emailProvider>',
    'entity': '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
              + ''.join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "&lol;" * 10}">'
                        for i in range(9))
              + ']>\n<clientConfig><oAuth2><issuer>&lol8;</issuer></oAuth2></clientConfig>',
    'deep': '<clientConfig>' + '<emailProvider>' * 5000 + '</emailProvider>' * 5000
            + '</clientConfig>',
    'types': autoconfig('127.0.0.1').replace('<port>993</port>', '<port>imaps</port>'),
    'notroot': '<html><body>Welcome to nginx!</body></html>',
}


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """The namespace with DNS, the HTTPS host names, the authorization
    server and Dovecot inside."""
    with netns.NetNS(tmp_path_factory.mktemp('netns'), hosts=HOSTS, records=RECORDS) as ns:
        auth = netns.NsAuthServer(ns, tmp_path_factory.mktemp('nsauth'))
        auth.start()
        try:
            with netns.NsDovecot(ns, auth, tmp_path_factory.mktemp('nsdovecot')) as dovecot:
                issuer = f'127.0.0.1:{auth.port}'
                ns.serve(MS, f'/contoso.example/v2.0/.well-known/openid-configuration',
                         {'issuer': f'https://{MS}/{TENANT_ID}/v2.0',
                          'authorization_endpoint':
                              f'https://{MS}/{TENANT_ID}/oauth2/v2.0/authorize'})
                ns.serve(MS, '/nothing.example/v2.0/.well-known/openid-configuration',
                         {'error': 'invalid_tenant', 'error_description': 'AADSTS90002'},
                         status=400)
                ns.serve('autoconfig.example.org', AUTOCONFIG_PATH,
                         autoconfig(issuer, imap=('127.0.0.1', dovecot.imap_port),
                                    smtp=('127.0.0.1', dovecot.submission_port)))
                ns.serve('wellknown.example', WELL_KNOWN_PATH, autoconfig(issuer))
                ns.serve('autoconfig.plain.example', AUTOCONFIG_PATH,
                         autoconfig(f'http://127.0.0.1:{auth.port}'))
                ns.serve('autoconfig.other.example', AUTOCONFIG_PATH,
                         autoconfig('127.0.0.2:8443').replace(
                             'https://127.0.0.2:8443/auth', 'http://127.0.0.1:1/auth'))
                ns.serve('autoconfig.noauth.example', AUTOCONFIG_PATH,
                         autoconfig(issuer).split('<oAuth2>')[0] + '</clientConfig>')
                for name, doc in HOSTILE.items():
                    ns.serve(f'autoconfig.{name}.example', AUTOCONFIG_PATH, doc,
                             content_type='text/xml')
                ns.serve('autoconfig.huge.example', AUTOCONFIG_PATH, '<clientConfig>',
                         huge=20 * 1024 * 1024, content_type='text/xml')
                ns.auth, ns.dovecot, ns.issuer = auth, dovecot, issuer
                yield ns
        finally:
            auth.stop()


class NsTokend(Tokend):
    """The built tokend, run inside the namespace."""

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


def add(td, *args, **kw):
    return td.run('-v', 'add', *args, **kw)


def config_text(td):
    return td.config.read_text()


def test_namespace_is_private(world, tmp_path):
    """Nothing of the namespace is visible outside, nothing inside reaches
    out: only a loopback, the test CA alone, mounts only inside."""
    assert str(world.workdir) not in Path('/proc/self/mountinfo').read_text()
    inside = world.run(['cat', '/proc/self/mountinfo']).stdout
    assert '/etc/resolv.conf' in inside and '/etc/ssl/certs' in inside
    links = world.run(['ip', '-o', 'link']).stdout.splitlines()
    assert [line.split(':')[1].strip() for line in links] == ['lo']
    assert world.run(['cat', '/etc/ssl/certs/ca-certificates.crt']).stdout.count('BEGIN') == 2
    r = world.run(['curl', '-sS', '-o', '/dev/null', 'https://deb.debian.org/'])
    assert r.returncode != 0


@pytest.mark.parametrize('email,tenant', [
    ('alice@outlook.com', 'consumers'),
    ('alice@hotmail.co.uk', 'consumers'),
    ('alice@live.fr', 'consumers'),
    ('alice@msn.com', 'consumers'),
    ('alice@hotmail.com.au', 'consumers'),
])
def test_consumer_microsoft(td, email, tenant):
    r = add(td, email, '--client', 'thunderbird', '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    text = config_text(td)
    assert f'[account {email}]\n' in text
    assert 'provider = microsoft\n' in text and f'tenant = {tenant}\n' in text
    assert 'client_id = 9e5f94bc-e8a4-4e73-b8be-63364c29d753\n' in text
    assert 'Microsoft consumer domain' in r.stderr
    # The profile's caveats are printed.
    assert 'may revoke' in r.stderr and 'consent' in r.stderr and 'http://localhost/' in r.stderr
    assert td.run('status', email).returncode == EX_OK


def test_m365_by_openid_configuration(td, world):
    r = add(td, 'alice@contoso.example', 'work', *CLIENT, '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    text = config_text(td)
    assert 'provider = microsoft\n' in text and f'tenant = {TENANT_ID}\n' in text
    assert 'Microsoft 365 tenant' in r.stderr
    assert any(q['host'] == MS and q['path'].startswith('/contoso.example/v2.0/')
               for q in world.requests())


def test_m365_by_mx(td):
    r = add(td, 'alice@fabrikam.example', 'work', *CLIENT, '--device', '--store', 'file',
            '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    assert 'tenant = fabrikam.example\n' in config_text(td)
    assert 'store = file\nflow = device\n' in config_text(td)
    assert 'fabrikam-example.mail.protection.outlook.com' in r.stderr


def test_gmail_needs_own_client(td, tmp_path):
    r = add(td, 'bob@gmail.com', 'mail', '--no-signin')
    assert r.returncode == EX_USAGE
    assert '--client-id' in r.stderr and 'registration-google.md' in r.stderr
    assert not td.config.exists()
    r = add(td, 'bob@gmail.com', 'mail', '--client-id', 'x.apps.googleusercontent.com',
            '--no-signin')
    assert r.returncode == EX_USAGE and '--client-secret-file' in r.stderr
    secret = tmp_path / 'secret'
    secret.write_text('GOCSPX-test\n')
    secret.chmod(0o600)
    r = add(td, 'bob@gmail.com', 'mail', '--client-id', 'x.apps.googleusercontent.com',
            '--client-secret-file', str(secret), '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    text = config_text(td)
    assert 'provider = google\n' in text and f'client_secret_file = {secret}\n' in text


def test_google_by_mx(td):
    r = add(td, 'carol@corp.example', 'corp', '--client-id', 'x.apps.googleusercontent.com',
            '--client-secret-file', '/dev/null', '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    assert 'provider = google\n' in config_text(td)
    # The best preference first.
    assert r.stderr.index('has MX aspmx.l.google.com') < \
        r.stderr.index('has MX alt1.aspmx.l.google.com')


def trusting(world):
    """The test authorization server is on 127.0.0.1: the user names it."""
    return ['--issuer', f'https://{world.issuer}']


def test_autoconfig_subdomain_then_discovery(td, world):
    r = add(td, 'alice@example.org', 'ex', *CLIENT, *trusting(world), '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    text = config_text(td)
    assert 'provider = generic\n' in text
    assert f'issuer = https://{world.issuer}\n' in text
    assert 'username = alice\n' in text
    assert 'scopes = openid offline_access mail.imap\n' in text
    assert f'imap_host = 127.0.0.1\nimap_port = {world.dovecot.imap_port}\n' in text
    assert f'smtp_host = 127.0.0.1\nsmtp_port = {world.dovecot.submission_port}\n' in text
    assert 'pop_host = pop.example.org\n' in text
    assert 'is an OpenID issuer' in r.stderr
    q = [q for q in world.requests() if q['host'] == 'autoconfig.example.org']
    assert q[-1]['path'] == AUTOCONFIG_PATH + '?emailaddress=alice%40example.org'


def test_autoconfig_well_known(td, world):
    r = add(td, 'dave@wellknown.example', 'wk', *CLIENT, *trusting(world), '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    text = config_text(td)
    assert f'issuer = https://{world.issuer}\n' in text
    assert 'imap_host = imap.example.org\nimap_port = 993\n' in text
    assert 'smtp_host = smtp.example.org\nsmtp_port = 465\n' in text
    assert 'username = dave\n' in text
    assert WELL_KNOWN_PATH in r.stderr


def test_autoconfig_naming_this_machine_is_refused_unless_the_user_names_it(td, world):
    """Whoever answers for autoconfig.DOMAIN must not send the sign-in to a
    listener on this machine (or over plain http) on its word alone."""
    def discoveries():
        return world.auth.get_json('/test/stats')['endpoints'].get('discovery', 0)

    before = discoveries()
    r = add(td, 'alice@example.org', 'ex', *CLIENT, '--no-signin')
    assert r.returncode == EX_DATAERR, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert f'names the issuer https://{world.issuer}, which is on this machine' in line
    assert f'pass --issuer https://{world.issuer}' in line
    assert not td.config.exists()
    assert discoveries() == before  # nothing was asked of the issuer it names

    r = add(td, 'alice@example.org', 'ex', *CLIENT, '--issuer', 'https://idp.example',
            '--no-signin')
    assert r.returncode == EX_DATAERR, r.stderr
    assert f'names the issuer https://{world.issuer}, not https://idp.example' in r.stderr
    assert not td.config.exists()

    r = add(td, 'alice@example.org', 'ex', *CLIENT, '--issuer', f'https://{world.issuer}/',
            '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    assert f'issuer = https://{world.issuer}\n' in config_text(td)


def test_autoconfig_naming_plain_http_or_local_endpoints_is_refused(td, world):
    r = add(td, 'alice@plain.example', 'p', *CLIENT, '--no-signin')
    assert r.returncode == EX_DATAERR, r.stderr
    assert f'names the issuer http://127.0.0.1:{world.auth.port}, which is not https' in r.stderr
    assert not td.config.exists()
    # An issuer without discovery: the endpoints it names are judged alike.
    r = add(td, 'alice@other.example', 'o', *CLIENT, '--issuer', 'https://127.0.0.2:8443',
            '--no-signin')
    assert r.returncode == EX_DATAERR, r.stderr
    assert 'names the authURL http://127.0.0.1:1/auth, which is not https' in r.stderr
    assert not td.config.exists()


def test_autoconfig_without_oauth2(td):
    r = add(td, 'erin@noauth.example', 'n', *CLIENT, '--no-signin')
    assert r.returncode == EX_CONFIG
    assert 'names no OAuth2 sign-in' in r.stderr
    assert not td.config.exists()


def test_no_answer(td):
    started = time.monotonic()
    r = add(td, 'frank@nothing.example', 'n', *CLIENT, '--no-signin')
    assert r.returncode == EX_CONFIG
    assert 'could not detect the provider of nothing.example; add provider = ' in r.stderr
    assert 'by hand' in r.stderr
    assert time.monotonic() - started < 10
    assert not td.config.exists()


@pytest.mark.parametrize('name,words', [
    ('malformed', 'not valid'),
    ('entity', 'not valid'),
    ('deep', 'nested deeper than 16'),
    ('types', '"imaps" is not a number'),
    ('notroot', 'not an autoconfig document'),
    ('huge', 'larger than 262144 bytes'),
])
def test_bad_autoconfig(td, name, words):
    started = time.monotonic()
    r = add(td, f'gina@{name}.example', 'g', *CLIENT, '--no-signin')
    assert r.returncode == EX_DATAERR, r.stderr
    assert words in r.stderr
    assert f'https://autoconfig.{name}.example/mail/config-v1.1.xml' in r.stderr
    assert time.monotonic() - started < 10
    assert not td.config.exists()


def test_dns_timeout_is_bounded(td, world):
    """A name server that never answers: tokend gives up within its bound."""
    hole = world.popen(['python3', '-c',
                        'import socket, time\n'
                        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n'
                        's.bind(("127.0.0.2", 53)); print("ok", flush=True); time.sleep(600)'],
                       stdout=subprocess.PIPE, text=True)
    assert hole.stdout.readline() == 'ok\n'
    world.set_resolv_conf('nameserver 127.0.0.2\noptions timeout:30 attempts:5\n')
    try:
        started = time.monotonic()
        r = add(td, 'hank@plain.example', 'h', *CLIENT, '--no-signin', timeout=60,
                env={'RES_OPTIONS': 'timeout:30 attempts:5'})
        elapsed = time.monotonic() - started
    finally:
        world.set_resolv_conf(f'nameserver {netns.DNS_ADDRESS}\n')
        hole.kill()
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert 'did not answer for plain.example' in r.stderr
    assert 1.5 < elapsed < 8, elapsed
    assert not td.config.exists()


def test_appends_preserving_bytes(td):
    td.config.parent.mkdir(parents=True)
    before = ('# my accounts\t(hand written)\n'
              '[defaults]\nstore = file   # inline comment\n\n'
              '[account old]\nprovider = microsoft\nclient_id = abc\n'
              '#   a GKeyFile would rewrite this   \n'
              'username = old@example.com')            # no final newline
    td.config.write_bytes(before.encode())
    td.config.chmod(0o600)
    r = add(td, 'alice@outlook.com', 'new', *CLIENT, '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    after = td.config.read_bytes()
    assert after.startswith(before.encode() + b'\n\n# added by tokend add alice@outlook.com')
    assert after.endswith(b'[account new]\nprovider = microsoft\nusername = alice@outlook.com\n'
                          b'client_id = tokend-native\ntenant = consumers\n')
    assert mode(td.config) == 0o600
    assert td.run('status', 'old', 'new').returncode == EX_OK


def test_creates_private_file(td):
    r = add(td, 'alice@outlook.com', *CLIENT, '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    assert mode(td.config) == 0o600 and mode(td.config.parent) == 0o700
    assert '[account alice@outlook.com]\n' in config_text(td)


def test_refuses_existing_account(td):
    assert add(td, 'alice@outlook.com', 'mail', *CLIENT, '--no-signin').returncode == EX_OK
    before = td.config.read_bytes()
    r = add(td, 'bob@hotmail.com', 'mail', *CLIENT, '--no-signin')
    assert r.returncode == EX_CANTCREAT
    assert 'already has an [account mail]' in r.stderr
    assert td.config.read_bytes() == before


def test_validated_as_obtain_would(td):
    r = add(td, 'alice@outlook.com', 'mail', *CLIENT, '--tenant', 'no such tenant',
            '--no-signin')
    assert r.returncode == EX_CONFIG
    assert '[account mail] tenant' in r.stderr
    assert not td.config.exists()
    td.config.parent.mkdir(parents=True, exist_ok=True)
    td.config.write_text('[account broken]\nprovider = yahoo\n')
    r = add(td, 'alice@outlook.com', 'mail', *CLIENT, '--no-signin')
    assert r.returncode == EX_CONFIG and 'provider' in r.stderr
    assert td.config.read_text() == '[account broken]\nprovider = yahoo\n'


def test_usage_errors(td):
    assert add(td, 'not-an-address').returncode == EX_USAGE
    assert add(td, 'alice@outlook.com', 'bad name!').returncode == EX_USAGE
    r = add(td, 'alice@outlook.com', '--no-signin')
    assert r.returncode == EX_USAGE and '--client thunderbird' in r.stderr
    assert add(td, 'a@b.example', '--client', 'evolution').returncode == EX_USAGE
    assert not td.config.exists()


def test_full_add_signs_in_and_checks(td, world):
    """From an address to a working account: autoconfig names the test
    authorization server and Dovecot; add signs in through the browser and
    logs in to IMAP with the token."""
    td.env['BROWSER'] = str(BROWSER)
    r = td.run('add', 'alice@example.org', 'ex', *CLIENT, *trusting(world), '--store', 'file',
               timeout=120)
    assert r.returncode == EX_OK, r.stderr
    assert f'ex: IMAP login to 127.0.0.1:{world.dovecot.imap_port} as alice: ok' in r.stdout
    assert f'ex: SMTP login to 127.0.0.1:{world.dovecot.submission_port} as alice: ok' \
        in r.stdout
    assert td.refresh_token_file('ex').exists()
    tok = td.run('token', 'ex')
    assert tok.returncode == EX_OK
    assert world.auth.introspect(tok.stdout.strip())['active'] is True
    assert td.run('check', 'ex', '--imap').returncode == EX_OK
    # add offers the mail client configurations, made from what it found.
    assert ('mail client configuration: tokend snippet ex fetchmail|fetchmail-pop3|'
            'fetchmail7|mutt|') in r.stdout, r.stdout
    snip = td.run('snippet', 'ex', 'fetchmail7')
    assert snip.returncode == EX_OK, snip.stderr
    assert f'poll 127.0.0.1 protocol IMAP port {world.dovecot.imap_port}\n' in snip.stdout
    assert f'passwordfile "{td.token_file("ex")}"' in snip.stdout


def test_concurrent_adds_lose_nothing(td, world):
    names = [f'a{i}' for i in range(12)]
    procs = [world.popen([TOKEND, 'add', f'{n}@outlook.com', n, *CLIENT, '--no-signin'],
                         env=td.env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE) for n in names]
    assert [p.wait(60) for p in procs] == [EX_OK] * len(names)
    text = config_text(td)
    for n in names:
        assert text.count(f'[account {n}]\n') == 1, n
    assert td.run('status').returncode == EX_OK


def test_autoconfig_naming_microsoft(td, world):
    """A domain whose autoconfig names Microsoft's issuer (as the ISPDB
    does for domains hosted at Microsoft 365) gets the microsoft preset
    with the servers it lists."""
    doc = autoconfig('login.microsoftonline.com', imap=('outlook.office365.com', 993))
    doc = doc.replace('https://login.microsoftonline.com/auth',
                      'https://login.microsoftonline.com/common/oauth2/v2.0/authorize')
    doc = doc.replace('https://login.microsoftonline.com/token',
                      'https://login.microsoftonline.com/common/oauth2/v2.0/token')
    world.serve('autoconfig.msac.example', AUTOCONFIG_PATH, doc)
    r = add(td, 'ivy@msac.example', 'ivy', *CLIENT, '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    text = config_text(td)
    assert 'provider = microsoft\n' in text and 'tenant = common\n' in text
    assert 'imap_host = outlook.office365.com\n' in text
    assert 'issuer = ' not in text


def jwt(**claims):
    """An ID token as a token endpoint sends it (tokend does not check the
    signature of one it got over TLS from the token endpoint)."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b'=').decode()
    return f'{part({"typ": "JWT", "alg": "RS256"})}.{part(claims)}.c2ln'


def test_microsoft_preset_at_its_real_host_name(td, world):
    """add finds the tenant of contoso.example; then obtain signs in at
    https://login.microsoftonline.com/TENANT/... itself, as built from the
    preset (a replay of Microsoft's documented answers, in the namespace)."""
    client = 'facd6cff-a294-4415-b59f-c5b01937d7bd'
    base = f'/{TENANT_ID}/oauth2/v2.0'
    world.serve(MS, f'{base}/authorize', '', authorize=True)
    world.serve(MS, f'{base}/token', {
        'token_type': 'Bearer', 'expires_in': 4177, 'ext_expires_in': 4177,
        'scope': 'https://outlook.office.com/IMAP.AccessAsUser.All',
        'access_token': 'eyJ0eXAiOiJKV1QiLCJub25jZSI6Im1zLWFjY2Vzcy10b2tlbi0x',
        'refresh_token': '0.AQoA-ms-refresh-1',
        'id_token': jwt(aud=client, iss=f'https://{MS}/{TENANT_ID}/v2.0', tid=TENANT_ID,
                        preferred_username='me@contoso.example', sub='AAAAAAAAAAAAAAAAAAAAAIkz',
                        ver='2.0')})
    r = add(td, 'me@contoso.example', 'work', '--client-id', client, '--store', 'file',
            '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    td.env['BROWSER'] = str(Path(__file__).resolve().parents[1] / 'harness' / 'follow-redirects')
    r = td.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert td.token_file('work').read_text() == \
        'eyJ0eXAiOiJKV1QiLCJub25jZSI6Im1zLWFjY2Vzcy10b2tlbi0x\n'
    seen = [q for q in world.requests() if q['host'] == MS and q['path'].startswith(base)]
    authorize = urllib.parse.parse_qs(urllib.parse.urlsplit(seen[0]['path']).query)
    assert authorize['client_id'] == [client] and authorize['login_hint'] == ['me@contoso.example']
    token = urllib.parse.parse_qs(seen[-1]['form'])
    assert seen[-1]['method'] == 'POST' and token['grant_type'] == ['authorization_code']
