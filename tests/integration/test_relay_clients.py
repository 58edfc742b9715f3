"""Mail clients that only know passwords, configured as their users run
them, against `tokend relay --listen` on loopback, which logs in to the
real Dovecot (IMAP, POP3, submission) with the account's token:

- Debian's fetchmail 6.4 with `auth password` for IMAP and POP3, the
  seed's own lines (`poll localhost protocol IMAP port N auth password`;
  its `sslmode none` is fetchmail 7's spelling, which 6.4 refuses, so it
  is left out).  fetchmail 6.4 checks certificates by default
  (sslcertck) and so insists on TLS: it takes the relay's STARTTLS (STLS)
  and then refuses the self-signed loopback certificate, which nothing in
  those lines trusts; the test asserts exactly that.  With one line more,
  `sslcertfile` naming the certificate tokend made (what the snippet
  adds, with `poll localhost`: fetchmail compares names, not addresses),
  the upgrade to TLS succeeds and the mail comes through the TLS session
  after the sandbox; `sslproto ''` (no TLS at all) still works too.  The
  messages put into the mailbox arrive byte-identical (after fetchmail's
  CRLF to LF for the MDA; `--invisible` leaves out its Received: header).
- fetchmail 7 (the `next` branch the seed's user runs: `sslmode none` is
  its spelling) with the seed's lines exactly, both variants (without and
  with `keep`), only the port, the names and procmail's rcfile changed:
  the password is typed at fetchmail's prompt on a pseudo-terminal, as
  the seed's user does; plain text on loopback (the relay's STARTTLS offer
  is left alone); procmail delivers into a Maildir, byte-identical after
  fetchmail's Received: line; without `keep` the mailbox is emptied.
- msmtp without OAuth (`auth plain` with any password, `tls on` with the
  loopback certificate as its trust file), mutt's `smtp_url` to the relay
  from the snippet, and the seed's four mutt lines as they are (STARTTLS
  off, the password typed at mutt's prompt in a private tmux): the
  message arrives at Dovecot submission's sink.
- git send-email (Debian's git-email) with the snippet as its global
  configuration in a private HOME: STARTTLS checked against the loopback
  certificate, AUTH PLAIN with the mailbox name, no prompt; a patch from
  git format-patch arrives with its body as it is.
- swaks with --tls and the loopback certificate as its CA (--tls-verify):
  with AUTH PLAIN by the mailbox name, and without AUTH when
  relay_account is set; its --data file arrives byte-identical.
"""

import getpass
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from conftest import REPO
from harness.dovecot import free_port
from harness.fetchmail7 import fetchmail7
from harness.tunnelpeers import USER, append_message, dovecot_for, empty_inbox, logins, \
    wait_logged_in
from harness.wait import wait_until

SCOPES = 'openid offline_access mail.imap'
SENDER = 'alice@example.org'
TIMEOUT = 60


@pytest.fixture(scope='module')
def dovecot(authserver):
    with dovecot_for(authserver, pop3=True) as dc:
        yield dc


@pytest.fixture
def signed_in(tokend, dovecot):
    tokend.account(scopes=SCOPES, send_as=SENDER, smtp_host=dovecot.host,
                   smtp_port=dovecot.submission_port, imap_host=dovecot.host,
                   imap_port=dovecot.imap_port, pop_host=dovecot.host,
                   pop_port=dovecot.pop3_port)
    tokend.write_config()
    tokend.obtain()
    return tokend.token_file().read_text().strip()


@pytest.fixture
def listen(tokend, signed_in):
    """`tokend relay --listen 127.0.0.1:PORT PROTO`; returns PORT."""
    procs = []

    def start(proto):
        port = free_port()
        procs.append(tokend.popen('relay', '--listen', f'127.0.0.1:{port}', proto))
        wait_until(lambda: _connects(port), 10, f'the {proto} relay listens')
        return port
    yield start
    for p in procs:
        p.terminate()
        _, err = p.communicate(timeout=TIMEOUT)
        assert signed_in not in err


