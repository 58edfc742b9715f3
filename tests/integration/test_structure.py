"""The code's shape is checked (scripts/check-layers.py, run by
scripts/check-static): the tree passes, and each rule fails on a tree that
breaks it."""

import shutil
import subprocess
import sys

from conftest import REPO

CHECK = REPO / 'scripts' / 'check-layers.py'


def check(root):
    return subprocess.run([sys.executable, str(CHECK), str(root)], capture_output=True,
                          text=True, timeout=60)


def copy_src(tmp_path):
    shutil.copytree(REPO / 'src', tmp_path / 'src')
    return tmp_path


def test_the_tree_keeps_its_shape():
    r = check(REPO)
    assert r.returncode == 0, r.stderr


def test_an_include_upward_fails(tmp_path):
    root = copy_src(tmp_path)
    f = root / 'src' / 'base' / 'log.c'
    f.write_text('#include "tokend/flow.h"\n' + f.read_text())
    r = check(root)
    assert r.returncode == 1
    assert 'src/base/log.c:1: base includes flow.h of flow, a layer above it' in r.stderr


def test_a_provider_name_outside_its_table_fails(tmp_path):
    root = copy_src(tmp_path)
    f = root / 'src' / 'flow' / 'flow_refresh.c'
    f.write_text(f.read_text() + '\nstatic const char *x = "google";\n')
    r = check(root)
    assert r.returncode == 1 and 'the provider name "google" outside its table' in r.stderr


def test_a_store_name_outside_its_table_fails(tmp_path):
    root = copy_src(tmp_path)
    f = root / 'src' / 'cli' / 'verbs.c'
    f.write_text(f.read_text() + '\nstatic const char *x = "secret-service";\n')
    r = check(root)
    assert r.returncode == 1 and 'the store kind name "secret-service"' in r.stderr


def test_a_long_function_fails(tmp_path):
    root = copy_src(tmp_path)
    f = root / 'src' / 'base' / 'log.c'
    body = ''.join(f'    (void)x{i};\n' for i in range(70))
    f.write_text(f.read_text() + f'\nvoid too_long(void);\nvoid too_long(void)\n{{\n{body}}}\n')
    r = check(root)
    assert r.returncode == 1 and 'src/base/log.c' in r.stderr and 'a function of 72 lines' in r.stderr
