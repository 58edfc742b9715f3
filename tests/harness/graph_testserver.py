"""A test endpoint that replays Microsoft Graph's sendMail: no real
Microsoft Graph is reachable from the tests (nor from this machine), so
this small HTTP server on 127.0.0.1 answers as Microsoft documents it.

What it replays, with the pages it follows:
- `POST /v1.0/users/{id | userPrincipalName}/sendMail` with the MIME
  message base64-encoded as the body and `Content-Type: text/plain`;
  `Authorization: Bearer {token}` (learn.microsoft.com/graph/api/
  user-sendmail, "HTTP request", "Request headers", "Request body"; "Send
  messages with MIME content", learn.microsoft.com/graph/
  outlook-send-mime-message).
- 202 Accepted with no body on success (user-sendmail, "Response").
- 400 with `{"error": {"code": ..., "message": ...}}` for malformed MIME
  content: "Invalid base64 string for MIME content." (user-sendmail,
  "Response"; the error body as "Microsoft Graph error responses and
  resource types", learn.microsoft.com/graph/errors).
- 401 for a missing or invalid token, 403 when the token lacks Mail.Send
  (delegated or application) or may not act for that mailbox, 413 for a
  request over the limit, 429 and 503 with Retry-After when throttled
  (graph/errors; "Microsoft Graph throttling guidance",
  learn.microsoft.com/graph/throttling).  The limit is 4 MB a request
  (learn.microsoft.com/graph/outlook-large-attachments).
- Graph has no envelope: the message goes to its To, Cc and Bcc; Bcc
  recipients get it without the Bcc header ([MS-OXCMAIL] 2.1.3.1.1.2).

Tokens are checked by introspection at the test authorization server:
active, scope `mail.send` (the test server's stand-in for Mail.Send), and
acting for the sender: a person's token's `sub` is the sender's local
part; an app's token (`sub` "app:CLIENT") may send for the mailboxes it
was given (`apps`), as an application access policy would allow.

Each delivered copy is saved into Dovecot with `doveadm save -u LOCALPART`
(as tests/harness/tunnelpeers.deliver does), and kept in `sent`.

    with GraphServer(authserver, dovecot) as graph:
        graph.url                    # graph_url for tokend
        graph.script(Reply(429, headers={'Retry-After': '7'}))   # next answers
        graph.hang()                 # the next request gets no answer
        graph.sent                   # [{'sender', 'recipients', 'mime', 'delivered'}]
"""

import base64
import email
import email.policy
import email.utils
import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUEST_MAX = 4 * 1024 * 1024
PATH = re.compile(r'^/v1\.0/users/([^/]+)/sendMail$')


class Reply:
    def __init__(self, status, code=None, message=None, headers=None):
        self.status, self.headers = status, headers or {}
        self.body = json.dumps({'error': {'code': code, 'message': message}}).encode() \
            if code else b''


def error(status, code, message, headers=None):
    return Reply(status, code, message, headers)


def strip_bcc(mime):
    """The message as a Bcc recipient (or anyone) gets it: the header
    without its Bcc field (and that field's continuation lines)."""
    head, sep, body = mime.partition(b'\r\n\r\n')
    lines, out, skipping = head.split(b'\r\n'), [], False
    for line in lines:
        if line[:1] in (b' ', b'\t') and skipping:
            continue
        skipping = line.lower().startswith(b'bcc:')
        if not skipping:
            out.append(line)
    return b'\r\n'.join(out) + sep + body


def recipients(mime):
    msg = email.message_from_bytes(mime, policy=email.policy.compat32)
    fields = msg.get_all('To', []) + msg.get_all('Cc', []) + msg.get_all('Bcc', [])
    return [addr.lower() for _, addr in email.utils.getaddresses(fields) if addr]


class GraphServer:
    def __init__(self, authserver, dovecot, apps=None):
        self.authserver, self.dovecot = authserver, dovecot
        self.apps = apps or {}
        self.sent, self.requests, self.answers = [], [], []
        self.lock = threading.Lock()
        self.release = threading.Event()
        graph = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get('Content-Length', '0'))
                if n > REQUEST_MAX:
                    # Answered before the body is read, as a front end does.
                    self._send(error(413, 'RequestEntityTooLarge', 'The request is too large.'))
                    self.close_connection = True
                    return
                body = self.rfile.read(n)
                self._send(graph.handle(self.path, self.headers, body))

            def _send(self, reply):
                if reply is None:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.body:
                    self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, *replies):
        """The next requests get these answers (after the token check for
        none: a scripted answer replaces the whole handling)."""
        with self.lock:
            self.answers.extend(replies)

    def hang(self):
        """The next request is held without an answer until the server
        stops."""
        self.script('hang')

    def _scripted(self):
        with self.lock:
            return self.answers.pop(0) if self.answers else None

    def handle(self, path, headers, body):
        with self.lock:
            self.requests.append({'path': path, 'content_type': headers.get('Content-Type'),
                                  'authorization': headers.get('Authorization', ''),
                                  'length': len(body)})
        scripted = self._scripted()
        if scripted == 'hang':
            self.release.wait(120)
            return None
        if scripted is not None:
            return scripted
        m = PATH.match(path)
        if not m:
            return error(400, 'BadRequest', f'Resource not found for the segment {path!r}.')
        sender = m.group(1).replace('%40', '@').lower()
        refused = self.check_token(headers.get('Authorization', ''), sender)
        if refused:
            return refused
        if headers.get('Content-Type', '').split(';')[0].strip() != 'text/plain':
            return error(415, 'UnsupportedMediaType', 'Content-Type must be text/plain for MIME.')
        try:
            mime = base64.b64decode(body, validate=True)
        except ValueError:
            return error(400, 'ErrorMimeContentInvalidBase64String',
                         'Invalid base64 string for MIME content.')
        return self.deliver(sender, mime)

    def check_token(self, authorization, sender):
        if not authorization.startswith('Bearer '):
            return error(401, 'InvalidAuthenticationToken', 'Access token is empty.')
        info = self.authserver.introspect(authorization[len('Bearer '):])
        if not info.get('active'):
            return error(401, 'InvalidAuthenticationToken', 'Access token has expired or is not '
                         'yet valid.')
        if 'mail.send' not in info.get('scope', '').split():
            return error(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try '
                         'again.')
        sub = info.get('sub', '')
        if sub.startswith('app:'):
            allowed = sender in self.apps.get(sub[len('app:'):], [])
        else:
            allowed = sender.split('@')[0] == sub.lower()
        if not allowed:
            return error(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try '
                         'again.')
        return None

    def deliver(self, sender, mime):
        rcpts = recipients(mime)
        if not rcpts:
            return error(400, 'ErrorInvalidRecipients', 'At least one recipient is not valid.')
        delivered = strip_bcc(mime)
        for rcpt in dict.fromkeys(rcpts):
            r = subprocess.run(['doveadm', '-c', str(self.dovecot.config_path), 'save', '-u',
                                rcpt.split('@')[0], '-m', 'INBOX'], input=delivered,
                               capture_output=True, timeout=30)
            if r.returncode != 0:
                return error(503, 'ServiceUnavailable', r.stderr.decode(errors='replace'),
                             {'Retry-After': '1'})
        with self.lock:
            self.sent.append({'sender': sender, 'recipients': rcpts, 'mime': mime,
                              'delivered': delivered})
        return Reply(202)
