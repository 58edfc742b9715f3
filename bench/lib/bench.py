#!/usr/bin/env python3
"""The tokend benchmark (run it as `bash bench/run`; see bench/README.md).

Every number is a ratio against a baseline measured in the same run, on the
same machine, against the same local authorization server.
"""

import argparse
import datetime
import grp
import gzip
import hashlib
import json
import os
import platform
import pwd
import re
import secrets
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
sys.path.insert(0, str(REPO / 'tests'))

from harness.appkeys import AppKeys  # noqa: E402
from harness.authserver import AuthServer  # noqa: E402

PREPARE = BENCH / 'lib' / 'prepare.py'
BIGSTORE = BENCH / 'lib' / 'bigstore.mjs'
BROWSER = REPO / 'tests' / 'harness' / 'browser.py'
GNU_TIME = '/usr/bin/time'
CLIENT_ID = 'tokend-native'
SCOPES = 'openid offline_access mail.imap'
APP_CLIENT = 'tokend-app'   # server.mjs: client credentials with private_key_jwt
APP_SCOPES = 'mail.imap mail.smtp'
MIB = 1024  # GNU time %M is in KiB

FULL = dict(
    n=1000, rss_steps=(100, 250, 500, 750, 1000), rounds=3,
    token_runs=300, token_warmup=20, mutt=True, mutt_runs=40,
    single_runs=40, single_warmup=3,
    bulk_runs=5, bulk_warmup=1, bulk_rounds=3, extra_parallel=(16, 32),
    tick_runs=300, cold_runs=10, rss_runs=20, obtain_runs=3, bulk_rss_runs=3,
    app_runs=10, app_rounds=12, app_warmup=3, app_token_runs=300, system_runs=10,
)
SHORT = dict(
    n=20, rss_steps=(5, 10, 20), rounds=1,
    token_runs=20, token_warmup=3, mutt=False, mutt_runs=0,
    single_runs=5, single_warmup=1,
    bulk_runs=2, bulk_warmup=0, bulk_rounds=1, extra_parallel=(),
    tick_runs=20, cold_runs=3, rss_runs=3, obtain_runs=1, bulk_rss_runs=1,
    app_runs=5, app_rounds=1, app_warmup=1, app_token_runs=20, system_runs=2,
)


class BenchError(Exception):
    pass


def log(msg):
    print(f'bench: {msg}', file=sys.stderr, flush=True)


def loadavg():
    return Path('/proc/loadavg').read_text().split()[0]


# ---------------------------------------------------------------- statistics

class Sample:
    """Times in seconds (or sizes in KiB) from one or more rounds."""

    def __init__(self, rounds):
        self.rounds = [list(r) for r in rounds]
        self.all = [x for r in self.rounds for x in r]

    @property
    def median(self):
        return statistics.median(self.all)

    @property
    def min(self):
        return min(self.all)

    @property
    def max(self):
        return max(self.all)

    def round_medians(self):
        return [statistics.median(r) for r in self.rounds]


def ratio(subject, baseline):
    """(ratio of pooled medians, [ratio of medians per round])."""
    per_round = [s / b for s, b in zip(subject.round_medians(), baseline.round_medians())]
    return subject.median / baseline.median, per_round


def plural(n, word):
    return f'{n} {word}' if n == 1 else f'{n} {word}s'


def fmt_time(s):
    if s >= 1:
        return f'{s:.2f} s'
    if s >= 0.01:
        return f'{s * 1e3:.1f} ms'
    return f'{s * 1e3:.2f} ms'


def fmt_kib(k):
    return f'{k / MIB:.1f} MiB' if k >= 10 * MIB else f'{k / MIB:.2f} MiB'


def fmt_ratio(r):
    return f'{r:.2f}x' if r < 10 else f'{r:.0f}x'


def fmt_spread(per_round):
    if len(per_round) < 2:
        return '(1 round)'
    return f'{fmt_ratio(min(per_round))} – {fmt_ratio(max(per_round))} ({len(per_round)} rounds)'


def filesystem(path):
    """'ext4 (journal)', 'ext4 (no journal)', 'tmpfs', ...: fsync costs differ."""
    fstype = subprocess.run(['df', '--output=fstype', str(path)], capture_output=True,
                            text=True).stdout.split()[-1]
    if fstype != 'ext4':
        return fstype
    dev = os.stat(path).st_dev
    try:
        uevent = Path(f'/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/uevent').read_text()
        name = re.search(r'^DEVNAME=(.*)$', uevent, re.M).group(1)
    except (OSError, AttributeError):
        return fstype
    journal = any(Path('/proc/fs/jbd2').glob(f'{name}-*'))
    return f'ext4 on {name} ({"with a journal" if journal else "no journal"})'


