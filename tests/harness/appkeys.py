"""Keys of app-only accounts, made with openssl at test time: an RSA key
with a self-signed certificate (what an admin uploads to an app
registration), the same key encrypted with a passphrase, and a service
account JSON key file in Google's format.

    keys = AppKeys(tmp_path)          # keys.cert, keys.key (0600)
    keys.encrypted_key('secret')      # path of a passphrase PEM
    keys.service_account('sa@example.iam.gserviceaccount.com')
"""

import json
import subprocess
from pathlib import Path


def openssl(*args, cwd=None, input=None):
    return subprocess.run(['openssl', *args], cwd=cwd, input=input, check=True,
                          capture_output=True)


class AppKeys:
    def __init__(self, workdir, name='app', days=365, bits=2048):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / f'{name}.key'
        self.cert = self.dir / f'{name}.pem'
        openssl('req', '-x509', '-newkey', f'rsa:{bits}', '-nodes', '-keyout', str(self.key),
                '-out', str(self.cert), '-days', str(days), '-subj', f'/CN=tokend {name}')
        self.key.chmod(0o600)

    def encrypted_key(self, passphrase):
        out = self.dir / (self.key.stem + '-enc.key')
        openssl('pkey', '-in', str(self.key), '-aes256', '-passout', 'stdin', '-out', str(out),
                input=passphrase.encode() + b'\n')
        out.chmod(0o600)
        return out

    def not_after(self):
        """The certificate's expiry, as openssl prints it."""
        out = openssl('x509', '-in', str(self.cert), '-noout', '-enddate').stdout.decode()
        return out.strip().split('=', 1)[1]

    def service_account(self, email, key_id='0123456789abcdef', client_id='1234567890'):
        path = self.dir / 'service-account.json'
        path.write_text(json.dumps({
            'type': 'service_account', 'project_id': 'tokend-test',
            'private_key_id': key_id, 'private_key': self.key.read_text(),
            'client_email': email, 'client_id': client_id,
            'token_uri': 'https://oauth2.googleapis.com/token',
        }))
        path.chmod(0o600)
        return path