def _connects(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


def snippet(tokend, client, port):
    """`tokend snippet work CLIENT`, its relay port (the systemd socket's)
    replaced by the test relay's."""
    r = tokend.run('snippet', 'work', client)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for fixed in ('1587', '1993', '1995'):
        text = text.replace(fixed, str(port))
    return text


def run(argv, env, input=None):
    return subprocess.run(argv, capture_output=True, text=True, env=env, input=input,
                          timeout=TIMEOUT)


# fetchmail 6.4 --------------------------------------------------------------

SEED_RC = """\
poll localhost protocol {proto} port {port}
    auth password username "{user}" password "the relay ignores it"
    is {local} here
    keep
"""


def messages():
    out = []
    for i in range(3):
        marker = uuid.uuid4().hex
        out.append((f'From: bob@example.org\r\nTo: {SENDER}\r\nSubject: relay {i} {marker}\r\n'
                    f'Message-ID: <{marker}@example.org>\r\n\r\nbody {i}\r\n.dot\r\n').encode())
    return out


def fetchmail_rc(tokend, variant, proto, port):
    """The seed's lines, as they are or with one line more; or the snippet."""
    text = SEED_RC.format(proto=proto, port=port, user=USER, local=os.environ.get('USER', 'root'))
    if variant == 'seed+sslcertfile':
        text += f'    sslcertfile "{loopback_cert(tokend)}"\n'
    elif variant == "seed+sslproto''":
        text += "    sslproto ''\n"
    elif variant == 'snippet':
        text = snippet(tokend, 'fetchmail-relay' if proto == 'IMAP' else
                       'fetchmail-relay-pop3', port)
        assert f'sslcertfile "{loopback_cert(tokend)}"' in text and 'poll localhost' in text
    return text


def loopback_cert(tokend):
    return tokend.home / 'state' / 'tokend' / '_relay-tls' / 'cert.pem'


@pytest.mark.parametrize('proto', ['IMAP', 'POP3'])
@pytest.mark.parametrize('variant', ['seed', 'seed+sslcertfile', 'snippet', "seed+sslproto''"])
def test_fetchmail_auth_password_through_relay(tokend, dovecot, signed_in, listen, tmp_path,
                                               proto, variant):
    port = listen(proto.lower())
    empty_inbox(dovecot)
    sent = messages()
    for m in sent:
        append_message(dovecot, signed_in, m)
    rc = tmp_path / 'fetchmailrc'
    rc.write_text(fetchmail_rc(tokend, variant, proto, port))
    rc.chmod(0o600)
    out = tmp_path / 'out'
    out.mkdir()
    before = logins(dovecot, proto.lower(), 'OAUTHBEARER')
    r = run(['fetchmail', '-f', str(rc), '-d0', '-v', '--invisible', '--mda',
             f'cat > {out}/msg.$$'], tokend.env)
    log = r.stdout + r.stderr
    asked_tls = re.search(rf'{proto}> (A\d+ STARTTLS|STLS)\n', log)
    if variant == 'seed':
        # fetchmail 6.4 checks certificates by default (sslcertck) and so
        # requires TLS: it takes the relay's STARTTLS, then refuses the
        # self-signed certificate, which nothing in the seed's lines trusts.
        assert asked_tls and 'upgrade to TLS succeeded' not in log, log
        assert r.returncode == 2 and 'Server certificate verification error' in log, log
        assert not list(out.glob('msg.*'))
        return
    assert r.returncode == 0, log
    if variant == "seed+sslproto''":
        assert not asked_tls, log
    else:
        assert asked_tls and 'upgrade to TLS succeeded' in log, log
    got = sorted(p.read_bytes() for p in out.glob('msg.*'))
    assert got == sorted(m.replace(b'\r\n', b'\n') for m in sent), log
    wait_logged_in(dovecot, proto.lower(), 'OAUTHBEARER', before)
    assert signed_in not in log


# fetchmail 7 --------------------------------------------------------------

# The seed's lines (both of its variants: without and with `keep`), only
# the port, the user names and procmail's destination changed.
SEED7_RC = """\
poll localhost protocol IMAP port {port}
 auth password username "{user}"
 is {local} here
{keep} sslmode none
 mda "/usr/bin/procmail -m {procmailrc}"
 folders INBOX
"""


@pytest.fixture(scope='module')
def fetchmail7_binary():
    path, why = fetchmail7(REPO / 'build')
    if not path:
        pytest.skip(why)
    return path


def on_terminal(argv, env, prompt, answer, seconds=TIMEOUT):
    """Runs argv on a fresh pseudo-terminal (its controlling tty), types
    answer when prompt appears, as a person would; returns (status,
    everything it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out, answered, deadline = b'', False, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the program closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if not answered and prompt in out:
                os.write(fd, answer + b'\n')
                answered = True
    finally:
        os.close(fd)
    return _reap(pid, deadline), out.decode(errors='replace')


def _reap(pid, deadline):
    """The exit code of pid, killed if it is still running at deadline."""
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def inbox_uids(dc):
    """The UIDs in alice's INBOX (doveadm prints `MAILBOX-GUID UID` lines)."""
    r = subprocess.run(['doveadm', '-c', str(dc.config_path), 'search', '-u', USER,
                       'mailbox', 'INBOX', 'all'], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return [line.split()[1] for line in r.stdout.splitlines()]


@pytest.mark.parametrize('keep', [False, True], ids=['seed-000', 'seed-001-keep'])
def test_fetchmail7_seed_lines_through_relay(tokend, dovecot, signed_in, listen, tmp_path,
                                             fetchmail7_binary, keep):
    """fetchmail 7 with the seed's lines (`auth password`, `sslmode none`:
    plain text on loopback, no STARTTLS asked) against the IMAP relay;
    the password is typed at fetchmail's prompt on its terminal, as the
    seed's user does, and ignored by the relay on loopback.  procmail
    delivers into a Maildir; each message arrives byte-identical (CRLF to
    LF for the MDA, after fetchmail's own Received: line)."""
    port = listen('imap')
    empty_inbox(dovecot)
    sent = messages()
    for m in sent:
        append_message(dovecot, signed_in, m)
    maildir = tmp_path / 'Maildir'
    procmailrc = tmp_path / 'procmailrc'
    procmailrc.write_text(f':0\n{maildir}/\n')
    rc = tmp_path / 'fetchmailrc'
    rc.write_text(SEED7_RC.format(port=port, user=SENDER, local=getpass.getuser(),
                                  keep=' keep\n' if keep else '', procmailrc=procmailrc))
    rc.chmod(0o600)
    before = logins(dovecot, 'imap', 'OAUTHBEARER')
    status, log = on_terminal([fetchmail7_binary, '-f', str(rc), '-d0', '-v'], tokend.env,
                              b'Enter password for', b'typed at the prompt')
    assert status == 0, log
    assert f'Enter password for {SENDER}@localhost' in log
    # The relay offers STARTTLS; `sslmode none` leaves it alone (fetchmail
    # warns that it was offered) and logs in in plain text on loopback.
    assert not re.search(r'IMAP> A\d+ STARTTLS', log) and 'upgrade to TLS' not in log, log
    got = sorted(p.read_bytes() for p in (maildir / 'new').iterdir())
    assert len(got) == len(sent), log
    stripped = sorted(re.sub(rb'\AReceived: .*?\n(?=\S)', b'', m, flags=re.S) for m in got)
    assert stripped == sorted(m.replace(b'\r\n', b'\n') for m in sent), (got, log)
    assert all(m.startswith(b'Received: from localhost') for m in got), got
    assert len(inbox_uids(dovecot)) == (len(sent) if keep else 0), log
    wait_logged_in(dovecot, 'imap', 'OAUTHBEARER', before)
    assert signed_in not in log


# msmtp and mutt -------------------------------------------------------------

def sink_has(dc, marker):
    return any(marker.encode() in m['data'] for m in dc.messages())


def test_msmtp_without_oauth_through_relay(tokend, dovecot, listen, tmp_path):
    port = listen('smtp')
    rc = tmp_path / 'msmtprc'
    rc.write_text(snippet(tokend, 'msmtp-relay', port) + 'account default : work-relay\n')
    rc.chmod(0o600)
    marker = uuid.uuid4().hex
    msg = f'From: {SENDER}\nTo: bob@example.org\nSubject: msmtp {marker}\n\nhello\n'
    r = run(['msmtp', '-C', str(rc), f'--from={SENDER}', 'bob@example.org'], tokend.env, input=msg)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: sink_has(dovecot, marker), 10, 'the sink got the message')


@pytest.mark.parametrize('client', ['mutt', 'neomutt'])
@pytest.mark.parametrize('trust', ['relay-cert', 'another-ca'])
def test_mutt_smtp_url_through_relay(tokend, dovecot, listen, tmp_path, client, trust):
    """The snippet (Debian's mutt and neomutt, both GnuTLS): STARTTLS to the
    relay, its loopback certificate trusted for that connection only by an
    account-hook, the CA list set before it (Debian's /etc/Muttrc's, which
    -n leaves out) kept for every other one.  With another CA named
    instead, the client refuses the certificate and sends nothing."""
    port = listen('smtp')
    text = snippet(tokend, f'{client}-relay', port)
    cert = str(loopback_cert(tokend))
    assert f'"{cert}"' in text
    if trust == 'another-ca':
        text = text.replace(cert, tokend.env['TOKEND_TEST_CA'])
    muttrc = tmp_path / 'muttrc'
    muttrc.write_text('set ssl_ca_certificates_file = "/etc/ssl/certs/ca-certificates.crt"\n' +
                      text + f'set from = "{SENDER}"\nset record = ""\n')
    marker = uuid.uuid4().hex
    env = dict(tokend.env, TERM='dumb')
    extra = ['-d', '2', '-l', str(tmp_path / 'debug')] if client == 'neomutt' else []
    r = run([client, '-n', '-F', str(muttrc), *extra, '-s', f'mutt {marker}',
             'bob@example.org'], env, input='hello from mutt\n')
    if trust == 'another-ca':
        said = r.stdout + r.stderr
        if client == 'mutt':
            assert 'Untrusted server certificate' in said, said
        else:  # neomutt asks about the certificate (no terminal: no) and logs nothing
            said = ''.join(p.read_text(errors='replace') for p in tmp_path.glob('debug*'))
            assert 'ready to start TLS' in said and 'MAIL FROM' not in said, said
        assert r.returncode != 0
        assert not sink_has(dovecot, marker)
        return
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: sink_has(dovecot, marker), 10, 'the sink got the message')


