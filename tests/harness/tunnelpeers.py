"""Peers for the tunnel tests: TLS Dovecots (IMAP and POP3) on the test CA
of the session's authorization server, helpers to fill the mailbox and
read Dovecot's log, and the mail client's side of a running `tokend
tunnel` (Client, tunnel()).

The Dovecots live in /tmp/tokend-dovecot-* rather than under pytest's
basetemp: their mail processes run as nobody and must search every folder
above their mail, and each pytest that starts on the machine chmods
/tmp/pytest-of-USER back to 0700."""

import base64
import contextlib
import imaplib
import os
import re
import select
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import TOKEND
from harness.dovecot import Dovecot
from harness.wait import wait_until

USER = 'alice'
TIMEOUT = 30


class Client:
    """The client side of a running `tokend tunnel`: its stdin and stdout
    are what a mail client would have."""

    def __init__(self, tokend, *args, env=None, options=()):
        e = dict(tokend.env, **(env or {}))
        self.proc = subprocess.Popen(
            [str(TOKEND), '-c', str(tokend.config), *options, 'tunnel', *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        self.buf = b''
        self.stderr = ''

    def line(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f'no line from the tunnel; got {self.buf!r}'
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    line, self.buf = self.buf, b''
                    return line.decode(errors='replace')
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b'\n')
        return line.decode(errors='replace') + '\n'

    def rest(self, timeout=TIMEOUT):
        """Everything the tunnel writes until it closes its output."""
        out = []
        while (line := self.line(timeout)):
            out.append(line)
        return ''.join(out)

    def send(self, text):
        self.proc.stdin.write(text.encode() if isinstance(text, str) else text)
        self.proc.stdin.flush()

    def until(self, tag):
        lines = []
        while True:
            line = self.line()
            assert line, f'the tunnel closed before {tag}: {lines}'
            lines.append(line)
            if line.startswith(tag + ' '):
                return lines

    def wait(self, timeout=TIMEOUT):
        rc = self.proc.wait(timeout)
        self.stderr = self.proc.stderr.read().decode(errors='replace')
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                f.close()


@contextlib.contextmanager
def tunnel(tokend, *args, env=None, options=()):
    """A running `tokend [options] tunnel args...`, killed on the way out."""
    c = Client(tokend, *args, env=env, options=options)
    try:
        yield c
    finally:
        c.close()


@contextlib.contextmanager
def shared_dir(prefix):
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def dovecot_for(srv, **kw):
    """Dovecot with TLS (the authorization server's certificate, which names
    127.0.0.1 and localhost), validating tokens at srv."""
    with shared_dir('tokend-dovecot-') as workdir, \
            Dovecot(workdir, srv.introspection_url, ca_file=srv.ca_file,
                    tls=(srv.cert_file, srv.key_file), **kw) as dc:
        yield dc


def xoauth2(user, token):
    return f'user={user}\x01auth=Bearer {token}\x01\x01'.encode()


def imap_login(dc, token, ca_file=None):
    """An imaplib session as alice on dc's plain IMAP port."""
    m = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    m.authenticate('XOAUTH2', lambda challenge: xoauth2(USER, token) if not challenge else b'')
    return m


def append_message(dc, token, msg):
    """Puts msg (bytes) into alice's INBOX; returns its UID."""
    m = imap_login(dc, token)
    try:
        typ, data = m.append('INBOX', None, None, msg)
        assert typ == 'OK', data
        return int(re.search(rb'APPENDUID \d+ (\d+)', data[0]).group(1))
    finally:
        m.logout()


def empty_inbox(dc):
    """Expunges alice's INBOX with doveadm."""
    r = subprocess.run(['doveadm', '-c', str(dc.config_path), 'expunge', '-u', USER,
                        'mailbox', 'INBOX', 'all'], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr


def logins(dc, service, method, secured=False):
    pattern = rf'{service}-login: Info: Login: user=<{USER}>, method={method},[^\n]*'
    found = re.findall(pattern, dc.log())
    if secured:
        found = [f for f in found if ', TLS' in f]
    return len(found)


def wait_logged_in(dc, service, method, before, secured=False):
    """Dovecot logged one more login of alice with method (its log process
    writes a moment later)."""
    wait_until(lambda: logins(dc, service, method, secured) > before, 3,
               f'dovecot logged a {service} login with {method}',
               detail=lambda: dc.log()[-2000:])


def revoke_grant(srv, refresh_token):
    """Replays the refresh token: oidc-provider then revokes the whole
    grant, access token included."""
    assert srv.refresh(refresh_token)[0] == 200
    assert srv.refresh(refresh_token)[0] == 400


def deliver(dc, msg):
    """Puts msg (bytes) into alice's INBOX with doveadm, no login needed."""
    r = subprocess.run(['doveadm', '-c', str(dc.config_path), 'save', '-u', USER, '-m', 'INBOX'],
                       input=msg, capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
