#!/usr/bin/env python3
"""Headless stand-in for a web browser, driving the test authorization server.

Run as ``browser.py URL`` (the way tokend runs ``$BROWSER URL``), or import it.
It walks the authorization server's login and consent pages, parsing the
forms it is served, until a redirect leaves the server.

Environment:
  TOKEND_TEST_CA            CA file to trust for https (default: system CAs)
  TOKEND_TEST_LOGIN         login name, which becomes the subject (default alice)
  TOKEND_TEST_BROWSER_MODE  follow (default), print, deny or device
  TOKEND_TEST_BROWSER_LOG   follow/deny: file for the final response
                            (status line, then body)
  TOKEND_TEST_BROWSER_OUT   print/deny: file for the final redirect URL

Modes:
  follow  GET the final redirect (tokend's loopback listener).
  print   write the final redirect URL to TOKEND_TEST_BROWSER_OUT, no fetch.
  deny    cancel at consent, so the redirect carries error=access_denied; the
          result is written to TOKEND_TEST_BROWSER_OUT if that is set,
          otherwise fetched as in follow mode.
  device  URL is a complete verification URI: log in and confirm the device.
          With TOKEND_TEST_BROWSER_DENY=1 the device is aborted instead.

Exits 0 on success, 1 with a one-line reason on stderr otherwise. Codes and
tokens are never printed.
"""

import http.cookiejar
import os
import ssl
import sys
import urllib.parse
import urllib.request
from html.parser import HTMLParser

TIMEOUT = 10
MAX_STEPS = 25
DENY_WORDS = ('abort', 'cancel', 'deny')


class BrowserError(Exception):
    pass


class _Page(HTMLParser):
    """Collects forms (with inputs and buttons), links and the title."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.links = []
        self.title = ''
        self.paragraphs = []  # text of <p> and <pre> elements
        self._form = None
        self._button = None
        self._link = None
        self._in_title = False
        self._in_p = False
        self._orphans = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or '' for k, v in attrs}
        if tag == 'form':
            self._form = {'id': a.get('id'), 'action': a.get('action', ''),
                          'method': a.get('method', 'get').lower(),
                          'inputs': [], 'buttons': []}
            self.forms.append(self._form)
        elif tag == 'input':
            entry = (a.get('type', 'text').lower(), a.get('name'), a.get('value', ''))
            if entry[0] in ('submit', 'button'):
                self._add_button(a, a.get('value', ''))
            elif self._form is not None:
                self._form['inputs'].append(entry)
        elif tag == 'button' and a.get('type', 'submit').lower() == 'submit':
            self._button = self._add_button(a, '')
        elif tag == 'a' and 'href' in a:
            self._link = {'href': a['href'], 'text': ''}
            self.links.append(self._link)
        elif tag == 'title':
            self._in_title = True
        elif tag in ('p', 'pre'):
            self._in_p = True
            self.paragraphs.append('')

    def _add_button(self, a, text):
        button = {'name': a.get('name'), 'value': a.get('value', ''), 'text': text}
        if 'form' in a:
            self._orphans.append((a['form'], button))
        elif self._form is not None:
            self._form['buttons'].append(button)
        return button

    def handle_endtag(self, tag):
        if tag == 'form':
            self._form = None
        elif tag == 'button':
            self._button = None
        elif tag == 'a':
            self._link = None
        elif tag == 'title':
            self._in_title = False
        elif tag in ('p', 'pre'):
            self._in_p = False

    def handle_data(self, data):
        if self._button is not None:
            self._button['text'] += data
        if self._link is not None:
            self._link['text'] += data
        if self._in_title:
            self.title += data
        if self._in_p:
            self.paragraphs[-1] += data

    def close(self):
        super().close()
        for form_id, button in self._orphans:
            for form in self.forms:
                if form['id'] == form_id:
                    form['buttons'].append(button)


def _is_deny(button_or_link):
    words = ' '.join(str(v) for v in button_or_link.values()).lower()
    return any(w in words for w in DENY_WORDS)


class _Passthrough(urllib.request.HTTPErrorProcessor):
    """Return every response as it is: no redirects followed, no exceptions."""

    def http_response(self, request, response):
        return response

    https_response = http_response


class Browser:
    def __init__(self, ca_file=None, login='alice'):
        context = ssl.create_default_context(cafile=ca_file)
        self.login = login
        self.denied = False
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(self.jar),
            _Passthrough)

    def request(self, url, data=None):
        """One request; returns (status, headers, body text)."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body)
        try:
            with self.opener.open(req, timeout=TIMEOUT) as resp:
                return resp.status, resp.headers, resp.read().decode('utf-8', 'replace')
        except OSError as e:
            where = urllib.parse.urlsplit(url).netloc
            raise BrowserError(f'request to {where} failed: {getattr(e, "reason", e)}') from None

    def walk(self, url, deny=False):
        """Walk the server's pages from url.

        Returns ('redirect', final_url) when a redirect leaves the server, or
        ('page', title) when the flow ends on a page without a form (device
        flow) or right after denying."""
        origin = urllib.parse.urlsplit(url)[:2]
        method_data = None
        self.denied = False
        submitted = set()
        for _ in range(MAX_STEPS):
            status, headers, text = self.request(url, method_data)
            method_data = None
            if status in (301, 302, 303, 307, 308):
                location = headers.get('Location')
                if not location:
                    raise BrowserError(f'HTTP {status} without Location')
                url = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(url)[:2] != origin:
                    return 'redirect', url
                continue
            page = _Page()
            page.feed(text)
            page.close()
            title = ' '.join(page.title.split())
            said = ' '.join(' '.join(page.paragraphs).split())[:160]
            if status != 200:
                raise BrowserError(f'HTTP {status} from authorization server: {said or title!r}')
            if self.denied or not page.forms:
                return 'page', title
            url, method_data = self._next_step(url, page, deny)
            key = (url.split('?')[0], tuple(sorted(method_data or ())))
            if key in submitted:
                raise BrowserError(f'page {title!r} came back: {said!r}')
            submitted.add(key)
        raise BrowserError(f'no redirect away from the server after {MAX_STEPS} requests')

    def _next_step(self, url, page, deny):
        """Pick the form to submit (or link to follow) on a page."""
        form = page.forms[0]
        fields = {}
        for kind, name, value in form['inputs']:
            if not name:
                continue
            if name == 'login':
                value = self.login
            elif kind == 'password':
                value = 'any-password'
            elif kind in ('text', 'email') and not value:
                raise BrowserError(f'page {page.title.strip()!r} asks for {name!r}')
            fields[name] = value
        action = urllib.parse.urljoin(url, form['action'] or url)
        buttons = form['buttons']
        if deny and 'login' not in fields:
            deny_button = next((b for b in buttons if _is_deny(b)), None)
            deny_link = next((lk for lk in page.links if _is_deny(lk)), None)
            if deny_button is not None:
                self.denied = True
                if deny_button['name']:
                    fields[deny_button['name']] = deny_button['value']
                return action, fields
            if deny_link is not None:
                self.denied = True
                return urllib.parse.urljoin(url, deny_link['href']), None
        button = next((b for b in buttons if not _is_deny(b)), None)
        if button is not None and button['name']:
            fields[button['name']] = button['value']
        if form['method'] == 'post':
            return action, fields
        return f'{action}?{urllib.parse.urlencode(fields)}', None