MUTT_SEED = """\
set smtp_url = "smtp://{user}@localhost:{port}/"
unset smtp_pass
set ssl_starttls=no
set ssl_force_tls=no
"""


def test_mutt_seed_smtp_url_through_relay(tokend, dovecot, listen, tmp_path):
    """The seed's four lines as they are (plain text on loopback: mutt is
    told not to start TLS, so the relay's STARTTLS offer is left alone);
    with `unset smtp_pass` mutt asks for the password on its terminal (a
    private tmux here), and the relay ignores it on loopback."""
    port = listen('smtp')
    muttrc = tmp_path / 'muttrc'
    body = tmp_path / 'body'
    body.write_text('hello from mutt\n')
    (tokend.home / 'Mail').mkdir(exist_ok=True)  # mutt asks to make its $folder otherwise
    muttrc.write_text(MUTT_SEED.format(user=urllib.parse.quote(SENDER), port=port) +
                      f'set from = "{SENDER}"\nset record = ""\nset editor = "true"\n'
                      'set edit_headers = no\nset autoedit = no\nset abort_unmodified = no\n')
    marker = uuid.uuid4().hex
    term = Tmux(tokend.env)
    try:
        term.start(['mutt', '-n', '-F', str(muttrc), '-s', f'mutt-{marker}', '-i', str(body),
                    'bob@example.org'])
        wait_until(lambda: compose_menu(term), 10, 'mutt shows its compose menu',
                   detail=term.screen)
        term.keys('y')
        wait_until(lambda: 'Password' in term.screen(), 10, 'mutt asks for the password',
                   detail=term.screen)
        term.keys('typed at the prompt', 'Enter')
        wait_until(lambda: sink_has(dovecot, marker), 10, 'the sink got the message',
                   detail=term.screen)
    finally:
        term.close()


