"""glewlwyd 2.7 (Debian's package, run as shipped) as a private test
authorization server.

    with Glewlwyd(tmp_path, redirect_ports=[port, ...]) as g:
        tokens = g.obtain_tokens()          # code + PKCE, headless
        g.refresh(tokens['refresh_token'])

Each instance has its own configuration file, a SQLite database made from
the package's schema (/usr/share/dbconfig-common/data/glewlwyd/install/
sqlite3, which creates the administrator admin/password), TLS with a
throwaway test CA, and listens on 127.0.0.1 only, on a free port.  The
server runs in the foreground and is stopped at the end.

Everything else is configured through glewlwyd's REST API, the way an
administrator would: an OpenID Connect plugin instance (`oidc`, so the
issuer is BASE/api/oidc), the scopes (`openid`, `mail.imap`,
`mail.smtp`), the user, the clients, and the user's consent for each
client (PUT /api/auth/grant/CLIENT).  Three plugin instances: `oidc`
rotates refresh tokens ("refresh-token-one-use": "always"), `oidc-keep`
never does (glewlwyd's default), `oidc-iss` neither, and it puts `iss` in
the redirect (RFC 9207) without saying so in its discovery document.

glewlwyd differs from oidc-provider in ways tokend must cope with:
loopback redirects match exactly, port included (so the clients are
registered with each of redirect_ports, and a test gives each sign-in its
own: a fixed port is busy for a minute after a sign-in while the closed
connections linger in TIME_WAIT); `nonce` is required when the scope has
`openid`; `token_type` is "bearer"; unknown or ungranted scopes are
dropped silently; a bad code is 403 {"error":"invalid_code"} and a bad
refresh token 400 with an empty body; a public client cannot revoke.

The headless browser for it is tests/harness/glewlwyd_browser.py (set
BROWSER to it, TOKEND_TEST_CA to the instance's ca_file).  To try tokend
by hand, from tests/: `/usr/bin/python3 -m harness.glewlwyd` starts an
instance, prints an account section for it and the environment to use,
and runs until Ctrl-C.
"""

import base64
import hashlib
import http.cookiejar
import json
import random
import secrets
import socket
import sqlite3
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .authserver import make_certs

GLEWLWYD = '/usr/bin/glewlwyd'
SCHEMA = Path('/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3')
MODULES = Path('/usr/lib/glewlwyd')
START_TIMEOUT = 60  # bounded, and generous: a peer starts slowly on a loaded 2-core machine
HTTP_TIMEOUT = 10

ADMIN = ('admin', 'password')          # made by the package's schema
USER = ('alice', 'alice-password-1')
USER_EMAIL = 'alice@example.com'
MAIL_SCOPES = ('mail.imap', 'mail.smtp')

# client_id -> client_secret (None: public)
PUBLIC_CLIENT = 'tokend-public'
CONFIDENTIAL_CLIENT = 'tokend-confidential'
CLIENT_SECRET = 'glewlwyd-client-secret'
# App-only clients (client credentials), made by Glewlwyd.add_apps
APP_SECRET_CLIENT = 'tokend-app-secret'
APP_SECRET = 'glewlwyd-app-secret'
APP_JWT_CLIENT = 'tokend-app-jwt'

