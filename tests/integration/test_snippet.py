"""tokend snippet ACCOUNT CLIENT: the recipe templates (doc/recipes/*.in,
compiled into tokend) filled in from the account.  Here: the output is the
template file rendered with the account's values (so the docs, the snippet
verb and the mail client tests cannot drift apart), escaped for each
client's syntax, and the errors.  test_mailclients.py, test_tunnel_clients.py
and test_fetchmail7.py feed the output to the real clients."""

import re
import shlex
import shutil
import subprocess

import pytest

from conftest import EX_CONFIG, EX_OK, EX_USAGE, REPO, TOKEND, Tokend

RECIPES = REPO / 'doc' / 'recipes'

# client: (template, how values are escaped, the service of @HOST@/@PORT@)
CLIENTS = {
    'fetchmail': ('fetchmailrc-plugin.in', 'fetchmail', 'imap'),
    'fetchmail-pop3': ('fetchmailrc-plugin-pop3.in', 'fetchmail', 'pop'),
    'fetchmail7': ('fetchmailrc.in', 'fetchmail', 'imap'),
    'mutt': ('muttrc.in', 'mutt', 'imap'),
    'neomutt': ('muttrc.in', 'mutt', 'imap'),
    'mutt-tunnel': ('muttrc-tunnel.in', 'mutt', 'imap'),
    'neomutt-tunnel': ('muttrc-tunnel.in', 'mutt', 'imap'),
    'msmtp': ('msmtprc.in', 'msmtp', 'smtp'),
    'mbsync': ('mbsyncrc.in', 'dq', 'imap'),
    'mbsync-tunnel': ('mbsyncrc-tunnel.in', 'dq', 'imap'),
    'offlineimap': ('offlineimaprc-tunnel.in', 'ini', 'imap'),
    'getmail': ('getmailrc.in', 'python', 'imap'),
    'postfix': ('postfix-relay.in', 'msmtp', 'smtp'),
    'msmtp-relay': ('msmtprc-relay.in', 'msmtp', 'smtp'),
    'mutt-relay': ('muttrc-relay.in', 'mutt', 'smtp'),
    'neomutt-relay': ('muttrc-relay.in', 'mutt', 'smtp'),
    'fetchmail-relay': ('fetchmailrc-relay.in', 'fetchmail', 'imap'),
    'fetchmail-relay-pop3': ('fetchmailrc-relay-pop3.in', 'fetchmail', 'pop'),
    'git-send-email': ('gitconfig-relay.in', 'dq', 'smtp'),
}
# What each client's double-quoted strings need a '\' before (msmtp only
# strips the outer quotes; fetchmail cannot write '"' at all).
SPECIAL = {'dq': '"\\', 'python': '"\\', 'mutt': '"\\$`', 'ini': '', 'msmtp': '',
           'fetchmail': '\\'}


@pytest.fixture
def tokend(tmp_path):
    return Tokend(tmp_path / 'home')


def escape(value, quote):
    return ''.join('\\' + c if c in SPECIAL[quote] else c for c in value)


def render(template, quote, values):
    """@NAME@ replaced by values[NAME], escaped; other '@' kept."""
    text = (RECIPES / template).read_text()
    return re.sub(r'@([A-Z_]+)@', lambda m: escape(values[m.group(1)], quote), text)


def account(tokend, **keys):
    keys = dict(dict(username='alice@example.org', imap_host='imap.example.org',
                     imap_port=1993, smtp_host='smtp.example.org', smtp_port=1587,
                     pop_host='pop.example.org', pop_port=1995, ca_file='/etc/my ca.pem',
                     provider='generic', client_id='x',
                     authorize_url='https://login.example/auth',
                     token_url='https://login.example/token'), **keys)
    tokend.account(name='mail.me', **keys)
    return keys


def values(tokend, keys, service, quote, config):
    shell = (lambda s: s) if quote == 'python' else shlex.quote
    return {
        'ACCOUNT': 'mail.me', 'USER': keys['username'], 'FROM': keys['username'],
        'URL_USER': keys['username'].replace('@', '%40'),
        'HOST': keys[f'{service}_host'], 'PORT': str(keys[f'{service}_port']),
        **{f'{s.upper()}_{k.upper()}': str(keys[f'{s}_{k}'])
           for s in ('imap', 'smtp', 'pop') for k in ('host', 'port')},
        'TOKEN_FILE': str(tokend.token_file('mail.me')), 'CA_FILE': keys['ca_file'],
        'MAILDIR': '~/Mail/mail.me', 'METADATA': '~/.offlineimap',
        'TOKEND': shell(str(TOKEND)), 'CONFIG': shell(str(config)),
        'RELAY_CERT': str(tokend.state / '_relay-tls' / 'cert.pem'),
    }


