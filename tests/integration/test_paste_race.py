"""Signing in with a loopback redirect when the browser may be on another
machine: the catcher and a paste prompt wait together, the first redirect
of this sign-in wins and the other side is dropped.  Against the real
authorization server, with the headless browser either following the
redirect (the catcher wins) or only writing down where it would have gone
(print mode: the page that fails to load over SSH, whose address the user
pastes)."""

import os
import pty
import re
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from conftest import EX_NOPERM, EX_OK, EX_TEMPFAIL, TOKEND
from harness.wait import wait_until

PROMPT = 'or paste the address of the page the browser ended on:'


def codes_redeemed(authserver):
    return authserver.stats()['token'].get('authorization_code', 0)


def start(tokend, out, *args, mode='print', env=None):
    """obtain with stdin a pipe the test keeps open; the browser (print or
    deny mode) writes the final URL to out instead of following it."""
    out.unlink(missing_ok=True)
    e = {'TOKEND_TEST_BROWSER_MODE': mode, 'TOKEND_TEST_BROWSER_OUT': str(out)}
    e.update(env or {})
    return tokend.popen('obtain', 'work', *args, stdin=subprocess.PIPE, env=e)


def final_url(out, timeout=20):
    wait_until(out.exists, timeout, 'the browser wrote the final URL', interval=0.05)
    return out.read_text().strip()


def type_line(proc, text):
    proc.stdin.write(text + '\n')
    proc.stdin.flush()


def finish(proc, timeout=30):
    """Waits for tokend to end with stdin still open; returns stderr."""
    proc.wait(timeout=timeout)
    err = proc.stderr.read()
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()
    return err


def port_of(url):
    return urllib.parse.urlsplit(url).port


def refused(port):
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect(('127.0.0.1', port))
        except ConnectionRefusedError:
            return True
    return False


def with_query(url, **changes):
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    q.update(changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def test_paste_wins_when_the_browser_cannot_reach_the_catcher(tokend, authserver, tmp_path):
    tokend.account(login_timeout=30)
    before = codes_redeemed(authserver)
    proc = start(tokend, tmp_path / 'final')
    final = final_url(tmp_path / 'final')
    # The address of the page that failed to load: the catcher's, with its port.
    assert re.match(r'http://127\.0\.0\.1:\d+/\?code=', final), final
    type_line(proc, final)
    err = finish(proc)
    assert proc.returncode == EX_OK, err
    assert PROMPT in err and 'signed in' in err
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']
    assert codes_redeemed(authserver) == before + 1
    # The catcher was closed when the paste won.
    assert refused(port_of(final))


def test_catcher_wins_while_the_prompt_waits(tokend, authserver, tmp_path):
    tokend.account(login_timeout=30)
    before = codes_redeemed(authserver)
    log = tmp_path / 'browser.log'
    proc = start(tokend, tmp_path / 'unused', mode='follow',
                 env={'TOKEND_TEST_BROWSER_LOG': str(log)})
    # stdin stays open and silent: tokend must not wait for it.
    err = finish(proc)
    assert proc.returncode == EX_OK, err
    assert PROMPT in err
    assert log.read_text().startswith('200')
    assert codes_redeemed(authserver) == before + 1


def test_wrong_pastes_then_the_right_one(tokend, authserver, tmp_path):
    tokend.account(login_timeout=30)
    before = codes_redeemed(authserver)
    proc = start(tokend, tmp_path / 'final')
    final = final_url(tmp_path / 'final')
    port = port_of(final)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))['code']
    wrong = [
        'this is not what you want',
        with_query(final, state='forged'),
        final.replace(f':{port}/', f':{port + 1}/'),          # another port
        final.replace(f':{port}/?', f':{port}/other?'),       # another path
        final.replace('http://', 'https://'),                 # another scheme
        code,                                                 # a bare code
        urllib.parse.urlsplit(final).query,                   # parameters alone
    ]
    for line in wrong:
        type_line(proc, line)
    type_line(proc, '')
    type_line(proc, f'  "{final}"  ')
    err = finish(proc)
    assert proc.returncode == EX_OK, err
    refusals = [line for line in err.splitlines() if 'paste not taken' in line]
    assert len(refusals) == len(wrong), err
    assert all(line.startswith('tokend: work: paste not taken: ') for line in refusals)
    assert 'state differs' in refusals[1]
    assert all('not the one this sign-in redirects to' in r for r in refusals[2:5])
    assert 'cannot be checked' in refusals[5] and 'cannot be checked' in refusals[6]
    assert f'http://127.0.0.1:{port}/?code=...' in refusals[1]
    # No refusal repeats the code.
    assert code not in err
    # Only the right paste reached the token endpoint.
    assert codes_redeemed(authserver) == before + 1
    assert refused(port)


def test_an_endless_paste_is_dropped_and_the_right_one_still_wins(tokend, authserver, tmp_path):
    tokend.account(login_timeout=30)
    proc = start(tokend, tmp_path / 'final')
    final = final_url(tmp_path / 'final')
    proc.stdin.write('x' * 200000)
    type_line(proc, '')
    type_line(proc, final)
    err = finish(proc)
    assert proc.returncode == EX_OK, err
    assert 'paste not taken: the pasted text is too long' in err
    assert all(len(line) < 400 for line in err.splitlines() if 'not taken' in line)


