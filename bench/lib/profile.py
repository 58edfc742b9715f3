#!/usr/bin/env python3
"""Where the time of a refresh goes (run it as `bash bench/run --profile`).

Same setup as bench.py (server, seeded file store), then for the bulk
refresh (1000 accounts due, max_parallel 8) and for one refresh:

- wall time of curl (baseline), tokend, and tokend under eatmydata (fsync and
  fdatasync made no-ops): the difference is the cost of durability;
- `strace -f -c -w` of one tokend run: wall time spent in each syscall;
- the same durable writes tokend does per account (3 atomic replacements:
  write, fdatasync, rename; one directory fsync), from one thread and from 8
  threads, without tokend: what moving them off the event loop could gain;
- start-up: `tokend --version` (launcher, then engine) vs `curl --version`.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402
from bench import PREPARE, Bench, BenchError, log  # noqa: E402


def wall(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def proc_cpu(pid):
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def cpu_of(fn, server_pid):
    """Wall time of fn, CPU time of the children it ran, CPU time the server
    spent meanwhile: on a 2-core machine the client's CPU is taken from the
    server's."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv_before = proc_cpu(server_pid)
    t = wall(fn)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return t, used, proc_cpu(server_pid) - srv_before


def durable_replace(path, data):
    tmp = f'{path}.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.fdatasync(fd)
    os.close(fd)
    os.rename(tmp, path)


def account_writes(d):
    durable_replace(d / 'refresh_token', b'x' * 43)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    durable_replace(d / 'token', b'y' * 44 + b'\n')
    durable_replace(d / 'state.json', b'{"expires_at": 1}\n' * 20)