def compose_menu(term):
    """True at mutt's compose menu; Enter at its To: and Subject: prompts
    (already filled from the command line) on the way."""
    screen = term.screen()
    last = [line for line in screen.splitlines() if line.strip()][-1:] or ['']
    if last[0].startswith(('To:', 'Subject:')):
        term.keys('Enter')
    return 'y:Send' in screen


class Tmux:
    """A private tmux server (its own socket) running one program."""

    def __init__(self, env):
        self.dir = tempfile.mkdtemp(prefix='tokend-tmux-')  # short socket path
        self.socket = os.path.join(self.dir, 's')
        self.env = dict(env, TERM='xterm')

    def tmux(self, *args):
        return subprocess.run(['tmux', '-S', self.socket, *args], capture_output=True,
                              text=True, env=self.env, timeout=10)

    def start(self, argv):
        r = self.tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'mail', '-x', '150',
                      '-y', '50', ' '.join(argv))
        assert r.returncode == 0, r.stderr

    def keys(self, *keys):
        self.tmux('send-keys', '-t', 'mail', *keys)

    def screen(self):
        return self.tmux('capture-pane', '-p', '-t', 'mail').stdout

    def close(self):
        self.tmux('kill-server')
        shutil.rmtree(self.dir, ignore_errors=True)


