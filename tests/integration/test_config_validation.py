"""The configuration is checked once, the same way by every command, and a
bad value is exit 78 naming the file, the group and the key; authority
spellings reach the right Microsoft endpoint; loopback traffic never goes
through a proxy from the environment; the commands tokend suggests carry
-c FILE; every command answers --help; check with no mail host is 78."""

import fcntl
import json
import os
import re
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL, EX_USAGE, REPO, TOKEND, Tokend
from harness.authserver import make_certs
from harness.proxy import PROXY_VARS, CountingProxy
from harness.scripted import Reply, ScriptedEndpoint
from harness.wait import wait_until

FOLLOW = REPO / 'tests' / 'harness' / 'follow-redirects'
TENANT = 'contoso.onmicrosoft.com'
MS_TOKEN = f'/{TENANT}/oauth2/v2.0/token'
MS_AUTHORIZE = f'/{TENANT}/oauth2/v2.0/authorize'


def authorize_redirect(req):
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.path).query))
    return Reply(302, b'', {'Location': q['redirect_uri'] + '?' + urllib.parse.urlencode(
        {'code': 'cfg-code-123456', 'state': q['state']})})


TOKENS = Reply(200, {'access_token': 'cfg-access-123456', 'refresh_token': 'cfg-refresh-123456',
                     'token_type': 'Bearer', 'expires_in': 3600})
DEAD = Reply(400, {'error': 'invalid_grant', 'error_description': 'the grant was revoked'})


@pytest.fixture
def ep():
    with ScriptedEndpoint() as endpoint:
        endpoint.script('/authorize', authorize_redirect)
        endpoint.script('/token', TOKENS)
        yield endpoint


@pytest.fixture
def home(tmp_path, ep):
    """An account signed in through a scripted provider on 127.0.0.1."""
    t = Tokend(tmp_path)
    t.env['BROWSER'] = str(FOLLOW)
    t.account(provider='generic', client_id='cfg', authorize_url=ep.url('/authorize'),
              token_url=ep.url('/token'), store='file', username='me@example.com')
    return t


# One bad configuration, every command ------------------------------------------------

BAD_VALUES = [
    ('microsoft', 'authority', 'https://login.microsoftonline.com/common/'
                               'oauth2/v2.0'),
    ('microsoft', 'authority', 'http://login.microsoftonline.com/common'),
    ('microsoft', 'authority', 'https://me@login.microsoftonline.com/common'),
    ('microsoft', 'authority', 'https://login.microsoftonline.com/common?x=1'),
    ('microsoft', 'tenant', 'contoso'),
    ('microsoft', 'imap_host', 'outlook.office365.com:143\nimap_port = 993'),
    ('microsoft', 'smtp_host', '::1:587'),
    ('microsoft', 'pop_host', 'pop.example.com:pop3s'),
    ('generic', 'token_url', 'http://idp.example/token'),
    ('generic', 'issuer', 'https://user@idp.example'),
    ('generic', 'issuer', 'https://idp.example/?tenant=x'),
    ('generic', 'token_url', 'https://idp.example/token#x'),
]
VERBS = [('status',), ('status', 'work'), ('token', 'work'), ('refresh',), ('refresh', 'work'),
         ('logout', 'work'), ('check', 'work'), ('obtain', 'work')]


def write_bad(t, provider, key, value):
    keys = {'provider': provider, 'client_id': 'cfg', 'store': 'file'}
    if provider == 'generic' and key != 'token_url':
        keys.update(authorize_url='https://idp.example/a', token_url='https://idp.example/t')
    if provider == 'generic' and key == 'token_url':
        keys['authorize_url'] = 'https://idp.example/a'
    keys[key] = value
    t.accounts = {'work': keys}
    t.write_config()


@pytest.mark.parametrize('provider,key,value', BAD_VALUES,
                         ids=[f'{k}={v.split(chr(10))[0]}' for _, k, v in BAD_VALUES])
def test_every_command_refuses_the_same_bad_value(tmp_path, provider, key, value):
    t = Tokend(tmp_path)
    write_bad(t, provider, key, value)
    for verb in VERBS:
        r = t.run(*verb)
        assert r.returncode == EX_CONFIG, (verb, r.stderr)
        line = r.stderr.strip()
        assert line.startswith(f'tokend: {t.config}: [account work] {key}: '), (verb, line)
        assert '\n' not in line
    # Nothing was created on the way: the check comes before anything else.
    assert not (tmp_path / 'state' / 'tokend' / 'work').exists()


