#!/usr/bin/env python3
"""The relay benchmark (run it as `bash bench/run --relay`; see
bench/README.md).  Against a local TLS Dovecot submission service
validating tokens at the local authorization server (it relays to the
harness's SMTP sink in this process), in one run:

1. throughput: Python's smtplib sending 1 MB messages over one connection,
   directly to Dovecot submission (STARTTLS, AUTH XOAUTH2 with the token)
   versus through `tokend relay --listen` on loopback (AUTH PLAIN, the relay
   doing STARTTLS and XOAUTH2 upstream); ratio of the medians.  The client
   is a process of its own (this file with --client), apart from the sink's
   threads in this one;
2. 100 concurrent SMTP sessions through the relay: each connects, says
   EHLO (the time to that first 250 is measured), logs in, sends one
   message and waits for the others; with all of them open, each session
   process's RSS (VmRSS, and its proportional share, Pss) is read; then all
   quit and every message must have arrived.  Beside them, the floor of
   such a process: a bare OpenSSL client (bench/lib/tls_floor.c, built
   here with cc) that does EHLO and STARTTLS to the same server, its
   VmRSS read the same way.
"""

import argparse
import base64
import hashlib
import os
import shutil
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
sys.path.insert(0, str(REPO / 'tests'))

from harness.authserver import AuthServer  # noqa: E402
from harness.dovecot import free_port  # noqa: E402
from harness.tunnelpeers import USER, dovecot_for, xoauth2  # noqa: E402

BROWSER = REPO / 'tests' / 'harness' / 'browser.py'
MB = 1000 * 1000
SENDER = 'alice@example.org'
RCPT = 'bob@example.org'
TIMEOUT = 300


def log(msg):
    print(f'bench-relay: {msg}', file=sys.stderr, flush=True)