def test_paste_from_another_sign_in_is_refused_and_the_wait_stays_bounded(
        tokend, authserver, tmp_path):
    """The rule: a paste that is not this sign-in's redirect (another
    address, another state) is refused in one line and the wait goes on, up
    to login_timeout; it never ends the sign-in by itself."""
    tokend.account(login_timeout=4)
    # An earlier sign-in, abandoned: its URL carries another port and state.
    old_proc = start(tokend, tmp_path / 'old')
    old = final_url(tmp_path / 'old')
    old_proc.kill()
    finish(old_proc)
    before = codes_redeemed(authserver)
    proc = start(tokend, tmp_path / 'final')
    final = final_url(tmp_path / 'final')
    started = time.time()
    type_line(proc, old)
    # The old code and state at this sign-in's address.
    type_line(proc, old.replace(f':{port_of(old)}/', f':{port_of(final)}/'))
    err = finish(proc)
    assert proc.returncode == EX_TEMPFAIL, err
    assert time.time() - started < 4 + 4
    refusals = [line for line in err.splitlines() if 'paste not taken' in line]
    assert len(refusals) == 2, err
    assert 'state differs' in refusals[1]
    assert 'no sign-in arrived within 4 s' in err
    assert codes_redeemed(authserver) == before
    assert not tokend.token_file().exists() and not tokend.refresh_token_file().exists()
    assert refused(port_of(final))


def test_silent_prompt_is_bounded_by_login_timeout(tokend, tmp_path):
    tokend.account(login_timeout=2)
    started = time.time()
    proc = tokend.popen('obtain', 'work', '--no-browser', stdin=subprocess.PIPE)
    err = finish(proc, timeout=15)
    assert proc.returncode == EX_TEMPFAIL
    assert time.time() - started < 6
    assert PROMPT in err and 'no sign-in arrived within 2 s' in err


def test_stdin_at_its_end_leaves_the_catcher_alone(tokend):
    tokend.account(login_timeout=1)
    r = tokend.run('obtain', 'work', '--no-browser', input='')
    assert r.returncode == EX_TEMPFAIL
    assert PROMPT not in r.stderr and 'paste not taken' not in r.stderr


def test_pasted_refusal_of_this_sign_in_ends_it(tokend, tmp_path):
    # The provider's answer to this sign-in (its state) is an answer, even
    # an error: it wins like a redirect to the catcher would.
    tokend.account(login_timeout=30)
    proc = start(tokend, tmp_path / 'final', mode='deny')
    final = final_url(tmp_path / 'final')
    assert 'error=access_denied' in final
    type_line(proc, final)
    err = finish(proc)
    assert proc.returncode == EX_NOPERM, err
    assert 'denied' in err
    assert not tokend.refresh_token_file().exists()


def test_paste_and_browser_at_once_redeem_the_code_once(tokend, authserver, tmp_path):
    tokend.account(login_timeout=30)
    for attempt in range(3):
        tokend.token_file().unlink(missing_ok=True)
        before = codes_redeemed(authserver)
        proc = start(tokend, tmp_path / 'final')
        final = final_url(tmp_path / 'final')
        answers = []

        def browser():
            try:
                with urllib.request.urlopen(final, timeout=5) as resp:
                    answers.append(resp.status)
            except (urllib.error.URLError, ConnectionError) as e:
                answers.append(e)
        t = threading.Thread(target=browser)
        t.start()
        type_line(proc, final)
        t.join()
        err = finish(proc)
        assert proc.returncode == EX_OK, err
        assert codes_redeemed(authserver) == before + 1, (attempt, answers)
        assert refused(port_of(final))


def read_until(fd, needle, timeout=20):
    seen = b''
    deadline = time.time() + timeout
    while needle.encode() not in seen:
        left = deadline - time.time()
        assert left > 0, seen.decode(errors='replace')
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors='replace')


def reap(pid, timeout=10):
    """The child's wait status; killed when it is still there after timeout
    (a tokend stopped by the terminal would keep it waiting)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def test_paste_on_a_terminal(tokend, authserver, tmp_path):
    """As a user over SSH has it: stdin, stdout and stderr a terminal whose
    foreground job is tokend."""
    tokend.account(login_timeout=30)
    out = tmp_path / 'final'
    env = dict(tokend.env, TOKEND_TEST_BROWSER_MODE='print', TOKEND_TEST_BROWSER_OUT=str(out))
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(str(TOKEND), [str(TOKEND), 'obtain', 'work'], env)
    try:
        read_until(fd, PROMPT)
        final = final_url(out)
        os.write(fd, final.encode() + b'\n')
        text = read_until(fd, 'signed in')
    finally:
        status = reap(pid)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == EX_OK, text
    assert authserver.introspect(tokend.token_file().read_text().strip())['active']


def test_background_job_leaves_the_terminal_alone(tokend, tmp_path):
    """`tokend obtain work &` from a shell: reading the terminal would stop
    the job (SIGTTIN), so only the catcher waits, and the text typed at the
    shell meanwhile is not taken."""
    tokend.account(login_timeout=2)
    pid, fd = pty.fork()
    if pid == 0:
        try:
            r = subprocess.run([str(TOKEND), 'obtain', 'work', '--no-browser'],
                               env=tokend.env, process_group=0)
            os._exit(r.returncode)
        except BaseException:
            os._exit(99)
    try:
        os.write(fd, b'ls -l\n')
        text = read_until(fd, 'no sign-in arrived within 2 s', timeout=15)
    finally:
        status = reap(pid)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == EX_TEMPFAIL, text
    assert PROMPT not in text and 'paste not taken' not in text
