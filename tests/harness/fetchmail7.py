"""fetchmail 7 (the unreleased `next` branch) built from the source in
../shared/fetchmail/ (or $TOKEND_FETCHMAIL7_SRC), once, into
build/fetchmail7/obj/fetchmail.  Nothing is faked: without the
source, or when the build fails, the caller is told why and skips (which
tests/conftest.py turns into a failure unless TOKEND_ALLOW_SKIP=1).

    path, why = fetchmail7(REPO / 'build')   # None, and why, when it cannot
"""

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ('autoreconf', 'autopoint', 'flex', 'bison', 'make', 'gcc')


def source_dir():
    return Path(os.environ.get('TOKEND_FETCHMAIL7_SRC', REPO.parent / 'shared' / 'fetchmail'))


def _tarball(src):
    found = sorted(src.glob('fetchmail-next-*.tar.gz')) if src.is_dir() else []
    return found[-1] if found else None


def _build(tarball, top, log):
    srcdir, obj = top / 'src', top / 'obj'
    shutil.rmtree(srcdir, ignore_errors=True)
    shutil.rmtree(obj, ignore_errors=True)
    srcdir.mkdir(parents=True)
    obj.mkdir()
    subprocess.run(['tar', 'xzf', str(tarball), '-C', str(srcdir)], stdout=log, stderr=log,
                   check=True)
    tree = next(p for p in srcdir.iterdir() if p.is_dir())
    subprocess.run(['autoreconf', '-fi'], cwd=tree, stdout=log, stderr=log, check=True)
    subprocess.run([str(tree / 'configure'), '--without-hesiod', '--disable-nls',
                    '--without-kerberos'], cwd=obj, stdout=log, stderr=log, check=True)
    subprocess.run(['make', '-j2'], cwd=obj, stdout=log, stderr=log, check=True)


def fetchmail7(build_dir):
    """(path to the fetchmail 7 binary, None) or (None, why not)."""
    src = source_dir()
    tarball = _tarball(src)
    if not tarball:
        return None, f'no fetchmail 7 source in {src} (fetchmail-next-*.tar.gz)'
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return None, f'building fetchmail 7 needs {", ".join(missing)} (see scripts/setup)'
    top = Path(build_dir).resolve() / 'fetchmail7'
    top.mkdir(parents=True, exist_ok=True)
    binary, stamp = top / 'obj' / 'fetchmail', top / 'built-from'
    with open(top / 'lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build, whoever asks first
        if binary.exists() and stamp.exists() and stamp.read_text() == tarball.name:
            return str(binary), None
        with open(top / 'build.log', 'w') as log:
            try:
                _build(tarball, top, log)
            except (subprocess.CalledProcessError, StopIteration, OSError) as e:
                return None, f'building fetchmail 7 failed ({e}); see {top / "build.log"}'
        stamp.write_text(tarball.name)
    return str(binary), None