def linear_fit(points):
    """Least squares: (intercept, slope, max |residual|)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    icpt = my - slope * mx
    return icpt, slope, max(abs(y - (icpt + slope * x)) for x, y in points)


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.p = SHORT if opts.short else FULL
        self.build = Path(opts.build).resolve()
        self.tokend = self.build / 'src' / 'tokend'
        self.engine = self.build / 'src' / 'tokend-engine.so'
        self.rows = []      # table rows
        self.notes = []     # lines under the table
        self.loads = [loadavg()]
        self.failed_targets = []
        self.cleanup = []   # commands undoing what the bench made (users)
        self.git = subprocess.run(['git', '-C', str(REPO), 'describe', '--always', '--dirty'],
                                  capture_output=True, text=True).stdout.strip() or '?'

    # -- environment -------------------------------------------------------

    def setup_home(self):
        self.work = Path(tempfile.mkdtemp(prefix='tokend-bench-', dir=self.opts.tmpdir))
        self.home = self.work / 'home'
        self.config_dir = self.home / 'config' / 'tokend'
        self.state = self.home / 'state' / 'tokend'
        for d in (self.home, self.home / 'config', self.config_dir, self.home / 'state',
                  self.state):
            d.mkdir(mode=0o700, exist_ok=True)
        self.hf_dir = self.work / 'hyperfine'
        self.hf_dir.mkdir()
        # A login session's runtime folder (logind's /run/user/UID), in
        # memory as that one is: where tokend keeps what it can make again.
        shm = Path('/dev/shm')
        self.runtime = Path(tempfile.mkdtemp(prefix='tokend-bench-run-',
                                             dir=shm if shm.is_dir() else self.work))
        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'HOME': str(self.home),
            'XDG_CONFIG_HOME': str(self.home / 'config'),
            'XDG_STATE_HOME': str(self.home / 'state'),
            'XDG_RUNTIME_DIR': str(self.runtime),
            'LANG': 'C.UTF-8',
        }

    def start_server(self):
        # The stock in-memory store of oidc-provider keeps about 1000 entries
        # (some 150 grants): raise the cap, or most grants would be evicted.
        old = os.environ.get('NODE_OPTIONS')
        os.environ['NODE_OPTIONS'] = f'--import={BIGSTORE.as_uri()}'
        # The app-only client's certificate (6.), made with openssl.
        self.app_keys = AppKeys(self.work / 'appkeys')
        try:
            self.srv = AuthServer(self.work / 'authserver', access_ttl=3600,
                                  env={'TOKEND_TEST_APP_CERT': str(self.app_keys.cert)})
            self.srv.start()
        finally:
            if old is None:
                os.environ.pop('NODE_OPTIONS', None)
            else:
                os.environ['NODE_OPTIONS'] = old
        log(f'authorization server at {self.srv.base_url} '
            f'(ready in {self.srv.startup_seconds:.1f} s)')

    def stop(self):
        srv = getattr(self, 'srv', None)
        if srv:
            srv.stop()
        runtime = getattr(self, 'runtime', None)
        if runtime:
            shutil.rmtree(runtime, ignore_errors=True)
        work = getattr(self, 'work', None)
        if work and not self.opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif work:
            log(f'kept {work}')
        for cmd in getattr(self, 'cleanup', ()):
            subprocess.run(cmd, capture_output=True)

    def refresh_count(self):
        return self.srv.stats()['token'].get('refresh_token', 0)

    def obtain_grants(self, count):
        log(f'obtaining {count} grants through the code + PKCE flow ...')
        t0 = time.monotonic()
        with ThreadPoolExecutor(6) as ex:
            grants = list(ex.map(lambda _: self.srv.obtain_tokens(CLIENT_ID, SCOPES),
                                 range(count)))
        for g in grants:
            if not g.get('refresh_token') or not g.get('access_token'):
                raise BenchError('the server issued a grant without a refresh token')
        log(f'  {count} grants in {time.monotonic() - t0:.1f} s')
        return grants

    # -- tokend's files -----------------------------------------------------

    def account_block(self, name):
        s = self.srv
        return (f'[account {name}]\nprovider = generic\nclient_id = {CLIENT_ID}\n'
                f'authorize_url = {s.authorize_url}\ntoken_url = {s.token_url}\n'
                f'scopes = {SCOPES}\nusername = alice\nca_file = {s.ca_file}\n'
                f'store = file\n\n')

    def write_config(self, filename, names, max_parallel=None):
        path = self.config_dir / filename
        text = f'[defaults]\nmax_parallel = {max_parallel}\n\n' if max_parallel else ''
        text += ''.join(self.account_block(n) for n in names)
        path.write_text(text)
        return path

    @staticmethod
    def config_identity(path):
        """What config_identity() in src/config/config.c computes."""
        st = os.stat(path)
        return (f'{path}|{st.st_dev}:{st.st_ino}:{st.st_size}:'
                f'{st.st_mtime_ns // 10**9}.{st.st_mtime_ns % 10**9:09d}')

    def seed(self, name, grant, config_path):
        """The file store as `tokend obtain` leaves it."""
        d = self.state / name
        d.mkdir(mode=0o700)
        now = int(time.time())

        def private(path, text):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'w') as f:
                f.write(text)

        private(d / 'refresh_token', grant['refresh_token'])
        private(d / 'token', grant['access_token'] + '\n')
        private(d / 'state.json', json.dumps({
            'version': 1, 'expires_at': now + int(grant['expires_in']), 'obtained_at': now,
            'signed_in_at': now, 'last_refresh': 0, 'last_attempt': now, 'last_status': 0,
            'needs_signin': False, 'store': 'file', 'token_file': str(d / 'token'),
            'scope': grant.get('scope', SCOPES),
            'config_id': self.config_identity(config_path),
            'min_validity': 120, 'refresh_margin': 600}, indent=2) + '\n')

    # -- running things -----------------------------------------------------

    def run(self, args, check=True, **kw):
        r = subprocess.run([str(a) for a in args], env=self.env, capture_output=True,
                           text=True, timeout=600, **kw)
        if check and r.returncode != 0:
            raise BenchError(f'{" ".join(map(str, args))} exited {r.returncode}: '
                             f'{r.stderr.strip()[-2000:]}')
        return r

    def tokend_cmd(self, config, *args):
        return [str(self.tokend), '-c', str(config), *args]

    def hyperfine(self, tag, commands, runs, warmup, prepares=None):
        """Runs hyperfine -N; returns one list of times (s) per command."""
        out = self.hf_dir / f'{tag}.json'
        args = ['hyperfine', '-N', '--style', 'none', '--warmup', str(warmup),
                '--runs', str(runs), '--export-json', str(out)]
        for p in prepares or ():
            args += ['--prepare', p]
        args += commands
        self.loads.append(loadavg())
        r = subprocess.run(args, env=self.env, capture_output=True, text=True)
        self.loads.append(loadavg())
        if r.returncode != 0:
            raise BenchError(f'hyperfine ({tag}) failed: {(r.stderr or r.stdout).strip()[-3000:]}')
        return [res['times'] for res in json.loads(out.read_text())['results']]

    def gnu_time_rss(self, args, **kw):
        """Peak RSS (KiB) of args under GNU time, whose fork+exec child starts
        small: Python's own wait4 would report the RSS of this Python process,
        which a child inherits until exec replaces its memory."""
        rss_file = self.work / 'rss.txt'
        r = self.run([GNU_TIME, '-f', '%M', '-o', rss_file, *args], **kw)
        return int(rss_file.read_text().split()[-1]), r

    def engine_ran(self, args):
        """Whether one run loaded the engine (or executed anything but the
        launcher): False when the launcher answered alone."""
        if not shutil.which('strace'):
            return None
        trace = self.work / 'strace.txt'
        self.run(['strace', '-f', '-qq', '-e', 'trace=execve,openat', '-o', trace, *args])
        lines = trace.read_text().splitlines()
        execs = sum(1 for ln in lines if 'execve(' in ln and '= 0' in ln)
        return execs != 1 or any('tokend-engine.so' in ln for ln in lines)

    # -- the table ------------------------------------------------------------

    def row(self, num, what, sample=None, baseline=None, value=None, target=None, met=None,
            unit='time', is_baseline=False):
        fmt = fmt_time if unit == 'time' else fmt_kib
        r = {'num': num, 'what': what, 'median': '', 'min': '', 'max': '', 'ratio': '',
             'spread': '', 'target': target or '', 'met': ''}
        if sample is not None:
            r.update(median=fmt(sample.median), min=fmt(sample.min), max=fmt(sample.max))
        if sample is not None and baseline is not None:
            q, per_round = ratio(sample, baseline)
            r.update(ratio=fmt_ratio(q), spread=fmt_spread(per_round))
        if is_baseline:
            r['ratio'] = 'baseline'
        if value is not None:
            r['ratio'] = value
        if met is not None:
            r['met'] = 'met' if met else '**NOT MET**'
            if not met:
                self.failed_targets.append(f'({num}) {what}')
        self.rows.append(r)

    def machine(self):
        cpu = '?'
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
        mem = Path('/proc/meminfo').read_text().split('\n')[0].split()[1]
        fs = filesystem(self.work)
        try:
            distro = Path('/etc/debian_version').read_text().strip()
            distro = f'Debian {distro}'
        except OSError:
            distro = platform.platform()
        git = self.git
        digest = hashlib.sha256(self.tokend.read_bytes() + self.engine.read_bytes()).hexdigest()
        vers = {}
        for name, cmd in (('hyperfine', ['hyperfine', '--version']),
                          ('curl', ['curl', '--version']), ('node', ['node', '--version'])):
            out = subprocess.run(cmd, capture_output=True, text=True).stdout.split('\n')[0]
            vers[name] = out.split()[1] if name != 'node' else out.strip()
        oidc = json.loads((REPO / 'tests/authserver/node_modules/oidc-provider/package.json')
                          .read_text())['version']
        return [
            f'- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), '
            f'{cpu}, {int(mem) // 1024} MiB RAM, kernel {platform.release()}, {distro}',
            f'- state and config on {fs}; load average {self.loads[0]} at the start, '
            f'{min(self.loads, key=float)} – {max(self.loads, key=float)} during the run '
            '(the machine may be shared)',
            f'- tokend {git} (launcher+engine sha256 {digest[:12]}), '
            f'{self.build.name}: buildtype=release, b_ndebug=true',
            f'- hyperfine {vers["hyperfine"]} -N, curl {vers["curl"]}, node {vers["node"]}, '
            f'oidc-provider {oidc} over TLS on 127.0.0.1',
            f'- {"--short (CI check; timings not meaningful)" if self.opts.short else "full run"}'
            f', {datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}',
        ]

    def table(self):
        lines = ['# tokend benchmark', ''] + self.machine() + ['']
        lines.append('| # | measurement | median | min | max | ratio | per-round ratio | '
                     'target | |')
        lines.append('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
        for r in self.rows:
            lines.append(f'| {r["num"]} | {r["what"]} | {r["median"]} | {r["min"]} | {r["max"]} '
                         f'| {r["ratio"]} | {r["spread"]} | {r["target"]} | {r["met"]} |')
        lines.append('')
        lines += [f'- {n}' for n in self.notes]
        return '\n'.join(lines) + '\n'

    # -- the measurements -------------------------------------------------------

    def prepare_all(self):
        p = self.p
        n = p['n']
        grants = self.obtain_grants(2 * n + 3)
        self.tokend_grants = grants[:n]
        self.curl_grants = grants[n:2 * n]
        self.solo_grant, self.curl_single_grant, self.mutt_grant = grants[2 * n:]
        self.names = [f'acct{i:04d}' for i in range(n)]
        self.names_file = self.work / 'names.txt'
        self.names_file.write_text('\n'.join(self.names) + '\n')
        self.cfg_one = self.write_config('config-1', ['solo'])
        self.cfg_n = self.write_config(f'config-{n}', self.names)
        self.seed('solo', self.solo_grant, self.cfg_one)
        for name, g in zip(self.names, self.tokend_grants):
            self.seed(name, g, self.cfg_n)
        log(f'seeded {n + 1} accounts in {self.state}')

    def bench_token(self):
        p = self.p
        n = p['n']
        mid = self.names[n // 2]
        token_file = self.state / 'solo' / 'token'
        # Sanity: the launcher answers alone, with the right token.
        for cfg, name in ((self.cfg_one, 'solo'), (self.cfg_n, mid)):
            out = self.run(self.tokend_cmd(cfg, 'token', name)).stdout
            if out != (self.state / name / 'token').read_text():
                raise BenchError(f'tokend token {name} printed something else than the token')
            if self.engine_ran(self.tokend_cmd(cfg, 'token', name)):
                raise BenchError(f'tokend token {name} ran the engine: '
                                 'the fast path was not taken')
        self.notes.append('(1) `tokend token` was checked (strace) to be answered by the '
                          'launcher alone: one execve, tokend-engine.so not opened.')
        cmds = [f'cat {token_file}',
                ' '.join(self.tokend_cmd(self.cfg_one, 'token', 'solo')),
                ' '.join(self.tokend_cmd(self.cfg_n, 'token', mid))]
        rounds = [[], [], []]
        mutt_rounds = []
        mutt = self.setup_mutt() if p['mutt'] else None
        for k in range(p['rounds']):
            log(f'(1) token hot path, round {k + 1}/{p["rounds"]}')
            times = self.hyperfine(f'token-{k}', cmds, p['token_runs'], p['token_warmup'])
            for i, t in enumerate(times):
                rounds[i].append(t)
            if mutt:
                mutt_rounds.append(self.hyperfine(f'mutt-{k}', [mutt], p['mutt_runs'], 3)[0])
        cat, one, many = (Sample(r) for r in rounds)
        self.row(1, f'`cat TOKEN_FILE` (baseline; {p["token_runs"]} runs × {p["rounds"]})', cat,
                 is_baseline=True)
        r1 = ratio(one, cat)[0]
        rn = ratio(many, cat)[0]
        self.row(1, '`tokend token ACCOUNT`, 1-account config', one, cat, target='≤ 2x cat',
                 met=r1 <= 2)
        self.row(1, f'`tokend token ACCOUNT`, {n}-account config', many, cat,
                 target='≤ 2x cat', met=rn <= 2)
        if mutt:
            self.row(1, '`python3 mutt_oauth2.py TOKENFILE` (Debian mutt, pipes = `cat`; '
                     f'{p["mutt_runs"]} runs × {p["rounds"]})', Sample(mutt_rounds), cat,
                     target='(comparison)')
        # Peak RSS.
        rss = []
        for _ in range(p['rss_runs']):
            rss.append(self.gnu_time_rss(self.tokend_cmd(self.cfg_n, 'token', mid))[0])
        cat_rss = [self.gnu_time_rss(['cat', token_file])[0] for _ in range(5)]
        true_rss = [self.gnu_time_rss(['/bin/true'])[0] for _ in range(5)]
        s = Sample([rss])
        self.row(1, f'peak RSS of `tokend token` ({n}-account config, {len(rss)} runs)', s,
                 value=f'cat: {fmt_kib(statistics.median(cat_rss))}', unit='kib',
                 target='≤ 4 MiB', met=s.max <= 4 * MIB)
        self.notes.append(f'(1) peak RSS is GNU time %M (the launcher loads the engine into '
                          f'its own process, so it would include the engine); under GNU '
                          f'time `/bin/true` shows {fmt_kib(statistics.median(true_rss))}, '
                          f'the floor of the method.')
        if mutt:
            mrss = [self.gnu_time_rss(mutt.split())[0] for _ in range(5)]
            self.row(1, 'peak RSS of `python3 mutt_oauth2.py` (5 runs)', Sample([mrss]),
                     unit='kib', target='(comparison)')

    def setup_mutt(self):
        doc = Path('/usr/share/doc/mutt/examples')
        src = doc / 'mutt_oauth2.py'
        if src.exists():
            text = src.read_text()
        elif (doc / 'mutt_oauth2.py.gz').exists():
            text = gzip.decompress((doc / 'mutt_oauth2.py.gz').read_bytes()).decode()
        else:
            raise BenchError('mutt_oauth2.py not found under /usr/share/doc/mutt/examples '
                             '(apt-get install mutt)')
        text, n1 = re.subn(r"^ENCRYPTION_PIPE = .*$", "ENCRYPTION_PIPE = ['cat']", text,
                           flags=re.M)
        text, n2 = re.subn(r"^DECRYPTION_PIPE = .*$", "DECRYPTION_PIPE = ['cat']", text,
                           flags=re.M)
        if n1 != 1 or n2 != 1:
            raise BenchError('mutt_oauth2.py: cannot set ENCRYPTION_PIPE/DECRYPTION_PIPE')
        d = self.work / 'mutt'
        d.mkdir()
        script = d / 'mutt_oauth2.py'
        script.write_text(text)
        tokfile = d / 'token.json'
        g = self.mutt_grant
        fd = os.open(tokfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump({'registration': 'microsoft', 'authflow': 'localhostauthcode',
                       'email': 'alice@example.com', 'access_token': g['access_token'],
                       'access_token_expiration': (datetime.datetime.now() + datetime.timedelta(
                           seconds=int(g['expires_in']))).isoformat(),
                       'refresh_token': g['refresh_token']}, f)
        python = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable
        cmd = f'{python} {script} {tokfile}'
        out = self.run(cmd.split()).stdout
        if out != g['access_token'] + '\n':
            raise BenchError('mutt_oauth2.py did not print the cached access token')
        pyver = self.run([python, '--version']).stdout.strip()
        self.notes.append(f'(1) mutt_oauth2.py from Debian\'s mutt package, run by {python} '
                          f'({pyver}), with ENCRYPTION_PIPE = DECRYPTION_PIPE = [\'cat\'] and a '
                          'token file holding a valid access token, so it only prints it.')
        return cmd

    def bench_single(self):
        p = self.p
        d = self.work / 'single'
        d.mkdir()
        chain = d / 'chain.json'
        chain.write_text(json.dumps({
            'rt': self.curl_single_grant['refresh_token'], 'form': str(d / 'form'),
            'out': str(d / 'out.json'), 'url': self.srv.token_url, 'client_id': CLIENT_ID,
            'scope': SCOPES}))
        curl = f'curl -s --cacert {self.srv.ca_file} -d @{d / "form"} -o {d / "out.json"} ' \
               f'{self.srv.token_url}'
        tok = ' '.join(self.tokend_cmd(self.cfg_one, 'refresh', '--force', 'solo'))
        prep = f'{sys.executable} {PREPARE} single {chain}'
        rounds = [[], []]
        for k in range(p['rounds']):
            log(f'(2) one refresh, round {k + 1}/{p["rounds"]}')
            before = self.refresh_count()
            times = self.hyperfine(f'single-{k}', [curl, tok], p['single_runs'],
                                   p['single_warmup'], prepares=[prep, 'sync'])
            done = self.refresh_count() - before
            want = 2 * (p['single_runs'] + p['single_warmup'])
            if done != want:
                raise BenchError(f'(2) the server saw {done} refreshes, expected {want}')
            for i, t in enumerate(times):
                rounds[i].append(t)
        # The last response must be good too.
        self.run([sys.executable, PREPARE, 'single', chain])
        curl_s, tok_s = Sample(rounds[0]), Sample(rounds[1])
        self.row(2, f'one bare `curl` POST of the refresh request (baseline; '
                 f'{p["single_runs"]} runs × {p["rounds"]})', curl_s,
                 is_baseline=True)
        q = ratio(tok_s, curl_s)[0]
        self.row(2, '`tokend refresh --force ACCOUNT` (1-account config)', tok_s, curl_s,
                 target='≤ 1.25x curl', met=q <= 1.25)
        self.notes.append('(2) curl and tokend each use their own grant; the refresh token '
                          'curl sends is taken from its previous response in hyperfine '
                          '--prepare (outside the timed region, followed by sync; tokend\'s '
                          'prepare is `sync`). The server\'s refresh count is checked after '
                          'every round (every request succeeded).')

    def bench_bulk(self):
        p = self.p
        n = p['n']
        d = self.work / 'bulk'
        d.mkdir()
        (d / 'out').mkdir()
        chain = d / 'chain.json'
        chain.write_text(json.dumps({
            'rts': [g['refresh_token'] for g in self.curl_grants], 'out_dir': str(d / 'out'),
            'config': str(d / 'requests.curlrc'), 'url': self.srv.token_url,
            'ca': self.srv.ca_file, 'client_id': CLIENT_ID, 'scope': SCOPES}))
        curl_prep = f'{sys.executable} {PREPARE} bulk {chain}'
        tok_prep = f'{sys.executable} {PREPARE} due {self.state} {self.names_file}'
        settings = [(8, p['bulk_rounds'])] + [(par, 1) for par in p['extra_parallel']]
        for par, nrounds in settings:
            # The same file with another max_parallel: an account's state
            # belongs to one configuration file (tokend refuses a second).
            cfg = self.cfg_n if par == 8 else self.write_config(f'config-{n}', self.names,
                                                                max_parallel=par)
            curl = f'curl --parallel --parallel-max {par} -s -K {d / "requests.curlrc"}'
            tok = ' '.join(self.tokend_cmd(cfg, 'refresh'))
            rounds = [[], []]
            for k in range(nrounds):
                log(f'(3) {n} refreshes, max_parallel {par}, round {k + 1}/{nrounds}')
                before = self.refresh_count()
                times = self.hyperfine(f'bulk-p{par}-{k}', [curl, tok], p['bulk_runs'],
                                       p['bulk_warmup'], prepares=[curl_prep, tok_prep])
                done = self.refresh_count() - before
                want = 2 * n * (p['bulk_runs'] + p['bulk_warmup'])
                if done != want:
                    raise BenchError(f'(3) the server saw {done} refreshes, expected {want}')
                for i, t in enumerate(times):
                    rounds[i].append(t)
            self.run([sys.executable, PREPARE, 'bulk', chain])
            curl_s, tok_s = Sample(rounds[0]), Sample(rounds[1])
            self.row(3, f'`curl --parallel --parallel-max {par}`, {n} refresh requests '
                     f'(baseline; {p["bulk_runs"]} runs × {nrounds})', curl_s,
                     is_baseline=True)
            q = ratio(tok_s, curl_s)[0]
            default = ' (default)' if par == 8 else ''
            self.row(3, f'`tokend refresh`, {n} accounts due, max_parallel {par}{default}',
                     tok_s, curl_s, target='≤ 1.5x curl' if par == 8 else '(same target)',
                     met=q <= 1.5 if par == 8 else None)
            if par != 8 and q > 1.5:
                self.notes.append(f'(3) with max_parallel {par} tokend is {fmt_ratio(q)} '
                                  'its curl baseline: over the 1.5x target.')
        self.write_config(f'config-{n}', self.names)  # back to the default
        self.notes.append(f'(3) before each tokend run, --prepare makes all {n} accounts due '
                          '(expires_at and the refresh schedule set in the past; no --force), '
                          'so the timer path is measured: launcher → engine → refresh. '
                          'curl sends the same requests from a -K file regenerated in '
                          '--prepare from its previous responses (its own grants). The '
                          'server\'s refresh count is checked after every round.')

    def bench_tick(self):
        p = self.p
        n = p['n']
        token_file = self.state / 'solo' / 'token'
        # Steady state: one tick through the engine writes the schedule.
        self.run(self.tokend_cmd(self.cfg_n, 'refresh'))
        if self.engine_ran(self.tokend_cmd(self.cfg_n, 'refresh')):
            raise BenchError('tokend refresh with nothing due ran the engine')
        before = self.refresh_count()
        cmds = [f'cat {token_file}', ' '.join(self.tokend_cmd(self.cfg_n, 'refresh'))]
        rounds = [[], []]
        for k in range(p['rounds']):
            log(f'(4) refresh tick with nothing due, round {k + 1}/{p["rounds"]}')
            times = self.hyperfine(f'tick-{k}', cmds, p['tick_runs'], p['token_warmup'])
            for i, t in enumerate(times):
                rounds[i].append(t)
        if self.refresh_count() != before:
            raise BenchError('(4) a refresh tick with nothing due sent requests')
        cat, tick = Sample(rounds[0]), Sample(rounds[1])
        self.row(4, f'`cat TOKEN_FILE` (baseline; {p["tick_runs"]} runs × {p["rounds"]})', cat,
                 is_baseline=True)
        q = ratio(tick, cat)[0]
        self.row(4, f'`tokend refresh`, {n} accounts, nothing due (steady state)', tick, cat,
                 target='≤ 5x cat', met=q <= 5)
        # The first tick after the configuration changed goes through the engine.
        cold = self.hyperfine('tick-cold', cmds[1:], p['cold_runs'], 1,
                              prepares=[f'touch {self.cfg_n}'])[0]
        cold_s = Sample([cold])
        self.row(4, f'… first tick after a config change (engine; {p["cold_runs"]} runs)',
                 cold_s, cat, target='(info)')
        self.run(self.tokend_cmd(self.cfg_n, 'refresh'))
        rss = [self.gnu_time_rss(self.tokend_cmd(self.cfg_n, 'refresh'))[0] for _ in range(5)]
        self.row(4, 'peak RSS of the steady-state tick (5 runs)', Sample([rss]), unit='kib',
                 target='(info)')
        self.notes.append('(4) steady state: the first `tokend refresh` after a change of the '
                          'configuration file (its identity: path, inode, size, mtime) runs '
                          'the engine, which writes the refresh schedule; later ticks read '
                          'only that schedule (checked with strace: one execve). The cold row '
                          'touches the configuration before each run.')

    def bench_obtain_rss(self):
        p = self.p
        names = [f'obtain{i}' for i in range(p['obtain_runs'])]
        cfg = self.write_config('config-obtain', names)
        rss = []
        for name in names:
            rss_file = self.work / 'obtain-rss.txt'
            proc = subprocess.Popen(
                [GNU_TIME, '-f', '%M', '-o', str(rss_file),
                 *self.tokend_cmd(cfg, 'obtain', name, '--no-browser')],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            url, err = None, ''
            fd = proc.stderr.fileno()
            deadline = time.monotonic() + 30
            while url is None and time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 1)
                if not ready:
                    continue
                chunk = os.read(fd, 65536).decode()
                if not chunk:
                    break
                err += chunk
                for line in err.splitlines():
                    if line.startswith('http'):
                        url = line.strip()
            if url is None:
                proc.kill()
                raise BenchError(f'(5) tokend obtain printed no URL: {err}')
            b = subprocess.run([sys.executable, str(BROWSER), url], capture_output=True,
                               text=True, timeout=60,
                               env=dict(os.environ, TOKEND_TEST_CA=self.srv.ca_file))
            out, rest = proc.communicate(timeout=60)
            rest = rest.decode(errors='replace')
            if b.returncode != 0 or proc.returncode != 0:
                raise BenchError(f'(5) obtain {name} failed ({proc.returncode}): {err}{rest} '
                                 f'browser: {b.stderr}')
            rss.append(int(rss_file.read_text().split()[-1]))
        s = Sample([rss])
        self.row(5, f'peak RSS of `tokend obtain` (loopback catcher; {plural(len(rss), "run")})', s,
                 unit='kib', target='≤ 16 MiB', met=s.max <= 16 * MIB)

    def bench_bulk_rss(self):
        p = self.p
        points = []
        for count in p['rss_steps']:
            # The first `count` accounts, named, of the one configuration
            # their state belongs to.
            names = self.names[:count]
            rss = []
            for _ in range(p['bulk_rss_runs']):
                before = self.refresh_count()
                rss.append(self.gnu_time_rss(
                    self.tokend_cmd(self.cfg_n, 'refresh', '--force', *names))[0])
                if self.refresh_count() - before != count:
                    raise BenchError(f'(5) refresh --force of {count} accounts did not send '
                                     f'{count} requests')
            s = Sample([rss])
            points.append((count, s.median))
            last = count == p['rss_steps'][-1]
            self.row(5, f'peak RSS of `tokend refresh --force`, {count} accounts '
                     f'({plural(len(rss), "run")})', s, unit='kib',
                     target='< 64 MiB' if last else '', met=(s.max < 64 * MIB) if last else None)
        # At most linear: the points lie on a straight line (a fixed part plus
        # a cost per account), within noise (5 % of the peak, or 512 KiB).
        icpt, slope, resid = linear_fit(points)
        top = points[-1][1]
        linear = slope >= 0 and resid <= max(0.05 * top, 512)
        self.row(5, 'bulk refresh memory: least-squares line through the medians', value=(
            f'{fmt_kib(icpt)} + {slope:.1f} KiB/account; largest deviation {resid:.0f} KiB'),
            target='at most linear', met=linear)

    # -- 6. app-only accounts ---------------------------------------------------

    def app_config(self):
        s, k = self.srv, self.app_keys
        path = self.config_dir / 'config-app'
        path.write_text(f'[account app]\nprovider = generic\ngrant = client_credentials\n'
                        f'client_id = {APP_CLIENT}\ntoken_url = {s.token_url}\n'
                        f'scopes = {APP_SCOPES}\nusername = box1@example.org\n'
                        f'client_certificate = {k.cert}\nclient_key = {k.key}\n'
                        f'ca_file = {s.ca_file}\n\n'
                        # The same app and mailbox, its token file in memory.
                        f'[account app-mem]\nprovider = generic\ngrant = client_credentials\n'
                        f'client_id = {APP_CLIENT}\ntoken_url = {s.token_url}\n'
                        f'scopes = {APP_SCOPES}\nusername = box1@example.org\n'
                        f'client_certificate = {k.cert}\nclient_key = {k.key}\n'
                        f'token_file = {self.runtime / "app-mem.token"}\n'
                        f'ca_file = {s.ca_file}\n\n')
        return path

    def app_mints(self):
        return self.srv.stats()['token'].get('client_credentials', 0)

    def bench_app_mint(self):
        p = self.p
        d = self.work / 'app'
        d.mkdir()
        self.cfg_app = self.app_config()
        before = self.app_mints()
        self.run(self.tokend_cmd(self.cfg_app, 'token', 'app'))
        if self.app_mints() != before + 1:
            raise BenchError('(6) tokend token did not mint the app\'s first token')
        state = d / 'assertion.json'
        state.write_text(json.dumps({
            'key': str(self.app_keys.key), 'cert': str(self.app_keys.cert),
            'client_id': APP_CLIENT, 'url': self.srv.token_url, 'scope': APP_SCOPES,
            'form': str(d / 'form'), 'out': str(d / 'out.json')}))
        curl = f'curl -s --cacert {self.srv.ca_file} -d @{d / "form"} -o {d / "out.json"} ' \
               f'{self.srv.token_url}'
        tok = ' '.join(self.tokend_cmd(self.cfg_app, 'refresh', '--force', 'app'))
        mem = ' '.join(self.tokend_cmd(self.cfg_app, 'refresh', '--force', 'app-mem'))
        prep = f'{sys.executable} {PREPARE} assertion {state}'
        rounds = [[], [], []]
        # Many short rounds (curl's runs, then tokend's, in turn): a drift
        # of the machine's speed during the item weighs on both alike.
        for k in range(p['app_rounds']):
            log(f'(6) one app-only mint, round {k + 1}/{p["app_rounds"]}')
            before = self.app_mints()
            times = self.hyperfine(f'app-mint-{k}', [curl, tok, mem], p['app_runs'],
                                   p['app_warmup'], prepares=[prep, 'sync', 'sync'])
            done = self.app_mints() - before
            want = 3 * (p['app_runs'] + p['app_warmup'])
            if done != want:
                raise BenchError(f'(6) the server saw {done} client credentials grants, '
                                 f'expected {want}')
            for i, t in enumerate(times):
                rounds[i].append(t)
        self.run([sys.executable, PREPARE, 'assertion', state])  # the last answer was good
        curl_s, tok_s, mem_s = Sample(rounds[0]), Sample(rounds[1]), Sample(rounds[2])
        self.row(6, 'one bare `curl` POST of a client credentials request with a signed '
                 f'assertion (baseline; {p["app_runs"]} runs × {p["app_rounds"]})', curl_s,
                 is_baseline=True)
        q = ratio(tok_s, curl_s)[0]
        self.row(6, '`tokend refresh --force APP` (app-only, private_key_jwt: read the key and '
                 'certificate, sign, mint, write)', tok_s, curl_s, target='≤ 1.25x curl',
                 met=q <= 1.25)
        self.row(6, 'the same, its token file in memory (`token_file` in the runtime folder, '
                 'where system mode keeps token files: its synced write costs no disk '
                 'flush)', mem_s, curl_s, target='reported')
        self.notes.append('(6) the server is the test server with its `tokend-app` client '
                          '(private_key_jwt, the certificate made by openssl at the start). '
                          'curl posts the same request as tokend: client_credentials, the '
                          'scopes, and an RS256 assertion with the same header and claims; '
                          'the server refuses a jti it has seen, so --prepare signs a fresh '
                          'one with openssl outside the timed region (tokend signs inside '
                          'it). The server\'s count of client credentials grants is checked '
                          'after every round. The second tokend row is the same app and '
                          'mailbox with its token file in the runtime folder (tmpfs): the '
                          'distance between the two rows is what the synced replacement of '
                          'a token file on the disk (fdatasync, rename) costs.')

    def bench_app_token(self):
        p = self.p
        cfg = getattr(self, 'cfg_app', None) or self.app_config()
        self.run(self.tokend_cmd(cfg, 'token', 'app'))
        for c, name in ((cfg, 'app'), (self.cfg_one, 'solo')):
            out = self.run(self.tokend_cmd(c, 'token', name)).stdout
            if out != (self.state / name / 'token').read_text():
                raise BenchError(f'(6) tokend token {name} printed something else than its '
                                 'token file')
            if self.engine_ran(self.tokend_cmd(c, 'token', name)):
                raise BenchError(f'(6) tokend token {name} ran the engine')
        before = self.app_mints()
        cmds = [' '.join(self.tokend_cmd(self.cfg_one, 'token', 'solo')),
                ' '.join(self.tokend_cmd(cfg, 'token', 'app'))]
        rounds = [[], []]
        for k in range(p['rounds']):
            log(f'(6) tokend token, app-only vs user account, round {k + 1}/{p["rounds"]}')
            times = self.hyperfine(f'app-token-{k}', cmds, p['app_token_runs'],
                                   p['token_warmup'])
            for i, t in enumerate(times):
                rounds[i].append(t)
        if self.app_mints() != before:
            raise BenchError('(6) tokend token of a cached app token sent a request')
        user, app = Sample(rounds[0]), Sample(rounds[1])
        self.row(6, f'`tokend token USER_ACCOUNT`, cached, 1-account config (baseline; '
                 f'{p["app_token_runs"]} runs × {p["rounds"]})', user, is_baseline=True)
        q = ratio(app, user)[0]
        self.row(6, '`tokend token APP_ACCOUNT`, cached, 1-account config', app, user,
                 target='≤ 1.1x (as fast)', met=q <= 1.1)
        self.notes.append('(6) both `tokend token` calls were checked (strace) to be answered '
                          'by the launcher alone, and the app\'s call sent no request.')

    # -- 7. system mode: a mail host's timer run --------------------------------

    def system_user(self):
        """(service user, reader group): made for the bench when run as
        root (tokend --system never runs as root), else the caller."""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid()).pw_name
            return me, grp.getgrgid(os.getegid()).gr_name
        tag = secrets.token_hex(3)
        user, group = f'tkbench{tag}', f'tkbreader{tag}'
        subprocess.run(['groupadd', '--system', group], check=True, capture_output=True)
        self.cleanup.append(['groupdel', group])
        subprocess.run(['useradd', '--system', '--no-create-home', '--home-dir', '/nonexistent',
                        '--shell', '/usr/sbin/nologin', '-G', group, user], check=True,
                       capture_output=True)
        self.cleanup.insert(0, ['userdel', user])
        return user, group

    def system_tree(self, tag, user, group, config):
        """etc (config, accounts.d), state, run as the package makes them."""
        pw = pwd.getpwnam(user)
        top = self.work / f'system-{tag}'
        etc, state, run = top / 'etc', top / 'state', top / 'run'
        (etc / 'accounts.d').mkdir(parents=True)
        top.chmod(0o755)
        for d, m in ((etc, 0o750), (etc / 'accounts.d', 0o750)):
            os.chown(d, os.geteuid(), pw.pw_gid)
            d.chmod(m)
        for d, m in ((state, 0o700), (run, 0o755)):
            d.mkdir()
            os.chown(d, pw.pw_uid, pw.pw_gid)
            d.chmod(m)
        env = dict(self.env, TOKEND_SYSTEM_USER=user, TOKEND_SYSCONFDIR=str(etc),
                   TOKEND_STATEDIR=str(state), TOKEND_RUNTIMEDIR=str(run),
                   TOKEND_TEST_CA=self.srv.ca_file, BROWSER=str(BROWSER))

        def write(path, text):
            path.write_text(text)
            os.chown(path, os.geteuid(), pw.pw_gid)
            path.chmod(0o640)
        write(etc / 'config', config)
        return env, etc, run, write

    def timer_cmd(self, user):
        """tokend-refresh.service's ExecStart, run as its User= would."""
        cmd = [str(self.tokend), '--system', '-q', 'refresh']
        if os.geteuid() == 0:
            pw = pwd.getpwnam(user)
            cmd = ['setpriv', f'--reuid={pw.pw_uid}', f'--regid={pw.pw_gid}', '--init-groups',
                   '--', *cmd]
        return cmd

    def system_measure(self, tag, env, user, names, grant, per_run):
        p = self.p
        runs, warmup = p['system_runs'], 1
        names_file = self.work / f'system-{tag}-names.txt'
        names_file.write_text('\n'.join(names) + '\n')
        prep = (f'{sys.executable} {PREPARE} due {env["TOKEND_STATEDIR"]} {names_file} '
                f'{env["TOKEND_RUNTIMEDIR"]}')
        before = self.srv.stats()['token'].get(grant, 0)
        saved, self.env = self.env, env
        try:
            times = self.hyperfine(f'system-{tag}', [' '.join(self.timer_cmd(user))], runs,
                                   warmup, prepares=[prep])[0]
        finally:
            self.env = saved
        done = self.srv.stats()['token'].get(grant, 0) - before
        if done != per_run * (runs + warmup):
            raise BenchError(f'(7) {tag}: the server saw {done} {grant} grants, expected '
                             f'{per_run * (runs + warmup)}')
        return Sample([times]), runs

    def check_system_files(self, run, names, user, group):
        pw, gid = pwd.getpwnam(user), grp.getgrnam(group).gr_gid
        for name in names:
            st = os.stat(run / f'{name}.token')
            if (st.st_uid, st.st_gid, st.st_mode & 0o777) != (pw.pw_uid, gid, 0o640):
                raise BenchError(f'(7) {run / name}.token: owner, group or mode wrong')

    def bench_system_users(self, user, group, count):
        env, etc, run, write = self.system_tree(
            'users', user, group, '[defaults]\nmax_parallel = 8\n')
        s = self.srv
        names = [f'user{i:02d}' for i in range(count)]
        for name in names:
            write(etc / 'accounts.d' / f'{name}.conf',
                  f'[account {name}]\nprovider = generic\nclient_id = {CLIENT_ID}\n'
                  f'authorize_url = {s.authorize_url}\ntoken_url = {s.token_url}\n'
                  f'scopes = {SCOPES}\nusername = alice\nca_file = {s.ca_file}\n'
                  f'store = file\ntoken_file_group = {group}\n')
        log(f'(7) signing in {count} system accounts with tokend --system obtain ...')

        def obtain(name):
            r = subprocess.run([str(self.tokend), '--system', 'obtain', name], env=env,
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise BenchError(f'(7) tokend --system obtain {name}: {r.stderr.strip()}')
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(obtain, names))
        sample, runs = self.system_measure('users', env, user, names, 'refresh_token', count)
        self.check_system_files(run, names, user, group)
        self.row(7, f'one timer run (`tokend --system -q refresh` as the service user) over '
                 f'{count} system accounts, all due ({runs} runs)', sample,
                 value=f'{count} refresh requests/run', target=f'{count} requests', met=True)

    def bench_system_app(self, user, group, count):
        env, etc, run, write = self.system_tree(
            'app', user, group, '')
        pw = pwd.getpwnam(user)
        keys = self.work / 'system-app' / 'keys'
        keys.mkdir(mode=0o700)
        for src in (self.app_keys.key, self.app_keys.cert):
            shutil.copy(src, keys / src.name)
            os.chown(keys / src.name, pw.pw_uid, pw.pw_gid)
            (keys / src.name).chmod(0o600)
        os.chown(keys, pw.pw_uid, pw.pw_gid)
        s = self.srv
        names = [f'box{i:02d}' for i in range(count)]
        for name in names:
            write(etc / 'accounts.d' / f'{name}.conf',
                  f'[account {name}]\nprovider = generic\ngrant = client_credentials\n'
                  f'client_id = {APP_CLIENT}\ntoken_url = {s.token_url}\n'
                  f'scopes = {APP_SCOPES}\nusername = {name}@example.org\n'
                  f'client_certificate = {keys / self.app_keys.cert.name}\n'
                  f'client_key = {keys / self.app_keys.key.name}\nca_file = {s.ca_file}\n'
                  f'token_file_group = {group}\n')
        # The first tick makes each mailbox's state (the app-only accounts need no sign-in).
        r = subprocess.run(self.timer_cmd(user), env=env, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise BenchError(f'(7) the first timer run of the mailboxes: {r.stderr.strip()}')
        sample, runs = self.system_measure('app', env, user, names, 'client_credentials', 1)
        self.check_system_files(run, names, user, group)
        if len({(run / f'{n}.token').read_text() for n in names}) != 1:
            raise BenchError('(7) the mailboxes of one app hold different tokens')
        self.row(7, f'one timer run over {count} app-only mailboxes of one app, the app\'s '
                 f'token due ({runs} runs)', sample, value='1 token request/run',
                 target='1 request', met=True)

    def bench_system(self):
        count = 30
        user, group = self.system_user()
        # The service user reaches the CA file and the binaries.
        for d in (self.work, self.work / 'authserver'):
            d.chmod(0o755)
        self.bench_system_users(user, group, count)
        self.bench_system_app(user, group, count)
        self.notes.append(
            f'(7) system mode (`tokend --system`, TOKEND_SYSCONFDIR/STATEDIR/RUNTIMEDIR in the '
            f'work folder): {count} accounts in accounts.d, each its own file. The command is '
            'tokend-refresh.service\'s ExecStart run under the service user with `setpriv` '
            '(as User= would; the bench runs as root and makes that user), timed by hyperfine. '
            'Before each run (outside the timed region) `prepare.py due` puts every expiry and '
            'the schedule in the past, as an hour without a tick would: each run is a full one, 30 refreshes (30 grants signed in with `tokend '
            '--system obtain`, 4 at a time), or one client credentials mint shared by the '
            '30 mailboxes (counted at the server after the runs; each token file then checked: '
            'service user, the reader group, 0640).')

    def main(self):
        self.setup_home()
        try:
            self.start_server()
            if not self.opts.only or self.opts.only - {7}:
                self.prepare_all()
            steps = [(1, self.bench_token), (2, self.bench_single), (3, self.bench_bulk),
                     (4, self.bench_tick), (5, self.bench_obtain_rss), (5, self.bench_bulk_rss),
                     (6, self.bench_app_mint), (6, self.bench_app_token),
                     (7, self.bench_system)]
            for number, step in steps:
                if not self.opts.only or number in self.opts.only:
                    step()
            self.loads.append(loadavg())
            text = self.table()
        finally:
            self.stop()
        print(text, end='')
        if self.opts.output:
            Path(self.opts.output).write_text(text)
            log(f'wrote {self.opts.output}')
        if self.failed_targets:
            log('targets not met: ' + '; '.join(self.failed_targets))
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--short', action='store_true', help='quick CI check (20 accounts)')
    ap.add_argument('--build', default=str(REPO / 'build-release'))
    ap.add_argument('--output', help='also write the table to this file')
    ap.add_argument('--keep', action='store_true', help='keep the work folder')
    ap.add_argument('--tmpdir', help='where the work folder goes (default: $TMPDIR or /tmp)')
    ap.add_argument('--only', type=lambda v: {int(x) for x in v.split(',')},
                    help='measure only these items (comma-separated numbers, e.g. 3 or 1,4)')
    opts = ap.parse_args()
    try:
        return Bench(opts).main()
    except BenchError as e:
        log(f'FAILED: {e}')
        return 1


if __name__ == '__main__':
    sys.exit(main())
