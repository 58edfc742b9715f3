"""Dovecot 2.3 as an IMAP and SMTP-submission server validating OAuth2 bearer
tokens by introspection at the test authorization server.

    with Dovecot(tmp_path, srv.introspection_url, ca_file=srv.ca_file) as dc:
        imaplib.IMAP4(dc.host, dc.imap_port).authenticate('XOAUTH2', ...)
        # msmtp --host dc.host --port dc.submission_port --auth=xoauth2 ...
        dc.messages()   # what submission relayed: [{'mail_from', 'rcpt_tos', 'data'}]

Plain IMAP and submission (no TLS) on free ports of 127.0.0.1.  Submission
relays to an SMTP sink in this process, which answers 250 and keeps each
message.  The login user must equal the token's `sub` (lowercased).  Mail is
stored as nobody:nogroup under workdir/mail, so every directory above the
workdir gets o+x (search, not read).

What a client sees: a bad or expired token gets `NO [AUTHENTICATIONFAILED]`
after about 0.5 s (Dovecot answers failures from a 0.5 s timer even with
auth_failure_delay = 0; the default delay is 2 s, and without the anvil
setting below every further failure adds 4 s); an unreachable authorization
server gets `NO [UNAVAILABLE] Temporary authentication failure.`  The client
credentials go in the introspection URL (HTTP Basic); the CA file is copied
into the workdir because the auth process runs as user dovecot.

Standalone, for a demo:
    python3 tests/harness/dovecot.py --introspection-url URL --ca-file CA
"""

import os
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

START_TIMEOUT = 60  # bounded, and generous: a peer starts slowly on a loaded 2-core machine
MAIL_USER, MAIL_GROUP = 'nobody', 'nogroup'

CONFIG = """\
protocols = imap submission{pop3_protocol}
listen = 127.0.0.1
base_dir = {base_dir}
state_dir = {state_dir}
instance_name = {instance}
log_path = {log_path}
info_log_path = {log_path}
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
auth_verbose = yes
hostname = localhost
mail_location = maildir:~/Maildir

{app_passdbs}passdb {{
  driver = oauth2
  mechanisms = {mechanisms}
  args = {oauth2_conf}
}}
userdb {{
  driver = static
  # allow_all_users: doveadm (save, expunge) may look users up.
  args = uid={mail_user} gid={mail_group} home={mail_dir}/%n allow_all_users=yes
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
{pop3_service}
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {submission_port}
  }}
}}
# Without this every login after a failure waits up to 15 s.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

submission_relay_host = 127.0.0.1
submission_relay_port = {sink_port}
submission_relay_trusted = yes
submission_relay_ssl = no
"""

OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = sub
active_attribute = active
active_value = true
timeout_msecs = 10000
{tls}
"""

# An app's tokens (client credentials) name no person: the admin lets the
# app into the mailboxes it may act for, and only those.  This passdb is
# asked only for those mailboxes (username_filter); it takes a token only
# when introspection says it was issued to the app (active_attribute), and
# the usual comparison of the login name with an attribute of the token is
# made true for it (a username_format without variables expands to itself
# on both sides).  For other mailboxes and other tokens the user passdb
# after it decides as before.
APP_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = {mechanisms}
  args = {conf}
  username_filter = {mailboxes}
}}
"""

APP_OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = client_id
username_format = app
active_attribute = client_id
active_value = {client_id}
timeout_msecs = 10000
{tls}
"""

POP3_SERVICE = """\
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s_port}
  }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def open_path_to(path):
    """Adds o+x to path and each directory above it, so that unprivileged
    Dovecot processes can reach it."""
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        mode = d.stat().st_mode
        if not mode & 0o001:
            d.chmod(mode | 0o001)


