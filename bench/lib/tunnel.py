#!/usr/bin/env python3
"""The tunnel benchmark (run it as `bash bench/run --tunnel`; see
bench/README.md).  Against a local TLS Dovecot validating tokens at the
local authorization server, in one run:

1. throughput: mbsync syncing the same INBOX (>= 200 MB in messages of
   mixed sizes) into an empty Maildir, directly over TLS with XOAUTH2
   (PassCmd + the SASL plugin, the isync recipe) versus through `tokend
   tunnel` (Tunnel, the isync-tunnel recipe); ratio of the medians;
2. login: from start to the first command accepted (NOOP answered), `tokend
   tunnel` versus a direct `curl` IMAP login with the same token;
3. the tunnel's peak RSS and CPU time per relayed MB (GNU time around the
   tunnel mbsync runs).
"""

import argparse
import os
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

from harness.authserver import AuthServer  # noqa: E402
from harness.tunnelpeers import USER, deliver, dovecot_for  # noqa: E402

BROWSER = REPO / 'tests' / 'harness' / 'browser.py'
GNU_TIME = '/usr/bin/time'
MB = 1000 * 1000
# (size in bytes, count): about 226 MB in 750 messages.
MIX = [(4_000_000, 50), (100_000, 200), (10_000, 500)]
SHORT_MIX = [(1_000_000, 5), (100_000, 10), (10_000, 20)]


def log(msg):
    print(f'bench-tunnel: {msg}', file=sys.stderr, flush=True)