def authorize(url, login='alice', ca_file=None, deny=False):
    """Run an authorization request; returns the redirect URL that leaves the server."""
    b = Browser(ca_file, login)
    kind, result = b.walk(url, deny=deny)
    if deny and not b.denied:
        raise BrowserError('the pages offered no way to deny')
    if kind != 'redirect':
        raise BrowserError(f'flow ended on page {result!r} instead of a redirect')
    return result


def verify_device(url, login='alice', ca_file=None, deny=False):
    """Complete (or abort) a device authorization at a complete verification URI."""
    b = Browser(ca_file, login)
    kind, title = b.walk(url, deny=deny)
    if deny and not b.denied:
        raise BrowserError('the pages offered no way to deny')
    if kind != 'page':
        raise BrowserError('device verification ended on a redirect')
    if not deny and 'success' not in title.lower():
        raise BrowserError(f'device verification ended on page {title!r}')
    return title


def deliver(url, log_file=None):
    """GET the final redirect (the client's listener); returns the status."""
    status, _, text = Browser().request(url)
    if log_file:
        _write(log_file, f'{status}\n{text}')
    return status


def _write(path, text):
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 2:
        print('usage: browser.py URL', file=sys.stderr)
        return 2
    env = os.environ
    mode = env.get('TOKEND_TEST_BROWSER_MODE', 'follow')
    login = env.get('TOKEND_TEST_LOGIN', 'alice')
    ca_file = env.get('TOKEND_TEST_CA') or None
    out_file = env.get('TOKEND_TEST_BROWSER_OUT')
    try:
        if mode == 'device':
            verify_device(argv[1], login, ca_file, deny=env.get('TOKEND_TEST_BROWSER_DENY') == '1')
            return 0
        if mode not in ('follow', 'print', 'deny'):
            raise BrowserError(f'unknown TOKEND_TEST_BROWSER_MODE {mode!r}')
        if mode == 'print' and not out_file:
            raise BrowserError('print mode needs TOKEND_TEST_BROWSER_OUT')
        final = authorize(argv[1], login, ca_file, deny=(mode == 'deny'))
        if mode == 'print' or (mode == 'deny' and out_file):
            _write(out_file, final + '\n')
        else:
            deliver(final, env.get('TOKEND_TEST_BROWSER_LOG'))
        return 0
    except BrowserError as e:
        print(f'browser.py: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
