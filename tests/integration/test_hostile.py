"""A hostile or broken token endpoint.  Each case is one row: what the server
does, the exit status tokend(1) documents for it, words of the one-line
message, and a time bound.  Every row runs `tokend refresh --force` on an
account with stored tokens (a few run `obtain`'s code redemption instead), and
afterwards the stored tokens are byte-identical and state.json still parses.

The cases that take tokend's whole 30 s request bound (a server that never
answers, trickles) run in the background from the start of the module, so the
module costs about one such bound, not one per case."""

import contextlib
import dataclasses
import gzip
import json
import os
import shutil
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Callable

import pytest

from conftest import (EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_OK, EX_TEMPFAIL, REPO, SANITIZER,
                      Tokend, stored_token)
from harness import hostile
from harness.authserver import make_certs
from harness.hostile import RawServer
from harness.scripted import Reply, ScriptedEndpoint

FOLLOW = REPO / 'tests' / 'harness' / 'follow-redirects'
ACCESS = 'hostile-seed-access-0123456789'
REFRESH = 'hostile-seed-refresh-0123456789'
MIB = 1024 * 1024
FAST = 10          # seconds: a row that needs no network wait (usually < 0.3 s)
REQUEST_BOUND = 40  # tokend's request timeout is 30 s; allow scheduling noise
# Peak memory against a 100 MB answer.  The normal build needs about 14 MiB
# whatever the answer; under ASan the same run takes 26 to 42 MiB (shadow
# memory, redzones, the quarantine of freed blocks), depending on the
# machine, so a fixed bound means nothing there.  What every build can show
# is that the peak does not grow with the answer: the same run against an
# answer just over tokend's 1 MiB limit (SMALL, the same refusal) is the
# yardstick, and reading the 100 MB into memory would add over 100 MiB.
PEAK_BOUND_KIB = 32 * 1024   # the normal build only
SMALL = 2 * MIB
GROWTH = 1.5                 # the 100 MB run's peak over the SMALL run's, at most


# Certificates ---------------------------------------------------------------

@dataclass
class Certs:
    ca: str            # the CA tokend trusts (ca_file)
    cert: str          # 127.0.0.1 + localhost, from that CA
    key: str
    other_ca_leaf: tuple   # 127.0.0.1, from a CA tokend does not know
    wrong_name: tuple      # from the trusted CA, for wrong.example only
    self_signed: tuple     # 127.0.0.1, self-signed


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp('hostile-certs')
    for sub in ('good', 'other'):
        (d / sub).mkdir()
    ca, cert, key = make_certs(d / 'good')
    _, ocert, okey = make_certs(d / 'other')
    return Certs(ca, cert, key, (ocert, okey),
                 hostile.make_leaf(d / 'good', d / 'wrong', 'wrong.example',
                                   san='DNS:wrong.example'),
                 hostile.self_signed(d / 'self'))


# An account with stored tokens ----------------------------------------------

def authorize_redirect(req):
    """The authorization endpoint after a successful sign-in."""
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.path).query))
    params = {'code': 'hostile-code-' + os.urandom(6).hex(), 'state': q['state']}
    return Reply(302, b'', {'Location': q['redirect_uri'] + '?' + urllib.parse.urlencode(params)})


def success(access=ACCESS, refresh=REFRESH, **extra):
    body = {'access_token': access, 'token_type': 'Bearer', 'expires_in': 3600,
            'refresh_token': refresh, 'scope': 'openid offline_access mail.imap'}
    body.update(extra)
    return Reply(200, body)


def setup_account(home, certs, stack, ep=None):
    """A tokend home and a TLS scripted provider (authorize + token) in front
    (a fresh one, or ep reset to answer success)."""
    tokend = Tokend(home)
    if ep is None:
        ep = stack.enter_context(ScriptedEndpoint(tls=(certs.cert, certs.key)))
    ep.script('/authorize', authorize_redirect)
    ep.script('/token', success())
    tokend.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=certs.ca)
    tokend.account(provider='generic', client_id='hostile-client',
                   authorize_url=ep.url('/authorize'), token_url=ep.url('/token'),
                   scopes='openid offline_access mail.imap', username='alice',
                   ca_file=certs.ca, store='file', login_timeout=20)
    return tokend, ep


def seed(tokend):
    r = tokend.run('obtain', 'work', timeout=60)
    assert r.returncode == EX_OK, r.stderr
    return snapshot(tokend)


@pytest.fixture(scope='module')
def template(tmp_path_factory, certs):
    """One real sign-in; every row starts from a copy of its state folder
    (tokens, state.json, modes), which saves a sign-in per row."""
    home = tmp_path_factory.mktemp('seeded')
    with contextlib.ExitStack() as stack:
        tokend, _ = setup_account(home, certs, stack)
        seed(tokend)
    return home


@pytest.fixture(scope='module')
def provider(certs):
    """The well-behaved provider the rows share (a scripted endpoint's
    shutdown costs half a second)."""
    with ScriptedEndpoint(tls=(certs.cert, certs.key)) as ep:
        yield ep