def message(i, size):
    head = (f'From: carol@example.org\r\nTo: {USER}@example.org\r\nSubject: bench {i}\r\n'
            f'Message-ID: <bench-{i}@example.org>\r\n\r\n').encode()
    line = (os.urandom(38).hex() + '\r\n').encode()  # 78 bytes
    return head + line * max(1, (size - len(head)) // len(line))


def seed(dc, mix):
    jobs = [(i, size) for size, count in mix for i in range(count)]
    total = 0

    def one(job):
        i, size = job
        m = message(f'{size}-{i}', size)
        deliver(dc, m)
        return len(m)
    with ThreadPoolExecutor(2) as pool:
        for n in pool.map(one, jobs):
            total += n
    return len(jobs), total


def sign_in(work, tokend, srv, dc):
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
        f'ca_file = {srv.ca_file}\nstore = file\nimap_host = {dc.host}\n'
        f'imap_port = {dc.imaps_port}\ntunnel_tls = implicit\n')
    r = subprocess.run([tokend, 'obtain', 'work'], env=env, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise SystemExit(f'obtain failed: {r.stderr}')
    return env, config


def render(template, **values):
    text = (REPO / 'doc' / 'recipes' / template).read_text()
    for k, v in values.items():
        text = text.replace(f'@{k}@', str(v))
    return text


def mbsync_configs(work, tokend, config, srv, dc):
    maildir = work / 'Mail'
    direct = work / 'mbsyncrc-direct'
    direct.write_text(render('mbsyncrc.in', HOST=dc.host, PORT=dc.imaps_port, USER=USER,
                             TOKEND=tokend, CONFIG=config, CA_FILE=srv.ca_file,
                             MAILDIR=maildir).replace('Patterns *', 'Patterns INBOX'))
    timed = f"{GNU_TIME} -a -f '%M %U %S' -o {work / 'tunnel-time'} {tokend}"
    tunnel = work / 'mbsyncrc-tunnel'
    tunnel.write_text(render('mbsyncrc-tunnel.in', TOKEND=timed, CONFIG=config,
                             MAILDIR=maildir))
    return maildir, direct, tunnel


def sync_once(rc, maildir, env):
    shutil.rmtree(maildir, ignore_errors=True)
    maildir.mkdir()
    for f in maildir.parent.glob('.mbsyncstate*'):
        f.unlink()
    started = time.monotonic()
    r = subprocess.run(['mbsync', '-c', str(rc), 'work'], env=env, capture_output=True,
                       text=True, timeout=600)
    elapsed = time.monotonic() - started
    if r.returncode != 0:
        raise SystemExit(f'mbsync -c {rc} failed: {r.stdout}{r.stderr}')
    return elapsed


def maildir_count(maildir):
    return sum(1 for sub in ('new', 'cur') for _ in (maildir / 'INBOX' / sub).glob('*'))


def tunnel_login_once(tokend, config, env):
    started = time.monotonic()
    p = subprocess.Popen([tokend, '-c', str(config), 'tunnel', 'work'], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    greeting = p.stdout.readline()
    p.stdin.write(b'a NOOP\r\n')
    p.stdin.flush()
    while not (line := p.stdout.readline()).startswith(b'a '):
        if not line:
            break
    elapsed = time.monotonic() - started
    p.stdin.write(b'b LOGOUT\r\n')
    p.stdin.close()
    p.stdout.read()
    p.wait(10)
    if not greeting.startswith(b'* PREAUTH') or not line.startswith(b'a OK'):
        raise SystemExit(f'tunnel login failed: {greeting!r} {line!r}')
    return elapsed


def curl_login_once(dc, srv, token, env):
    config = (f'url = "imaps://{dc.host}:{dc.imaps_port}/"\nuser = "{USER}"\n'
              f'oauth2-bearer = "{token}"\ncacert = "{srv.ca_file}"\nrequest = "NOOP"\n'
              'silent\nshow-error\n')
    started = time.monotonic()
    r = subprocess.run(['curl', '-K', '-'], input=config, env=env, capture_output=True,
                       text=True, timeout=30)
    elapsed = time.monotonic() - started
    if r.returncode != 0:
        raise SystemExit(f'curl login failed: {r.stderr}')
    return elapsed


def table(rows):
    out = ['| # | subject | baseline | result | target |', '| --- | --- | --- | --- | --- |']
    out += [f'| {" | ".join(str(c) for c in row)} |' for row in rows]
    return '\n'.join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--build', default=str(REPO / 'build-release'))
    ap.add_argument('--short', action='store_true', help='a few MB, to check it works')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--logins', type=int, default=30)
    ap.add_argument('--output')
    args = ap.parse_args()
    tokend = str(Path(args.build).resolve() / 'src' / 'tokend')
    rounds, logins = (1, 5) if args.short else (args.rounds, args.logins)
    work = Path(tempfile.mkdtemp(prefix='tokend-bench-tunnel-'))
    try:
        with AuthServer(work / 'authserver') as srv, dovecot_for(srv) as dc:
            count, total = seed(dc, SHORT_MIX if args.short else MIX)
            log(f'INBOX: {count} messages, {total / MB:.1f} MB')
            env, config = sign_in(work, tokend, srv, dc)
            maildir, direct, tunnel = mbsync_configs(work, tokend, config, srv, dc)
            times = {'direct': [], 'tunnel': []}
            for rnd in range(rounds + 1):  # round 0 warms the caches
                for name, rc in (('direct', direct), ('tunnel', tunnel)):
                    t = sync_once(rc, maildir, env)
                    if maildir_count(maildir) != count:
                        raise SystemExit(f'{name}: {maildir_count(maildir)} of {count} synced')
                    if rnd:
                        times[name].append(t)
                    log(f'round {rnd} {name}: {t:.2f} s ({total / MB / t:.1f} MB/s)')
            (work / 'tunnel-time').write_text('')
            t = sync_once(tunnel, maildir, env)
            rss_kib, user, sys_ = (float(x) for x in
                                   (work / 'tunnel-time').read_text().split()[:3])
            token = (work / 'state' / 'tokend' / 'work' / 'token').read_text().strip()
            tl, cl = [], []
            for _ in range(logins):
                cl.append(curl_login_once(dc, srv, token, env))
                tl.append(tunnel_login_once(tokend, config, env))
            md, mt = statistics.median(times['direct']), statistics.median(times['tunnel'])
            ratio = md / mt
            lc, lt = statistics.median(cl), statistics.median(tl)
            rows = [
                (1, f'mbsync through `tokend tunnel`: {mt:.2f} s, {total / MB / mt:.1f} MB/s',
                 f'mbsync direct TLS + XOAUTH2: {md:.2f} s, {total / MB / md:.1f} MB/s',
                 f'{ratio:.3f}x throughput ({min(times["direct"]) / max(times["tunnel"]):.3f}'
                 f'-{max(times["direct"]) / min(times["tunnel"]):.3f})', '>= 0.95x'),
                (2, f'`tokend tunnel` to NOOP answered: {lt * 1000:.1f} ms',
                 f'`curl` imaps login + NOOP, same token: {lc * 1000:.1f} ms',
                 f'{lt / lc:.3f}x time', '<= 1.2x'),
                (3, 'tunnel peak RSS; CPU per relayed MB', '—',
                 f'{rss_kib / 1024:.1f} MiB; {(user + sys_) * 1000 / (total / MB):.2f} ms/MB '
                 f'(user {user:.2f} s + sys {sys_:.2f} s for {total / MB:.0f} MB)',
                 '<= 16 MiB; reported'),
            ]
            text = (f'Tunnel benchmark: {count} messages, {total / MB:.1f} MB, '
                    f'{rounds} rounds, {logins} logins each\n\n{table(rows)}\n')
            print(text)
            if args.output:
                Path(args.output).write_text(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
