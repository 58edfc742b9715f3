"""Signing in through the real loopback catcher and by pasting the URL,
against the real authorization server."""

import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from conftest import (EX_DATAERR, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_USAGE, BROWSER, mode)
from harness.wait import wait_until


def test_obtain_through_loopback_catcher(tokend, authserver, tmp_path):
    tokend.account()
    before = authserver.stats()['token']
    log = tmp_path / 'browser.log'
    r = tokend.run('obtain', 'work', env={'TOKEND_TEST_BROWSER_LOG': str(log)})
    assert r.returncode == EX_OK, r.stderr
    assert 'signed in' in r.stderr and 'file store' in r.stderr
    # The URL always goes to stderr on a line of its own.
    assert any(line.startswith(authserver.authorize_url + '?') for line in r.stderr.splitlines())
    # The browser got the success page from the catcher.
    assert log.read_text().startswith('200')
    token = tokend.token_file().read_text()
    assert token.endswith('\n') and token.count('\n') == 1 and '\r' not in token
    assert authserver.introspect(token.strip())['active']
    assert mode(tokend.token_file()) == 0o600
    assert mode(tokend.refresh_token_file()) == 0o600
    assert mode(tokend.state / 'work') == 0o700
    after = authserver.stats()['token']
    assert after.get('authorization_code', 0) == before.get('authorization_code', 0) + 1


def test_obtain_sends_pkce_state_and_login_hint(tokend, authserver):
    tokend.account(username='bob@example.com', login_timeout=1)
    r = tokend.run('obtain', 'work', '--no-browser')
    assert r.returncode == EX_TEMPFAIL
    url = next(line for line in r.stderr.splitlines() if line.startswith('https://'))
    assert 'code_challenge_method=S256' in url
    assert re.search(r'[?&]state=[A-Za-z0-9_-]{32}', url)
    assert re.search(r'[?&]code_challenge=[A-Za-z0-9_-]{43}(&|$)', url)
    assert 'login_hint=bob%40example.com' in url


def wait_for_url(proc, timeout=10):
    """Reads the authorization URL from a running tokend's stderr."""
    deadline = time.time() + timeout
    lines = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if line.startswith('https://'):
            return line.strip()
    raise AssertionError('no URL printed: ' + ''.join(lines))


def catcher_base(url):
    return urllib.parse.unquote(re.search(r'redirect_uri=([^&]+)', url).group(1))


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_catcher_ignores_strangers_and_takes_the_real_redirect(tokend, authserver, tmp_path):
    tokend.account()
    proc = tokend.popen('obtain', 'work', '--no-browser')
    url = wait_for_url(proc)
    redirect = catcher_base(url)
    # Wrong state, missing state, other paths, another method: all refused,
    # and the flow goes on.
    assert http_get(redirect + '?code=forged&state=wrong')[0] == 400
    assert http_get(redirect + '?code=forged')[0] == 400
    assert http_get(redirect.rstrip('/') + '/other?code=x&state=y')[0] == 404
    req = urllib.request.Request(redirect, data=b'x=1', method='POST')
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError('POST accepted')
    except urllib.error.HTTPError as err:
        assert err.code == 405
    env = dict(tokend.env, TOKEND_TEST_BROWSER_LOG=str(tmp_path / 'log'))
    subprocess.run([str(BROWSER), url], env=env, check=True, timeout=30)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EX_OK, err
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']
    # A second valid-looking callback after the end finds nobody listening.
    try:
        urllib.request.urlopen(redirect + '?code=x&state=y', timeout=2)
        raise AssertionError('catcher still listening')
    except (urllib.error.URLError, ConnectionError):
        pass


def test_catcher_listens_on_loopback_only(tokend):
    tokend.account(login_timeout=5)
    proc = tokend.popen('obtain', 'work', '--no-browser')
    url = wait_for_url(proc)
    port = int(re.search(r'127\.0\.0\.1%3a(\d+)', url).group(1))
    with open('/proc/net/tcp') as f:
        listeners = [line.split() for line in f.readlines()[1:]]
    ours = [l for l in listeners if l[3] == '0A' and int(l[1].split(':')[1], 16) == port]
    assert ours and all(l[1].split(':')[0] == '0100007F' for l in ours)
    proc.kill()
    proc.communicate()


def test_login_timeout_is_bounded(tokend):
    tokend.account(login_timeout=2)
    start = time.time()
    r = tokend.run('obtain', 'work', '--no-browser')
    assert r.returncode == EX_TEMPFAIL
    assert 'no sign-in arrived within 2 s' in r.stderr
    assert time.time() - start < 6
    assert not tokend.token_file().exists()


def test_denied_sign_in_is_reported(tokend, tmp_path):
    tokend.account()
    r = tokend.run('obtain', 'work', env={'TOKEND_TEST_BROWSER_MODE': 'deny',
                                          'TOKEND_TEST_BROWSER_LOG': str(tmp_path / 'log')})
    assert r.returncode == EX_NOPERM
    assert 'access_denied' in r.stderr or 'denied' in r.stderr
    assert not tokend.token_file().exists()
    assert not tokend.refresh_token_file().exists()