def seeded_account(template, home, certs, stack, ep=None):
    shutil.copytree(template / 'state', Path(home) / 'state', symlinks=True)
    # The rows move the token endpoint (another scripted server); a state
    # and a stored token that do not say where the token came from (as
    # written before tokend recorded it) let the copied sign-in go there.
    state = Path(home) / 'state' / 'tokend' / 'work' / 'state.json'
    values = json.loads(state.read_text())
    for key in ('refresh_token_client_id', 'refresh_token_issuer', 'refresh_token_url'):
        values.pop(key, None)
    state.write_text(json.dumps(values))
    entry = Path(home) / 'state' / 'tokend' / 'work' / 'refresh_token'
    entry.write_text(stored_token(entry.read_text()))
    tokend, ep = setup_account(home, certs, stack, ep)
    assert tokend.stored_refresh_token() == REFRESH
    return tokend, ep, snapshot(tokend)


def snapshot(tokend):
    files = {}
    for f in (tokend.token_file(), tokend.refresh_token_file()):
        files[f] = (f.read_bytes(), os.stat(f).st_mode) if f.exists() else None
    return files


def assert_untouched(tokend, before):
    assert snapshot(tokend) == before, 'a stored token was changed'
    state = tokend.state / 'work' / 'state.json'
    if state.exists():
        json.loads(state.read_text())
    leftovers = [p.name for p in (tokend.state / 'work').iterdir() if '.tmp-' in p.name]
    assert not leftovers, leftovers


def assert_one_line(stderr, words, account='work'):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'tokend: {account}: '), stderr
    assert len(lines[0]) < 600, lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# The table --------------------------------------------------------------------

@dataclass
class Case:
    name: str
    serve: object          # a Reply for the scripted endpoint, or a callable(ctx) -> token_url
    status: int
    words: list
    bound: float = FAST
    check: Callable = None  # check(ctx, measured) after the run
    small: object = None    # serve, with a SMALL answer: the peak must not grow from it


@dataclass
class Ctx:
    certs: Certs
    ep: ScriptedEndpoint
    stack: contextlib.ExitStack
    servers: dict = field(default_factory=dict)


def raw(behaviour, tls=True, key='raw'):
    def serve(ctx):
        c = ctx.certs
        srv = ctx.stack.enter_context(RawServer(behaviour, tls=(c.cert, c.key) if tls else None))
        ctx.servers[key] = srv
        return srv.url('/token')
    return serve


def tls_with(which):
    """A scripted endpoint answering success, behind a certificate tokend must refuse."""
    def serve(ctx):
        pair = getattr(ctx.certs, which)
        other = ctx.stack.enter_context(ScriptedEndpoint(tls=pair))
        other.script('/token', success(access='must-not-be-taken'))
        ctx.servers['tls'] = other
        return other.url('/token')
    return serve


def never_contacted(key):
    def check(ctx, m):
        srv = ctx.servers[key]
        assert not getattr(srv, 'requests', []), 'the peer was sent a request'
    return check


def refused(ctx):
    return f'https://127.0.0.1:{hostile.free_port()}/token'


def plain_http_on_https(ctx):
    """https:// in the config, a plain HTTP server at the port."""
    srv = ctx.stack.enter_context(ScriptedEndpoint())
    srv.script('/token', success(access='must-not-be-taken'))
    ctx.servers['plain'] = srv
    return f'https://127.0.0.1:{srv.port}/token'


def redirect(status, to='localhost'):
    """A redirect to another host that would take the refresh token (307/308
    repost the body) and answers success: it must not be followed."""
    def serve(ctx):
        c = ctx.certs
        thief = ctx.stack.enter_context(ScriptedEndpoint(tls=(c.cert, c.key)))
        thief.script('/steal', success(access='stolen-access', refresh='stolen-refresh'))
        ctx.servers['thief'] = thief
        ctx.ep.script('/token', Reply(status, b'', {
            'Location': f'https://{to}:{thief.port}/steal', 'Content-Type': 'text/html'}))
        return ctx.ep.url('/token')
    return serve


def thief_idle(ctx, m):
    assert ctx.servers['thief'].count('/steal') == 0, 'the redirect was followed'


def sent_little(limit):
    def check(ctx, m):
        srv = ctx.servers['raw']
        srv.join_handlers(10)
        print(f'    the server got {srv.sent} bytes out before tokend hung up')
        assert srv.sent < limit, f'{srv.sent} bytes were pulled from the server'
    return check


def check_memory(tokend, ctx, case, m, args, account='work'):
    """A 100 MB body, or its inflation, held in memory would show: the peak
    stays within GROWTH of the same run against a SMALL answer, and in the
    normal build under PEAK_BOUND_KIB too."""
    small = run_case(tokend, ctx, dataclasses.replace(case, name=f'{case.name}, small',
                                                      serve=case.small), *args, account=account)
    assert small.returncode == m.returncode, small.stderr
    assert m.maxrss_kb is not None and small.maxrss_kb is not None, \
        'GNU time wrote no peak-memory figure'
    print(f'    peak memory {m.maxrss_kb} KiB against 100 MiB, {small.maxrss_kb} KiB against '
          f'{SMALL // MIB} MiB ({SANITIZER or "normal build"})')
    assert m.maxrss_kb < small.maxrss_kb * GROWTH, \
        f'the peak memory grew with the answer: {small.maxrss_kb} -> {m.maxrss_kb} KiB'
    if SANITIZER is None:
        assert m.maxrss_kb < PEAK_BOUND_KIB, f'peak memory {m.maxrss_kb} KiB'


