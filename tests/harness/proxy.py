"""A listener on 127.0.0.1 standing where a proxy from the environment
would: it counts who connects and what they ask for, and answers 502."""

import socket
import threading

PROXY_VARS = ('https_proxy', 'HTTPS_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy')


class CountingProxy:
    """A listener on 127.0.0.1 standing where a proxy would: it counts the
    connections and what they asked for, and closes them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.asked = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.asked.append(conn.recv(4096).split(b'\r\n')[0].decode(errors='replace'))
                    conn.sendall(b'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n')
                except OSError:
                    self.asked.append('')

    def env(self):
        url = f'http://127.0.0.1:{self.port}'
        return {v: url for v in PROXY_VARS}

    def close(self):
        self.sock.close()
