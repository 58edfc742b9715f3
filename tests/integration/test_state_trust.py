"""What tokend reads back from its state is believed only after the owner
and mode checks, in every command (status and logout too), folders above
included; logout deletes only the configured token file and files in the
account's own folder; text from the state reaches the terminal escaped;
status notices a token file that is not what the state says."""

import json
import os
import pwd
import stat
import urllib.parse

import pytest

from conftest import EX_CANTCREAT, EX_OK, REPO, Tokend
from harness.scripted import Reply, ScriptedEndpoint

FOLLOW = REPO / 'tests' / 'harness' / 'follow-redirects'
NOBODY = pwd.getpwnam('nobody')
ACCESS = 'trust-access-123456'


@pytest.fixture
def seeded(tmp_path):
    """An account signed in through a scripted provider (quick)."""
    with ScriptedEndpoint() as ep:
        def authorize(req):
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.path).query))
            return Reply(302, b'', {'Location': q['redirect_uri'] + '?' + urllib.parse.urlencode(
                {'code': 'trust-code-123456', 'state': q['state']})})
        ep.script('/authorize', authorize)
        ep.script('/token', Reply(200, {'access_token': ACCESS,
                                        'refresh_token': 'trust-refresh-123456',
                                        'token_type': 'Bearer', 'expires_in': 3600}))
        tokend = Tokend(tmp_path / 'home')
        tokend.env['BROWSER'] = str(FOLLOW)
        tokend.account(provider='generic', client_id='trust', authorize_url=ep.url('/authorize'),
                       token_url=ep.url('/token'), store='file', min_validity=60)
        assert tokend.run('obtain', 'work').returncode == EX_OK
        yield tokend


def edit_state(tokend, **changes):
    path = tokend.state / 'work' / 'state.json'
    state = json.loads(path.read_text())
    state.update(changes)
    path.write_text(json.dumps(state))
    return state


# logout -------------------------------------------------------------------------

def victims(tokend, tmp_path):
    """Files a state.json may name but logout must leave alone."""
    other = tokend.state / 'other'
    other.mkdir(mode=0o700)
    (other / 'token').write_text('other-account-token\n')
    outside = tmp_path / 'precious'
    outside.write_text('precious\n')
    return {'outside': outside, 'other-account': other / 'token'}


@pytest.mark.parametrize('name', ['outside', 'other-account', 'dotdot'])
def test_logout_deletes_only_its_own_files(seeded, tmp_path, name):
    v = victims(seeded, tmp_path)
    named = {'outside': str(v['outside']),
             'other-account': str(v['other-account']),
             'dotdot': str(seeded.state / 'work' / '..' / 'other' / 'token')}[name]
    target = v['outside'] if name == 'outside' else v['other-account']
    before = target.read_bytes()
    edit_state(seeded, token_file=named)
    r = seeded.run('logout', 'work')
    print(f'state.json token_file={named}: exit {r.returncode}: {r.stderr.strip()}')
    assert r.returncode == EX_OK, r.stderr
    assert target.read_bytes() == before
    assert named not in r.stderr
    # What is ours went: the configured token file, the stored token, the state.
    assert not seeded.token_file().exists()
    assert not seeded.refresh_token_file().exists()
    assert not (seeded.state / 'work' / 'state.json').exists()


def test_logout_still_removes_an_old_token_file_in_its_folder(seeded):
    """token_file was changed in the configuration since the last write: the
    old file, inside the account's folder, still goes."""
    old = seeded.state / 'work' / 'token.old'
    old.write_text('old-token\n')
    edit_state(seeded, token_file=str(old))
    r = seeded.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert not old.exists() and str(old) in r.stderr


def test_logout_says_the_state_was_unreadable(seeded):
    """A corrupt state.json does not stop logout, but it is said: the
    tokens it would have named are looked for only where the configuration
    says."""
    (seeded.state / 'work' / 'state.json').write_text('{not json')
    r = seeded.run('logout', 'work')
    assert r.returncode == EX_OK, r.stderr
    assert 'work: ' in r.stderr and 'logging out with what the configuration says' in r.stderr
    assert not seeded.token_file().exists()
    assert not (seeded.state / 'work' / 'state.json').exists()


# Untrusted folders ----------------------------------------------------------------

def untrust(tokend, how):
    folder = tokend.state / 'work'
    if how == 'folder-of-another-user':
        os.chown(folder, NOBODY.pw_uid, NOBODY.pw_gid)
        return folder
    parent = tokend.state
    if how == 'parent-of-another-user':
        os.chown(parent, NOBODY.pw_uid, NOBODY.pw_gid)
    elif how == 'parent-writable-by-all':
        parent.chmod(0o777)
    elif how == 'grandparent-writable-by-all':
        parent = parent.parent
        parent.chmod(0o777)
    return parent