def json_reply(body, status=200):
    return Reply(status, body.encode() if isinstance(body, str) else body,
                 {'Content-Type': 'application/json'})


def token_with(**fields):
    """A success response with some fields replaced."""
    body = {'access_token': 'new-access', 'token_type': 'Bearer', 'expires_in': 3600,
            'refresh_token': 'new-refresh'}
    body.update(fields)
    return Reply(200, body)

GZIP_BOMB = hostile.gzip_stream(100 * MIB)
GZIP_SMALL = hostile.gzip_stream(SMALL)
GZIP_JSON = gzip.compress(json.dumps({'access_token': 'gzipped-access', 'token_type': 'Bearer',
                                      'expires_in': 3600}).encode())


def gzip_body(data):
    def b(c):
        c.handshake()
        c.read_request()
        c.send(hostile.head(200, {'Content-Encoding': 'gzip'}, len(data)) + data)
    return b


def body(**how):
    """A 100 MB body sent as `how` says (hostile.send_forever), and the same
    SMALL, for the memory comparison."""
    return dict(serve=raw(hostile.send_forever(**how)), check=sent_little(32 * MIB),
                small=raw(hostile.send_forever(SMALL, **how), key='small'))


def not_http(c):
    c.handshake()
    c.read_request()
    c.send(b'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n' + b'\x00\xff' * 100)


def later_date(seconds):
    return formatdate(time.time() + seconds, usegmt=True)


