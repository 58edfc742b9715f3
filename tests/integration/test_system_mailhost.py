"""The README's "mail host" section, as a whole (issue 22): five command
lines end with fetchmail as a system daemon fetching and Postfix sending,
both through tokend, with no secret readable by either.

What the section says is checked against what the test does:
- its configuration (relay_account, relay_peers = postfix,
  token_file_group = fetchmail) is the one the test writes, with the test
  server and test users in place of Microsoft and Debian's;
- its sysusers.d lines, run by systemd-sysusers against a private root with
  Debian's users (fetchmail has no group of its own), make a group
  fetchmail with tokend and fetchmail in it;
- `sudo tokend --system obtain` signs in (root hands over);
- the timer's and the relay socket's commands run under the service user
  with setpriv, as their units would (no systemd as PID 1 here;
  systemd-socket-activate plays tokend-relay-smtp.socket);
- Postfix (a private instance; its smtp client runs as the real `postfix`
  user) with only the section's `relayhost`, over Debian's default
  `smtp_tls_security_level = may`;
- Debian's fetchmail 6.4 as a daemon run as a member of the reader group,
  from what `tokend --system snippet ACCOUNT fetchmail` prints.
Mail sent through Postfix arrives in Dovecot byte-identical; mail in the
INBOX is fetched; then neither user can read anything under the state
folder, and Postfix cannot read the token file (checked with their uids)."""

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import EX_OK, REPO
from harness.authserver import AuthServer
from harness.dovecot import free_port
from harness.postfix import Postfix
from harness.tunnelpeers import USER, deliver, dovecot_for, shared_dir
from harness.wait import wait_until
from test_relay_postfix import RECIPIENT, SENDER, arrived, message, without_received
from test_system_fetchmail import as_user, unreadable_as
from test_system_mode import System, made_users
from test_system_postfix import listening, unit_command

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='creates users: needs root')

TIMEOUT = 30


def section():
    text = (REPO / 'README.md').read_text()
    start = text.index('## A mail host: system mode')
    return text[start:text.index('\n## ', start + 1)]


def blocks(text, lang):
    return re.findall(rf'```{lang}\n(.*?)```', text, re.S)


def test_the_section_has_five_commands_at_most_and_says_what_the_test_does():
    text = section()
    commands = [ln for ln in blocks(text, 'sh')[0].splitlines() if ln.strip()]
    assert len(commands) <= 5, commands
    ini = blocks(text, 'ini')[0]
    for line in ('relay_account = office', 'relay_peers = postfix',
                 'token_file_group = fetchmail'):
        assert line in ini, line
    joined = '\n'.join(commands)
    for words in ('/etc/sysusers.d/', 'sudo tokend --system obtain office',
                  'tokend-refresh.timer tokend-relay-smtp.socket',
                  "relayhost = [127.0.0.1]:1587",
                  'tokend --system snippet office fetchmail',
                  '-o fetchmail -m 600 /dev/stdin /etc/fetchmailrc'):
        assert words in joined, words


def readme_sysusers():
    """The lines the section's second command writes to sysusers.d."""
    line = next(ln for ln in blocks(section(), 'sh')[0].splitlines() if 'sysusers.d' in ln)
    return re.search(r"printf '([^']*)'", line).group(1).replace('\\n', '\n')


