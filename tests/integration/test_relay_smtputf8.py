"""SMTPUTF8 and DSN through `tokend relay` with an upstream that has both.

Dovecot 2.3 submission (the other relay tests' upstream) never offers
SMTPUTF8, so here upstream is a private Postfix (harness/postfix.py) run as
a submission service the way a mail provider runs one: smtpd on a loopback
port, STARTTLS with the authorization server's certificate (which names
127.0.0.1), `smtpd_tls_auth_only`, and SASL through Dovecot's auth service
(`smtpd_sasl_type = dovecot`, a client socket of the test Dovecot, whose
oauth2 passdb checks the token): Postfix offers AUTH XOAUTH2 OAUTHBEARER,
as Dovecot's auth lists them to it, or (smtpd_sasl_mechanism_filter)
XOAUTH2 alone, as Exchange Online does.  Postfix (smtputf8_enable) offers
SMTPUTF8 and DSN and relays to the sink of harness/dovecot.py, which
offers both too and keeps MAIL FROM and RCPT TO with their parameters.

A message with a UTF-8 local part, SMTPUTF8, RET/ENVID and NOTIFY/ORCPT,
sent by Python's smtplib to `tokend relay --listen`, reaches the sink with
the UTF-8 address and the DSN parameters as Postfix passes them on, and
the data byte-identical (after Postfix's own Received: line).
"""

import re
import shutil
import smtplib
import socket
import ssl

import pytest

from harness.dovecot import SmtpSink, free_port
from harness.postfix import Postfix
from harness.tunnelpeers import dovecot_for, shared_dir
from harness.wait import wait_until

SCOPES = 'openid offline_access mail.imap'
SENDER = 'alice@example.org'
RECIPIENT = 'jörg@example.org'
TIMEOUT = 30
EXTENSIONS = ('8BITMIME', 'PIPELINING', 'DSN', 'SMTPUTF8', 'ENHANCEDSTATUSCODES')

# A client socket of Dovecot's auth service for Postfix's smtpd (user
# postfix); Dovecot's auth lists its mechanisms (XOAUTH2, OAUTHBEARER) on it.
AUTH_LISTENER = """
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
"""

UPSTREAM_CF = """\
relayhost = [127.0.0.1]:{sink_port}
smtputf8_enable = yes
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth_socket}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
"""


# What Postfix offers for AUTH: all Dovecot lists, or XOAUTH2 alone (as
# Exchange Online does), by smtpd_sasl_mechanism_filter.
OFFERS = {'oauthbearer+xoauth2': ('', {'OAUTHBEARER', 'XOAUTH2'}, 'OAUTHBEARER'),
          'xoauth2-only': ('smtpd_sasl_mechanism_filter = xoauth2\n', {'XOAUTH2'}, 'XOAUTH2')}


@pytest.fixture(scope='module', params=list(OFFERS))
def upstream(request, authserver):
    """(Dovecot, Postfix submission, the sink behind Postfix, OFFERS entry)."""
    sink = SmtpSink(EXTENSIONS)
    try:
        with dovecot_for(authserver, extra_config=AUTH_LISTENER) as dc, \
                shared_dir('tokend-postfix-') as workdir:
            tls = workdir / 'tls'
            tls.mkdir()
            cert, key = tls / 'cert.pem', tls / 'key.pem'
            shutil.copyfile(authserver.cert_file, cert)
            shutil.copyfile(authserver.key_file, key)
            key.chmod(0o600)
            cf = UPSTREAM_CF.format(sink_port=sink.port, cert=cert, key=key,
                                    auth_socket=f'{dc.base_dir}/auth-postfix')
            offer = OFFERS[request.param]
            with Postfix(workdir / 'postfix', cf + offer[0]) as pf:
                yield dc, pf, sink, offer
    finally:
        sink.stop()


