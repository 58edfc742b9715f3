#!/usr/bin/env python3
"""Headless stand-in for a web browser, signing in at glewlwyd.

Run as ``glewlwyd_browser.py URL`` (the way tokend runs ``$BROWSER URL``),
or import it.  glewlwyd answers an authorization request from a browser
without a session with a redirect to its login page,
``login.html?...&callback_url=X``.  The login page's script signs the user
in through the REST API (POST /api/auth/ with JSON username and password,
which sets the session cookie) and then sends the browser to
``X&g_continue``; with the session cookie glewlwyd answers that with the
redirect to the client, carrying code and state.  This script does the
same requests, then follows the redirect that leaves the server.

Environment:
  TOKEND_TEST_CA            CA file to trust for https (default: system CAs)
  TOKEND_TEST_LOGIN         user name (default alice)
  TOKEND_TEST_PASSWORD      password (default: the harness's user)
  TOKEND_TEST_BROWSER_MODE  follow (default), print or device (URL is a
                            complete verification URI: sign in, and the
                            device is confirmed)
  TOKEND_TEST_BROWSER_LOG   follow: file for the final response (status line,
                            then body)
  TOKEND_TEST_BROWSER_OUT   print: file for the final redirect URL

Exits 0 on success, 1 with a one-line reason on stderr otherwise. Codes and
tokens are never printed.
"""

import json
import os
import sys
import urllib.parse

try:
    from . import browser
    from .browser import BrowserError
except ImportError:  # run as a script
    import browser
    from browser import BrowserError

DEFAULT_USER = ('alice', 'alice-password-1')
MAX_STEPS = 10


class GlewlwydBrowser(browser.Browser):
    def __init__(self, ca_file=None, user=DEFAULT_USER):
        super().__init__(ca_file, user[0])
        self.user = user
        self.logged_in = False

    def sign_in(self, origin_url):
        url = urllib.parse.urljoin(origin_url, '/api/auth/')
        body = json.dumps({'username': self.user[0], 'password': self.user[1]}).encode()
        req = browser.urllib.request.Request(url, data=body, method='POST',
                                             headers={'Content-Type': 'application/json'})
        try:
            with self.opener.open(req, timeout=browser.TIMEOUT) as resp:
                status = resp.status
        except OSError as e:
            raise BrowserError(f'sign-in request failed: {getattr(e, "reason", e)}') from None
        if status != 200:
            raise BrowserError(f'sign-in as {self.user[0]!r} refused: HTTP {status}')
        self.logged_in = True

    def walk(self, url, device=False):
        """Returns the URL of the redirect that leaves the server; for a
        device verification, the login page's prompt that ends it."""
        origin = urllib.parse.urlsplit(url)[:2]
        for _ in range(MAX_STEPS):
            status, headers, text = self.request(url)
            if status not in (301, 302, 303, 307, 308):
                raise BrowserError(f'HTTP {status} from authorization server: {text[:160]!r}')
            location = headers.get('Location')
            if not location:
                raise BrowserError(f'HTTP {status} without Location')
            url = urllib.parse.urljoin(url, location)
            parts = urllib.parse.urlsplit(url)
            if parts[:2] != origin:
                return url
            query = dict(urllib.parse.parse_qsl(parts.query))
            callback = query.get('callback_url')
            if device and query.get('prompt', '').startswith('device'):
                return query['prompt']
            if callback is None:
                continue
            if self.logged_in:
                raise BrowserError('sent back to the login page after signing in')
            self.sign_in(url)
            url = urllib.parse.urljoin(url, callback) + '&g_continue'
        raise BrowserError(f'no redirect away from the server after {MAX_STEPS} requests')


def authorize(url, user=DEFAULT_USER, ca_file=None):
    """Run an authorization request; returns the redirect URL that leaves the server."""
    return GlewlwydBrowser(ca_file, user).walk(url)


def verify_device(url, user=DEFAULT_USER, ca_file=None):
    """Confirm a device authorization at a complete verification URI."""
    outcome = GlewlwydBrowser(ca_file, user).walk(url, device=True)
    if outcome != 'deviceComplete':
        raise BrowserError(f'device verification ended with {outcome!r}')


def main(argv):
    if len(argv) != 2:
        print('usage: glewlwyd_browser.py URL', file=sys.stderr)
        return 2
    env = os.environ
    mode = env.get('TOKEND_TEST_BROWSER_MODE', 'follow')
    user = (env.get('TOKEND_TEST_LOGIN', DEFAULT_USER[0]),
            env.get('TOKEND_TEST_PASSWORD', DEFAULT_USER[1]))
    out_file = env.get('TOKEND_TEST_BROWSER_OUT')
    try:
        if mode == 'device':
            verify_device(argv[1], user, env.get('TOKEND_TEST_CA') or None)
            return 0
        if mode not in ('follow', 'print'):
            raise BrowserError(f'unknown TOKEND_TEST_BROWSER_MODE {mode!r}')
        if mode == 'print' and not out_file:
            raise BrowserError('print mode needs TOKEND_TEST_BROWSER_OUT')
        final = authorize(argv[1], user, env.get('TOKEND_TEST_CA') or None)
        if mode == 'print':
            browser._write(out_file, final + '\n')
        else:
            browser.deliver(final, env.get('TOKEND_TEST_BROWSER_LOG'))
        return 0
    except BrowserError as e:
        print(f'glewlwyd_browser.py: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