def test_the_sysusers_lines_make_the_reader_group(tmp_path):
    """Against Debian's users: fetchmail (primary group nogroup) and the
    tokend the package makes; the group fetchmail does not exist yet."""
    root = tmp_path / 'root'
    (root / 'etc').mkdir(parents=True)
    (root / 'etc' / 'passwd').write_text(
        'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n'
        'fetchmail:x:102:65534::/var/lib/fetchmail:/bin/false\n'
        'tokend:x:990:990:tokend:/var/lib/tokend:/usr/sbin/nologin\n')
    (root / 'etc' / 'group').write_text('root:x:0:\nnogroup:x:65534:\ntokend:x:990:\n')
    conf = tmp_path / 'tokend-readers.conf'
    conf.write_text(readme_sysusers())
    r = subprocess.run(['systemd-sysusers', f'--root={root}', str(conf)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    groups = {ln.split(':')[0]: ln.split(':')[3].split(',')
              for ln in (root / 'etc' / 'group').read_text().splitlines()}
    assert sorted(groups['fetchmail']) == ['fetchmail', 'tokend'], groups
    # No user was made or changed.
    assert (root / 'etc' / 'passwd').read_text().count('\n') == 4


@pytest.fixture
def host():
    base = Path(tempfile.mkdtemp(prefix='tokend-mailhost-'))
    base.chmod(0o755)
    try:
        with made_users() as (service, reader, outsider, group), \
                AuthServer(base / 'authserver') as srv, dovecot_for(srv) as dc:
            (base / 'authserver').chmod(0o755)
            s = System(base, srv, service)
            s.reader, s.group, s.dc = reader, group, dc
            yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def write_readme_config(host):
    """The section's /etc/tokend/config, for the test's server and users."""
    ini = blocks(section(), 'ini')[0]
    ini = ini.replace('relay_account = office', 'relay_account = work')
    ini = ini.replace('token_file_group = fetchmail', f'token_file_group = {host.group}')
    srv, dc = host.srv, host.dc
    account = (f'provider = generic\nclient_id = tokend-native\nauthorize_url = '
               f'{srv.authorize_url}\ntoken_url = {srv.token_url}\nca_file = {srv.ca_file}\n'
               f'scopes = openid offline_access mail.imap\nusername = {USER}\n'
               f'send_as = {SENDER}\nimap_host = {dc.host}\nimap_port = {dc.imaps_port}\n'
               f'tunnel_tls = implicit\nsmtp_host = {dc.host}\nsmtp_port = {dc.submission_port}\n')
    ini = re.sub(r'\[account office\]\nprovider = microsoft\nusername = \S+\n',
                 '[account work]\n' + account, ini)
    assert '[account work]' in ini and 'microsoft' not in ini, ini
    host.write(host.etc / 'config', ini)


def fetchmail_home(host, rc_text):
    home = host.base / 'fetchmail'
    (home / 'out').mkdir(parents=True)
    rc = home / 'fetchmailrc'
    rc.write_text(rc_text)
    pw = pwd.getpwnam(host.reader)
    for p in (home, home / 'out', rc):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    home.chmod(0o700)
    rc.chmod(0o600)
    return home


def start_relay(host, port, log):
    env = {k: v for k, v in host.env.items() if k != 'BROWSER'}
    argv = ['systemd-socket-activate', '--accept', '--inetd', '-l', f'127.0.0.1:{port}',
            *[f'-E{k}' for k in env], *as_user(host.service, unit_command())]
    with open(log, 'w') as logf:
        proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
    wait_until(lambda: listening(port), 10, 'the system relay listens',
               detail=lambda: log.read_text()[-2000:])
    return proc


def start_fetchmail(host, home, log):
    argv = ['fetchmail', '-f', str(home / 'fetchmailrc'), '-d', '1', '-N', '--invisible',
            '--mda', f'cat > {home}/out/msg.$$', '--pidfile', str(home / 'fetchmail.pid'),
            '--idfile', str(home / 'fetchids')]
    env = dict(host.env, HOME=str(home))
    with open(log, 'w') as logf:
        return subprocess.Popen(as_user(host.reader, argv), env=env, stdout=logf, stderr=logf,
                                stdin=subprocess.DEVNULL)


def inbox_message():
    return (f'From: carol@example.org\r\nTo: {USER}@example.org\r\n'
            f'Subject: mail host {uuid.uuid4().hex}\r\n'
            f'Message-ID: <{uuid.uuid4()}@example.org>\r\n\r\nhello\r\n').encode()


def test_fetchmail_fetches_and_postfix_sends_with_no_secret_readable(host):
    write_readme_config(host)
    r = host.tokend('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    r = host.tokend('-q', 'refresh', user=host.service)   # the timer's tick
    assert r.returncode == EX_OK, r.stderr
    r = host.tokend('snippet', 'work', 'fetchmail')
    assert r.returncode == EX_OK and '--system tunnel work %h %p' in r.stdout, r.stdout + r.stderr
    home = fetchmail_home(host, r.stdout)
    port = free_port()
    relay_log, fetch_log = host.base / 'relay.log', home / 'fetchmail.log'
    relay = start_relay(host, port, relay_log)
    fetchmail = None
    try:
        # Postfix: the section's relayhost over Debian's default TLS policy.
        relay_cf = f'relayhost = [127.0.0.1]:{port}\nsmtp_tls_security_level = may\n'
        with shared_dir('tokend-mailhost-pf-') as workdir, Postfix(workdir, relay_cf) as pf:
            count = len(host.dc.messages())
            msg = message('mail host')
            pf.submit(SENDER, [RECIPIENT], msg)
            got = arrived(host.dc, count + 1)
            assert without_received(got['data']) == msg
            wait_until(lambda: pf.queue() == '', TIMEOUT, 'the queue is empty', detail=pf.log)
            maillog = pf.log()
        fetchmail = start_fetchmail(host, home, fetch_log)
        deliver(host.dc, inbox_message())
        wait_until(lambda: list((home / 'out').glob('msg.*')), TIMEOUT,
                   'fetchmail fetched the message', interval=0.1,
                   detail=lambda: fetch_log.read_text()[-3000:])
        assert fetchmail.poll() is None, fetch_log.read_text()
    finally:
        if fetchmail:
            fetchmail.terminate()
            fetchmail.wait(10)
        relay.terminate()
        relay.wait(10)

    token_file = host.run_dir / 'work.token'
    token = token_file.read_text().strip()
    for text in (maillog, fetch_log.read_text(), relay_log.read_text()):
        assert token not in text
    for user in (host.reader, 'postfix'):
        count, readable = unreadable_as(user, host.state)
        assert count > 3 and readable == [], (user, readable)
    assert unreadable_as('postfix', token_file)[1] == []
    assert unreadable_as(host.reader, token_file)[1] == [str(token_file)]