DEEP = 300000
CASES = [
    # transport
    Case('connection-refused', refused, EX_TEMPFAIL, ['cannot reach 127.0.0.1', 'try again later']),
    Case('reset-before-reply', raw(hostile.reset_before_reply()), EX_TEMPFAIL, ['try again later']),
    Case('reset-mid-body', raw(hostile.reset_mid_body()), EX_TEMPFAIL, ['try again later']),
    Case('closed-mid-body', Reply(200, {'access_token': 'x' * 200, 'expires_in': 3600},
                                  close_after=40), EX_TEMPFAIL, ['try again later']),
    Case('closed-before-reply', raw(hostile.close_before_reply()), EX_TEMPFAIL,
         ['try again later']),
    Case('not-http', raw(not_http), EX_TEMPFAIL, ['try again later']),
    # size
    Case('body-100mb-declared', status=EX_DATAERR, words=['larger than 1048576 bytes'],
         **body(declare_length=True)),
    Case('body-100mb-until-close', status=EX_DATAERR, words=['larger than 1048576 bytes'],
         **body(declare_length=False)),
    Case('body-100mb-chunked', status=EX_DATAERR, words=['larger than 1048576 bytes'],
         **body(chunked=True)),
    Case('body-1mib-plus-1', json_reply(b' ' * MIB + b'{}'), EX_DATAERR,
         ['larger than 1048576 bytes']),
    Case('gzip-bomb', raw(gzip_body(GZIP_BOMB)), EX_DATAERR, ['not a JSON object'],
         small=raw(gzip_body(GZIP_SMALL), key='small')),
    Case('gzip-unasked', Reply(200, GZIP_JSON, {'Content-Encoding': 'gzip',
                                                'Content-Type': 'application/json'}),
         EX_DATAERR, ['not a JSON object']),
    # not JSON, or not an object
    Case('html-200', Reply(200, '<html><body>Please sign in to the proxy</body></html>'),
         EX_DATAERR, ['not a JSON object']),
    Case('html-as-json', json_reply('<html>not json</html>'), EX_DATAERR, ['not a JSON object']),
    Case('empty-200', json_reply(''), EX_DATAERR, ['not a JSON object']),
    Case('empty-204', Reply(204, b''), EX_DATAERR, ['not a JSON object']),
    Case('json-null', json_reply('null'), EX_DATAERR, ['not a JSON object']),
    Case('json-array', json_reply('[{"access_token": "x"}]'), EX_DATAERR, ['not a JSON object']),
    Case('json-string', json_reply('"new-access"'), EX_DATAERR, ['not a JSON object']),
    Case('json-number', json_reply('42'), EX_DATAERR, ['not a JSON object']),
    Case('json-nan-literal', json_reply('{"access_token": "x", "expires_in": NaN}'), EX_DATAERR,
         ['not a JSON object']),
    Case('json-truncated', json_reply('{"access_token": "new-access", "expires_in": 36'),
         EX_DATAERR, ['not a JSON object']),
    Case('json-trailing-garbage', json_reply('{"access_token":"new-access","token_type":"Bearer",'
                                             '"expires_in":3600}<html>proxy</html>'),
         EX_DATAERR, ['not a JSON object']),
    Case('binary-garbage', Reply(200, bytes(range(256)) * 64), EX_DATAERR, ['not a JSON object']),
    # nesting depth bombs
    Case('depth-open-brackets', json_reply('[' * DEEP), EX_DATAERR, ['not a JSON object']),
    Case('depth-balanced-arrays', json_reply('[' * DEEP + ']' * DEEP), EX_DATAERR,
         ['not a JSON object']),
    Case('depth-objects', json_reply('{"a":' * 100000 + '1' + '}' * 100000), EX_DATAERR,
         ['not a JSON object']),
    Case('depth-inside-token', json_reply('{"access_token":"new-access","expires_in":3600,"x":'
                                          + '[' * 5000 + ']' * 5000 + '}'), EX_DATAERR,
         ['not a JSON object']),
    Case('depth-in-error-400', json_reply('{"error":' + '[' * DEEP, status=400), EX_DATAERR,
         ['unexpected HTTP 400']),
    Case('depth-in-error-503', json_reply('[' * DEEP, status=503), EX_TEMPFAIL, ['HTTP 503']),
    # missing fields
    Case('empty-object', json_reply('{}'), EX_DATAERR, ['access_token is missing']),
    Case('only-refresh-token', Reply(200, {'refresh_token': 'new-refresh', 'expires_in': 3600}),
         EX_DATAERR, ['access_token is missing']),
    Case('only-token-type', Reply(200, {'token_type': 'Bearer'}), EX_DATAERR,
         ['access_token is missing']),
    # wrong types, field by field
    *[Case(f'access_token-{n}', token_with(access_token=v), EX_DATAERR, ['access_token'])
      for n, v in [('number', 12345), ('float', 1.5), ('true', True), ('null', None),
                   ('array', ['new-access']), ('object', {'value': 'new-access'})]],
    *[Case(f'refresh_token-{n}', token_with(refresh_token=v), EX_DATAERR, ['refresh_token'])
      for n, v in [('number', 12345), ('true', True), ('array', ['r']), ('object', {'r': 1}),
                   ('empty', '')]],
    *[Case(f'expires_in-{n}', token_with(expires_in=v), EX_DATAERR, ['expires_in'])
      for n, v in [('true', True), ('array', [3600]), ('object', {'s': 3600}), ('empty', ''),
                   ('word', 'soon'), ('nan-string', 'NaN'), ('inf-string', 'Infinity'),
                   ('trailing-junk', '3600s'), ('space', '3600 '), ('negative', -1),
                   ('negative-string', '-3600'), ('zero', 0), ('zero-string', '0'),
                   ('half', 0.5), ('tiny', 1e-300), ('huge', 1e300), ('negative-huge', -1e300),
                   ('int64-overflow', 2 ** 63), ('beyond-a-year', 366 * 86400 + 1),
                   ('huge-string', '9' * 400)]],
    *[Case(f'token_type-{n}', token_with(token_type=v), EX_DATAERR, ['Bearer'])
      for n, v in [('number', 1), ('null', None), ('array', ['Bearer']), ('mac', 'mac'),
                   ('empty', '')]],
    *[Case(f'scope-{n}', token_with(scope=v), EX_DATAERR, ['scope'])
      for n, v in [('number', 1), ('array', ['openid']), ('object', {}), ('true', True)]],
    Case('error-not-a-string-200', Reply(200, {'error': 42, 'access_token': 'new-access'}),
         EX_DATAERR, ['unexpected HTTP 200']),
    Case('error-not-a-string-400', Reply(400, {'error': {'code': 'invalid_grant'},
                                               'error_description': ['x']}),
         EX_DATAERR, ['unexpected HTTP 400']),
    Case('error-codes-wrong-type', Reply(400, {'error': 'invalid_grant', 'error_codes': 'x',
                                               'error_description': 12}),
         EX_NOPERM, ['sign-in needed', 'run: tokend obtain work']),
    Case('error-description-huge', Reply(400, {
        'error': 'invalid_grant', 'error_description': 'AADSTS70008: ' + 'x\r\n\x1b[2J' * 50000}),
         EX_NOPERM, ['AADSTS70008']),
    # bad token values
    Case('access_token-empty', token_with(access_token=''), EX_DATAERR, ['access_token']),
    Case('access_token-space', token_with(access_token='new access'), EX_DATAERR,
         ['access_token']),
    Case('access_token-newline', token_with(access_token='new-access\n'), EX_DATAERR,
         ['access_token']),
    Case('access_token-cr', token_with(access_token='new-access\r'), EX_DATAERR,
         ['access_token']),
    Case('access_token-non-ascii', token_with(access_token='new-äccess'), EX_DATAERR,
         ['access_token']),
    Case('access_token-too-long', token_with(access_token='a' * 9001), EX_DATAERR,
         ['access_token']),
    Case('access_token-embedded-nul', token_with(access_token='new-access\u0000tail'),
         EX_DATAERR, ['malformed token response']),
    Case('access_token-raw-nul', json_reply(b'{"access_token":"new-access\x00tail",'
                                            b'"token_type":"Bearer","expires_in":3600}'),
         EX_DATAERR, ['malformed token response']),
    Case('refresh_token-embedded-nul', token_with(refresh_token='new-refresh\u0000tail'),
         EX_DATAERR, ['malformed token response']),
    Case('refresh_token-huge', token_with(refresh_token='r' * 20000), EX_DATAERR,
         ['refresh_token']),
    # status codes
    *[Case(f'http-{s}', Reply(s, f'<html><body>{s}</body></html>'), EX_TEMPFAIL, [f'HTTP {s}'])
      for s in (500, 502, 503, 504, 599)],
    # RFC 6749 wants a JSON error; glewlwyd's refused refresh token is this.
    Case('http-400-empty', Reply(400, b''), EX_NOPERM, ['HTTP 400', 'run: tokend obtain work']),
    Case('http-401-html', Reply(401, '<html>who are you</html>'), EX_DATAERR,
         ['unexpected HTTP 401']),
    Case('429-retry-after', Reply(429, b'', {'Retry-After': '30'}), EX_TEMPFAIL,
         ['HTTP 429', 'try again in 30 s']),
    Case('429-no-retry-after', Reply(429, '<html>slow down</html>'), EX_TEMPFAIL,
         ['HTTP 429', 'try again later']),
    Case('429-retry-after-date', Reply(429, b'', {'Retry-After': later_date(600)}),
         EX_TEMPFAIL, ['HTTP 429', 'try again in']),
    Case('429-retry-after-huge', Reply(429, b'', {'Retry-After': '99999999999'}), EX_TEMPFAIL,
         ['HTTP 429', 'try again in 86400 s']),
    Case('429-retry-after-garbage', Reply(429, b'', {'Retry-After': 'soon, maybe'}),
         EX_TEMPFAIL, ['HTTP 429', 'try again later']),
    Case('429-retry-after-negative', Reply(429, b'', {'Retry-After': '-5'}), EX_TEMPFAIL,
         ['HTTP 429', 'try again later']),
    # redirects to another host (307/308 would repost the refresh token)
    *[Case(f'redirect-{s}', redirect(s), EX_DATAERR, [f'unexpected HTTP {s}'], check=thief_idle)
      for s in (301, 302, 303, 307, 308)],
    Case('redirect-302-http', Reply(302, b'', {'Location': 'http://example.invalid/steal'}),
         EX_DATAERR, ['unexpected HTTP 302']),
    # TLS
    Case('tls-unknown-ca', tls_with('other_ca_leaf'), EX_TEMPFAIL, ['not trusted'],
         check=never_contacted('tls')),
    Case('tls-wrong-name', tls_with('wrong_name'), EX_TEMPFAIL, ['not trusted'],
         check=never_contacted('tls')),
    Case('tls-self-signed', tls_with('self_signed'), EX_TEMPFAIL, ['not trusted'],
         check=never_contacted('tls')),
    Case('tls-plain-http-server', plain_http_on_https, EX_TEMPFAIL, ['try again later'],
         check=never_contacted('plain')),
]


