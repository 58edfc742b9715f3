#!/usr/bin/env python3
"""The code's shape, kept by a check (scripts/check-static runs it):

* Layers run one way.  Each folder of src/ is a layer; a module includes
  headers of its own layer and the ones below, never above:
      base < config < oauth, store < flow, mail, import < onboard < cli
* Functions stay short: none over 60 lines from its opening brace to its
  closing one (a function's braces stand alone at the start of a line, as
  .clang-format writes them).
* Each set of variants has one table.  The names of the providers
  (src/config/provider.c) and of the store kinds (src/store/store_kind.c)
  appear as string literals nowhere else in src/.  "auto" is left out: it
  is also a value of other keys (tunnel_mech, offline_consent).
"""
import re
import sys
from pathlib import Path

REPO = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
SRC = REPO / 'src'
RANK = {'base': 0, 'config': 1, 'oauth': 2, 'store': 2, 'flow': 3, 'mail': 3, 'import': 3,
        'onboard': 4, 'cli': 5}
TABLES = {'provider': SRC / 'config' / 'provider.c', 'store kind': SRC / 'store' / 'store_kind.c'}
NOT_ONLY_THEIRS = {'auto'}


def home_of_headers():
    """header name -> the folder of the module it is the interface of."""
    home = {}
    for c in SRC.glob('*/*.c'):
        home[c.stem + '.h'] = c.parent.name
    return home


def layer_errors():
    home, errors = home_of_headers(), []
    for f in sorted(SRC.glob('*/*.[ch]')):
        layer = f.parent.name
        if layer not in RANK:
            errors.append(f'{f.relative_to(REPO)}: folder {layer} has no place in the layers')
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            m = re.match(r'#include "tokend/([a-z_]+\.h)"', line)
            if not m or m.group(1) not in home:
                continue
            other = home[m.group(1)]
            if RANK[other] > RANK[layer]:
                errors.append(f'{f.relative_to(REPO)}:{n}: {layer} includes {m.group(1)} '
                              f'of {other}, a layer above it')
    return errors


MAX_FUNCTION_LINES = 60


def length_errors():
    errors = []
    for f in sorted(SRC.glob('*/*.c')):
        start = None
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if line == '{' and start is None:
                start = n
            elif line == '}' and start is not None:
                if n - start + 1 > MAX_FUNCTION_LINES:
                    errors.append(f'{f.relative_to(REPO)}:{start}: a function of {n - start + 1} '
                                  f'lines (at most {MAX_FUNCTION_LINES})')
                start = None
    return errors


def table_errors():
    errors = []
    for what, table in TABLES.items():
        names = set(re.findall(r'\.name = "([a-z-]+)"', table.read_text())) - NOT_ONLY_THEIRS
        if not names:
            errors.append(f'{table.relative_to(REPO)}: no {what} names found')
        for f in sorted(SRC.glob('*/*.[ch]')):
            if f == table:
                continue
            for n, line in enumerate(f.read_text().splitlines(), 1):
                for name in names:
                    if f'"{name}"' in line:
                        errors.append(f'{f.relative_to(REPO)}:{n}: the {what} name "{name}" '
                                      f'outside its table ({table.relative_to(REPO)})')
    return errors


def main():
    errors = layer_errors() + table_errors() + length_errors()
    for e in errors:
        print(f'check-layers: {e}', file=sys.stderr)
    if errors:
        return 1
    print('check-layers: layers one way, variant names only in their tables, '
          f'functions of at most {MAX_FUNCTION_LINES} lines')
    return 0


if __name__ == '__main__':
    sys.exit(main())