class Profile(Bench):
    def strace_summary(self, args, top=8):
        out = self.work / 'strace-c.txt'
        self.run(['strace', '-f', '-c', '-w', '-o', out, *args])
        rows = []
        for line in out.read_text().splitlines()[2:]:
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit():
                rows.append((f[-1], float(f[1]), int(f[3])))
        total = sum(r[1] for r in rows)
        return rows[:top], total

    def bulk(self, rounds):
        n = self.p['n']
        d = self.work / 'bulk'
        d.mkdir()
        (d / 'out').mkdir()
        chain = d / 'chain.json'
        chain.write_text(json.dumps({
            'rts': [g['refresh_token'] for g in self.curl_grants], 'out_dir': str(d / 'out'),
            'config': str(d / 'requests.curlrc'), 'url': self.srv.token_url,
            'ca': self.srv.ca_file, 'client_id': bench.CLIENT_ID, 'scope': bench.SCOPES}))
        curl = ['curl', '--parallel', '--parallel-max', '8', '-s', '-K', d / 'requests.curlrc']
        tok = self.tokend_cmd(self.cfg_n, 'refresh')
        due = [sys.executable, PREPARE, 'due', self.state, self.names_file]
        cprep = [sys.executable, PREPARE, 'bulk', chain]
        times = {'curl': [], 'tokend': [], 'tokend, fsync off (eatmydata)': []}
        self.bulk_cpu = {k: [] for k in times}
        pid = self.srv.proc.pid

        def measure(key, cmd):
            t, cpu, srv = cpu_of(lambda: self.run(cmd), pid)
            times[key].append(t)
            self.bulk_cpu[key].append((cpu, srv))

        for k in range(rounds):
            log(f'profile: bulk round {k + 1}/{rounds}')
            self.run(cprep)
            measure('curl', curl)
            self.run(due)
            measure('tokend', tok)
            self.run(due)
            measure('tokend, fsync off (eatmydata)', ['eatmydata', *tok])
        self.run(cprep)
        self.run(due)
        rows, total = self.strace_summary(tok)
        return times, rows, total

    def single(self, runs):
        d = self.work / 'single'
        d.mkdir()
        chain = d / 'chain.json'
        chain.write_text(json.dumps({
            'rt': self.curl_single_grant['refresh_token'], 'form': str(d / 'form'),
            'out': str(d / 'out.json'), 'url': self.srv.token_url,
            'client_id': bench.CLIENT_ID, 'scope': bench.SCOPES}))
        curl = ['curl', '-s', '--cacert', self.srv.ca_file, '-d', f'@{d / "form"}', '-o',
                d / 'out.json', self.srv.token_url]
        tok = self.tokend_cmd(self.cfg_one, 'refresh', '--force', 'solo')
        times = {'curl': [], 'tokend': [], 'tokend, fsync off (eatmydata)': []}
        for _ in range(runs):
            self.run([sys.executable, PREPARE, 'single', chain])
            subprocess.run(['sync'])
            times['curl'].append(wall(lambda: self.run(curl)))
            subprocess.run(['sync'])
            times['tokend'].append(wall(lambda: self.run(tok)))
            subprocess.run(['sync'])
            times['tokend, fsync off (eatmydata)'].append(
                wall(lambda: self.run(['eatmydata', *tok])))
        self.run([sys.executable, PREPARE, 'single', chain])
        rows, total = self.strace_summary(tok)
        return times, rows, total

    def writes(self, n):
        base = self.work / 'writes'
        dirs = []
        for i in range(n):
            d = base / f'a{i}'
            d.mkdir(parents=True)
            dirs.append(d)
        subprocess.run(['sync'])
        serial = wall(lambda: [account_writes(d) for d in dirs])
        subprocess.run(['sync'])
        with ThreadPoolExecutor(8) as ex:
            threaded = wall(lambda: list(ex.map(account_writes, dirs)))
        # As many threads as tokend's writers, with the CPU time they take.
        import resource
        subprocess.run(['sync'])
        before = resource.getrusage(resource.RUSAGE_SELF)
        with ThreadPoolExecutor(64) as ex:
            many = wall(lambda: list(ex.map(account_writes, dirs)))
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.writes_cpu = (after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)
        return serial, threaded, many

    def startup(self):
        times = self.hyperfine('startup', ['curl --version', f'{self.tokend} --version'],
                               100, 10)
        return [statistics.median(t) for t in times]

    def main(self):
        self.setup_home()
        out = []
        try:
            self.start_server()
            self.prepare_all()
            rounds = 2 if self.opts.short else 3
            n = self.p['n']
            bt, brows, btotal = self.bulk(rounds)
            st, srows, stotal = self.single(5 if self.opts.short else 20)
            serial, threaded, many = self.writes(n)
            curl_v, launcher_v = self.startup()
            self.loads.append(bench.loadavg())
            out += self.machine()
        finally:
            self.stop()
        for title, times, rows, total in (
                (f'Bulk: {n} accounts due, max_parallel 8 ({rounds} runs each, median)',
                 bt, brows, btotal),
                (f'One refresh --force ({len(st["curl"])} runs each, median)', st, srows,
                 stotal)):
            base = statistics.median(times['curl'])
            out += ['', f'### {title}', '', '| run | median | min | max | vs curl |',
                    '| --- | --- | --- | --- | --- |']
            for k, v in times.items():
                m = statistics.median(v)
                out.append(f'| {k} | {bench.fmt_time(m)} | {bench.fmt_time(min(v))} | '
                           f'{bench.fmt_time(max(v))} | {m / base:.2f}x |')
            if times is bt:
                out += ['', 'CPU time (user + system, median) of the client and of the '
                        'authorization server during the same runs:', '',
                        '| run | client CPU | server CPU |', '| --- | --- | --- |']
                for k, v in self.bulk_cpu.items():
                    out.append(f'| {k} | {bench.fmt_time(statistics.median(c for c, _ in v))} | '
                               f'{bench.fmt_time(statistics.median(s for _, s in v))} |')
            out += ['', f'`strace -f -c -w` of one tokend run (syscall wall time, total '
                    f'{bench.fmt_time(total)}):', '', '| syscall | time | calls | per call |',
                    '| --- | --- | --- | --- |']
            for name, secs, calls in rows:
                out.append(f'| {name} | {bench.fmt_time(secs)} | {calls} | '
                           f'{secs / calls * 1e6:.0f} µs |')
        out += ['', f'### The durable writes alone ({n} accounts × 3 atomic replacements '
                '+ 1 directory fsync, Python, no tokend)', '',
                f'- one thread: {bench.fmt_time(serial)}; 8 threads: '
                f'{bench.fmt_time(threaded)} ({serial / threaded:.1f}x faster); 64 threads: '
                f'{bench.fmt_time(many)} ({serial / many:.1f}x faster; CPU: user '
                f'{bench.fmt_time(self.writes_cpu[0])}, system {bench.fmt_time(self.writes_cpu[1])})',
                '', '### Start-up (hyperfine -N, 100 runs, median)', '',
                f'- `curl --version`: {bench.fmt_time(curl_v)}; `tokend --version` (the '
                f'launcher, then the engine it loads): {bench.fmt_time(launcher_v)}']
        text = '\n'.join(['# tokend profile', ''] + out) + '\n'
        print(text, end='')
        if self.opts.output:
            Path(self.opts.output).write_text(text)
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--short', action='store_true')
    ap.add_argument('--build', default=str(bench.REPO / 'build-release'))
    ap.add_argument('--output')
    ap.add_argument('--keep', action='store_true')
    ap.add_argument('--tmpdir')
    opts = ap.parse_args()
    for tool in ('eatmydata', 'strace'):
        if not shutil.which(tool):
            log(f'{tool} is missing')
            return 1
    try:
        return Profile(opts).main()
    except BenchError as e:
        log(f'FAILED: {e}')
        return 1


if __name__ == '__main__':
    sys.exit(main())