@pytest.fixture
def relay(tokend, upstream):
    pf = upstream[1]
    tokend.account(scopes=SCOPES, send_as=SENDER, smtp_host=pf.host, smtp_port=pf.smtpd_port)
    tokend.write_config('[defaults]\nrelay_account = work\n')
    tokend.obtain()
    port = free_port()
    proc = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    wait_until(lambda: _connects(port), 10, 'the relay listens')
    yield port
    proc.terminate()
    _, err = proc.communicate(timeout=TIMEOUT)
    assert tokend.token_file().read_text().strip() not in err


def _connects(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


def postfix_auth_mechanisms(pf, ca_file):
    """What Postfix's EHLO offers for AUTH after STARTTLS (none before)."""
    with smtplib.SMTP(pf.host, pf.smtpd_port, timeout=TIMEOUT) as s:
        s.ehlo()
        assert not s.has_extn('auth'), s.esmtp_features  # smtpd_tls_auth_only
        s.starttls(context=ssl.create_default_context(cafile=ca_file))
        s.ehlo()
        return s.esmtp_features.get('auth', '').split()


def test_smtputf8_and_dsn_reach_postfix_upstream(tokend, authserver, upstream, relay):
    _, pf, sink, (_, offered, used) = upstream
    # Dovecot 2.3's auth lists its oauth2 mechanisms to Postfix's dovecot SASL.
    assert set(postfix_auth_mechanisms(pf, authserver.ca_file)) == offered
    msg = ('From: Alice <alice@example.org>\r\nTo: Jörg <jörg@example.org>\r\n'
           'Subject: Grüße\r\nDate: Mon, 07 Dec 2026 01:00:00 +0000\r\n'
           'Message-ID: <relay-utf8-1@example.org>\r\nMIME-Version: 1.0\r\n'
           'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n'
           '\r\nGrüße, ünïcödé ✓\r\n.a line that starts with a dot\r\n').encode()
    with smtplib.SMTP('127.0.0.1', relay, timeout=TIMEOUT) as s:
        code, _ = s.ehlo()
        assert code == 250
        for ext in ('smtputf8', 'dsn'):
            assert s.has_extn(ext), s.esmtp_features
        refused = s.sendmail(SENDER, [RECIPIENT], msg,
                             mail_options=['SMTPUTF8', 'BODY=8BITMIME', 'RET=HDRS',
                                           'ENVID=relay-utf8-1'],
                             rcpt_options=['NOTIFY=SUCCESS,FAILURE',
                                           'ORCPT=utf-8;j\\x{00F6}rg@example.org'])
        assert refused == {}
    wait_until(lambda: sink.messages, TIMEOUT, 'Postfix relayed the message to the sink',
               detail=pf.log)
    got = sink.messages[0]
    assert got['mail_from'].startswith(f'<{SENDER}>'), got
    assert 'SMTPUTF8' in got['mail_from'] and 'RET=HDRS' in got['mail_from'] \
        and 'ENVID=relay-utf8-1' in got['mail_from'], got
    assert len(got['rcpt_tos']) == 1 and got['rcpt_tos'][0].startswith(f'<{RECIPIENT}>'), got
    assert 'NOTIFY=SUCCESS,FAILURE' in got['rcpt_tos'][0], got
    assert 'ORCPT=utf-8;j\\x{F6}rg@example.org' in got['rcpt_tos'][0], got  # Postfix's spelling
    # Postfix adds its Received: line (which says UTF8SMTPSA: SMTPUTF8,
    # STARTTLS and AUTH), nothing else.
    received = re.match(rb'Received: from localhost .*?\r\n(?=\S)', got['data'], re.S)
    assert received and b' with UTF8SMTPSA id ' in received.group(0), got['data']
    assert got['data'][received.end():] == msg, got['data'].decode()
    # The relay logged in to Postfix with the token, checked by Dovecot's auth.
    assert re.search(rf'sasl_method={used}, sasl_username=alice\b', pf.log()), pf.log()