# Rows that once passed wrongly: cJSON stops at the end of the first value
# and cuts strings at a NUL, so tokend took a truncated token.
def params(cases):
    return [pytest.param(c, id=c.name) for c in cases]


def run_case(tokend, ctx, case, *args, account='work'):
    if isinstance(case.serve, Reply):
        ctx.ep.script('/token', case.serve)
        url = ctx.ep.url('/token')
    else:
        url = case.serve(ctx)
    if url != ctx.ep.url('/token'):
        tokend.accounts[account]['token_url'] = url
        tokend.write_config()
    m = hostile.run_measured(tokend, *(args or ('refresh', '--force', 'work')),
                             timeout=case.bound + 20)
    print(f'ROW {case.name}: exit {m.returncode} in {m.seconds:.2f} s, '
          f'{m.maxrss_kb} KiB; {m.stderr.strip().splitlines()[-1:]}')
    return m


@pytest.mark.parametrize('case', params(CASES))
def test_refresh_against_a_hostile_endpoint(tmp_path, certs, template, provider, case):
    with contextlib.ExitStack() as stack:
        tokend, ep, before = seeded_account(template, tmp_path, certs, stack, provider)
        ctx = Ctx(certs, ep, stack)
        m = run_case(tokend, ctx, case)
        assert m.returncode == case.status, m.stderr
        assert m.seconds < case.bound, m.seconds
        line = assert_one_line(m.stderr, case.words)
        for secret in (ACCESS, REFRESH, 'new-access', 'new-refresh', 'stolen'):
            assert secret not in m.stderr + m.stdout
        assert m.stdout == ''
        assert_untouched(tokend, before)
        if case.check:
            case.check(ctx, m)
        # state.json says what happened, and nothing else changed.
        state = json.loads((tokend.state / 'work' / 'state.json').read_text())
        assert state['last_status'] == case.status
        assert line.startswith('tokend: work: ' + state['last_error'][:40])
        if case.small:
            check_memory(tokend, ctx, case, m, ('refresh', '--force', 'work'))
            assert_untouched(tokend, before)


# Code redemption during obtain --------------------------------------------------

OBTAIN_CASES = [c for c in CASES if c.name in {
    'connection-refused', 'reset-mid-body', 'body-100mb-declared', 'gzip-bomb', 'html-200',
    'depth-balanced-arrays', 'only-refresh-token', 'expires_in-nan-string', 'http-503',
    '429-retry-after', 'redirect-307', 'tls-wrong-name', 'access_token-embedded-nul'}]