def test_token_from_a_signed_in_account_rechecks_a_changed_config(home):
    assert home.run('obtain', 'work').returncode == EX_OK
    assert home.run('token', 'work').stdout == 'cfg-access-123456\n'
    home.accounts['work']['redirect_uri'] = 'http://me@127.0.0.1/'
    home.write_config()
    for verb in VERBS:
        r = home.run(*verb)
        assert r.returncode == EX_CONFIG, (verb, r.stderr)
        assert '[account work] redirect_uri: ' in r.stderr, (verb, r.stderr)


# authority spellings ----------------------------------------------------------------

@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp('cfg-certs'))


@pytest.fixture
def ms(tmp_path, certs):
    ca, cert, key = certs
    with ScriptedEndpoint(tls=(cert, key)) as endpoint:
        endpoint.script(MS_AUTHORIZE, authorize_redirect)
        endpoint.script(MS_TOKEN, TOKENS)
        t = Tokend(tmp_path)
        t.env.update(BROWSER=str(FOLLOW), TOKEND_TEST_CA=ca)
        t.ms_keys = dict(provider='microsoft', client_id='facd6cff-a294-4415-b59f-c5b01937d7bd',
                         username='me@contoso.com', ca_file=ca, store='file')
        yield t, endpoint


@pytest.mark.parametrize('authority,tenant', [
    ('127.0.0.1:{port}', TENANT),
    ('https://127.0.0.1:{port}', TENANT),
    ('https://127.0.0.1:{port}/', TENANT),
    ('https://127.0.0.1:{port}/' + TENANT, None),
    ('https://127.0.0.1:{port}/' + TENANT + '/', None),
    ('https://127.0.0.1:{port}/' + TENANT, TENANT),
    ('HTTPS://127.0.0.1:{port}/' + TENANT, None),
])
def test_authority_spellings_reach_the_tenant_endpoints(ms, authority, tenant):
    t, endpoint = ms
    keys = dict(t.ms_keys, authority=authority.format(port=endpoint.port))
    if tenant:
        keys['tenant'] = tenant
    t.accounts = {'work': keys}
    t.write_config()
    r = t.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert endpoint.count(MS_AUTHORIZE) == 1 and endpoint.count(MS_TOKEN) == 1
    assert {urllib.parse.urlsplit(req.path).path for req in endpoint.requests} == \
        {MS_AUTHORIZE, MS_TOKEN}
    assert t.token_file().read_text() == 'cfg-access-123456\n'


@pytest.mark.parametrize('authority,tenant', [
    ('http://127.0.0.1:{port}/' + TENANT, None),
    ('https://127.0.0.1:{port}/' + TENANT + '?p=1', None),
    ('https://127.0.0.1:{port}/' + TENANT + '#x', None),
    ('https://me@127.0.0.1:{port}/' + TENANT, None),
    ('https://127.0.0.1:{port}/' + TENANT + '/oauth2/v2.0', None),
    ('https://127.0.0.1:{port}//' + TENANT, None),
    ('https://127.0.0.1:{port}/fabrikam.onmicrosoft.com', TENANT),
    ('127.0.0.1:{port}/' + TENANT, None),
])
def test_broken_authority_is_refused_before_any_request(ms, authority, tenant):
    t, endpoint = ms
    keys = dict(t.ms_keys, authority=authority.format(port=endpoint.port))
    if tenant:
        keys['tenant'] = tenant
    t.accounts = {'work': keys}
    t.write_config()
    r = t.run('obtain', 'work')
    assert r.returncode == EX_CONFIG, r.stderr
    assert '[account work] authority: ' in r.stderr
    assert endpoint.requests == []


# Proxies ----------------------------------------------------------------------------

@pytest.fixture
def proxy():
    p = CountingProxy()
    yield p
    p.close()


@pytest.fixture
def no_proxy_browser(tmp_path):
    """The stand-in browser, without the proxy: only tokend's own traffic is
    under test."""
    script = tmp_path / 'browser'
    script.write_text('#!/bin/sh\nunset ' + ' '.join(PROXY_VARS) + f'\nexec {FOLLOW} "$1"\n')
    script.chmod(0o755)
    return script


