"""The demo behind scripts/demo: tokend's main job as a desktop user has it,
every step a real program talking to a real server.

`tokend add alice@example.org` finds the provider of the address the way it
does on the internet (DNS, then the domain's Mozilla autoconfig document over
HTTPS, then OpenID discovery), signs in through the loopback catcher (a
headless browser stands in for the user) and keeps the refresh token in the
Secret Service (a private gnome-keyring on a private D-Bus session).  Then
the mail is read with the token file (an IMAP login) and through `tokend
tunnel` (fetchmail 6.4 configured by `tokend snippet`), and msmtp, also
configured by `tokend snippet`, sends a message.

The internet here is private: Linux network and mount namespaces (as root)
with their own loopback, a DNS server answering for example.org and an HTTPS
server answering as autoconfig.example.org (tests/harness/netns.py).  That
is the honest way to show `add`: tokend runs unchanged, asking the system
resolver and checking certificates against the system CA bundle, which the
namespace replaces with its own.  This process builds the namespace, runs
itself again inside it (--inside), and removes everything at the end.
"""

import imaplib
import os
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))

from harness import netns  # noqa: E402
from harness.authserver import AuthServer  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402
from harness.keyring import SecretService  # noqa: E402

TOKEND = Path(os.environ.get('TOKEND_BUILD_DIR', REPO / 'build')) / 'src' / 'tokend'
# TOKEND_BIN: show another tokend instead, e.g. the installed /usr/bin/tokend.
TOKEND = Path(os.environ.get('TOKEND_BIN', TOKEND))
EMAIL = 'alice@example.org'
ACCOUNT = 'demo'
AUTOCONFIG_HOST = 'autoconfig.example.org'


def say(text):
    print(f'demo: {text}', flush=True)