def message(i, size):
    head = (f'From: {SENDER}\r\nTo: {RCPT}\r\nSubject: bench {i}\r\n'
            f'Message-ID: <relay-bench-{i}@example.org>\r\n\r\n').encode()
    line = (os.urandom(38).hex() + '\r\n').encode()  # 78 bytes
    return head + line * max(1, (size - len(head)) // len(line))


def sign_in(work, tokend, srv, dc, max_sessions):
    env = {'PATH': os.environ['PATH'], 'HOME': str(work), 'BROWSER': str(BROWSER),
           'XDG_CONFIG_HOME': str(work / 'config'), 'XDG_STATE_HOME': str(work / 'state'),
           'XDG_RUNTIME_DIR': str(work / 'no-runtime'), 'TOKEND_TEST_CA': srv.ca_file,
           'LANG': 'C.UTF-8'}
    config = work / 'config' / 'tokend' / 'config'
    config.parent.mkdir(parents=True)
    config.write_text(
        '[account work]\nprovider = generic\nclient_id = tokend-native\n'
        f'authorize_url = {srv.authorize_url}\ntoken_url = {srv.token_url}\n'
        f'scopes = openid offline_access mail.imap\nusername = {USER}\n'
        f'ca_file = {srv.ca_file}\nstore = file\nsend_as = {SENDER}\n'
        f'smtp_host = {dc.host}\nsmtp_port = {dc.submission_port}\nsmtp_tls = starttls\n')
    r = subprocess.run([tokend, 'obtain', 'work'], env=env, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise SystemExit(f'obtain failed: {r.stderr}')
    port = free_port()
    relay = subprocess.Popen([tokend, '-c', str(config), 'relay', '--listen',
                              f'127.0.0.1:{port}', f'--max-sessions={max_sessions}', 'smtp'],
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(work / 'relay.log', 'wb'))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise SystemExit('the relay does not listen')
    return relay, port


def client(mode, host, port, count, ca_file):
    """`relay.py --client`: the sending client, a process of its own so
    that it shares no interpreter with the sink.  The token comes on
    stdin; prints the seconds from the first MAIL to the last 250 and the
    SHA-256 of the last message, then waits for a line before QUIT."""
    token = sys.stdin.readline().strip()
    msgs = [message(i, MB) for i in range(count)]
    s = smtplib.SMTP(host, port, timeout=TIMEOUT)
    if mode == 'direct':
        s.starttls(context=ssl.create_default_context(cafile=ca_file))
        s.ehlo()
        code, text = s.docmd('AUTH', 'XOAUTH2 ' +
                             base64.b64encode(xoauth2(USER, token)).decode())
        if code != 235:
            raise SystemExit(f'direct AUTH XOAUTH2: {code} {text}')
    else:
        s.login(USER, 'the relay ignores it')
    started = time.monotonic()
    for m in msgs:
        s.sendmail(SENDER, [RCPT], m)
    elapsed = time.monotonic() - started
    print(elapsed, hashlib.sha256(msgs[-1]).hexdigest(), sum(len(m) for m in msgs), flush=True)
    sys.stdin.readline()
    s.quit()


def clear_sink(dc):
    with dc.sink.lock:
        dc.sink.messages.clear()


def delivered(dc, count, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if len(dc.messages()) >= count:
            return dc.messages()
        time.sleep(0.05)
    raise SystemExit(f'the sink got {len(dc.messages())} of {count} messages')


def body_of(data):
    """What the sink got without the Received line Dovecot adds."""
    head, _, rest = data.partition(b'\r\n')
    while rest[:1] in (b' ', b'\t'):
        _, _, rest = rest.partition(b'\r\n')
    return rest


def cpu_seconds(pid):
    """User and system time of a process so far."""
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def send_round(dc, argv, token, count, relay_pid=None):
    """One connection (a client process), every message: the seconds from
    the first MAIL to the last 250, the bytes, and (through the relay) the
    session process's CPU seconds, login included."""
    clear_sink(dc)
    p = subprocess.Popen([sys.executable, __file__, '--client', *argv, str(count)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdin.write(token + '\n')
    p.stdin.flush()
    line = p.stdout.readline().split()
    if len(line) != 3:
        p.kill()
        raise SystemExit(f'the client {argv[0]} failed')
    cpu = None
    if relay_pid:
        [session] = children(relay_pid)
        cpu = cpu_seconds(session)
    p.stdin.write('\n')
    p.stdin.close()
    if p.wait(TIMEOUT) != 0:
        raise SystemExit(f'the client {argv[0]} failed')
    got = delivered(dc, count)
    if hashlib.sha256(body_of(got[-1]['data'])).hexdigest() != line[1]:
        raise SystemExit('a message did not arrive byte-identical')
    return float(line[0]), int(line[2]), cpu


def throughput(dc, srv, token, relay, port, count, rounds):
    times = {'direct': [], 'relay': [], 'cpu': []}
    argv = {'direct': ['direct', dc.host, str(dc.submission_port), srv.ca_file],
            'relay': ['relay', '127.0.0.1', str(port), '-']}
    total = 0
    for rnd in range(rounds + 1):  # round 0 warms the caches
        for name in ('direct', 'relay'):
            t, total, cpu = send_round(dc, argv[name], token, count,
                                       relay.pid if name == 'relay' else None)
            if rnd:
                times[name].append(t)
                if cpu is not None:
                    times['cpu'].append(cpu)
            log(f'round {rnd} {name}: {t:.2f} s ({total / MB / t:.1f} MB/s)')
    return times, total


def proc_kib(pid, field, name='status'):
    try:
        for line in open(f'/proc/{pid}/{name}'):
            if line.startswith(field + ':'):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def children(pid):
    try:
        return [int(p) for p in open(f'/proc/{pid}/task/{pid}/children').read().split()]
    except OSError:
        return []


def concurrent(dc, relay, port, n):
    clear_sink(dc)
    all_open, may_quit = threading.Barrier(n + 1), threading.Barrier(n + 1)
    first250, errors = [None] * n, []
    msg = message('concurrent', 10_000)

    def one(i):
        try:
            started = time.monotonic()
            s = smtplib.SMTP('127.0.0.1', port, timeout=TIMEOUT)
            code, _ = s.ehlo()
            first250[i] = time.monotonic() - started
            if code != 250:
                raise RuntimeError(f'EHLO: {code}')
            s.login(USER, 'x')
            s.sendmail(SENDER, [RCPT], msg)
            all_open.wait(TIMEOUT)
            may_quit.wait(TIMEOUT)
            s.quit()
        except Exception as exc:  # noqa: BLE001 (reported, and the run fails)
            errors.append(f'session {i}: {exc!r}')
            all_open.abort()
            may_quit.abort()

    pids, rss, pss, hwm = [], [], [], []
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        all_open.wait(TIMEOUT)
        pids = children(relay.pid)
        rss = [proc_kib(p, 'VmRSS') for p in pids]
        pss = [proc_kib(p, 'Pss', 'smaps_rollup') for p in pids]
        hwm = [proc_kib(p, 'VmHWM') for p in pids]
        may_quit.wait(TIMEOUT)
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join(TIMEOUT)
    if errors:
        raise SystemExit('; '.join(errors[:5]))
    delivered(dc, n)
    if len(pids) != n or None in rss or None in pss:
        raise SystemExit(f'{len(pids)} session processes seen for {n} sessions')
    return first250, rss, pss, hwm


def tls_floor(work, dc, runs=5):
    """VmRSS (KiB) of bench/lib/tls_floor.c after its TLS handshake with
    Dovecot submission, over a few runs."""
    exe = work / 'tls_floor'
    subprocess.run(['cc', '-O2', '-o', str(exe), str(BENCH / 'lib' / 'tls_floor.c'),
                    '-lssl', '-lcrypto'], check=True)
    out = []
    for _ in range(runs):
        r = subprocess.run([str(exe), str(dc.submission_port)], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise SystemExit(f'tls_floor: {r.stderr.strip()}')
        out.append(int(r.stdout))
    return out


def table(rows):
    out = ['| # | subject | baseline | result | target |', '| --- | --- | --- | --- | --- |']
    out += [f'| {" | ".join(str(c) for c in row)} |' for row in rows]
    return '\n'.join(out)


def spread(values, unit, scale=1.0, fmt='.1f'):
    v = sorted(x * scale for x in values)
    return (f'median {statistics.median(v):{fmt}} {unit}, min {v[0]:{fmt}}, '
            f'max {v[-1]:{fmt}}')


def rows_of(times, total, first250, rss, pss, hwm, floor):
    md, mr = statistics.median(times['direct']), statistics.median(times['relay'])
    ratio = md / mr
    worst = max(rss) / 1024
    return [
        (1, f'smtplib through `tokend relay`: {mr:.2f} s, {total / MB / mr:.1f} MB/s',
         f'smtplib direct STARTTLS + XOAUTH2: {md:.2f} s, {total / MB / md:.1f} MB/s',
         f'{ratio:.3f}x throughput ({min(times["direct"]) / max(times["relay"]):.3f}'
         f'-{max(times["direct"]) / min(times["relay"]):.3f})', '>= 0.95x'),
        (1, 'CPU time of the relay session per MB (login included)', '—',
         f'{statistics.median(times["cpu"]) * 1000 / (total / MB):.2f} ms/MB', 'reported'),
        (2, f'{len(rss)} concurrent sessions through the relay, all delivered: '
            'time to the first 250 (EHLO)', '—', spread(first250, 'ms', 1000), 'reported'),
        (2, 'RSS per session process (VmRSS; Pss: shared pages split)',
         f'a bare OpenSSL client after STARTTLS (tls_floor.c): VmRSS '
         f'{spread(floor, "MiB", 1 / 1024)}',
         f'VmRSS {spread(rss, "MiB", 1 / 1024)}; Pss {spread(pss, "MiB", 1 / 1024)}; '
         f'peak {max(hwm) / 1024:.1f} MiB', '<= 8 MiB' + ('' if worst <= 8 else ': **not met**')),
    ]


def main():
    if sys.argv[1:2] == ['--client']:
        mode, host, port, ca_file, count = sys.argv[2:7]
        return client(mode, host, int(port), int(count), ca_file)
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--build', default=str(REPO / 'build-release'))
    ap.add_argument('--short', action='store_true', help='a few MB, to check it works')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--messages', type=int, default=30, help='1 MB messages per round')
    ap.add_argument('--sessions', type=int, default=100)
    ap.add_argument('--output')
    args = ap.parse_args()
    tokend = str(Path(args.build).resolve() / 'src' / 'tokend')
    rounds, count, n = (1, 3, 10) if args.short else (args.rounds, args.messages, args.sessions)
    work = Path(tempfile.mkdtemp(prefix='tokend-bench-relay-'))
    relay = None
    try:
        # One user's sessions all come from 127.0.0.1: Dovecot's default
        # allows 10 per user and address.
        with AuthServer(work / 'authserver') as srv, \
                dovecot_for(srv, extra_config=f'mail_max_userip_connections = {n + 8}\n') as dc:
            relay, port = sign_in(work, tokend, srv, dc, n + 8)
            token = (work / 'state' / 'tokend' / 'work' / 'token').read_text().strip()
            times, total = throughput(dc, srv, token, relay, port, count, rounds)
            first250, rss, pss, hwm = concurrent(dc, relay, port, n)
            floor = tls_floor(work, dc)
            text = (f'Relay benchmark: {count} messages of 1 MB per connection, {rounds} '
                    f'rounds; {n} concurrent sessions\n\n'
                    f'{table(rows_of(times, total, first250, rss, pss, hwm, floor))}\n')
            print(text)
            if args.output:
                Path(args.output).write_text(text)
    finally:
        if relay:
            relay.terminate()
            relay.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
