#!/usr/bin/env python3
"""Steps that bench.py runs between timed runs (hyperfine --prepare), outside
the timed region.  Each ends with sync(), so that no write-back started here
lands in the next timed run.

  prepare.py single STATE_JSON
      One curl refresh chain.  STATE_JSON holds {"rt", "form", "out", "url",
      "client_id", "scope"}.  If the previous run left a response in "out",
      its new refresh token (the server rotates them, and revokes the grant
      on replay) replaces "rt"; then the form file for `curl -d @form` is
      written and the response is removed.

  prepare.py bulk STATE_JSON
      The same for N chains at once: {"rts": [...], "out_dir", "config",
      "url", "ca", "client_id", "scope"}; writes a curl -K config with one
      url/data/output per request, separated by `next`.

  prepare.py due STATE_DIR NAMES_FILE [RUNTIME_DIR]
      Makes tokend's accounts due: expires_at in the past in each
      STATE_DIR/NAME/state.json and in the apps' shared tokens
      (RUNTIME_DIR/.apps/*/state.json, system mode's place for them), and
      `due` in the past in every refresh schedule (STATE_DIR/due-*.json),
      as if the clock had moved on.

  prepare.py assertion STATE_JSON
      The form of one client credentials request authenticated by a signed
      client assertion (RFC 7523 2.2, private_key_jwt), built as tokend
      builds it: RS256 with the certificate's x5t#S256 and x5t, iss = sub =
      client_id, aud = the token endpoint, a fresh jti (the server refuses
      a jti it has seen), iat/nbf now, exp 300 s on; signed with openssl.
      STATE_JSON holds {"key", "cert", "client_id", "url", "scope", "form",
      "out"}; a response left in "out" must hold an access token.

Exits 1 with a message when a response holds no new refresh token (the
chain is broken: the benchmark would be measuring errors).
"""

import base64
import hashlib
import json
import secrets
import subprocess
import os
import sys
import time
import urllib.parse
from pathlib import Path


def form(rt, client_id, scope):
    return urllib.parse.urlencode([('grant_type', 'refresh_token'), ('refresh_token', rt),
                                   ('scope', scope), ('client_id', client_id)])


def next_rt(out_path):
    try:
        body = json.loads(Path(out_path).read_text())
    except (OSError, ValueError) as e:
        sys.exit(f'prepare: {out_path}: no usable response ({e})')
    rt = body.get('refresh_token') if isinstance(body, dict) else None
    if not rt or 'access_token' not in body:
        sys.exit(f'prepare: {out_path}: no new refresh token (error={body.get("error")!r}, '
                 f'{body.get("error_description")!r})')
    return rt


def write_json(path, obj):
    tmp = f'{path}.tmp'
    Path(tmp).write_text(json.dumps(obj))
    os.replace(tmp, path)


def single(state_path):
    s = json.loads(Path(state_path).read_text())
    if os.path.exists(s['out']):
        s['rt'] = next_rt(s['out'])
        os.unlink(s['out'])
        write_json(state_path, s)
    Path(s['form']).write_text(form(s['rt'], s['client_id'], s['scope']))


def bulk(state_path):
    s = json.loads(Path(state_path).read_text())
    out_dir = Path(s['out_dir'])
    outs = [out_dir / f'{i}.json' for i in range(len(s['rts']))]
    present = [o.exists() for o in outs]
    if any(present):
        if not all(present):
            sys.exit(f'prepare: {out_dir}: {present.count(False)} of {len(outs)} responses '
                     f'are missing')
        s['rts'] = [next_rt(o) for o in outs]
        for o in outs:
            o.unlink()
        write_json(state_path, s)
    lines = []
    for i, rt in enumerate(s['rts']):
        if i:
            lines.append('next')
        lines += [f'url = "{s["url"]}"', f'cacert = "{s["ca"]}"', 'silent',
                  f'data = "{form(rt, s["client_id"], s["scope"])}"',
                  f'output = "{outs[i]}"']
    Path(s['config']).write_text('\n'.join(lines) + '\n')


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def client_assertion(s):
    der = subprocess.run(['openssl', 'x509', '-in', s['cert'], '-outform', 'DER'],
                         check=True, capture_output=True).stdout
    now = int(time.time())
    header = {'alg': 'RS256', 'typ': 'JWT', 'x5t#S256': b64url(hashlib.sha256(der).digest()),
              'x5t': b64url(hashlib.sha1(der).digest())}
    claims = {'iss': s['client_id'], 'sub': s['client_id'], 'aud': s['url'],
              'jti': secrets.token_urlsafe(18), 'iat': now, 'nbf': now, 'exp': now + 300}
    signing_input = (b64url(json.dumps(header, separators=(',', ':')).encode()) + '.' +
                     b64url(json.dumps(claims, separators=(',', ':')).encode()))
    sig = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', s['key']],
                         input=signing_input.encode(), check=True, capture_output=True).stdout
    return signing_input + '.' + b64url(sig)


def assertion(state_path):
    s = json.loads(Path(state_path).read_text())
    if os.path.exists(s['out']):
        body = json.loads(Path(s['out']).read_text())
        if not isinstance(body, dict) or 'access_token' not in body:
            sys.exit(f'prepare: {s["out"]}: no access token ({body!r:.300})')
        os.unlink(s['out'])
    Path(s['form']).write_text(urllib.parse.urlencode([
        ('grant_type', 'client_credentials'), ('scope', s['scope']),
        ('client_id', s['client_id']),
        ('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'),
        ('client_assertion', client_assertion(s))]))


def due(state_dir, names_file, runtime_dir=None):
    past = int(time.time()) - 60
    for name in Path(names_file).read_text().split():
        p = Path(state_dir) / name / 'state.json'
        st = json.loads(p.read_text())
        st['expires_at'] = past
        p.write_text(json.dumps(st, indent=2) + '\n')
    # App-only accounts (7.): the token their app shares.
    for p in Path(runtime_dir or state_dir).glob('.apps/*/state.json'):
        st = json.loads(p.read_text())
        st['expires_at'] = past
        p.write_text(json.dumps(st, indent=2) + '\n')
    for p in Path(state_dir).glob('due-*.json'):
        sched = json.loads(p.read_text())
        sched['due'] = past
        p.write_text(json.dumps(sched))


def main(argv):
    if len(argv) == 3 and argv[1] == 'single':
        single(argv[2])
    elif len(argv) == 3 and argv[1] == 'bulk':
        bulk(argv[2])
    elif len(argv) == 3 and argv[1] == 'assertion':
        assertion(argv[2])
    elif len(argv) in (4, 5) and argv[1] == 'due':
        due(*argv[2:])
    else:
        sys.exit(__doc__)
    os.sync()


if __name__ == '__main__':
    main(sys.argv)
