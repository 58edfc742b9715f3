"""A private Postfix, as a mail host runs it in front of `tokend relay`:
smtpd on a free loopback port, everything relayed to one relayhost.

    with Postfix(workdir, 'relayhost = [127.0.0.1]:PORT\n') as pf:
        smtplib.SMTP('127.0.0.1', pf.smtpd_port).sendmail(...)
        pf.queue()   # what mailq shows
        pf.log()     # its maillog
        pf.flush()   # postqueue -f

Its own config_directory (`postfix -c DIR start`), queue_directory and
data_directory under workdir, a master.cf of its own without chroot, and
inet_interfaces on loopback only: nothing of the system's Postfix (which
scripts/setup keeps stopped) is used or touched.  The queue runs as the
`postfix` user, which is why the relay's config names it in relay_peers;
workdir must be reachable by that user (dovecot.open_path_to).  Commands
run as root (the tests' user): postfix and postqueue refuse a config
directory not listed in the system's alternate_config_directories only to
other users.  The log goes to a file through postlogd (maillog_file).
"""

import shutil
import smtplib
import subprocess
from pathlib import Path

from harness.dovecot import free_port, open_path_to
from harness.wait import wait_until

START_TIMEOUT = 20

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {config}
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.localhost
mydomain = localhost
myorigin = $myhostname
mydestination =
local_transport = error:no local delivery here
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_tls_security_level = none
maillog_file = {log}
maillog_file_prefixes = {workdir}
alias_maps =
alias_database =
biff = no
# No retry of its own during a test: the test flushes the queue itself.
queue_run_delay = 1h
minimal_backoff_time = 1h
maximal_backoff_time = 2h
"""

MASTER_CF = """\
{smtpd_port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    host = '127.0.0.1'

    def __init__(self, workdir, relay_cf):
        """relay_cf: the main.cf lines that send everything on (relayhost,
        SASL, TLS), as `tokend snippet ACCOUNT postfix` prints them."""
        self.workdir = Path(workdir)
        self.config = self.workdir / 'etc'
        self.queue_dir = self.workdir / 'queue'
        self.data_dir = self.workdir / 'data'
        self.log_path = self.workdir / 'maillog'
        self.relay_cf = relay_cf
        self.smtpd_port = free_port()
        self.started = False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _postfix(self, *args, timeout=60):
        return subprocess.run(['postfix', '-c', str(self.config), *args], capture_output=True,
                              text=True, timeout=timeout)

    def write_config(self):
        for d in (self.config, self.queue_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
        open_path_to(self.workdir)
        (self.config / 'main.cf').write_text(MAIN_CF.format(
            config=self.config, queue=self.queue_dir, data=self.data_dir, log=self.log_path,
            workdir=self.workdir) + self.relay_cf)
        (self.config / 'master.cf').write_text(
            MASTER_CF.format(smtpd_port=f'{self.host}:{self.smtpd_port}'))
        # postfix(1) reads the dynamic map list beside main.cf.
        for name in ('dynamicmaps.cf', 'postfix-files'):
            if Path('/etc/postfix', name).exists():
                shutil.copy(Path('/etc/postfix', name), self.config / name)
        shutil.chown(self.data_dir, 'postfix')

    def start(self):
        self.write_config()
        r = self._postfix('start')
        if r.returncode != 0:
            raise RuntimeError(f'postfix start: {r.stdout}{r.stderr}{self.log()}')
        self.started = True
        wait_until(self._greets, START_TIMEOUT, 'postfix smtpd greets', detail=self.log)

    def _greets(self):
        try:
            with smtplib.SMTP(self.host, self.smtpd_port, timeout=2) as s:
                return s.noop()[0] == 250
        except OSError:
            return False

    def stop(self):
        if self.started:
            self._postfix('stop')
            self._postfix('abort')
            self.started = False

    def submit(self, sender, recipients, msg):
        with smtplib.SMTP(self.host, self.smtpd_port, timeout=30) as s:
            s.sendmail(sender, recipients, msg)

    def queue(self):
        """What mailq shows: empty when the queue is."""
        r = subprocess.run(['postqueue', '-c', str(self.config), '-p'], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return '' if 'Mail queue is empty' in r.stdout else r.stdout

    def flush(self):
        r = subprocess.run(['postqueue', '-c', str(self.config), '-f'], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr

    def log(self):
        return self.log_path.read_text(errors='replace') if self.log_path.exists() else ''
