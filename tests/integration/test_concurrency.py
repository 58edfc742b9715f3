"""Many tokend processes at once, and readers of the token file during
refreshes, against the real authorization server (which rotates refresh
tokens and revokes the whole grant when a consumed one is replayed, so a
second refresh with a stale refresh token would be a lockout).

How every round is made to need exactly one refresh.  Freshness comes from
state.json: the token is fresh while expires_at - now > margin (min_validity
for `token`, refresh_margin for `refresh`), in whole seconds, and only while
the token file is where the configuration says.  A round must start with a
token that every caller finds stale and end with one they all find fresh:

* Real expiry (3 rounds of 64 processes): a private server issues access
  tokens for 5 s, margins are 0; each round waits until the server itself
  says the token has expired, then 64 processes start at once.  The new
  token then stays fresh for at least 4 s, longer than a round takes even on
  a loaded machine (up to 1.5 s seen).  This is the literal case, but costs
  5 s a round.
* Many rounds (default 200 rounds of 8 processes, then 10 rounds of 64;
  TOKEND_LONG=1: 200 rounds of 64): the configuration's token_file
  alternates between two paths from one round to the next, as when a user
  moves the file.  The state was written for the other file (and another
  configuration), so the cached token no longer counts as fresh for any
  caller, launcher or engine; the one refresh writes the new path and the
  state for it, and the token is fresh again for everyone.  Rounds run back
  to back (0.1-0.4 s each on an idle machine).  Shrinking margins cannot do
  this: a token refreshed in the same second as the last one has the same
  expires_at.

In each round half the processes run `tokend token work` and half `tokend
refresh work`; they are released together from a pipe (each waits in `sh`
for EOF, then execs tokend).  Every round: exactly one refresh_token request
reaches the server (its own counter, before and after), every process exits
0, every `token` caller printed the same token, which is the token file and
which the server's introspection says is active, and the stored refresh
token is the newest (introspection says it is active; every older one has
been consumed).  At the end `tokend refresh --force` still works.

The reader test polls the token file (open, read, close) in a tight loop in
another process while N `tokend refresh --force` run one after another:
every read must be one of the tokens written, with its newline, never empty,
partial, missing or with a CR.  N = 1000 takes about 19 s on an idle
2-core machine (and several times that when others run tests beside it), so
the default is 200 and TOKEND_LONG=1 runs 1000.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EX_OK, TOKEND

LONG = os.environ.get('TOKEND_LONG') == '1'
ROUND_PLANS = [(200, 64)] if LONG else [(200, 8), (10, 64)]
EXPIRY_ROUNDS, EXPIRY_PROCS, EXPIRY_TTL = 3, 64, 5
READER_REFRESHES = 1000 if LONG else 200

TOKEN_LINE = re.compile(r'[\x21-\x7e]+\n')


def refresh_requests(server):
    return server.stats()['token'].get('refresh_token', 0)


def token_file(t):
    """The token file the configuration names now."""
    configured = t.accounts['work'].get('token_file')
    return Path(configured) if configured else t.token_file()


def run_together(t, n):
    """n tokend processes, even ones `token work`, odd ones `refresh work`,
    released at the same moment; returns [(verb, exit status, stdout, stderr)]."""
    gate_r, gate_w = os.pipe()
    procs = []
    try:
        for i in range(n):
            verb = 'token' if i % 2 == 0 else 'refresh'
            procs.append((verb, subprocess.Popen(
                ['/bin/sh', '-c', 'read _; exec "$@"', 'sh', str(TOKEND), verb, 'work'],
                stdin=gate_r, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=t.env)))
    finally:
        os.close(gate_r)
        os.close(gate_w)  # EOF: every `read` returns, every process execs tokend
    results = []
    for verb, p in procs:
        out, err = p.communicate(timeout=120)
        results.append((verb, p.returncode, out, err))
    return results


def check_round(t, server, n, what):
    """One round of n processes; returns the token they got."""
    before = refresh_requests(server)
    rt_before = t.stored_refresh_token()
    results = run_together(t, n)
    failed = [(v, rc, err) for v, rc, _, err in results if rc != EX_OK]
    assert not failed, f'{what}: {len(failed)} of {n} failed, e.g. {failed[:3]}'
    assert refresh_requests(server) - before == 1, f'{what}: not exactly one refresh request'
    printed = {out for verb, _, out, _ in results if verb == 'token'}
    assert len(printed) == 1, f'{what}: `token` callers printed {len(printed)} tokens'
    token = printed.pop()
    assert TOKEN_LINE.fullmatch(token)
    assert token == token_file(t).read_text(), what
    assert all(out == '' for verb, _, out, _ in results if verb == 'refresh')
    assert server.introspect(token.strip())['active'], what
    rt = t.stored_refresh_token()
    assert rt != rt_before and server.introspect(rt)['active'], \
        f'{what}: the stored refresh token is not the newest'
    return token


def final_force_refresh(t, server):
    before = refresh_requests(server)
    r = t.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert refresh_requests(server) == before + 1


def test_callers_of_a_just_expired_token_send_one_refresh(tokend, make_authserver):
    srv = make_authserver(access_ttl=EXPIRY_TTL)
    tokend.server = srv
    tokend.env['TOKEND_TEST_CA'] = srv.ca_file
    tokend.account(server=srv, min_validity=0, refresh_margin=0)
    tokend.obtain()
    token = tokend.token_file().read_text()
    for i in range(EXPIRY_ROUNDS):
        tokend.wait_expired(srv, token)
        start = time.monotonic()
        token = check_round(tokend, srv, EXPIRY_PROCS, f'expired token, round {i}')
        print(f'\nround {i}: {EXPIRY_PROCS} processes, 1 refresh request, '
              f'{time.monotonic() - start:.2f} s')
    final_force_refresh(tokend, srv)


@pytest.mark.parametrize('rounds,procs', ROUND_PLANS)
def test_every_round_sends_exactly_one_refresh(tokend, make_authserver, rounds, procs):
    srv = make_authserver()
    tokend.server = srv
    tokend.env['TOKEND_TEST_CA'] = srv.ca_file
    files = [tokend.home / 'token-a', tokend.home / 'token-b']
    tokend.account(server=srv, token_file=files[0])
    tokend.obtain()
    first = refresh_requests(srv)
    start = time.monotonic()
    slowest = 0
    for i in range(rounds):
        # The state names the other file: every caller needs a refresh.
        tokend.accounts['work']['token_file'] = files[(i + 1) % 2]
        tokend.write_config()
        t0 = time.monotonic()
        check_round(tokend, srv, procs, f'round {i}')
        slowest = max(slowest, time.monotonic() - t0)
    elapsed = time.monotonic() - start
    assert refresh_requests(srv) - first == rounds
    final_force_refresh(tokend, srv)
    print(f'\n{rounds} rounds of {procs} processes ({rounds * procs} runs, no lockout): '
          f'{rounds} refresh requests, {elapsed:.1f} s, slowest round {slowest:.2f} s')


READER = r'''
import json, os, sys
path, stop = sys.argv[1], sys.argv[2]
seen, errors, reads = {}, [], 0
print('ready', flush=True)
while not os.path.exists(stop):
    for _ in range(100):
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as e:
            errors.append(e.strerror)
            continue
        reads += 1
        seen[data] = seen.get(data, 0) + 1
json.dump({'reads': reads, 'errors': errors[:10], 'n_errors': len(errors),
           'seen': [k.decode('latin-1') for k in seen]}, sys.stdout)
'''


def test_reader_never_sees_a_partial_token(tokend, authserver):
    tokend.account()
    tokend.obtain()
    written = {tokend.token_file().read_text()}
    stop = tokend.home / 'stop-reading'
    reader = subprocess.Popen([sys.executable, '-c', READER, str(tokend.token_file()), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline() == 'ready\n'
        start = time.monotonic()
        for i in range(READER_REFRESHES):
            r = tokend.run('refresh', '--force', 'work')
            assert r.returncode == EX_OK, f'refresh {i}: {r.stderr}'
            written.add(tokend.token_file().read_text())
        elapsed = time.monotonic() - start
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    result = json.loads(out)
    seen = set(result['seen'])
    assert result['n_errors'] == 0, result['errors']
    bad = [v for v in seen if not TOKEN_LINE.fullmatch(v)]
    assert not bad, f'malformed reads: {[v[:40] for v in bad[:5]]}'
    assert seen <= written, f'{len(seen - written)} values read that were never written'
    assert len(written) == READER_REFRESHES + 1
    # The reads did interleave with the refreshes.
    assert len(seen) >= READER_REFRESHES // 10
    print(f'\n{READER_REFRESHES} refreshes in {elapsed:.1f} s '
          f'({elapsed / READER_REFRESHES * 1000:.1f} ms each) while a reader read the token '
          f'file {result["reads"]} times and saw {len(seen)} of the {len(written)} tokens '
          f'written, none broken')
    r = tokend.run('refresh', '--force', 'work')
    assert r.returncode == EX_OK, r.stderr


def bulk_accounts(t, server, n, max_parallel):
    """n signed-in accounts refreshed together, max_parallel at a time; returns
    their tokens and the server's refresh count before."""
    from concurrent.futures import ThreadPoolExecutor
    names = [f'box{i:02d}' for i in range(n)]
    for name in names:
        t.account(name)
    t.write_config(f'[defaults]\nmax_parallel = {max_parallel}\n')
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(t.obtain, names))
    before = {name: (t.token_file(name).read_text(), t.stored_refresh_token(name))
              for name in names}
    return names, before, refresh_requests(server)


def check_bulk(t, server, names, before, count, r):
    assert r.returncode == EX_OK, r.stderr
    assert refresh_requests(server) == count + len(names)
    assert r.stderr.count(': refreshed') == len(names), r.stderr
    for name in names:
        access = t.token_file(name).read_text()
        refresh = t.stored_refresh_token(name)
        assert access != before[name][0] and refresh != before[name][1], name
        assert server.introspect(access.strip())['active'], name
        assert server.introspect(refresh)['active'], name


@pytest.mark.parametrize('limit', ['48:', '48:48'])
def test_bulk_refresh_within_a_low_descriptor_limit(tokend, authserver, limit):
    """40 requests at once hold 40 sockets and 40 locks: more than 48
    descriptors allow.  `refresh` raises the soft limit to the hard one
    (48:, soft only), and where the hard limit is that low too (48:48) does
    fewer at once; without either, saving the answers fails with EMFILE and
    it exits 75."""
    names, before, count = bulk_accounts(tokend, authserver, 40, 40)
    r = subprocess.run(['prlimit', f'--nofile={limit}', str(TOKEND), 'refresh', '--force'],
                       capture_output=True, text=True, timeout=60, env=tokend.env)
    check_bulk(tokend, authserver, names, before, count, r)