# git send-email and swaks ----------------------------------------------------

def delivered(dc, marker):
    """The message the sink got with marker in it, without the Received
    line Dovecot submission puts on top; None while there is none."""
    for m in dc.messages():
        if marker.encode() in m['data']:
            head, _, rest = m['data'].partition(b'\r\n')
            assert head.startswith(b'Received: '), m['data'][:200]
            while rest[:1] in (b' ', b'\t'):
                _, _, rest = rest.partition(b'\r\n')
            return m | {'data': rest}
    return None


def git(env, cwd, *args):
    r = subprocess.run(['git', *args], cwd=cwd, capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert r.returncode == 0, f'git {args[0]}: {r.stdout}{r.stderr}'
    return r


def test_git_send_email_snippet_through_relay(tokend, dovecot, listen, tmp_path):
    """git send-email (Debian's git-email) with the snippet as its whole
    global configuration, in a private HOME: STARTTLS to the relay checked
    against the loopback certificate, AUTH PLAIN with the mailbox name and
    the ignored password, never a prompt.  A patch made by git
    format-patch arrives with its body as it is."""
    port = listen('smtp')
    text = snippet(tokend, 'git-send-email', port)
    assert f'smtpSslCertPath = "{loopback_cert(tokend)}"' in text, text
    home = tmp_path / 'home'
    home.mkdir()
    gitconfig = home / '.gitconfig'
    gitconfig.write_text(text + f'[user]\n\tname = Alice\n\temail = {SENDER}\n')
    env = {'PATH': os.environ['PATH'], 'HOME': str(home), 'GIT_CONFIG_GLOBAL': str(gitconfig),
           'GIT_CONFIG_NOSYSTEM': '1', 'LANG': 'C.UTF-8', 'GIT_TERMINAL_PROMPT': '0'}
    repo = tmp_path / 'repo'
    repo.mkdir()
    marker = uuid.uuid4().hex
    git(env, repo, 'init', '-q')
    (repo / 'README').write_text(f'hello {marker}\n.a line with a leading dot\n')
    git(env, repo, 'add', 'README')
    git(env, repo, 'commit', '-q', '-m', f'README: {marker}')
    patch = Path(git(env, repo, 'format-patch', '-1', '-o', str(tmp_path / 'out')).stdout.strip())
    before = logins(dovecot, 'submission', 'OAUTHBEARER')
    # The test account's username is no address (a real one's is); the
    # author's own From keeps git from adding one to the body.
    r = git(env, repo, 'send-email', f'--from=Alice <{SENDER}>', '--to=bob@example.org',
            '--confirm=never', '--suppress-cc=all', '--smtp-debug=1', str(patch))
    assert 'STARTTLS' in r.stderr and 'AUTH PLAIN' in r.stderr, r.stdout + r.stderr
    wait_until(lambda: delivered(dovecot, marker), 10, 'the sink got the patch')
    got = delivered(dovecot, marker)
    assert got['mail_from'].startswith(f'<{SENDER}>')
    assert got['rcpt_tos'][0].startswith('<bob@example.org>')
    want = patch.read_bytes().split(b'\n\n', 1)[1].replace(b'\n', b'\r\n')
    assert got['data'].split(b'\r\n\r\n', 1)[1] == want
    assert f'Subject: [PATCH] README: {marker}' in got['data'].decode()
    wait_logged_in(dovecot, 'submission', 'OAUTHBEARER', before)


def swaks(tokend, port, data, *auth):
    """swaks to the relay with STARTTLS, the loopback certificate its only
    trust anchor (--tls-verify), the message from the --data file."""
    return run(['swaks', '--server', 'localhost', '--port', str(port), '--tls',
                '--tls-verify', '--tls-ca-path', str(loopback_cert(tokend)),
                '--from', SENDER, '--to', 'bob@example.org', '--data', str(data), *auth],
               tokend.env)


def swaks_message(tmp_path):
    marker = uuid.uuid4().hex
    msg = (f'From: {SENDER}\r\nTo: bob@example.org\r\nSubject: swaks {marker}\r\n'
           f'Message-ID: <{marker}@example.org>\r\n\r\nbody {marker}\r\n.dot\r\n'
           '\xe9t\xe9 8bit\r\n').encode()
    data = tmp_path / 'message.eml'
    # swaks ends DATA with the file's own final "." line, or adds one
    # after a CRLF of its own.
    data.write_bytes(msg + b'.\r\n')
    return marker, msg, data


def test_swaks_auth_plain_through_relay(tokend, dovecot, listen, tmp_path):
    port = listen('smtp')
    marker, msg, data = swaks_message(tmp_path)
    r = swaks(tokend, port, data, '--auth', 'PLAIN', '--auth-user', USER,
              '--auth-password', 'ignored')
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'TLS started' in r.stdout and '~> AUTH PLAIN' in r.stdout, r.stdout
    wait_until(lambda: delivered(dovecot, marker), 10, 'the sink got the message')
    got = delivered(dovecot, marker)
    assert got['data'] == msg
    assert got['mail_from'].startswith(f'<{SENDER}>')


def test_swaks_without_auth_uses_relay_account(tokend, dovecot, signed_in, listen, tmp_path):
    tokend.write_config('[defaults]\nrelay_account = work\n')
    port = listen('smtp')
    marker, msg, data = swaks_message(tmp_path)
    r = swaks(tokend, port, data)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'TLS started' in r.stdout and '~> AUTH' not in r.stdout, r.stdout
    wait_until(lambda: delivered(dovecot, marker), 10, 'the sink got the message')
    assert delivered(dovecot, marker)['data'] == msg