def test_loopback_never_goes_through_a_proxy(home, ep, proxy, no_proxy_browser):
    env = dict(proxy.env(), BROWSER=str(no_proxy_browser))
    r = home.run('obtain', 'work', env=env)
    assert r.returncode == EX_OK, r.stderr
    r = home.run('refresh', '--force', 'work', env=env)
    assert r.returncode == EX_OK, r.stderr
    r = home.run('logout', 'work', env=env)
    assert r.returncode == EX_OK, r.stderr
    assert ep.count('/token') == 2
    assert proxy.asked == []


def test_loopback_over_tls_never_goes_through_a_proxy(ms, proxy, no_proxy_browser):
    t, endpoint = ms
    t.accounts = {'work': dict(t.ms_keys, tenant=TENANT,
                               authority=f'https://127.0.0.1:{endpoint.port}')}
    t.write_config()
    env = dict(proxy.env(), BROWSER=str(no_proxy_browser))
    assert t.run('obtain', 'work', env=env).returncode == EX_OK
    assert t.run('refresh', '--force', 'work', env=env).returncode == EX_OK
    assert endpoint.count(MS_TOKEN) == 2
    assert proxy.asked == []


def test_real_endpoints_keep_the_proxy_from_the_environment(home, ep, proxy, no_proxy_browser):
    # The token endpoint is not loopback: libcurl's https_proxy applies (the
    # proxy here refuses, so the sign-in cannot finish).
    home.accounts['work']['token_url'] = 'https://idp.example/token'
    home.write_config()
    r = home.run('obtain', 'work', env=dict(proxy.env(), BROWSER=str(no_proxy_browser)))
    assert r.returncode == EX_TEMPFAIL, r.stderr
    assert proxy.asked and proxy.asked[0].startswith('CONNECT idp.example:443 ')
    # NO_PROXY as libcurl documents it still exempts a host.
    proxy.asked.clear()
    r = home.run('obtain', 'work', env=dict(proxy.env(), NO_PROXY='idp.example',
                                            BROWSER=str(no_proxy_browser)))
    assert proxy.asked == []


# Loose configuration holding a secret ----------------------------------------------

def test_config_with_client_secret_readable_by_others_is_warned_about(home):
    home.accounts['work']['client_secret'] = 'cfg-secret-987654'
    home.write_config()
    home.config.chmod(0o644)
    r = home.run('status')
    assert r.returncode == EX_OK, r.stderr
    assert 'warning' in r.stderr and str(home.config) in r.stderr
    assert 'client_secret' in r.stderr and '644' in r.stderr
    assert 'cfg-secret-987654' not in r.stderr
    home.config.chmod(0o600)
    assert 'warning' not in home.run('status').stderr


def test_config_without_secret_readable_by_others_is_fine(home):
    home.config.chmod(0o644)
    r = home.run('status')
    assert r.returncode == EX_OK and 'warning' not in r.stderr, r.stderr


# What an account has to itself: its token file, its state folder ----------------------

@pytest.mark.parametrize('spelling', ['same', 'dotdot', 'link', 'default'])
def test_two_accounts_writing_one_token_file_are_refused(home, ep, tmp_path, spelling):
    """The README's ~/.fetchmail-token in two accounts: fetchmail would log
    in to one account's server with the other's token."""
    (home.home / 'mail').mkdir()
    (home.home / 'link').symlink_to(home.home / 'mail')
    first = {'same': '~/.fetchmail-token', 'dotdot': '~/.fetchmail-token',
             'link': str(home.home / 'mail' / 'token'), 'default': None}[spelling]
    second = {'same': '~/.fetchmail-token', 'dotdot': str(home.home / 'mail' / '..' /
                                                          '.fetchmail-token'),
              'link': str(home.home / 'link' / 'token'),
              'default': str(home.state / 'work' / 'token')}[spelling]
    if first:
        home.accounts['work']['token_file'] = first
    home.account('other', provider='generic', client_id='cfg2',
                 authorize_url=ep.url('/authorize'), token_url=ep.url('/token'), store='file',
                 token_file=second)
    for verb in VERBS:
        r = home.run(*verb)
        assert r.returncode == EX_CONFIG, (verb, r.stderr)
        line = r.stderr.strip().splitlines()[-1]
        assert '[account work] and [account other] both write the token file' in line, line
        assert 'token_file' in line
    assert ep.requests == []


