"""Waiting for something to happen: a file to appear, a port to listen, a
process to reach a state, a line on a pipe.  Poll for the thing itself,
with a deadline, and say what did not happen:

    from harness.wait import wait_until

    wait_until(out.exists, 20, 'the browser wrote the final URL')
    line = wait_until(lambda: find(log.read_text()), 5, 'dovecot logged the login',
                      detail=lambda: log.read_text()[-2000:])

A sleep of a fixed length waits either too long or not long enough (a
loaded machine, a sanitizer build); a sleep stays only where it is the
point of the test (letting a token age, pacing a slow peer), with a comment
saying so.
"""

import time


def wait_until(predicate, timeout, what, interval=0.02, detail=None):
    """Calls predicate() until it returns something true, and returns that.
    After timeout seconds it fails (AssertionError) with "WHAT: not within
    N s", and detail() appended when given (a log's tail, a screen).  An
    exception from predicate (a peer that died) goes through as it is."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f'{what}: not within {timeout} s'
            if detail is not None:
                message += '\n' + str(detail())
            raise AssertionError(message)
        time.sleep(interval)