HOW = ['folder-of-another-user', 'parent-of-another-user', 'parent-writable-by-all',
       'grandparent-writable-by-all']


@pytest.mark.parametrize('how', HOW)
def test_status_does_not_believe_an_untrusted_state(seeded, how):
    edit_state(seeded, last_error='PLANTED by someone else', store='PLANTED-store')
    where = untrust(seeded, how)
    r = seeded.run('status', 'work')
    print(f'{how}: exit {r.returncode}:\n{r.stdout}{r.stderr}')
    assert 'PLANTED' not in r.stdout + r.stderr
    assert str(where) in r.stdout and 'another user' in r.stdout
    assert 'sign-in:      needed' in r.stdout


@pytest.mark.parametrize('how', HOW)
def test_logout_refuses_an_untrusted_folder(seeded, tmp_path, how):
    v = victims(seeded, tmp_path)
    edit_state(seeded, token_file=str(seeded.state / 'work' / 'planted'))
    planted = seeded.state / 'work' / 'planted'
    planted.write_text('whose?\n')
    where = untrust(seeded, how)
    r = seeded.run('logout', 'work')
    print(f'{how}: exit {r.returncode}: {r.stderr.strip()}')
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert str(where) in r.stderr and 'another user' in r.stderr
    assert planted.exists() and v['outside'].exists()


@pytest.mark.parametrize('how', HOW[1:])
def test_token_refuses_state_under_a_folder_others_can_change(seeded, how):
    """The cached token is not handed out from under a folder another user
    can swap (the folder's own owner is covered in test_secrets)."""
    assert seeded.run('token', 'work').stdout == ACCESS + '\n'
    where = untrust(seeded, how)
    r = seeded.run('token', 'work')
    print(f'{how}: exit {r.returncode}: {r.stderr.strip()}')
    assert r.returncode == EX_CANTCREAT, r.stderr
    assert r.stdout == ''
    assert str(where) in r.stderr


def test_sticky_world_writable_parent_is_fine(seeded):
    """/tmp-like folders (sticky) above the state are normal."""
    seeded.state.parent.chmod(0o1777)
    r = seeded.run('token', 'work')
    assert r.returncode == EX_OK and r.stdout == ACCESS + '\n', r.stderr
    assert seeded.run('status', 'work').returncode == EX_OK


# Escaped text ---------------------------------------------------------------------

def test_status_escapes_text_from_the_state(seeded):
    edit_state(seeded, last_error='\x1b[31mred\nfake:   line\u202eevil\\',
               store='file\x1b]0;title\x07')
    r = seeded.run('status', 'work')
    print(r.stdout)
    assert r.returncode == EX_OK, r.stderr
    assert '\x1b' not in r.stdout and '\x07' not in r.stdout and '\u202e' not in r.stdout
    assert '  last error:   \\x1b[31mred\\nfake:   line\\u202eevil\\\\\n' in r.stdout
    assert '  store:        file\\x1b]0;title\\x07 (configured: file)\n' in r.stdout
    # JSON escapes by itself, and keeps the text as it is.
    j = json.loads(seeded.run('status', '--json', 'work').stdout)[0]
    assert j['last_error'].startswith('\x1b[31mred\n')


# The token file against the state ----------------------------------------------------

@pytest.mark.parametrize('damage', ['missing', 'two-lines', 'empty'])
def test_status_notices_a_missing_or_corrupt_token_file(seeded, damage):
    f = seeded.token_file()
    assert 'problem' not in seeded.run('status', 'work').stdout
    if damage == 'missing':
        f.unlink()
        said = 'the access token file is missing'
    else:
        f.write_text({'two-lines': 'abc\ndef\n', 'empty': ''}[damage])
        said = 'the access token file does not hold one token'
    r = seeded.run('status', 'work')
    print(r.stdout)
    assert f'  problem:      {said}; run: tokend refresh --force work\n' in r.stdout
    j = json.loads(seeded.run('status', '--json', 'work').stdout)[0]
    assert j['problem'].startswith(said)
    # What it says to run mends it.
    assert seeded.run('refresh', '--force', 'work').returncode == EX_OK
    assert f.read_text() == ACCESS + '\n'
    assert 'problem' not in seeded.run('status', 'work').stdout


def test_status_says_obtain_when_a_sign_in_is_needed(seeded):
    seeded.token_file().unlink()
    edit_state(seeded, needs_signin=True)
    r = seeded.run('status', 'work')
    assert '  problem:      the access token file is missing; run: tokend obtain work\n' \
        in r.stdout