def paste(tokend, transform, *args, account='work'):
    """Runs obtain --manual; the browser prints the final URL, which is
    pasted (after transform) into tokend's stdin."""
    out = tokend.home / 'final-url'
    out.unlink(missing_ok=True)
    proc = tokend.popen('obtain', account, *args, stdin=subprocess.PIPE,
                        env={'TOKEND_TEST_BROWSER_MODE': 'print',
                             'TOKEND_TEST_BROWSER_OUT': str(out)})
    wait_until(out.exists, 20, 'the browser wrote the final URL', interval=0.05)
    final = out.read_text().strip()
    stdout, stderr = proc.communicate(transform(final) + '\n', timeout=30)
    return proc.returncode, stderr, final


def test_manual_paste_of_the_whole_url(tokend, authserver):
    tokend.account()
    rc, err, final = paste(tokend, lambda u: u, '--manual')
    assert rc == EX_OK, err
    assert final.startswith('http://127.0.0.1/?code=')
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']


def test_manual_paste_forms_users_produce(tokend, authserver):
    forms = [
        lambda u: f'  "{u}"  ',
        lambda u: f"'{u}'",
        lambda u: f'<{u}>',
        lambda u: u + '&session_state=8f2c1a3b-0000-4a5b-9c8d-1234567890ab',
    ]
    for i, form in enumerate(forms):
        tokend.account(f'a{i}')
        rc, err, _ = paste(tokend, form, '--manual', account=f'a{i}')
        assert rc == EX_OK, (i, err)


def test_nativeclient_style_redirect_is_pasted(tokend, authserver):
    # A redirect that is not loopback means paste-back, without --manual,
    # as with Microsoft's .../oauth2/nativeclient.
    tokend.account(client_id='tokend-paste',
                   redirect_uri='https://login.example.invalid/common/oauth2/nativeclient')
    rc, err, final = paste(tokend, lambda u: u)
    assert rc == EX_OK, err
    assert final.startswith('https://login.example.invalid/common/oauth2/nativeclient?code=')


def test_pasted_url_with_wrong_state_is_refused(tokend):
    tokend.account()
    rc, err, _ = paste(tokend, lambda u: re.sub(r'state=[^&]+', 'state=forged', u), '--manual')
    assert rc == EX_DATAERR
    assert 'state' in err
    assert not tokend.refresh_token_file().exists()


def test_pasted_garbage_is_refused(tokend):
    tokend.account()
    rc, err, _ = paste(tokend, lambda u: 'this is not what you want', '--manual')
    assert rc == EX_DATAERR
    assert len(err.strip().splitlines()[-1]) < 300


def test_usage_errors(tokend):
    tokend.account()
    assert tokend.run('obtain').returncode == EX_USAGE
    assert tokend.run('obtain', 'work', '--bogus').returncode == EX_USAGE
    assert tokend.run('frobnicate').returncode == EX_USAGE
    assert tokend.run('obtain', 'work', '--manual', '--device').returncode == EX_USAGE


def listeners(port):
    """(address, family) of the sockets listening on port."""
    found = []
    for path, family in (('/proc/net/tcp', 4), ('/proc/net/tcp6', 6)):
        try:
            lines = open(path).readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(':')
            if state == '0A' and int(p, 16) == port:
                found.append((addr, family))
    return found


def test_localhost_redirect_listens_on_both_loopbacks(tokend):
    tokend.account(redirect_uri='http://localhost/', login_timeout=5)
    proc = tokend.popen('obtain', 'work', '--no-browser')
    url = wait_for_url(proc)
    redirect = catcher_base(url)
    assert re.fullmatch(r'http://localhost:\d+/', redirect)
    port = int(redirect.rsplit(':', 1)[1].rstrip('/'))
    found = listeners(port)
    proc.kill()
    proc.communicate()
    assert ('0100007F', 4) in found
    if open('/proc/net/if_inet6').read().strip():
        assert ('00000000000000000000000001000000', 6) in found
    assert len(found) <= 2


def code_of(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))['code']


def test_pasted_bare_code_of_this_sign_in_works(tokend, authserver):
    tokend.account()
    rc, err, _ = paste(tokend, code_of, '--manual')
    assert rc == EX_OK, err
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']


def test_pasted_bare_code_of_another_sign_in_is_a_data_error(tokend, authserver):
    """A bare code has no state to compare: the server refuses it (PKCE), and
    that is the paste's fault (65, as tokend(1) says), not a sign-in needed."""
    tokend.account()
    other = []

    def keep_code(url):
        other.append(code_of(url))
        return 'not pasted'

    rc, _, _ = paste(tokend, keep_code, '--manual')
    assert rc == EX_DATAERR and other
    rc, err, _ = paste(tokend, lambda u: other[0], '--manual')
    print(err)
    assert rc == EX_DATAERR, err
    assert 'the server refused the pasted code: it is not from this sign-in' in err
    assert 'paste the address of the page this sign-in ended on' in err
    assert not tokend.token_file().exists() and not tokend.refresh_token_file().exists()