def test_an_account_name_in_two_configuration_files_is_refused(home, ep, tmp_path):
    """One name is one state folder: the second file's account would take the
    first one's sign-in and send its refresh token to its own server."""
    assert home.run('obtain', 'work').returncode == EX_OK
    other = tmp_path / 'other.conf'
    other.write_text('[account work]\nprovider = generic\nclient_id = someone-else\n'
                     f'authorize_url = {ep.url("/authorize")}\ntoken_url = {ep.url("/token")}\n'
                     'store = file\n')
    sent = len(ep.requests)
    third = tmp_path / 'third.conf'
    for conf, verb in [(other, v) for v in VERBS] + [
            (third, ('add', 'alice@outlook.com', 'work', '--client-id', 'x', '--no-signin'))]:
        r = home.run('-c', str(conf), *verb)
        assert r.returncode == EX_CONFIG, (verb, r.stderr)
        line = r.stderr.strip().splitlines()[-1]
        assert f'{conf}: [account work] is also in {home.config}' in line, line
        assert 'rename [account work] in one of the two files' in line
        assert f'tokend -c {home.config} logout work' in line
    assert len(ep.requests) == sent
    assert not third.exists()
    # The first file goes on as before.
    assert home.run('token', 'work').returncode == EX_OK
    assert home.run('refresh', '--force', 'work').returncode == EX_OK
    # The way out: the name leaves the first file, and the second may take it.
    home.accounts['renamed'] = home.accounts.pop('work')
    home.write_config()
    r = home.run('-c', str(other), 'status', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert home.run('-c', str(other), 'obtain', 'work').returncode == EX_OK
    assert (home.state / 'work' / 'config-file').read_text() == \
        f'{other}\n{home.state / "work"}\n'
    # Now the first file is the second one.
    home.accounts['work'] = home.accounts.pop('renamed')
    home.write_config()
    r = home.run('status')
    assert r.returncode == EX_CONFIG and f'is also in {other}' in r.stderr


def test_logout_gives_the_state_folder_up(home, ep, tmp_path):
    assert home.run('obtain', 'work').returncode == EX_OK
    assert (home.state / 'work' / 'config-file').read_text().startswith(f'{home.config}\n')
    assert home.run('logout', 'work').returncode == EX_OK
    assert not (home.state / 'work' / 'config-file').exists()
    other = tmp_path / 'other.conf'
    other.write_text(home.config.read_text())
    assert home.run('-c', str(other), 'obtain', 'work').returncode == EX_OK


# The configuration file itself: a link is followed, a FIFO refused -------------------

def test_config_reached_through_a_link_is_its_target(home, ep, tmp_path):
    """~/.config/tokend/config as a link into a dotfiles repository."""
    dotfiles = tmp_path / 'dotfiles'
    dotfiles.mkdir()
    target = dotfiles / 'tokend.conf'
    target.write_text(home.config.read_text())
    target.chmod(0o600)
    home.config.unlink()
    home.config.symlink_to(target)
    r = home.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    r = home.run('token', 'work')
    assert r.returncode == EX_OK and r.stdout == 'cfg-access-123456\n', r.stderr
    assert home.run('status', 'work').returncode == EX_OK
    # add writes into the target, and the link stays a link.
    r = home.run('add', 'alice@outlook.com', 'personal', '--client-id', 'x', '--no-signin')
    assert r.returncode == EX_OK, r.stderr
    assert home.config.is_symlink() and '[account personal]' in target.read_text()
    # The checks of the file are made on the target.
    home.accounts['work']['client_secret'] = 'cfg-secret-987654'
    text = ''.join(f'{k} = {v}\n' for k, v in home.accounts['work'].items())
    target.write_text('[account work]\n' + text)
    target.chmod(0o644)
    r = home.run('status')
    assert r.returncode == EX_OK, r.stderr
    assert 'warning' in r.stderr and 'client_secret' in r.stderr and '644' in r.stderr


def test_config_link_to_nothing_is_no_configuration(home, tmp_path):
    home.config.unlink()
    home.config.symlink_to(tmp_path / 'gone')
    r = home.run('status')
    assert r.returncode == EX_CONFIG, r.stderr
    assert 'no configuration file' in r.stderr


@pytest.mark.parametrize('how', ['default', '-c', 'link'])
def test_config_that_is_a_fifo_is_refused_without_waiting(home, tmp_path, how):
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    args = []
    if how == '-c':
        args = ['-c', str(fifo)]
    else:
        home.config.unlink()
        if how == 'link':
            home.config.symlink_to(fifo)
        else:
            os.mkfifo(home.config)
            fifo = home.config
    for verb in (['status'], ['obtain', 'work'], ['refresh']):
        started = time.monotonic()
        r = home.run(*args, *verb, timeout=30)
        assert time.monotonic() - started < 10
        assert r.returncode == EX_CONFIG, (verb, r.stderr)
        assert f'{fifo} is a FIFO, not a regular file' in r.stderr, r.stderr


# -c FILE in what tokend tells the user to run ---------------------------------------

@pytest.mark.parametrize('folder', ['mail', 'my mail'])
def test_hints_and_notify_carry_the_config_file(home, ep, tmp_path, folder):
    out = tmp_path / 'notified'
    script = tmp_path / 'notify'
    script.write_text(f'#!/bin/sh\nprintf "%s" "$TOKEND_COMMAND" > "{out}"\n')
    script.chmod(0o755)
    home.accounts['work']['notify_cmd'] = str(script)
    home.write_config()
    conf = tmp_path / folder / 'tokend.conf'
    conf.parent.mkdir()
    conf.write_text(home.config.read_text())
    home.config.unlink()
    assert home.run('-c', str(conf), 'obtain', 'work').returncode == EX_OK
    ep.script('/token', DEAD)
    r = home.run('-c', str(conf), 'refresh', '--force', 'work')
    assert r.returncode == EX_NOPERM, r.stderr
    shown = str(conf) if ' ' not in str(conf) else f"'{conf}'"
    assert f'run: tokend -c {shown} obtain work' in r.stderr
    assert out.read_text() == f'tokend -c {shown} obtain work'


def test_relative_config_is_named_absolute_in_hints(home, ep, tmp_path):
    conf = tmp_path / 'tokend.conf'
    conf.write_text(home.config.read_text())
    ep.script('/token', DEAD)
    r = subprocess.run([str(TOKEND), '-c', 'tokend.conf', 'refresh', 'work'], cwd=tmp_path,
                       capture_output=True, text=True, env=home.env, timeout=30)
    assert r.returncode == EX_NOPERM, r.stderr
    assert f'run: tokend -c {conf} obtain work' in r.stderr


# --help after every command ----------------------------------------------------------

def commands_in_code():
    text = (REPO / 'src' / 'cli' / 'verbs.c').read_text()
    table = text[text.index('static const struct verb verbs[]'):]
    return re.findall(r'\{"([a-z]+)", verb_', table)


def options_in_code(verb):
    """The long options of a verb, from its option table."""
    if verb == 'add':
        body = (REPO / 'src' / 'cli' / 'add.c').read_text()
    else:
        text = ''.join(f.read_text() for f in sorted((REPO / 'src' / 'cli').glob('verbs*.c')))
        body = text[re.search(rf'^(static )?int verb_{verb}\(', text, re.M).start():]
        body = body[:body.index('VERB_GETOPT')]
    return re.findall(r'\{"([a-z-]+)", (?:no|required)_argument', body)


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_every_command_answers_help_with_its_own_usage(tmp_path, flag):
    t = Tokend(tmp_path)  # no configuration file at all
    commands = commands_in_code()
    assert len(commands) >= 6
    for c in commands:
        for args in ((c, flag), (c, 'work', flag), (flag, c)):
            r = t.run(*args)
            assert r.returncode == EX_OK, (args, r.stderr)
            assert r.stdout.startswith(f'Usage: tokend [-c FILE] [-v] [-q] {c} ...\n'), args
            assert f'  {c} ' in r.stdout
            # The verb's, not the list of every command.
            assert 'Commands:' not in r.stdout, args
            for option in options_in_code(c):
                assert f'--{option}' in r.stdout, (c, option)


@pytest.mark.parametrize('args,line', [
    (['--bogus'], 'unknown option --bogus'),
    (['--bogus=1', 'status'], 'unknown option --bogus'),
    (['-c'], 'option -c needs a value'),
    (['--config'], 'option --config needs a value'),
    (['-vx', 'status'], 'unknown option -x'),
    (['--help=yes'], 'option --help takes no value'),
])
def test_a_bad_global_option_is_said_once(tmp_path, args, line):
    """The launcher parses the options too, and leaves the saying to the
    engine it loads: one line, not two."""
    t = Tokend(tmp_path)
    r = t.run(*args, env={'LD_DEBUG': 'files'})
    assert r.returncode == EX_USAGE
    said = [ln for ln in r.stderr.splitlines() if ln.startswith('tokend: ')]
    assert said == [f'tokend: {line}; see tokend --help']
    assert 'tokend-engine.so' in r.stderr


def test_the_launcher_hands_the_engine_no_open_file(tokend):
    """The engine runs in the launcher's process: a file the launcher left
    open would be the engine's too (a lock above all: a second flock from
    the same process on another descriptor waits for itself).  The
    launcher reads the account's state, finds the token expired and hands
    over; while the engine waits for the account's lock, which the test
    holds, its open files are read from /proc: the lock once, and none of
    the files the launcher read."""
    tokend.account()
    tokend.obtain()
    assert tokend.run('token', 'work').returncode == EX_OK  # notes the settings
    state = tokend.state / 'work' / 'state.json'
    st = json.loads(state.read_text())
    st['expires_at'] = int(time.time()) - 60
    state.write_text(json.dumps(st))
    lock = tokend.state / 'work' / 'lock'

    def open_files(pid):
        links = []
        for fd in Path(f'/proc/{pid}/fd').iterdir():
            try:
                links.append(os.readlink(fd))
            except FileNotFoundError:
                pass
        return links

    with open(lock, 'a') as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = tokend.popen('token', 'work')
        try:
            wait_until(lambda: str(lock) in open_files(proc.pid), 30,
                       'the engine waiting for the lock')
            links = open_files(proc.pid)
            assert links.count(str(lock)) == 1, links
            for f in (state, tokend.token_file(), tokend.config):
                assert str(f) not in links, links
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == EX_OK, err
    assert out == tokend.token_file().read_text()


def test_help_lists_every_option():
    out = subprocess.run([str(TOKEND), '--help'], capture_output=True, text=True).stdout
    for option in ('--format', '--service', '--no-browser', '--manual', '--device', '--force',
                   '--json', '--imap', '--smtp'):
        assert option in out, option


# check needs a mail server -----------------------------------------------------------

def test_check_without_any_mail_host_is_a_configuration_error(home):
    r = home.run('check', 'work')
    assert r.returncode == EX_CONFIG, r.stderr
    assert r.stderr.startswith('tokend: work: ')
    assert 'imap_host' in r.stderr and str(home.config) in r.stderr
    for flag in ('--imap', '--smtp'):
        r = home.run('check', 'work', flag)
        assert r.returncode == EX_CONFIG, (flag, r.stderr)
        assert f'{flag[2:]}_host' in r.stderr


# issuer: the discovery URLs are built from its parts ---------------------------------

@pytest.mark.parametrize('issuer_path,oidc', [
    ('/realms/mail', True), ('/realms/mail/', True), ('', True),
    ('/realms/mail', False), ('', False),
])
def test_discovery_urls_from_the_issuer(tmp_path, ep, issuer_path, oidc):
    issuer = ep.url(issuer_path)
    bare = issuer_path.rstrip('/')
    meta = Reply(200, {'issuer': issuer, 'authorization_endpoint': ep.url('/authorize'),
                       'token_endpoint': ep.url('/token')})
    if oidc:
        ep.script(f'{bare}/.well-known/openid-configuration', meta)
    else:
        ep.script(f'/.well-known/oauth-authorization-server{bare}', meta)
    t = Tokend(tmp_path)
    t.env['BROWSER'] = str(FOLLOW)
    t.account(provider='generic', client_id='cfg', issuer=issuer, store='file')
    r = t.run('obtain', 'work')
    assert r.returncode == EX_OK, r.stderr
    asked = [urllib.parse.urlsplit(req.path).path for req in ep.requests]
    assert asked[-2:] == ['/authorize', '/token'], asked
    assert asked[0] == (f'{bare}/.well-known/openid-configuration' if oidc else asked[0])
    if not oidc:
        assert asked[1] == f'/.well-known/oauth-authorization-server{bare}', asked
