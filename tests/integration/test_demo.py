"""The README's Quick start runs the demo (scripts/demo): it must keep
working with the built tokend, whatever changes on the way."""

import os
import subprocess
import sys

from conftest import BUILD, REPO


def test_the_demo_runs():
    env = dict(os.environ, TOKEND_BUILD_DIR=str(BUILD))
    env.pop('TOKEND_BIN', None)
    r = subprocess.run([sys.executable, str(REPO / 'scripts' / 'demo.py')], capture_output=True,
                       text=True, timeout=300, env=env, cwd=REPO)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert 'msmtp sent it' in out and 'identity:     alice (verified)' in out, out[-4000:]
    assert 'everything it made is removed' in out
