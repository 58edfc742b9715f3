"""SMTP service extensions through `tokend relay`: before the login the
relay offers what it supports itself (SIZE, 8BITMIME, SMTPUTF8,
PIPELINING, CHUNKING, DSN, ENHANCEDSTATUSCODES); once logged in upstream
it passes on what upstream offers too and refuses cleanly what upstream
cannot do.

Upstream is the real Dovecot 2.3 submission service, configured as an
admin would.  What it offers (Dovecot's submission documentation and
what it answers to EHLO after the login):
- CHUNKING, SIZE, 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES always
  (CHUNKING and SIZE even when the MTA behind it has neither);
- DSN (and BINARYMIME) only when the MTA behind it has them: Dovecot asks
  the MTA (harness/dovecot.py's sink), whose EHLO names DSN for the `dsn`
  Dovecot below and not for the `plain` one (`submission_backend_capabilities`
  would only change what Dovecot offers, not what it sends the MTA);
- SMTPUTF8 never: Dovecot 2.3 answers MAIL FROM ... SMTPUTF8 with 555.
So SMTPUTF8's refusal is tested here against a real peer; its passing on
with an upstream that has it (Postfix) in test_relay_smtputf8.py, and
the parameter rules by tests/unit/test_smtpext.c.  The messages arrive at Dovecot's sink,
which keeps MAIL FROM and RCPT TO with their parameters and the data as
Dovecot sent it.
"""

import re
import smtplib

import pytest

from harness.dovecot import free_port
from harness.tunnelpeers import USER, dovecot_for
from harness.wait import wait_until
from test_relay import SENDER, Session, _connects, _vm_hwm_kib, relayed, sign_in

TIMEOUT = 30
BOB = 'bob@example.org'
OWN = ('SIZE', '8BITMIME', 'SMTPUTF8', 'PIPELINING', 'CHUNKING', 'DSN', 'ENHANCEDSTATUSCODES')


@pytest.fixture(scope='module')
def plain(authserver):
    with dovecot_for(authserver, pop3=True) as dc:
        yield dc


@pytest.fixture(scope='module')
def dsn(authserver):
    with dovecot_for(authserver, pop3=True,
                     sink_extensions=('8BITMIME', 'PIPELINING', 'DSN')) as dc:
        yield dc


