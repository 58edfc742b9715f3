"""A private "internet" for the tests: Linux network and mount namespaces
(as root) with their own loopback, a DNS server (dnsmasq) and HTTPS servers
on port 443 answering as real host names, with certificates from a test CA
that only the namespace trusts.

    with NetNS(tmp_path, hosts=['login.microsoftonline.com',
                                'autoconfig.example.org']) as ns:
        ns.mx('example.org', 'example-org.mail.protection.outlook.com')
        ns.serve('login.microsoftonline.com',
                 '/example.org/v2.0/.well-known/openid-configuration',
                 {'issuer': 'https://login.microsoftonline.com/TENANT/v2.0'})
        r = ns.run([TOKEND, 'add', 'alice@example.org'], env=env)

Inside the namespaces, /etc/resolv.conf points at dnsmasq on 127.0.0.1,
/etc/hosts names only localhost, and /etc/ssl/certs holds only the test
CA bundle (ca-certificates.crt, which libcurl and Python read): nothing
reaches the real network and nothing is mounted outside.  Every process
that should see this world runs through ns.run / ns.popen (nsenter).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .authserver import AuthServer, _openssl

HARNESS = Path(__file__).resolve().parent
HTTPS_SERVER = HARNESS / 'netns_https.py'
START_TIMEOUT = 60  # bounded, and generous: a peer starts slowly on a loaded 2-core machine
DNS_ADDRESS = '127.0.0.1'
HTTPS_ADDRESS = '127.0.0.1'


def available():
    """Why the namespace cannot be built here, or None."""
    if os.geteuid() != 0:
        return 'needs root (unshare --net --mount)'
    for tool in ('unshare', 'nsenter', 'ip', 'dnsmasq', 'openssl'):
        if not shutil.which(tool) and not Path('/usr/sbin', tool).exists():
            return f'{tool} is not installed (scripts/setup)'
    return None


def make_host_certs(workdir, hosts):
    """A CA and one server certificate for all hosts (and 127.0.0.1)."""
    d = Path(workdir)
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    _openssl('req', '-x509', *ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
             '-subj', '/CN=tokend test internet CA',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign', cwd=d)
    _openssl('req', '-new', *ec, '-keyout', 'server.key', '-out', 'server.csr',
             '-subj', f'/CN={hosts[0] if hosts else "localhost"}', cwd=d)
    names = ','.join([f'DNS:{h}' for h in hosts] + ['DNS:localhost', 'IP:127.0.0.1'])
    (d / 'server.ext').write_text(
        f'subjectAltName={names}\n'
        'basicConstraints=critical,CA:FALSE\n'
        'keyUsage=critical,digitalSignature\n'
        'extendedKeyUsage=serverAuth\n'
        'authorityKeyIdentifier=keyid\n'
        'subjectKeyIdentifier=hash\n')
    _openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
             '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem',
             cwd=d)
    return d / 'ca.pem', d / 'server.pem', d / 'server.key'


class NetNS:
    """hosts: the names the HTTPS server answers for (all resolve to
    127.0.0.1 and are in its certificate); records: dnsmasq lines such as
    'mx-host=example.org,mx.example.org,10' or 'txt-record=NAME,TEXT'."""

    def __init__(self, workdir, hosts=(), records=()):
        self.workdir = Path(workdir)
        self.hosts = list(hosts)
        self.holder = None
        self.procs = []
        self.records = list(records)  # more dnsmasq lines: mx-host=, txt-record=...
        self.routes = {}      # "host path" -> reply
        self.dnsmasq = None
        self.https = None

    # life cycle ---------------------------------------------------------

    @classmethod
    def joined(cls, workdir):
        """The namespace another process built at workdir, seen from a
        process running inside it: serve() and trust() work; it is neither
        started nor stopped from here."""
        ns = cls(workdir)
        ns.certs_dir = ns.workdir / 'certs'
        ns.bundle = ns.certs_dir / 'ca-certificates.crt'
        ns.ca_file = ns.workdir / 'ca.pem'
        ns.routes_file = ns.workdir / 'routes.json'
        ns.routes = json.loads(ns.routes_file.read_text())
        ns.requests_log = ns.workdir / 'requests.log'
        return ns

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        why = available()
        if why:
            raise RuntimeError(f'cannot build the test namespace: {why}')
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_holder()
            self._prepare_files()
            self._mount_files()
            self._start_dnsmasq()
            self._start_https()
        except BaseException:
            self.stop()
            raise

    def _start_holder(self):
        # unshare(1) without --fork: the same process (pid) enters the new
        # namespaces, then execs sleep, which keeps them alive.
        self.holder = subprocess.Popen(
            ['unshare', '--net', '--mount', '--propagation', 'private', 'sleep', 'infinity'],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        own = os.readlink('/proc/self/ns/net')
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if os.readlink(f'/proc/{self.holder.pid}/ns/net') != own and \
                        Path(f'/proc/{self.holder.pid}/cmdline').read_bytes().startswith(b'sleep'):
                    break
            except OSError:
                pass
            if self.holder.poll() is not None:
                raise RuntimeError(f'unshare failed: {self.holder.stderr.read().decode()}')
            time.sleep(0.01)
        else:
            raise RuntimeError('unshare did not enter its namespaces')
        self.pid = self.holder.pid
        self.run(['ip', 'link', 'set', 'lo', 'up'], check=True)

    def _prepare_files(self):
        d = self.workdir
        self.ca_file, self.cert_file, self.key_file = make_host_certs(d, self.hosts)
        self.certs_dir = d / 'certs'
        self.certs_dir.mkdir(exist_ok=True)
        self.bundle = self.certs_dir / 'ca-certificates.crt'
        shutil.copyfile(self.ca_file, self.bundle)
        self.resolv_conf = d / 'resolv.conf'
        self.resolv_conf.write_text(f'nameserver {DNS_ADDRESS}\n')
        self.hosts_file = d / 'hosts'
        self.hosts_file.write_text('127.0.0.1 localhost\n::1 localhost\n')
        self.routes_file = d / 'routes.json'
        self._write_routes()
        self.requests_log = d / 'requests.log'
        self.requests_log.touch()

    def _mount_files(self):
        for src, dst in ((self.resolv_conf, '/etc/resolv.conf'), (self.hosts_file, '/etc/hosts'),
                         (self.certs_dir, '/etc/ssl/certs')):
            self.run(['mount', '--bind', str(src), dst], check=True)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        if self.holder is not None:
            if self.holder.poll() is None:
                self.holder.kill()
            self.holder.wait()
            self.holder = None

    # running things inside ----------------------------------------------

    def command(self, argv):
        # nsenter starts in the namespace's root folder: give absolute paths.
        return ['nsenter', '-t', str(self.pid), '-n', '-m', '--', *[str(a) for a in argv]]

    def run(self, argv, check=False, timeout=60, **kw):
        """subprocess.run inside the namespaces (text mode, output captured)."""
        kw.setdefault('capture_output', True)
        kw.setdefault('text', True)
        r = subprocess.run(self.command(argv), timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f'{argv[0]} failed in the namespace ({r.returncode}): '
                               f'{r.stderr}')
        return r

    def popen(self, argv, **kw):
        """subprocess.Popen inside the namespaces; stopped with the namespace."""
        p = subprocess.Popen(self.command(argv), **kw)
        self.procs.append(p)
        return p

    def trust(self, ca_file):
        """Add a CA (another test server's) to the namespace's bundle."""
        with open(self.bundle, 'a') as f:
            f.write(Path(ca_file).read_text())

    def set_resolv_conf(self, text):
        """Rewrite the namespace's /etc/resolv.conf (in place: same file)."""
        with open(self.resolv_conf, 'r+') as f:
            f.truncate(0)
            f.write(text)

    # DNS ----------------------------------------------------------------

    def _dnsmasq_config(self):
        d = self.workdir
        lines = [
            'no-resolv', 'no-hosts', 'no-poll', 'bind-interfaces',
            f'listen-address={DNS_ADDRESS}', 'port=53',
            f'pid-file={d}/dnsmasq.pid', f'log-facility={d}/dnsmasq.log', 'log-queries',
            # Never forward: every other name does not exist.
            'local=/#/',
            'host-record=ready.test,127.0.0.1',
        ]
        lines += [f'host-record={h},{HTTPS_ADDRESS}' for h in self.hosts]
        return '\n'.join(lines + self.records) + '\n'

    def _start_dnsmasq(self):
        conf = self.workdir / 'dnsmasq.conf'
        conf.write_text(self._dnsmasq_config())
        # dnsmasq drops to its own user: it must be able to write its log.
        os.chmod(self.workdir, 0o755)
        for name in ('dnsmasq.log', 'dnsmasq.pid'):
            p = self.workdir / name
            p.touch()
            shutil.chown(p, 'dnsmasq')
        with open(self.workdir / 'dnsmasq.out', 'ab') as out:
            self.dnsmasq = self.popen(['dnsmasq', '--keep-in-foreground', f'--conf-file={conf}'],
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        probe = 'import socket; socket.getaddrinfo("ready.test", 443)'
        self._wait(lambda: self.run([sys.executable, '-c', probe]).returncode == 0,
                   self.dnsmasq, 'dnsmasq')

    def _reload_dns(self):
        (self.workdir / 'dnsmasq.conf').write_text(self._dnsmasq_config())
        self.dnsmasq.terminate()
        self.dnsmasq.wait(5)
        self.procs.remove(self.dnsmasq)
        self._start_dnsmasq()

    def dns(self, *lines):
        """Add dnsmasq configuration lines (host-record=, mx-host=,
        txt-record=, ...) and restart dnsmasq with them."""
        self.records += list(lines)
        self._reload_dns()

    def mx(self, domain, host, preference=10):
        self.dns(f'mx-host={domain},{host},{preference}')

    def dns_log(self):
        return (self.workdir / 'dnsmasq.log').read_text(errors='replace')

    # HTTPS --------------------------------------------------------------

    def _write_routes(self):
        tmp = self.routes_file.with_suffix('.tmp')
        tmp.write_text(json.dumps(self.routes))
        os.replace(tmp, self.routes_file)

    def _start_https(self):
        with open(self.workdir / 'https.out', 'ab') as out:
            self.https = self.popen(
                [sys.executable, HTTPS_SERVER, '--address', HTTPS_ADDRESS, '--port', '443',
                 '--cert', self.cert_file, '--key', self.key_file,
                 '--routes', self.routes_file, '--log', self.requests_log],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self._wait(lambda: self.run(['curl', '-sf', '-o', '/dev/null',
                                     'https://localhost/.ready']).returncode == 0,
                   self.https, 'the HTTPS server')

    def serve(self, host, path, body, status=200, content_type=None, huge=0, delay=0,
              authorize=False):
        """Answer GET and POST https://HOST/PATH (path with ?query matches
        it first, then without) with body: a dict/list (JSON) or text.
        huge=N sends N bytes of body without a Content-Length instead;
        authorize=True answers as an authorization endpoint after a
        successful sign-in (302 to redirect_uri with a code and the state)."""
        if isinstance(body, (dict, list)):
            text, ctype = json.dumps(body), 'application/json'
        else:
            text, ctype = body, 'text/plain; charset=utf-8'
        self.routes[f'{host} {path}'] = {'status': status, 'body': text,
                                         'type': content_type or ctype, 'huge': huge,
                                         'delay': delay, 'authorize': authorize}
        self._write_routes()

    def requests(self):
        """The requests the HTTPS server answered: dicts with host, method,
        path and form (the body)."""
        return [json.loads(line) for line in self.requests_log.read_text().splitlines()]

    # helpers ------------------------------------------------------------

    def _wait(self, ready, proc, what):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f'{what} exited with {proc.returncode} in the namespace; '
                                   f'see {self.workdir}')
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f'{what} not ready after {START_TIMEOUT} s; see {self.workdir}')


class NsAuthServer(AuthServer):
    """The test authorization server (oidc-provider) inside the namespace,
    at https://127.0.0.1:PORT there; its CA is added to the namespace's
    bundle.  Its HTTP helpers run curl inside the namespace."""

    def __init__(self, ns, workdir, access_ttl=3600, env=None):
        super().__init__(workdir, access_ttl, env=env)
        self.ns = ns

    def start(self):
        from .authserver import SERVER_DIR, make_certs
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file, self.cert_file, self.key_file = make_certs(self.workdir)
        self.ns.trust(self.ca_file)
        out_path = self.workdir / 'authserver.out'
        self.log_path = self.workdir / 'authserver.log'
        started = time.monotonic()
        env = dict(os.environ, TOKEND_TEST_ACCESS_TTL=str(self.access_ttl), **self.extra_env)
        with open(out_path, 'wb') as out, open(self.log_path, 'wb') as log:
            self.proc = self.ns.popen(
                [shutil.which('node'), SERVER_DIR / 'server.mjs', '--port', '0',
                 '--cert', self.cert_file, '--key', self.key_file],
                cwd=SERVER_DIR, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
        self.port = self._wait_ready(out_path, started + 15)
        self.startup_seconds = time.monotonic() - started
        self.base_url = f'https://127.0.0.1:{self.port}'
        self.issuer = self.base_url
        d = self.get_json('/.well-known/openid-configuration')
        self.discovery = d
        self.token_url = d['token_endpoint']
        self.authorize_url = d['authorization_endpoint']
        self.introspection_url = d['introspection_endpoint']

    def get_json(self, path):
        r = self.ns.run(['curl', '-sf', self.base_url + path], check=True)
        return json.loads(r.stdout)

    def introspect(self, token):
        r = self.ns.run(['curl', '-sf', '-u', 'dovecot:dovecot-secret', '--data-urlencode',
                         'token@-', self.introspection_url], input=token, check=True)
        return json.loads(r.stdout)


class NsDovecot:
    """Dovecot (tests/harness/dovecot.py, plain IMAP on a loopback port)
    inside the namespace, checking tokens with the NsAuthServer."""

    def __init__(self, ns, authserver, workdir, apps=None):
        """apps: {client_id: [mailbox, ...]}, as harness.dovecot.Dovecot."""
        self.ns = ns
        self.authserver = authserver
        self.workdir = Path(workdir)
        self.apps = dict(apps or {})

    def __enter__(self):
        apps = [f'--app={c}={",".join(boxes)}' for c, boxes in self.apps.items()]
        self.proc = self.ns.popen(
            [sys.executable, '-m', 'harness.dovecot', '--introspection-url',
             self.authserver.introspection_url, '--ca-file', self.authserver.ca_file,
             '--workdir', self.workdir, *apps],
            env=dict(os.environ, PYTHONPATH=str(HARNESS.parent)),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith('IMAP '):
            raise RuntimeError(f'dovecot did not start in the namespace: {line}'
                               f'{self.proc.stdout.read() if self.proc.poll() is not None else ""}')
        words = line.split()
        self.host, port = words[1].rsplit(':', 1)
        self.imap_port = int(port)
        self.submission_port = int(words[3].rsplit(':', 1)[1])
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