@pytest.mark.parametrize('client', sorted(CLIENTS))
def test_snippet_is_the_recipe_template_filled_in(tokend, client):
    template, quote, service = CLIENTS[client]
    keys = account(tokend)
    r = tokend.run('snippet', 'mail.me', client)
    assert r.returncode == EX_OK, r.stderr
    assert r.stdout == render(template, quote, values(tokend, keys, service, quote,
                                                      tokend.config))
    assert not re.search(r'@[A-Z_]+@', r.stdout)


@pytest.mark.parametrize('client', sorted(CLIENTS))
def test_snippet_carries_and_escapes_the_config_file(tokend, tmp_path, client):
    template, quote, service = CLIENTS[client]
    quoted = quote != 'fetchmail'  # fetchmail has no way to write '"'
    config = tmp_path / ('my "mail" $HOME `x` \\' if quoted else 'my mail $HOME `x` \\') \
        / 'tokend.conf'
    config.parent.mkdir()
    tokend.config = config
    keys = account(tokend, username='al"ice$@example.org' if quoted else 'alice$@example.org')
    r = tokend.run('-c', str(config), 'snippet', 'mail.me', client)
    assert r.returncode == EX_OK, r.stderr
    expected = values(tokend, keys, service, quote, config)
    expected['URL_USER'] = ('al%22ice%24%40example.org' if quoted
                            else 'alice%24%40example.org')
    assert r.stdout == render(template, quote, expected)
    if quote != 'python' and '@CONFIG@' in (RECIPES / template).read_text():
        assert f" -c {escape(shlex.quote(str(config)), quote)} " in r.stdout


@pytest.mark.parametrize('client', ['fetchmail', 'fetchmail7'])
def test_fetchmail_refuses_a_double_quote(tokend, client):
    account(tokend, username='al"ice@example.org')
    r = tokend.run('snippet', 'mail.me', client)
    assert r.returncode == EX_CONFIG
    assert 'username holds a \'"\', which a fetchmail configuration cannot carry' in r.stderr
    assert r.stdout == ''


def test_every_template_is_a_client():
    assert {t for t, _, _ in CLIENTS.values()} == \
        {p.name for p in RECIPES.glob('*.in')}


def test_unknown_client_is_a_usage_error_listing_the_known(tokend):
    account(tokend)
    r = tokend.run('snippet', 'mail.me', 'thunderbird')
    assert r.returncode == EX_USAGE
    assert 'unknown mail client "thunderbird"' in r.stderr
    for client in CLIENTS:
        assert client in r.stderr
    assert r.stdout == ''
    assert tokend.run('snippet', 'mail.me').returncode == EX_USAGE


def test_a_missing_host_names_the_key(tokend):
    account(tokend, smtp_host=None, smtp_port=None)
    r = tokend.run('snippet', 'mail.me', 'msmtp')
    assert r.returncode == EX_CONFIG, r.stderr
    assert 'smtp_host' in r.stderr and '[account mail.me]' in r.stderr
    assert r.stdout == ''
    assert tokend.run('snippet', 'mail.me', 'fetchmail').returncode == EX_OK


def test_unknown_account(tokend):
    account(tokend)
    r = tokend.run('snippet', 'nobody', 'mutt')
    assert r.returncode == EX_CONFIG


@pytest.mark.parametrize('mutt', ['mutt', 'neomutt'])
def test_mutt_reads_back_the_command_with_quotes_and_dollars(tokend, tmp_path, mutt):
    """mutt expands $ and ` inside double quotes: the escaped snippet gives
    it back the command exactly (mutt -Q prints the value it holds)."""
    if not shutil.which(mutt):
        pytest.skip(f'needs {mutt}')
    config = tmp_path / 'my "mail" $HOME `x`' / 'tokend.conf'
    config.parent.mkdir()
    tokend.config = config
    account(tokend)
    r = tokend.run('-c', str(config), 'snippet', 'mail.me', mutt)
    assert r.returncode == EX_OK, r.stderr
    rc = tmp_path / 'muttrc'
    rc.write_text(r.stdout)
    q = subprocess.run([mutt, '-n', '-F', str(rc), '-Q', 'imap_oauth_refresh_command'],
                       capture_output=True, text=True, env=tokend.env, timeout=30)
    command = f'{TOKEND} -c {shlex.quote(str(config))} token mail.me'
    # -Q prints the value as mutt would write it: quoted and escaped again.
    assert q.stdout.split('=', 1)[1].strip() == '"' + escape(command, 'mutt').replace(
        '\\$', '$').replace('\\`', '`') + '"', q.stdout + q.stderr