@pytest.mark.parametrize('case', params(OBTAIN_CASES))
def test_code_redemption_against_a_hostile_endpoint(tmp_path, certs, template, provider, case):
    """A second sign-in whose code redemption meets the hostile server: the
    tokens of the first sign-in stay as they were."""
    with contextlib.ExitStack() as stack:
        tokend, ep, before = seeded_account(template, tmp_path, certs, stack, provider)
        ctx = Ctx(certs, ep, stack)
        m = run_case(tokend, ctx, case, 'obtain', 'work')
        assert m.returncode == case.status, m.stderr
        assert m.seconds < case.bound + 5, m.seconds
        last = m.stderr.strip().splitlines()[-1]
        assert last.startswith('tokend: work: '), m.stderr
        for w in case.words:
            assert w in last, (w, last)
        assert 'hostile-code-' not in m.stderr
        assert_untouched(tokend, before)
        if case.check:
            case.check(ctx, m)
        if case.small:
            check_memory(tokend, ctx, case, m, ('obtain', 'work'))
            assert_untouched(tokend, before)


def test_obtain_stores_nothing_when_redemption_fails(tmp_path, certs, provider):
    with contextlib.ExitStack() as stack:
        tokend, ep = setup_account(tmp_path, certs, stack, provider)
        ep.script('/token', Reply(200, {'refresh_token': 'new-refresh', 'expires_in': 3600}))
        r = tokend.run('obtain', 'work', timeout=30)
        assert r.returncode == EX_DATAERR, r.stderr
        assert not tokend.token_file().exists()
        assert not tokend.refresh_token_file().exists()


def test_token_requests_ask_for_no_compression(tmp_path, certs, template, provider):
    with contextlib.ExitStack() as stack:
        tokend, ep, _ = seeded_account(template, tmp_path, certs, stack, provider)
        assert tokend.run('refresh', '--force', 'work').returncode == EX_OK
        headers = {k.lower(): v for k, v in ep.last('/token').headers.items()}
        assert 'accept-encoding' not in headers, headers
        assert 'te' not in headers, headers


def test_verbose_server_words_are_one_sanitised_line(tmp_path, certs, template, provider):
    """-v shows the server's description: folded to one line, without the
    terminal escapes a hostile server put in it."""
    with contextlib.ExitStack() as stack:
        tokend, ep, before = seeded_account(template, tmp_path, certs, stack, provider)
        ep.script('/token', Reply(400, {
            'error': 'invalid_grant',
            'error_description': 'AADSTS70008: gone\r\n\x1b]0;pwned\x07\x1b[2J' + 'y' * 100000}))
        r = tokend.run('-v', 'refresh', '--force', 'work')
        assert r.returncode == EX_NOPERM
        assert '\x1b' not in r.stderr and '\x07' not in r.stderr
        said = [l for l in r.stderr.splitlines() if l.startswith('tokend: server said: ')]
        assert len(said) == 1 and len(said[0]) < 2100, said
        assert_untouched(tokend, before)


# App-only accounts: client credentials and the JWT bearer grant ---------------
# The same hostile servers in front of the new grants.  An app's answer has
# no refresh token: one that comes anyway is dropped, never stored.

APP_ACCESS = 'hostile-app-seed-access-0123456789'
APP_SCOPES = 'mail.imap mail.smtp'


@pytest.fixture(scope='module')
def app_keys(tmp_path_factory):
    from harness.appkeys import AppKeys
    return AppKeys(tmp_path_factory.mktemp('hostile-appkeys'))


def app_success(access=APP_ACCESS, **extra):
    body = {'access_token': access, 'token_type': 'Bearer', 'expires_in': 3600}
    body.update(extra)
    return Reply(200, body)


def app_account(home, certs, ep, keys, grant):
    """A minted app-only account 'box': client credentials with a
    certificate, or a service account acting for its mailbox."""
    tokend = Tokend(home)
    tokend.config.parent.chmod(0o700)
    tokend.env.update(TOKEND_TEST_CA=certs.ca)
    values = dict(provider='generic', grant=grant, token_url=ep.url('/token'),
                  scopes=APP_SCOPES, username='box@example.org', ca_file=certs.ca)
    if grant == 'client_credentials':
        values.update(client_id='hostile-app', client_certificate=keys.cert,
                      client_key=keys.key)
    else:
        values.update(service_account_file=keys.service_account('sa@hostile.example'))
    tokend.account('box', **values)
    ep.script('/token', app_success())
    r = tokend.run('token', 'box')
    assert r.returncode == EX_OK and r.stdout == APP_ACCESS + '\n', r.stderr
    return tokend, app_snapshot(tokend)


def app_snapshot(tokend):
    """The account's and every app's token file and state, byte for byte
    (the state by its expiry: a failure is recorded in it).  Lock files, a
    failed mint's only trace in a new app folder, are left out."""
    files = [f for f in (*tokend.state.glob('box/*'), *tokend.state.glob('.apps/*/*'))
             if f.name != 'lock']
    return {f: f.read_bytes() for f in files if f.is_file() and '.tmp-' not in f.name
            and f.name != 'state.json'} | {
        f: json.loads(f.read_text())['expires_at'] for f in files if f.name == 'state.json'}


