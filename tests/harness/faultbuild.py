"""A build of tokend with its kill points compiled in, for the crash tests.

    tokend_path = faultbuild.build()   # meson setup (once) + meson compile

src/flow/flow.c marks FAULT_POINT("before-request"), ("after-response"),
("after-store") and ("after-token-file"); with -Dfault_injection=true the
engine raises SIGKILL at the point named by $TOKEND_FAULT.  The same build
numbers the file operations of a run (src/base/fileio.c: create, reserve, write,
sync, rename, dirsync) and fails the one numbered $TOKEND_FAULT_IO_AT with
$TOKEND_FAULT_IO_ERRNO (ENOSPC, the default, or EIO), noting "N op path" in
$TOKEND_FAULT_LOG; io_fault_env() builds that environment.
$TOKEND_FAULT_NO_FALLOCATE=1 reserves room as where fallocate is missing.  The build lives
in build-fault/ beside the source (ignored by git, rebuilt incrementally) or
in $TOKEND_FAULT_BUILD_DIR; it never touches the main build directory.
Concurrent test sessions take turns through a lock file in that directory.
"""

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / 'build-fault'
POINTS = ('before-request', 'after-response', 'after-store', 'after-token-file')
IO_ERRNOS = ('ENOSPC', 'EIO')


def io_fault_env(n, errno_name, log):
    """The environment that fails file operation number n with errno_name."""
    return {'TOKEND_FAULT_IO_AT': str(n), 'TOKEND_FAULT_IO_ERRNO': errno_name,
            'TOKEND_FAULT_LOG': str(log)}


def io_fault_hit(log):
    """(op, path) of the operation that was failed, or None."""
    try:
        _, op, path = log.read_text().split(maxsplit=2)
    except (OSError, ValueError):
        return None
    return op, path.strip()


class FaultBuildError(RuntimeError):
    pass


def meson_missing():
    """The reason the fault build cannot be made here, or None."""
    for tool in ('meson', 'ninja'):
        if shutil.which(tool) is None:
            return f'{tool} is not installed (the fault-injection build needs it)'
    return None


def build_dir():
    return Path(os.environ.get('TOKEND_FAULT_BUILD_DIR') or DEFAULT_DIR)


def _run(args):
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise FaultBuildError(f'{" ".join(args)} failed ({r.returncode}):\n'
                              f'{(r.stdout + r.stderr)[-4000:]}')


def _fault_option(directory):
    try:
        options = json.loads((directory / 'meson-info' / 'intro-buildoptions.json').read_text())
    except (OSError, ValueError):
        return None
    for o in options:
        if o.get('name') == 'fault_injection':
            return o.get('value')
    return None


def build(directory=None):
    """Configures (once) and compiles tokend and tokend-engine.so with
    -Dfault_injection=true; returns the path of the tokend launcher."""
    d = Path(directory or build_dir()).resolve()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / '.faultbuild.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / 'build.ninja').exists():
            _run(['meson', 'setup', '--wrap-mode=nofallback', '-Dfault_injection=true',
                  str(d), str(REPO)])
        elif _fault_option(d) is not True:
            _run(['meson', 'configure', '-Dfault_injection=true', str(d)])
        _run(['meson', 'compile', '-C', str(d), 'tokend:executable',
              'tokend-engine:shared_library'])
    tokend = d / 'src' / 'tokend'
    if not os.access(tokend, os.X_OK):
        raise FaultBuildError(f'{tokend} was not built')
    return tokend
