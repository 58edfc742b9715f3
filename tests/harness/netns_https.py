"""The HTTPS server of the test namespace (tests/harness/netns.py): answers
on one address and port for every host name in its certificate, from a
routes file ({"HOST PATH": reply}) read again at each request, and logs
each request as a JSON line.  Run inside the namespace by NetNS."""

import argparse
import json
import secrets
import ssl
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    for opt in ('--address', '--cert', '--key', '--routes', '--log'):
        ap.add_argument(opt, required=True)
    ap.add_argument('--port', type=int, default=443)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def log_message(self, *a):
            pass

        def _route(self, host):
            with open(args.routes) as f:
                routes = json.load(f)
            return routes.get(f'{host} {self.path}') or \
                routes.get(f'{host} {self.path.split("?")[0]}')

        def do_GET(self):
            host = (self.headers.get('Host') or '').rsplit(':', 1)[0] \
                if not (self.headers.get('Host') or '').startswith('[') else self.headers['Host']
            length = int(self.headers.get('Content-Length') or 0)
            form = self.rfile.read(length).decode(errors='replace') if length else ''
            with open(args.log, 'a') as f:
                f.write(json.dumps({'host': host, 'method': self.command,
                                    'path': self.path, 'form': form}) + '\n')
            if self.path == '/.ready':
                return self._send(200, 'text/plain', b'ready')
            r = self._route(host)
            if r is None:
                return self._send(404, 'text/plain', b'not found')
            if r['delay']:
                time.sleep(r['delay'])
            if r['huge']:
                return self._huge(r)
            if r.get('authorize'):
                return self._authorize()
            self._send(r['status'], r['type'], r['body'].encode())

        do_POST = do_GET

        def _authorize(self):
            """An authorization endpoint after a successful sign-in: back
            to redirect_uri with a code and the state."""
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            params = {'code': 'C.' + secrets.token_hex(8), 'state': q['state'][0]}
            self.send_response(302)
            self.send_header('Location', q['redirect_uri'][0] + '?' +
                             urllib.parse.urlencode(params))
            self.send_header('Content-Length', '0')
            self.end_headers()

        def _send(self, status, ctype, data):
            self.send_response(status)
            self.send_header('Content-Type', ctype)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _huge(self, r):
            """Streams r['huge'] bytes without a Content-Length, then closes."""
            self.send_response(r['status'])
            self.send_header('Content-Type', r['type'])
            self.send_header('Connection', 'close')
            self.end_headers()
            self.close_connection = True
            chunk = (r['body'] or 'x').encode() * 1024
            sent = 0
            try:
                while sent < r['huge']:
                    part = chunk[:r['huge'] - sent]
                    self.wfile.write(part)
                    sent += len(part)
            except OSError:
                pass

    server = ThreadingHTTPServer((args.address, args.port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