def no_refresh_token_kept(tokend, *values):
    """No refresh token file or store entry anywhere, and no file holds it."""
    assert not [p for p in tokend.home.rglob('*refresh_token*')], \
        list(tokend.home.rglob('*refresh_token*'))
    for v in values:
        assert hostile.files_containing(tokend.home, v) == []


APP_CASES = [c for c in CASES if c.name in {
    'connection-refused', 'reset-mid-body', 'closed-mid-body', 'not-http',
    'body-100mb-declared', 'body-100mb-until-close', 'body-100mb-chunked', 'body-1mib-plus-1',
    'gzip-bomb', 'gzip-unasked', 'html-200', 'empty-200', 'json-trailing-garbage',
    'depth-balanced-arrays', 'depth-objects', 'empty-object', 'only-token-type',
    'access_token-number', 'access_token-too-long', 'access_token-embedded-nul',
    'expires_in-word', 'expires_in-negative', 'expires_in-zero', 'expires_in-huge',
    'expires_in-beyond-a-year', 'token_type-mac', 'token_type-number', 'token_type-null',
    'token_type-empty', 'scope-array', 'http-503', 'http-400-empty', 'http-401-html',
    '429-retry-after', 'redirect-307', 'redirect-308', 'tls-wrong-name', 'tls-self-signed',
}] + [
    # An app's credentials refused without a word (glewlwyd does this).
    Case('http-401-empty', Reply(401, b''), EX_CONFIG, ["refused the app's credentials",
                                                       'HTTP 401', 'certificate or key']),
    Case('http-403-empty', Reply(403, b''), EX_CONFIG, ["refused the app's credentials",
                                                       'HTTP 403']),
    Case('token_type-dpop', app_success(token_type='DPoP'), EX_DATAERR, ['Bearer']),
    Case('token_type-n_a', app_success(token_type='N_A'), EX_DATAERR, ['Bearer']),
    Case('refresh_token-only', Reply(200, {'refresh_token': 'app-refresh-never-kept',
                                           'expires_in': 3600, 'token_type': 'Bearer'}),
         EX_DATAERR, ['access_token is missing']),
]


def app_case_params():
    for case in APP_CASES:
        yield pytest.param(case, 'client_credentials', id=f'cc-{case.name}')
    for name in ('body-100mb-chunked', 'gzip-bomb', 'token_type-mac', 'expires_in-word',
                 'http-400-empty', 'http-401-empty', 'redirect-307'):
        case = next(c for c in APP_CASES if c.name == name)
        yield pytest.param(case, 'jwt_bearer', id=f'bearer-{case.name}')


@pytest.mark.parametrize('case,grant', app_case_params())
def test_app_grant_against_a_hostile_endpoint(tmp_path, certs, provider, app_keys, case, grant):
    """A forced mint for an app-only account meets the hostile server: one
    line, the documented exit status, the minted token kept as it was."""
    with contextlib.ExitStack() as stack:
        tokend, before = app_account(tmp_path, certs, provider, app_keys, grant)
        ctx = Ctx(certs, provider, stack)
        m = run_case(tokend, ctx, case, 'refresh', '--force', 'box', account='box')
        assert m.returncode == case.status, m.stderr
        assert m.seconds < case.bound, m.seconds
        # An app has no sign-in to redo: the rows' "run: tokend obtain" does not apply.
        assert_one_line(m.stderr, [w for w in case.words if 'tokend obtain' not in w],
                        account='box')
        assert 'tokend obtain' not in m.stderr
        for secret in (APP_ACCESS, 'new-access', 'new-refresh', 'stolen', 'app-refresh'):
            assert secret not in m.stderr + m.stdout
        assert 'PRIVATE KEY' not in m.stderr
        assert app_snapshot(tokend) == before
        if case.check:
            case.check(ctx, m)
        if case.small:
            check_memory(tokend, ctx, case, m, ('refresh', '--force', 'box'), account='box')
        no_refresh_token_kept(tokend, 'new-refresh', 'stolen-refresh', 'app-refresh-never-kept')


