"""The test authorization server (tests/authserver/server.mjs) as a context manager.

    with AuthServer(tmp_path, access_ttl=60) as srv:
        tokens = srv.obtain_tokens(scope='openid offline_access mail.imap')
        assert srv.introspect(tokens['access_token'])['active']
"""

import base64
import hashlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from . import browser

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / 'tests' / 'authserver'
START_TIMEOUT = 60  # bounded, and generous: a peer starts slowly on a loaded 2-core machine
HTTP_TIMEOUT = 10

# client_id -> (client_secret or None, a registered redirect URI)
CLIENTS = {
    'tokend-native': (None, 'http://127.0.0.1/'),
    'tokend-paste': (None, 'https://login.example.invalid/common/oauth2/nativeclient'),
    'tokend-secret': ('test-client-secret', 'http://127.0.0.1/'),
    'dovecot': ('dovecot-secret', None),
}


def pkce_pair():
    """Returns (code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b'=').decode()


def _openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(workdir):
    """Creates a throwaway CA and a server certificate for 127.0.0.1 and
    localhost in workdir; returns (ca_file, cert_file, key_file)."""
    d = Path(workdir)
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    _openssl('req', '-x509', *ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
             '-subj', '/CN=tokend test CA',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign', cwd=d)
    _openssl('req', '-new', *ec, '-keyout', 'server.key', '-out', 'server.csr',
             '-subj', '/CN=127.0.0.1', cwd=d)
    (d / 'server.ext').write_text(
        'subjectAltName=IP:127.0.0.1,DNS:localhost\n'
        'basicConstraints=critical,CA:FALSE\n'
        'keyUsage=critical,digitalSignature\n'
        'extendedKeyUsage=serverAuth\n'
        'authorityKeyIdentifier=keyid\n'
        'subjectKeyIdentifier=hash\n')
    _openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
             '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem',
             cwd=d)
    return str(d / 'ca.pem'), str(d / 'server.pem'), str(d / 'server.key')


class AuthServer:
    def __init__(self, workdir, access_ttl=3600, refresh_tokens='offline_access', env=None,
                 id_token_claims='all'):
        """env: more of server.mjs's settings (TOKEND_TEST_APP_CERT, ...).
        id_token_claims='conform': as oidc-provider ships, an ID token
        issued with an access token names the user by sub alone; email and
        preferred_username are at userinfo only."""
        self.extra_env = dict(env or {})
        self.workdir = Path(workdir)
        self.access_ttl = access_ttl
        self.refresh_tokens = refresh_tokens
        self.id_token_claims = id_token_claims
        self.proc = None
        self.port = None
        self.startup_seconds = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if not (SERVER_DIR / 'node_modules' / 'oidc-provider').is_dir():
            raise RuntimeError(f'oidc-provider is not installed: run `npm ci` in {SERVER_DIR}')
        node = shutil.which('node')
        if node is None:
            raise RuntimeError('node (Node.js >= 20.18) is not on PATH')
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file, self.cert_file, self.key_file = make_certs(self.workdir)
        self._ssl = ssl.create_default_context(cafile=self.ca_file)
        out_path = self.workdir / 'authserver.out'
        self.log_path = self.workdir / 'authserver.log'
        env = dict(os.environ, TOKEND_TEST_ACCESS_TTL=str(self.access_ttl),
                   TOKEND_TEST_REFRESH_TOKENS=self.refresh_tokens,
                   TOKEND_TEST_ID_TOKEN_CLAIMS=self.id_token_claims, **self.extra_env)
        # A start takes well under a second.  One that has not printed
        # READY within START_TIMEOUT is reported (a warning with what the
        # process was doing) and tried once more with a fresh process; a
        # second stall fails the test.
        for attempt in (1, 2):
            started = time.monotonic()
            with open(out_path, 'wb') as out, open(self.log_path, 'wb') as log:
                self.proc = subprocess.Popen(
                    [node, str(SERVER_DIR / 'server.mjs'), '--port', '0',
                     '--cert', self.cert_file, '--key', self.key_file],
                    cwd=SERVER_DIR, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
            try:
                self.port = self._wait_ready(out_path, started + START_TIMEOUT)
                if self.port is None:
                    stalled = self._stall_report()
                    self.stop()
                    if attempt == 2:
                        raise RuntimeError(f'authorization server not ready after '
                                           f'{START_TIMEOUT} s, twice: {stalled}')
                    warnings.warn(f'authorization server not ready after {START_TIMEOUT} s, '
                                  f'started again: {stalled}')
                    continue
                self.startup_seconds = time.monotonic() - started
                self._discover()
                return
            except BaseException:
                self.stop()
                raise

    def _wait_ready(self, out_path, deadline):
        """The port from the READY line, or None at the deadline."""
        while time.monotonic() < deadline:
            for line in out_path.read_text().splitlines():
                if line.startswith('READY '):
                    return int(line.split()[1])
            if self.proc.poll() is not None:
                raise RuntimeError(f'authorization server exited with {self.proc.returncode}: '
                                   f'{self.log_path.read_text()[-2000:]}')
            time.sleep(0.02)
        return None

    def _stall_report(self):
        """One line on a server that did not start: its state, where it
        waits, the machine's load and the tail of its log."""
        proc = Path(f'/proc/{self.proc.pid}')

        def read(name):
            try:
                return (proc / name).read_text().strip()
            except OSError as e:
                return f'({e.strerror})'
        state = next((ln for ln in read('status').splitlines() if ln.startswith('State:')), '?')
        log = self.log_path.read_text(errors='replace')[-500:].replace('\n', ' | ')
        return (f'{state}; wchan {read("wchan")}; load {Path("/proc/loadavg").read_text().strip()}; '
                f'log: {log or "(empty)"}')

    def _discover(self):
        self.base_url = f'https://127.0.0.1:{self.port}'
        status, self.discovery = self.http('GET', '/.well-known/openid-configuration')
        if status != 200:
            raise RuntimeError(f'discovery failed with HTTP {status}')
        d = self.discovery
        self.issuer = d['issuer']
        self.authorize_url = d['authorization_endpoint']
        self.token_url = d['token_endpoint']
        self.device_url = d['device_authorization_endpoint']
        self.revocation_url = d['revocation_endpoint']
        self.introspection_url = d['introspection_endpoint']
        self.userinfo_url = d['userinfo_endpoint']

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

    # HTTP helpers -------------------------------------------------------

    def http(self, method, url, form=None, auth=None, headers=None):
        """Raw request to the server (url absolute or a path); returns
        (status, parsed JSON or None)."""
        url = urllib.parse.urljoin(self.base_url, url)
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if auth is not None:
            pair = ':'.join(urllib.parse.quote(p, safe='') for p in auth)
            req.add_header('Authorization', 'Basic ' + base64.b64encode(pair.encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT, context=self._ssl) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        return status, (json.loads(body) if body.strip() else None)

    def token_request(self, form, client_id):
        """POST to the token endpoint as client_id (secret sent as
        client_secret_post for confidential clients); returns (status, json)."""
        secret, _ = CLIENTS[client_id]
        form = dict(form, client_id=client_id)
        if secret is not None:
            form['client_secret'] = secret
        return self.http('POST', self.token_url, form)

    def stats(self):
        return self.http('GET', '/test/stats')[1]

    def reset_stats(self):
        self.http('POST', '/test/reset-stats')

    def introspect(self, token):
        """Introspection as the `dovecot` client (client_secret_basic)."""
        status, body = self.http('POST', self.introspection_url, {'token': token},
                                 auth=('dovecot', CLIENTS['dovecot'][0]))
        if status != 200:
            raise RuntimeError(f'introspection failed with HTTP {status}: {body}')
        return body

    def refresh(self, refresh_token, client_id='tokend-native'):
        return self.token_request(
            {'grant_type': 'refresh_token', 'refresh_token': refresh_token}, client_id)

    def authorization_url(self, client_id='tokend-native', scope='openid offline_access',
                          redirect_uri=None, state=None, code_challenge=None, prompt='auto',
                          **extra):
        """prompt='auto' asks for consent when scope has offline_access, as
        OpenID Connect Core section 11 wants; None sends no prompt."""
        params = {'response_type': 'code', 'client_id': client_id, 'scope': scope,
                  'redirect_uri': redirect_uri or CLIENTS[client_id][1]}
        if prompt == 'auto':
            prompt = 'consent' if 'offline_access' in scope.split() else None
        if prompt:
            params['prompt'] = prompt
        if state:
            params['state'] = state
        if code_challenge:
            params.update(code_challenge=code_challenge, code_challenge_method='S256')
        params.update(extra)
        return f'{self.authorize_url}?{urllib.parse.urlencode(params)}'

    def obtain_tokens(self, client_id='tokend-native', scope='openid offline_access',
                      login='alice', prompt='auto'):
        """A whole authorization code + PKCE flow; returns the token response."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        redirect_uri = CLIENTS[client_id][1]
        url = self.authorization_url(client_id, scope, redirect_uri, state, challenge, prompt)
        final = browser.authorize(url, login=login, ca_file=self.ca_file)
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))
        if params.get('state') != state or params.get('iss') != self.issuer or 'code' not in params:
            raise RuntimeError(f'bad authorization response: error={params.get("error")}')
        status, body = self.token_request(
            {'grant_type': 'authorization_code', 'code': params['code'],
             'redirect_uri': redirect_uri, 'code_verifier': verifier}, client_id)
        if status != 200:
            raise RuntimeError(f'code exchange failed with HTTP {status}: {body}')
        return body
