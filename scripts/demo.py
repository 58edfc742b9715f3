"""The demo behind scripts/demo: every step is a real program talking to a
real server on 127.0.0.1.  A headless browser stands in for the user."""

import base64
import imaplib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

from harness.authserver import AuthServer  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402

TOKEND = Path(os.environ.get('TOKEND_BUILD_DIR', REPO / 'build')) / 'src' / 'tokend'
# TOKEND_BIN: show another tokend instead, e.g. the installed /usr/bin/tokend.
TOKEND = Path(os.environ.get('TOKEND_BIN', TOKEND))


def say(text):
    print(f'demo: {text}', flush=True)


def tokend(env, *args, check=True):
    r = subprocess.run([str(TOKEND), *args], env=env, capture_output=True, text=True,
                       timeout=60)
    if check and r.returncode != 0:
        sys.exit(f'demo: tokend {" ".join(args)} failed ({r.returncode}): {r.stderr}')
    return r


def imap_login(dovecot, user, token):
    sasl = f'user={user}\x01auth=Bearer {token}\x01\x01'.encode()
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10) as imap:
        imap.authenticate('XOAUTH2', lambda _: sasl)
        typ, data = imap.select('INBOX')
        return typ, int(data[0])


def main():
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='tokend-demo-') as tmp:
        tmp = Path(tmp)
        home = tmp / 'home'
        home.mkdir()
        with AuthServer(tmp / 'authserver') as auth, \
                Dovecot(tmp / 'dovecot', auth.introspection_url, ca_file=auth.ca_file) as dc:
            say(f'tokend: {TOKEND}')
            say(f'authorization server (oidc-provider) at {auth.issuer}')
            say(f'IMAP server (Dovecot) at {dc.host}:{dc.imap_port}, '
                f'SMTP submission at {dc.host}:{dc.submission_port}')
            config = home / 'tokend.conf'
            config.write_text(
                '[account demo]\n'
                'provider = generic\n'
                f'issuer = {auth.issuer}\n'
                'client_id = tokend-native\n'
                'scopes = openid offline_access mail.imap mail.smtp\n'
                'username = alice\n'
                f'ca_file = {auth.ca_file}\n'
                'store = file\n')
            env = {'PATH': os.environ['PATH'], 'HOME': str(home), 'LANG': 'C.UTF-8',
                   'XDG_STATE_HOME': str(home / 'state'), 'TOKEND_CONFIG': str(config),
                   'BROWSER': str(REPO / 'tests' / 'harness' / 'browser.py'),
                   'TOKEND_TEST_CA': auth.ca_file, 'TOKEND_TEST_LOGIN': 'alice'}

            say('$ tokend obtain demo     (a headless browser signs in as alice)')
            r = tokend(env, 'obtain', 'demo')
            for line in r.stderr.splitlines():
                if 'signed in' in line:
                    say('  ' + line)
            token_file = home / 'state' / 'tokend' / 'demo' / 'token'
            token = token_file.read_text().strip()
            say(f'  token file {token_file} (mode {oct(token_file.stat().st_mode & 0o777)})')

            typ, count = imap_login(dc, 'alice', tokend(env, 'token', 'demo').stdout.strip())
            say(f'IMAP login as alice with the token (XOAUTH2): {typ}, INBOX has {count} messages')

            msmtprc = home / 'msmtprc'
            msmtprc.write_text(
                'account demo\n'
                f'host {dc.host}\nport {dc.submission_port}\n'
                'auth xoauth2\nuser alice\nfrom alice@example.org\ntls off\n'
                f'passwordeval "{TOKEND} token demo"\n')
            msmtprc.chmod(0o600)
            mail = 'Subject: hello from tokend\n\nSent with an OAuth2 token.\n'
            subprocess.run(['msmtp', '-C', str(msmtprc), '-a', 'demo', 'bob@example.org'],
                           input=mail, text=True, env=env, check=True, timeout=30)
            sent = dc.messages()
            say(f'msmtp sent a message through submission with `tokend token demo`: '
                f'{len(sent)} relayed to {sent[-1]["rcpt_tos"]}')

            say('$ tokend refresh --force demo')
            tokend(env, 'refresh', '--force', 'demo')
            new = token_file.read_text().strip()
            assert new != token
            typ, _ = imap_login(dc, 'alice', new)
            say(f'  new token in the file; IMAP login with it: {typ}; the old refresh token '
                'was rotated')
            status = tokend(env, 'status', 'demo').stdout.splitlines()
            say('$ tokend status demo')
            for line in status:
                say('  ' + line)
    say(f'done in {time.monotonic() - start:.1f} s; everything it made is removed')


if __name__ == '__main__':
    main()