CONFIG = """\
port={port}
bind_address="127.0.0.1"
external_url="{base}"
login_url="login.html"
api_prefix="api"
allow_origin="*"
log_mode="file"
log_level="INFO"
log_file="{log}"
cookie_secure=1
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
add_x_frame_option_header_deny=true
max_post_size=16778240
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="{modules}/user"
user_middleware_module_path="{modules}/user_middleware"
client_module_path="{modules}/client"
user_auth_scheme_module_path="{modules}/scheme"
plugin_module_path="{modules}/plugin"
use_secure_connection=true
secure_connection_key_file="{key}"
secure_connection_pem_file="{cert}"
hash_algorithm="SHA512"
database =
{{
  type = "sqlite3"
  path = "{db}"
}};
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def fixed_ports(n):
    """n ports free now, below the ephemeral range (32768-60999 on Linux),
    so that outgoing connections do not take them before a fixed-port
    listener binds them."""
    ports = []
    for p in random.sample(range(20000, 32000), 8 * n):
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', p))
            except OSError:
                continue
        ports.append(p)
        if len(ports) == n:
            return ports
    raise RuntimeError(f'no {n} free ports between 20000 and 32000')


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b'=').decode()


class _NoRedirect(urllib.request.HTTPErrorProcessor):
    def http_response(self, request, response):
        return response

    https_response = http_response


class Session:
    """A cookie session against the server (admin or user)."""

    def __init__(self, server):
        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=server.ssl_context),
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method, path, body=None, form=None, headers=None):
        """Returns (status, headers, raw body bytes)."""
        url = urllib.parse.urljoin(self.server.base_url, path)
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers['Content-Type'] = 'application/x-www-form-urlencoded'
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        with self.opener.open(req, timeout=HTTP_TIMEOUT) as resp:
            return resp.status, resp.headers, resp.read()

    def api(self, method, path, body=None):
        status, _, raw = self.request(method, '/api/' + path.lstrip('/'), body=body)
        if status != 200:
            raise RuntimeError(f'glewlwyd {method} /api/{path}: HTTP {status}: {raw[:300]!r}')
        return json.loads(raw) if raw.strip() else None

    def login(self, username, password):
        self.api('POST', 'auth/', {'username': username, 'password': password})
        return self


class Glewlwyd:
    def __init__(self, workdir, redirect_ports, access_ttl=3600):
        self.workdir = Path(workdir)
        self.redirect_uris = [f'http://127.0.0.1:{p}/' for p in redirect_ports]
        self.redirect_uri = self.redirect_uris[0]
        self.access_ttl = access_ttl
        self.proc = None
        self.startup_seconds = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # set-up --------------------------------------------------------------

    def start(self):
        if not Path(GLEWLWYD).exists():
            raise RuntimeError('glewlwyd is not installed: run scripts/setup')
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file, self.cert_file, self.key_file = make_certs(self.workdir)
        self.ssl_context = ssl.create_default_context(cafile=self.ca_file)
        self.db = self.workdir / 'glewlwyd.db'
        con = sqlite3.connect(self.db, isolation_level=None)
        con.executescript('PRAGMA synchronous=OFF; BEGIN;' + SCHEMA.read_text() + ';COMMIT;')
        con.close()
        self.log_path = self.workdir / 'glewlwyd.log'
        for _ in range(5):
            self.port = free_port()
            self.base_url = f'https://127.0.0.1:{self.port}'
            if self._launch():
                break
        else:
            raise RuntimeError(f'glewlwyd did not start: {self._log_tail()}')
        try:
            self._configure()
        except BaseException:
            self.stop()
            raise

    def _launch(self):
        conf = self.workdir / 'glewlwyd.conf'
        conf.write_text(CONFIG.format(port=self.port, base=self.base_url, log=self.log_path,
                                      modules=MODULES, key=self.key_file, cert=self.cert_file,
                                      db=self.db))
        started = time.monotonic()
        self.stdout = open(self.workdir / 'glewlwyd.out', 'ab')
        self.proc = subprocess.Popen([GLEWLWYD, f'--config-file={conf}'],
                                     stdin=subprocess.DEVNULL, stdout=self.stdout,
                                     stderr=subprocess.STDOUT)
        while time.monotonic() < started + START_TIMEOUT:
            if self.proc.poll() is not None:
                self.stdout.close()
                self.proc = None
                return False
            try:
                # A TLS handshake with the test CA: this instance, nobody else.
                with socket.create_connection(('127.0.0.1', self.port), timeout=1) as sock, \
                        self.ssl_context.wrap_socket(sock, server_hostname='127.0.0.1'):
                    self.startup_seconds = time.monotonic() - started
                    return True
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f'glewlwyd not ready after {START_TIMEOUT} s: {self._log_tail()}')

    def _log_tail(self):
        text = ''
        for p in (self.log_path, self.workdir / 'glewlwyd.out'):
            if p.exists():
                text += p.read_text(errors='replace')[-1500:]
        return text

    def _configure(self):
        admin = Session(self).login(*ADMIN)
        for name in MAIL_SCOPES:
            admin.api('POST', 'scope/', {'name': name, 'display_name': name,
                                         'description': f'{name} for tests',
                                         'password_required': False, 'scheme': {}})
        self._add_plugin(admin, 'oidc', rotate=True)
        self._add_plugin(admin, 'oidc-keep', rotate=False)
        self._add_plugin(admin, 'oidc-iss', rotate=False, iss_in_redirect=True)
        admin.api('POST', 'user/', {'username': USER[0], 'password': USER[1], 'name': 'Alice',
                                    'email': USER_EMAIL, 'enabled': True,
                                    'scope': ['openid', *MAIL_SCOPES]})
        redirect = self.redirect_uris
        admin.api('POST', 'client/', {
            'client_id': PUBLIC_CLIENT, 'name': 'tokend (public)', 'enabled': True,
            'confidential': False, 'redirect_uri': redirect, 'scope': [],
            'authorization_type': ['code', 'refresh_token', 'device_authorization']})
        admin.api('POST', 'client/', {
            'client_id': CONFIDENTIAL_CLIENT, 'name': 'tokend (confidential)', 'enabled': True,
            'confidential': True, 'password': CLIENT_SECRET, 'redirect_uri': redirect,
            'scope': [], 'token_endpoint_auth_method': ['client_secret_basic',
                                                       'client_secret_post'],
            'authorization_type': ['code', 'refresh_token', 'client_credentials']})
        user = self.user_session()
        for client in (PUBLIC_CLIENT, CONFIDENTIAL_CLIENT):
            user.api('PUT', f'auth/grant/{client}',
                     {'scope': ' '.join(('openid', *MAIL_SCOPES))})
        self._discover()

    def _add_plugin(self, admin, name, rotate, iss_in_redirect=False, extra=None):
        key = self.workdir / f'{name}-jwt.key'
        subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt',
                        'rsa_keygen_bits:2048', '-out', str(key)],
                       check=True, capture_output=True)
        pub = subprocess.run(['openssl', 'pkey', '-in', str(key), '-pubout'],
                             check=True, capture_output=True, text=True).stdout
        admin.api('POST', 'mod/plugin/', {
            'module': 'oidc', 'name': name, 'display_name': f'OpenID Connect ({name})',
            'order_rank': 0, 'parameters': {
                'iss': f'{self.base_url}/api/{name}',
                'oauth-as-iss-id': iss_in_redirect,
                'jwt-type': 'rsa', 'jwt-key-size': '256',
                'key': key.read_text(), 'cert': pub,
                'access-token-duration': self.access_ttl,
                'refresh-token-duration': 1209600, 'code-duration': 600,
                'refresh-token-rolling': True,
                'refresh-token-one-use': 'always' if rotate else 'never',
                'allow-non-oidc': False,
                'auth-type-code-enabled': True, 'auth-type-token-enabled': False,
                'auth-type-id-token-enabled': True, 'auth-type-none-enabled': False,
                'auth-type-password-enabled': False, 'auth-type-client-enabled': True,
                'auth-type-device-enabled': True, 'auth-type-refresh-enabled': True,
                'allowed-scope': ['openid', *MAIL_SCOPES],
                'pkce-allowed': True, 'pkce-method-plain-allowed': False,
                'introspection-revocation-allowed': True,
                'introspection-revocation-allow-target-client': True,
                'introspection-revocation-auth-scope': [],
                'email-claim': 'mandatory', 'name-claim': 'on-demand',
                'secret-type': 'pairwise', 'jwks-show': True,
                'scope': [], 'additional-parameters': [], 'claims': [], **(extra or {})}})

    def add_apps(self, public_key_pem):
        """App-only clients (client credentials) on a plugin instance of
        their own, `oidc-app`: glewlwyd gives client credentials only where
        the plugin allows non-OIDC grants ("allow-non-oidc"), and takes a
        signed client assertion (private_key_jwt) only where it allows JWT
        request parameters ("request-parameter-allow") and names the client
        property holding the client's public key ("client-pubkey-parameter",
        `pubkey` in the package's client schema).  APP_SECRET_CLIENT
        authenticates with its secret, APP_JWT_CLIENT with an assertion
        signed by the key of public_key_pem (PEM SubjectPublicKeyInfo)."""
        admin = Session(self).login(*ADMIN)
        self._add_plugin(admin, 'oidc-app', rotate=False, extra={
            'allow-non-oidc': True, 'request-parameter-allow': True,
            'client-pubkey-parameter': 'pubkey', 'request-maximum-exp': 600})
        scopes = list(MAIL_SCOPES)
        self.apps = True
        admin.api('POST', 'client/', {
            'client_id': APP_SECRET_CLIENT, 'name': 'tokend app (secret)', 'enabled': True,
            'confidential': True, 'password': APP_SECRET, 'redirect_uri': [], 'scope': scopes,
            'token_endpoint_auth_method': ['client_secret_post', 'client_secret_basic'],
            'authorization_type': ['client_credentials']})
        admin.api('POST', 'client/', {
            'client_id': APP_JWT_CLIENT, 'name': 'tokend app (private_key_jwt)',
            'enabled': True, 'confidential': True, 'redirect_uri': [], 'scope': scopes,
            'pubkey': public_key_pem, 'token_endpoint_auth_method': ['private_key_jwt'],
            'authorization_type': ['client_credentials']})
        self._discover()

    def app_token_valid(self, token, plugin='oidc-app'):
        """Whether token is an unexpired access token this plugin signed
        (RS256, checked with openssl against the plugin's key), as a resource
        server checks a JWT access token.  Not introspection: glewlwyd 2.7.5
        records a client credentials token under the client of the HTTP
        Basic header only (serialize_access_token gets
        request->auth_basic_user), so a token got with client_secret_post or
        private_key_jwt is stored without a client and its own client's
        introspection answers {"active": false}."""
        head, payload, sig = token.split('.')
        if json.loads(base64.urlsafe_b64decode(head + '=' * (-len(head) % 4)))['alg'] != 'RS256':
            return False
        key = self.workdir / f'{plugin}-jwt.key'
        pub = self.workdir / f'{plugin}-jwt.pub'
        sigfile = self.workdir / f'{plugin}-check.sig'
        if not pub.exists():
            subprocess.run(['openssl', 'pkey', '-in', str(key), '-pubout', '-out', str(pub)],
                           check=True, capture_output=True)
        sigfile.write_bytes(base64.urlsafe_b64decode(sig + '=' * (-len(sig) % 4)))
        r = subprocess.run(['openssl', 'dgst', '-sha256', '-verify', str(pub), '-signature',
                            str(sigfile)], input=f'{head}.{payload}'.encode(),
                           capture_output=True)
        claims = self.claims(token)
        return (r.returncode == 0 and claims['iss'] == self.issuer_of(plugin) and
                claims['exp'] > time.time())

    def _discover(self):
        self.issuers = {}
        self.discovery = {}
        plugins = ['oidc', 'oidc-keep', 'oidc-iss']
        if getattr(self, 'apps', False):
            plugins.append('oidc-app')
        for name in plugins:
            s = Session(self)
            status, _, raw = s.request('GET', f'/api/{name}/.well-known/openid-configuration')
            if status != 200:
                raise RuntimeError(f'glewlwyd discovery ({name}) failed with HTTP {status}')
            self.discovery[name] = json.loads(raw)
        d = self.discovery['oidc']
        self.issuer = d['issuer']
        self.authorize_url = d['authorization_endpoint']
        self.token_url = d['token_endpoint']
        self.revocation_url = d.get('revocation_endpoint')
        self.introspection_url = d.get('introspection_endpoint')

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.stdout.close()

    # clients' view -------------------------------------------------------

    def user_session(self, user=USER):
        return Session(self).login(*user)

    def issuer_of(self, plugin):
        return self.discovery[plugin]['issuer']

    def endpoint(self, plugin, name):
        return self.discovery[plugin][name]

    def post(self, url, form, auth=None):
        """A form POST to an endpoint; returns (status, raw body)."""
        headers = {}
        if auth is not None:
            pair = ':'.join(urllib.parse.quote(p, safe='') for p in auth)
            headers['Authorization'] = 'Basic ' + base64.b64encode(pair.encode()).decode()
        status, _, raw = Session(self).request('POST', url, form=form, headers=headers)
        return status, raw

    def token_request(self, form, plugin='oidc', client_id=PUBLIC_CLIENT):
        form = dict(form, client_id=client_id)
        auth = (client_id, CLIENT_SECRET) if client_id == CONFIDENTIAL_CLIENT else None
        status, raw = self.post(self.endpoint(plugin, 'token_endpoint'), form, auth)
        return status, (json.loads(raw) if raw.strip() else None)

    def refresh(self, refresh_token, plugin='oidc', client_id=PUBLIC_CLIENT):
        return self.token_request({'grant_type': 'refresh_token',
                                   'refresh_token': refresh_token}, plugin, client_id)

    def userinfo(self, access_token, plugin='oidc'):
        """GET userinfo with the token, as a resource server checks it:
        returns (status, claims or None)."""
        status, _, raw = Session(self).request(
            'GET', self.endpoint(plugin, 'userinfo_endpoint'),
            headers={'Authorization': f'Bearer {access_token}'})
        return status, (json.loads(raw) if status == 200 else None)

    def token_valid(self, access_token, plugin='oidc'):
        return self.userinfo(access_token, plugin)[0] == 200

    @staticmethod
    def claims(jwt):
        """The payload of a JWT (the access tokens are RS256 JWTs); not verified."""
        payload = jwt.split('.')[1]
        return json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))

    def authorization_url(self, plugin='oidc', client_id=PUBLIC_CLIENT,
                          scope='openid mail.imap', **extra):
        params = {'response_type': 'code', 'client_id': client_id, 'scope': scope,
                  'redirect_uri': self.redirect_uri}
        params.update(extra)
        return (f'{self.endpoint(plugin, "authorization_endpoint")}?'
                f'{urllib.parse.urlencode(params)}')

    def obtain_tokens(self, plugin='oidc', client_id=PUBLIC_CLIENT, scope='openid mail.imap'):
        """A whole code + PKCE flow, headless; returns the token response."""
        from . import glewlwyd_browser
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        url = self.authorization_url(plugin, client_id, scope, state=state,
                                     nonce=secrets.token_urlsafe(16),
                                     code_challenge=challenge, code_challenge_method='S256')
        final = glewlwyd_browser.authorize(url, USER, ca_file=self.ca_file)
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))
        if params.get('state') != state or 'code' not in params:
            raise RuntimeError(f'bad authorization response: {sorted(params)}')
        status, body = self.token_request(
            {'grant_type': 'authorization_code', 'code': params['code'],
             'redirect_uri': self.redirect_uri, 'code_verifier': verifier}, plugin, client_id)
        if status != 200:
            raise RuntimeError(f'code exchange failed with HTTP {status}: {body}')
        return body


def main():
    import tempfile
    with tempfile.TemporaryDirectory() as d, Glewlwyd(d, fixed_ports(1)) as g:
        here = Path(__file__).resolve().parent
        print(f"[account glewlwyd]\nprovider = generic\nissuer = {g.issuer}\n"
              f"client_id = {PUBLIC_CLIENT}\nredirect_uri = {g.redirect_uri}\n"
              f"scopes = openid mail.imap\nca_file = {g.ca_file}\n\n"
              f"export BROWSER={here / 'glewlwyd_browser.py'} TOKEND_TEST_CA={g.ca_file}\n"
              f"user {USER[0]} / {USER[1]}; admin {ADMIN[0]} / {ADMIN[1]}",
              flush=True)
        try:
            g.proc.wait()
        except KeyboardInterrupt:
            pass


if __name__ == '__main__':
    main()