@pytest.fixture
def session(tokend):
    made = []

    def make(*options):
        s = Session(tokend, 'smtp', *options)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def body(size=0, eight_bit=False):
    text = (b'From: alice@example.org\r\nTo: bob@example.org\r\nSubject: chunks\r\n'
            b'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n'
            b'Content-Transfer-Encoding: 8bit\r\n\r\n'
            b'.a line that starts with a dot\r\n')
    if eight_bit:
        text += 'Grüße, ünïcödé ✓\r\n'.encode() + bytes(range(0x80, 0x100)) + b'\r\n'
    line = b'y' * 76 + b'\r\n'
    return text + line * (size // len(line)) + b'end\r\n'


def stuffed(msg):
    """msg as DATA carries it (RFC 5321 §4.5.2), without the end line."""
    return msg.replace(b'\r\n.', b'\r\n..')


def wait_message(dc, count):
    wait_until(lambda: len(dc.messages()) >= count, 10, 'the sink got the message',
               detail=lambda: dc.log()[-2000:])
    return dc.messages()[count - 1]


def logged_in(s):
    """An inetd-style session, greeted and logged in as alice."""
    assert s.reply().startswith('220 ')
    ehlo = s.command('EHLO client.example')
    assert s.command('AUTH PLAIN AGFsaWNlAHg=').startswith('235 '), 'AUTH'  # alice, x
    return ehlo


def keywords(ehlo):
    return {line[4:].split(' ')[0].strip() for line in ehlo.splitlines()[1:]}


def send_chunks(s, chunks):
    """BDAT for each chunk (the last with LAST); the replies."""
    replies = []
    for i, chunk in enumerate(chunks):
        last = ' LAST' if i == len(chunks) - 1 else ''
        s.send(f'BDAT {len(chunk)}{last}\r\n'.encode() + chunk)
        replies.append(s.reply())
    return replies


def test_ehlo_offers_its_own_before_the_login_and_upstreams_after(tokend, plain, session):
    sign_in(tokend, plain)
    s = session()
    ehlo = logged_in(s)
    assert keywords(ehlo) >= set(OWN) | {'AUTH'}, ehlo
    after = keywords(s.command('EHLO client.example'))
    # Dovecot without DSN behind it offers neither DSN nor SMTPUTF8.
    assert after == {'SIZE', '8BITMIME', 'PIPELINING', 'CHUNKING', 'ENHANCEDSTATUSCODES',
                     'AUTH'}, after


def test_dsn_parameters_reach_upstream(tokend, dsn):
    sign_in(tokend, dsn)
    count = len(dsn.messages())
    msg = body()
    port = free_port()
    relay = tokend.popen('relay', '--listen', f'127.0.0.1:{port}', 'smtp')
    try:
        wait_until(lambda: _connects(port), 10, 'the relay listens')
        with smtplib.SMTP('127.0.0.1', port, timeout=TIMEOUT) as smtp:
            smtp.login(USER, 'ignored')
            assert smtp.has_extn('dsn')
            smtp.sendmail(SENDER, [BOB], msg,
                          mail_options=['RET=HDRS', 'ENVID=QQ+2B1'],
                          rcpt_options=['NOTIFY=SUCCESS,FAILURE', f'ORCPT=rfc822;{BOB}'])
    finally:
        relay.terminate()
        relay.communicate(timeout=TIMEOUT)
    got = wait_message(dsn, count + 1)
    assert re.search(r'\bRET=HDRS\b', got['mail_from']) and 'ENVID=QQ+2B1' in got['mail_from'], got
    rcpt = ' '.join(got['rcpt_tos'])
    assert 'NOTIFY=SUCCESS,FAILURE' in rcpt and f'ORCPT=rfc822;{BOB}' in rcpt, got
    assert relayed(got) == msg


def test_without_upstream_dsn_a_success_notice_is_refused_and_the_rest_dropped(
        tokend, plain, session):
    sign_in(tokend, plain)
    count = len(plain.messages())
    s = session()
    logged_in(s)
    assert s.command(f'MAIL FROM:<{SENDER}> RET=FULL ENVID=x').startswith('250')
    r = s.command(f'RCPT TO:<{BOB}> NOTIFY=SUCCESS')
    assert r.startswith('555 5.5.4 ') and 'DSN' in r, r
    assert s.command(f'RCPT TO:<{BOB}> NOTIFY=FAILURE ORCPT=rfc822;{BOB}').startswith('250')
    assert s.command(f'RCPT TO:<{BOB}> XFOO=1').startswith('555 5.5.4 tokend: parameter XFOO')
    assert s.command('DATA').startswith('354')
    s.send(stuffed(body()) + b'.\r\n')
    assert s.reply().startswith('250 ')
    got = wait_message(plain, count + 1)
    assert 'RET=' not in got['mail_from'] and 'ENVID' not in got['mail_from'], got
    assert got['rcpt_tos'] == [f'<{BOB}>'], got


def test_smtputf8_refused_cleanly_when_upstream_lacks_it(tokend, plain, session):
    sign_in(tokend, plain)
    count = len(plain.messages())
    s = session()
    logged_in(s)
    r = s.command(f'MAIL FROM:<{SENDER}> SMTPUTF8')
    assert r.startswith('555 5.6.7 ') and 'SMTPUTF8' in r, r
    assert s.command(f'MAIL FROM:<{SENDER}> BODY=8BITMIME').startswith('250')
    r = s.command('RCPT TO:<bjørn@example.org>')
    assert r.startswith('553 5.6.7 ') and 'SMTPUTF8' in r, r
    # UTF-8 is for addresses only: other commands stay ASCII.
    assert s.command('NOOP ünï').startswith('500 5.5.2 ')
    assert s.command(f'RCPT TO:<{BOB}>').startswith('250')
    assert s.command('DATA').startswith('354')
    s.send(stuffed(body(eight_bit=True)) + b'.\r\n')
    assert s.reply().startswith('250 ')
    got = wait_message(plain, count + 1)
    assert 'BODY=8BITMIME' in got['mail_from'], got
    assert relayed(got) == body(eight_bit=True)


def test_bdat_chunks_pass_byte_identical_pipelined(tokend, plain, session):
    sign_in(tokend, plain)
    count = len(plain.messages())
    msg = body(size=300000, eight_bit=True)
    # Edges mid-line, between CR and LF, before a dot; an empty LAST.
    cut1 = msg.index(b'\r\n.a line') + 1
    cut2 = msg.index(bytes(range(0x80, 0x90))) + 7
    chunks = [msg[:cut1], msg[cut1:cut2], msg[cut2:], b'']
    s = session()
    logged_in(s)
    # MAIL, RCPT and the first chunk in one write (PIPELINING).
    s.send(f'MAIL FROM:<{SENDER}> BODY=8BITMIME\r\nRCPT TO:<{BOB}>\r\n'
           f'BDAT {len(chunks[0])}\r\n'.encode() + chunks[0])
    assert s.reply().startswith('250')
    assert s.reply().startswith('250')
    assert s.reply().startswith('250')
    replies = send_chunks(s, chunks[1:])
    assert all(r.startswith('250 ') for r in replies), replies
    got = wait_message(plain, count + 1)
    assert relayed(got) == msg
    assert s.command('QUIT').startswith('221 ')
    assert s.finish() == 0, s.stderr


def test_bdat_refused_before_mail_reads_the_chunk(tokend, plain, session):
    sign_in(tokend, plain, extra='[defaults]\nrelay_account = work\n')
    s = session()
    assert s.reply().startswith('220 ')
    s.command('EHLO c')
    s.send(b'BDAT 12\r\nNOOP\r\nNOOP\r\n')
    assert s.reply().startswith('503 5.5.1 tokend: BDAT comes after MAIL')
    assert s.command('NOOP').startswith('250 ')  # the chunk was not read as commands
    assert s.command('BDAT x').startswith('501 5.5.4 ')


def test_large_bdat_chunk_streams_in_constant_memory(tokend, plain, session):
    sign_in(tokend, plain)
    hwm = []
    for size in (1000, 30 * 1024 * 1024):
        count = len(plain.messages())
        msg = body(size=size, eight_bit=True)
        s = session()
        logged_in(s)
        assert s.command(f'MAIL FROM:<{SENDER}> BODY=8BITMIME').startswith('250')
        assert s.command(f'RCPT TO:<{BOB}>').startswith('250')
        assert send_chunks(s, [msg])[0].startswith('250 ')
        hwm.append(_vm_hwm_kib(s.proc.pid))
        s.command('QUIT')
        assert s.finish() == 0
        assert relayed(wait_message(plain, count + 1)) == msg
    assert hwm[1] - hwm[0] < 2048, hwm


def test_bdat_without_recipients_is_refused_and_rset_starts_over(tokend, plain, session):
    sign_in(tokend, plain)
    count = len(plain.messages())
    s = session()
    logged_in(s)
    assert s.command(f'MAIL FROM:<{SENDER}>').startswith('250')
    assert s.command(f'RCPT TO:<{BOB}> XFOO=1').startswith('555 ')
    s.send(b'BDAT 5\r\nhello')
    assert s.reply().startswith('554 5.5.1 tokend: no valid recipients')
    # Upstream still holds the MAIL: RSET ends it on both sides.
    assert s.command('RSET').startswith('250')
    assert s.command(f'MAIL FROM:<{SENDER}>').startswith('250')
    assert s.command(f'RCPT TO:<{BOB}>').startswith('250')
    assert send_chunks(s, [body()])[0].startswith('250 ')
    assert relayed(wait_message(plain, count + 1)) == body()