class SmtpSink(socketserver.ThreadingTCPServer):
    """Answers every SMTP command with success and keeps what DATA carried,
    with MAIL FROM and RCPT TO as they came (parameters included).  Its
    EHLO names `extensions` (DSN: it takes the parameters, as an MTA behind
    Dovecot that has DSN would)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, extensions=('8BITMIME', 'PIPELINING')):
        super().__init__(('127.0.0.1', 0), _SmtpHandler)
        self.port = self.server_address[1]
        self.extensions = tuple(extensions)
        self.messages = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.shutdown()
        self.server_close()


class _SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b'\r\n')

    def handle(self):
        self.reply('220 localhost sink ESMTP')
        mail_from, rcpt_tos = None, []
        for raw in self.rfile:
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            verb = line.split(' ', 1)[0].upper()
            if verb == 'EHLO':
                self.reply('\r\n'.join(['250-localhost'] + [
                    f'250-{x}' for x in self.server.extensions[:-1]] +
                    [f'250 {self.server.extensions[-1]}']))
            elif verb == 'MAIL':
                mail_from, rcpt_tos = line.split(':', 1)[1].strip(), []
                self.reply('250 2.1.0 Ok')
            elif verb == 'RCPT':
                rcpt_tos.append(line.split(':', 1)[1].strip())
                self.reply('250 2.1.5 Ok')
            elif verb == 'DATA':
                self.reply('354 End data with <CR><LF>.<CR><LF>')
                data = self._read_data()
                with self.server.lock:
                    self.server.messages.append(
                        {'mail_from': mail_from, 'rcpt_tos': rcpt_tos, 'data': data})
                self.reply('250 2.0.0 Ok: queued')
            elif verb == 'QUIT':
                self.reply('221 2.0.0 Bye')
                return
            else:  # HELO, RSET, NOOP, XCLIENT, ...
                self.reply('250 Ok')

    def _read_data(self):
        lines = []
        for raw in self.rfile:
            if raw in (b'.\r\n', b'.\n'):
                break
            lines.append(raw[1:] if raw.startswith(b'.') else raw)
        return b''.join(lines)


class Dovecot:
    host = '127.0.0.1'

    def __init__(self, workdir, introspection_url, client_id='dovecot',
                 client_secret='dovecot-secret', ca_file=None,
                 mechanisms=('xoauth2', 'oauthbearer'), tls=None, pop3=False, apps=None,
                 extra_config='', sink_extensions=('8BITMIME', 'PIPELINING')):
        """tls: (cert_file, key_file) turns TLS on: STARTTLS on the IMAP (and
        POP3) ports, implicit TLS on imaps_port (and pop3s_port).  pop3:
        serve POP3 too.  apps: {client_id: [mailbox, ...]}, the app-only
        clients and the mailboxes each may log in to (APP_PASSDB).
        extra_config: settings appended to dovecot.conf
        (`imap_capability = IMAP4rev1 IDLE`: a server without SASL-IR).
        sink_extensions: what the MTA behind submission (the sink) offers,
        which Dovecot passes on (DSN)."""
        self.sink_extensions = tuple(sink_extensions)
        self.apps = dict(apps or {})
        self.workdir = Path(workdir)
        self.tls = tls
        self.pop3 = pop3
        self.imaps_port = self.pop3_port = self.pop3s_port = 0
        self.introspection_url = introspection_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.ca_file = ca_file
        self.mechanisms = tuple(mechanisms)
        self.extra_config = extra_config
        self.log_path = self.workdir / 'dovecot.log'
        self.config_path = self.workdir / 'dovecot.conf'
        self.proc = None
        self.sink = None
        self.base_dir = None
        self.startup_seconds = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _introspection_url_with_credentials(self):
        """Dovecot 2.3 sends HTTP Basic from the URL's userinfo."""
        u = urllib.parse.urlsplit(self.introspection_url)
        cred = ':'.join(urllib.parse.quote(s, safe='')
                        for s in (self.client_id, self.client_secret))
        return urllib.parse.urlunsplit(u._replace(netloc=f"{cred}@{u.netloc.rpartition('@')[2]}"))

    def write_config(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Short, so that socket paths stay below the 108-byte limit; and
        # outside pytest's temporary root, which every pytest run on the
        # machine resets to 0700, shutting the mail processes out.
        self.base_dir = tempfile.mkdtemp(prefix='dovecot-')
        os.chmod(self.base_dir, 0o755)
        mail_dir = Path(self.base_dir) / 'mail'
        mail_dir.mkdir()
        shutil.chown(mail_dir, MAIL_USER, MAIL_GROUP)
        open_path_to(mail_dir)
        oauth2_conf = self.workdir / 'dovecot-oauth2.conf.ext'
        tls = ''
        if self.ca_file:
            # Read by the auth process (user dovecot), which cannot enter the
            # authorization server's private directory.
            ca_copy = Path(self.base_dir) / 'introspection-ca.pem'
            shutil.copyfile(self.ca_file, ca_copy)
            ca_copy.chmod(0o644)
            tls = f'tls_ca_cert_file = {ca_copy}'
        oauth2_conf.write_text(OAUTH2_CONFIG.format(
            introspection_url=self._introspection_url_with_credentials(), tls=tls))
        oauth2_conf.chmod(0o600)
        app_passdbs = ''
        for i, (client_id, mailboxes) in enumerate(self.apps.items()):
            conf = self.workdir / f'dovecot-oauth2-app{i}.conf.ext'
            conf.write_text(APP_OAUTH2_CONFIG.format(
                introspection_url=self._introspection_url_with_credentials(), tls=tls,
                client_id=client_id))
            conf.chmod(0o600)
            app_passdbs += APP_PASSDB.format(mechanisms=' '.join(self.mechanisms), conf=conf,
                                             mailboxes=' '.join(mailboxes))
        self.imap_port, self.submission_port = free_port(), free_port()
        ssl_files = ''
        if self.tls:
            # Read by the master process (root) at start-up.
            for name, src in zip(('cert.pem', 'key.pem'), self.tls):
                shutil.copyfile(src, Path(self.base_dir) / name)
            ssl_files = (f"ssl_cert = <{Path(self.base_dir) / 'cert.pem'}\n"
                         f"ssl_key = <{Path(self.base_dir) / 'key.pem'}")
            self.imaps_port = free_port()
        pop3_service = ''
        if self.pop3:
            self.pop3_port = free_port()
            self.pop3s_port = free_port() if self.tls else 0
            pop3_service = POP3_SERVICE.format(pop3_port=self.pop3_port,
                                               pop3s_port=self.pop3s_port)
        self.config_path.write_text(CONFIG.format(
            pop3_protocol=' pop3' if self.pop3 else '', ssl='yes' if self.tls else 'no',
            ssl_files=ssl_files, imaps_port=self.imaps_port, pop3_service=pop3_service,
            base_dir=self.base_dir, state_dir=self.workdir / 'state',
            instance=f'tokend-test-{os.getpid()}-{self.imap_port}',
            log_path=self.log_path, mechanisms=' '.join(self.mechanisms),
            oauth2_conf=oauth2_conf, app_passdbs=app_passdbs, mail_user=MAIL_USER, mail_group=MAIL_GROUP,
            mail_dir=mail_dir, imap_port=self.imap_port,
            submission_port=self.submission_port, sink_port=self.sink.port) +
            self.extra_config)

    def start(self):
        started = time.monotonic()
        self.sink = SmtpSink(self.sink_extensions)
        try:
            self.write_config()
            (self.workdir / 'state').mkdir(exist_ok=True)
            with open(self.workdir / 'dovecot.out', 'ab') as out:
                self.proc = subprocess.Popen(['dovecot', '-F', '-c', str(self.config_path)],
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            self._wait_ready(time.monotonic() + START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _wait_ready(self, deadline):
        """Waits for both greetings: Dovecot greets once its auth is ready."""
        pending = [(self.imap_port, b'* OK'), (self.submission_port, b'220 ')]
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'dovecot exited with {self.proc.returncode}: {self._logs()}')
            port, greeting = pending[0]
            try:
                with socket.create_connection((self.host, port), timeout=1) as s:
                    if s.recv(100).startswith(greeting):
                        pending.pop(0)
                        continue
            except OSError:
                pass
            time.sleep(0.02)
        if pending:
            raise RuntimeError(f'dovecot not ready after {START_TIMEOUT} s: {self._logs()}')

    def _logs(self):
        text = ''
        for p in (self.workdir / 'dovecot.out', self.log_path):
            if p.exists():
                text += p.read_text(errors='replace')
        return text[-3000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.sink:
            self.sink.stop()
            self.sink = None
        if self.base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def messages(self):
        """Messages relayed by submission so far."""
        with self.sink.lock:
            return list(self.sink.messages)

    def log(self):
        return self.log_path.read_text(errors='replace') if self.log_path.exists() else ''


def main():
    import argparse
    ap = argparse.ArgumentParser(description='Run Dovecot against an authorization server.')
    ap.add_argument('--introspection-url', required=True)
    ap.add_argument('--ca-file')
    ap.add_argument('--client-id', default='dovecot')
    ap.add_argument('--client-secret', default='dovecot-secret')
    ap.add_argument('--mechanisms', default='xoauth2 oauthbearer')
    ap.add_argument('--workdir', help='default: a new temporary directory')
    ap.add_argument('--app', action='append', default=[],
                    help='CLIENT_ID=MAILBOX,...: an app-only client and its mailboxes')
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix='dovecot-demo-')
    apps = {c: boxes.split(',') for c, _, boxes in (a.partition('=') for a in args.app)}
    with Dovecot(workdir, args.introspection_url, args.client_id, args.client_secret,
                 args.ca_file, args.mechanisms.split(), apps=apps) as dc:
        print(f'IMAP {dc.host}:{dc.imap_port}  submission {dc.host}:{dc.submission_port}  '
              f'log {dc.log_path}', flush=True)
        try:
            dc.proc.wait()
        except KeyboardInterrupt:
            pass
        for m in dc.messages():
            print(f"relayed from {m['mail_from']} to {', '.join(m['rcpt_tos'])}, "
                  f"{len(m['data'])} bytes")


if __name__ == '__main__':
    main()