@pytest.mark.parametrize('grant', ['client_credentials', 'jwt_bearer'])
@pytest.mark.parametrize('shape', ['string', 'rotating', 'with-refresh-expiry'])
def test_app_answer_with_a_refresh_token_stores_none(tmp_path, certs, provider, app_keys, grant,
                                                     shape):
    """A server that hands an app a refresh token: the access token is taken,
    the refresh token dropped, in no file and no store; the next mint asks
    with the app's own grant again, never with that refresh token."""
    tokend, _ = app_account(tmp_path, certs, provider, app_keys, grant)
    extra = {'string': {'refresh_token': 'app-refresh-never-kept'},
             'rotating': {'refresh_token': 'app-refresh-never-kept', 'id_token': 'x.y.z'},
             'with-refresh-expiry': {'refresh_token': 'app-refresh-never-kept',
                                     'refresh_token_expires_in': 86400}}[shape]
    provider.script('/token', app_success('app-access-2', **extra))
    r = tokend.run('refresh', '--force', 'box')
    assert r.returncode == EX_OK, r.stderr
    assert tokend.token_file('box').read_text() == 'app-access-2\n'
    assert 'app-refresh-never-kept' not in r.stderr + r.stdout
    no_refresh_token_kept(tokend, 'app-refresh-never-kept')
    state = json.loads((tokend.state / 'box' / 'state.json').read_text())
    assert state['app_only'] and 'store' not in state
    assert tokend.run('status', 'box').returncode == EX_OK
    provider.script('/token', app_success('app-access-3'))
    assert tokend.run('refresh', '--force', 'box').returncode == EX_OK
    form = provider.last('/token').form
    assert 'refresh_token' not in form
    assert form['grant_type'] == [{'client_credentials': 'client_credentials',
                                   'jwt_bearer': 'urn:ietf:params:oauth:grant-type:jwt-bearer'}
                                  [grant]]
    assert tokend.run('token', 'box').stdout == 'app-access-3\n'


def test_app_answer_without_expires_in_lasts_an_hour(tmp_path, certs, provider, app_keys):
    """RFC 6749 leaves expires_in optional: tokend takes an hour (as
    tokend.conf(5) says), and the launcher serves the token until then."""
    tokend, _ = app_account(tmp_path, certs, provider, app_keys, 'client_credentials')
    provider.script('/token', Reply(200, {'access_token': 'app-no-expiry', 'token_type': 'bearer'}))
    r = tokend.run('refresh', '--force', 'box')
    assert r.returncode == EX_OK, r.stderr
    for state in (tokend.state / 'box' / 'state.json', *tokend.state.glob('.apps/*/state.json')):
        st = json.loads(state.read_text())
        assert st['expires_at'] - st['obtained_at'] == 3600, st
    count = provider.count('/token')
    assert tokend.run('token', 'box').stdout == 'app-no-expiry\n'
    assert provider.count('/token') == count


# The slow ones, in the background ------------------------------------------------

SLOW = [
    # name, behaviour (None: special), exit, words, lower bound, upper bound
    ('never-answers', hostile.never_answer(), EX_TEMPFAIL, ['did not answer in time'], 25,
     REQUEST_BOUND),
    ('trickle-body', hostile.trickle_body(1.0), EX_TEMPFAIL, ['did not answer in time'], 25,
     REQUEST_BOUND),
    ('trickle-head', hostile.trickle_head(1.0), EX_TEMPFAIL, ['did not answer in time'], 25,
     REQUEST_BOUND),
    ('tls-handshake-never', hostile.no_handshake(), EX_TEMPFAIL, ['did not answer in time'], 8,
     20),
    ('syn-dropped', None, EX_TEMPFAIL, ['did not answer in time'], 8, 20),
]


class Background:
    def __init__(self, name, tokend, before, stack):
        self.name, self.tokend, self.before, self.stack = name, tokend, before, stack
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.result = hostile.run_measured(self.tokend, 'refresh', '--force', 'work',
                                           timeout=REQUEST_BOUND + 20)


@pytest.fixture(scope='module', autouse=True)
def slow_runs(request, tmp_path_factory):
    """Starts every slow case when the module starts (when any is selected);
    the tests at the end collect them."""
    runs = {}
    if not any(getattr(i, 'originalname', '') == 'test_slow_endpoint_is_abandoned_in_time'
               for i in request.session.items):
        yield runs
        return
    certs = request.getfixturevalue('certs')
    template = request.getfixturevalue('template')
    provider = request.getfixturevalue('provider')
    with contextlib.ExitStack() as stack:
        for name, behaviour, *_ in SLOW:
            tokend, ep, before = seeded_account(template, tmp_path_factory.mktemp(name), certs,
                                                stack, provider)
            if behaviour is None:
                port, close = hostile.syn_blackhole()
                stack.callback(close)
                url = f'https://127.0.0.1:{port}/token'
            else:
                srv = stack.enter_context(RawServer(behaviour, tls=(certs.cert, certs.key)))
                url = srv.url('/token')
            tokend.accounts['work']['token_url'] = url
            tokend.write_config()
            runs[name] = Background(name, tokend, before, stack)
        for run in runs.values():
            run.thread.start()
        yield runs
        for run in runs.values():
            run.thread.join(REQUEST_BOUND + 30)


@pytest.mark.parametrize('name,behaviour,status,words,low,high', SLOW, ids=[s[0] for s in SLOW])
def test_slow_endpoint_is_abandoned_in_time(slow_runs, name, behaviour, status, words, low,
                                            high):
    run = slow_runs[name]
    run.thread.join(high + 30)
    m = run.result
    assert m is not None, 'tokend did not finish'
    print(f'ROW {name}: exit {m.returncode} in {m.seconds:.2f} s; {m.stderr.strip()}')
    assert m.returncode == status, m.stderr
    assert m.seconds < high, m.seconds
    assert m.seconds > low, f'gave up after only {m.seconds:.1f} s'
    assert_one_line(m.stderr, words)
    assert_untouched(run.tokend, run.before)