def tokend(env, *args):
    r = subprocess.run([str(TOKEND), *args], env=env, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        sys.exit(f'demo: tokend {" ".join(args)} failed ({r.returncode}): {r.stderr}')
    return r


def show(text):
    for line in text.splitlines():
        say('  ' + line)


def autoconfig(auth, dc):
    """The domain's ISPDB document: its servers and its OAuth2 issuer."""
    issuer = auth.base_url.split('://', 1)[1]
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="imap">
      <hostname>{dc.host}</hostname>
      <port>{dc.imap_port}</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>OAuth2</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{dc.host}</hostname>
      <port>{dc.submission_port}</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>OAuth2</authentication>
    </outgoingServer>
  </emailProvider>
  <oAuth2>
    <issuer>{issuer}</issuer>
    <scope>openid offline_access mail.imap mail.smtp</scope>
    <authURL>{auth.authorize_url}</authURL>
    <tokenURL>{auth.token_url}</tokenURL>
  </oAuth2>
</clientConfig>
'''


def imap_session(dc, user, token):
    """An IMAP login with the token (XOAUTH2 after STARTTLS, the system CAs)."""
    imap = imaplib.IMAP4(dc.host, dc.imap_port, timeout=10)
    imap.starttls(ssl.create_default_context())
    sasl = f'user={user}\x01auth=Bearer {token}\x01\x01'.encode()
    imap.authenticate('XOAUTH2', lambda _: sasl)
    return imap


def add_account(env, dc, issuer):
    # The demo's issuer is on this machine: tokend add takes an issuer there
    # only when the user names it too.
    say(f'$ tokend -v add {EMAIL} {ACCOUNT} --client-id tokend-native --issuer {issuer}')
    r = tokend(env, '-v', 'add', EMAIL, ACCOUNT, '--client-id', 'tokend-native',
               '--issuer', issuer)
    # What it found and did (leaving out the HTTP requests and the sign-in
    # address that -v also shows).
    show('\n'.join(line for line in r.stderr.splitlines()
                    if line.startswith(('tokend: detect:', f'tokend: {ACCOUNT}:'))
                    and 'browser was opened' not in line))
    show(r.stdout)
    config = Path(env['HOME']) / '.config' / 'tokend' / 'config'
    say(f'{config} as add wrote it:')
    show(config.read_text())


def show_keyring(env, keyring, home):
    secret = keyring.lookup(account=ACCOUNT, kind='refresh_token')
    on_disk = sorted(p.name for p in (home / '.local' / 'state' / 'tokend' / ACCOUNT).iterdir())
    say(f'refresh token: in the Secret Service (gnome-keyring, collection login): '
        f'{"yes" if secret else "NO"}; files in the account folder: {", ".join(on_disk)}')
    if not secret or 'refresh_token' in on_disk:
        sys.exit('demo: the refresh token is not (only) in the Secret Service')


def read_with_token_file(dc, home):
    token_file = home / '.local' / 'state' / 'tokend' / ACCOUNT / 'token'
    token = token_file.read_text().strip()
    say(f'token file {token_file} (mode {oct(token_file.stat().st_mode & 0o777)})')
    subject = f'hello from carol {uuid.uuid4().hex[:8]}'
    imap = imap_session(dc, 'alice', token)
    try:
        msg = (f'From: carol@example.org\r\nTo: {EMAIL}\r\nSubject: {subject}\r\n'
               f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\nhello\r\n').encode()
        imap.append('INBOX', None, None, msg)
        typ, data = imap.select('INBOX')
        say(f'IMAP login as alice with the token file (XOAUTH2 over STARTTLS): {typ}, '
            f'INBOX has {int(data[0])} message(s), the newest "{subject}"')
    finally:
        imap.logout()
    return subject


def read_through_tunnel(env, home, subject):
    say(f'$ tokend snippet {ACCOUNT} fetchmail > ~/.fetchmailrc')
    rc = home / '.fetchmailrc'
    rc.write_text(tokend(env, 'snippet', ACCOUNT, 'fetchmail').stdout)
    rc.chmod(0o600)
    show(rc.read_text())
    out = home / 'fetched'
    out.mkdir()
    say('$ fetchmail -d0 --mda "cat > ~/fetched/msg.$$"     (fetchmail 6.4 has no OAuth: '
        'the plugin logs in)')
    r = subprocess.run(['fetchmail', '-f', str(rc), '-d0', '--invisible',
                        '--mda', f'cat > {out}/msg.$$'], env=env, capture_output=True,
                       text=True, timeout=60)
    fetched = [p.read_bytes() for p in out.glob('msg.*')]
    if r.returncode != 0 or not any(subject.encode() in m for m in fetched):
        sys.exit(f'demo: fetchmail through the tunnel failed ({r.returncode}): '
                 f'{r.stdout}{r.stderr}')
    say(f'  fetchmail fetched {len(fetched)} message(s) through `tokend tunnel`, '
        f'"{subject}" among them')


def send_with_msmtp(env, home, dc):
    say(f'$ tokend snippet {ACCOUNT} msmtp > ~/.msmtprc')
    rc = home / '.msmtprc'
    rc.write_text(tokend(env, 'snippet', ACCOUNT, 'msmtp').stdout)
    rc.chmod(0o600)
    show(rc.read_text())
    say('$ msmtp --from=alice@example.org bob@example.org')
    mail = 'Subject: hello from tokend\n\nSent with an OAuth2 token.\n'
    r = subprocess.run(['msmtp', '-C', str(rc), '-a', ACCOUNT, f'--from={EMAIL}',
                        'bob@example.org'], input=mail, text=True, env=env,
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        sys.exit(f'demo: msmtp failed ({r.returncode}): {r.stderr}')
    sent = dc.messages()
    say(f'  msmtp sent it through submission (STARTTLS, XOAUTH2): {len(sent)} relayed to '
        f'{sent[-1]["rcpt_tos"]}')


def inside(tmp):
    """The demo proper, in the namespace that outside() built."""
    world = netns.NetNS.joined(tmp / 'netns')
    home = tmp / 'home'
    (home / 'runtime').mkdir(parents=True, mode=0o700)
    with SecretService(tmp / 'keyring') as keyring, \
            AuthServer(tmp / 'authserver') as auth, \
            Dovecot(tmp / 'dovecot', auth.introspection_url, ca_file=auth.ca_file,
                    tls=(auth.cert_file, auth.key_file)) as dc:
        world.trust(auth.ca_file)
        world.serve(AUTOCONFIG_HOST, '/mail/config-v1.1.xml', autoconfig(auth, dc),
                    content_type='text/xml')
        say(f'private D-Bus session with gnome-keyring: {keyring.env["DBUS_SESSION_BUS_ADDRESS"]}')
        say(f'authorization server (oidc-provider) at {auth.issuer}')
        say(f'IMAP server (Dovecot) at {dc.host}:{dc.imap_port}, '
            f'SMTP submission at {dc.host}:{dc.submission_port} (STARTTLS on both)')
        say(f'https://{AUTOCONFIG_HOST}/mail/config-v1.1.xml names them')
        env = {'PATH': os.environ['PATH'], 'HOME': str(home), 'LANG': 'C.UTF-8',
               'XDG_RUNTIME_DIR': str(home / 'runtime'),
               'BROWSER': str(REPO / 'tests' / 'harness' / 'browser.py'),
               'TOKEND_TEST_LOGIN': 'alice', **keyring.env}
        add_account(env, dc, auth.issuer)
        show_keyring(env, keyring, home)
        subject = read_with_token_file(dc, home)
        read_through_tunnel(env, home, subject)
        send_with_msmtp(env, home, dc)
        say(f'$ tokend status {ACCOUNT}')
        show(tokend(env, 'status', ACCOUNT).stdout)


def outside():
    start = time.monotonic()
    say(f'tokend: {TOKEND}')
    why = netns.available()
    if why:
        sys.exit(f'demo: the private internet of the demo cannot be built: {why}; '
                 'run it as root (scripts/demo sets up what it needs)')
    with tempfile.TemporaryDirectory(prefix='tokend-demo-') as tmp:
        tmp = Path(tmp)
        with netns.NetNS(tmp / 'netns', hosts=[AUTOCONFIG_HOST]) as world:
            say(f'a private internet (network and mount namespaces): DNS for example.org, '
                f'HTTPS as {AUTOCONFIG_HOST}')
            r = subprocess.run(world.command([sys.executable, Path(__file__).resolve(),
                                              '--inside', tmp]), timeout=300)
    if r.returncode != 0:
        sys.exit(r.returncode)
    say(f'done in {time.monotonic() - start:.1f} s; everything it made is removed')


if __name__ == '__main__':
    if sys.argv[1:2] == ['--inside']:
        inside(Path(sys.argv[2]))
    else:
        outside()
