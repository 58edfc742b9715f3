#!/usr/bin/env python3
"""Which of LIBRARY's own dependencies to name first in the engine's list
of libraries (meson, at configure time).

  search_first.py LIBRARY NAME...

Prints, one a line, the file name (soname) of each library NAME
(libNAME.so.N or libNAME-X.Y.so.N) that LIBRARY loads, directly or through
another library, in the order of the NAMEs.  A NAME that LIBRARY does not
load is left out, so the engine names no library that would not be in its
process anyway: the list changes the order in which the dynamic linker
searches the libraries, never which ones it maps.  Nothing is printed when
ldd cannot read LIBRARY (the order then stays meson's, and the engine
works the same).
"""

import re
import subprocess
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    try:
        out = subprocess.run(['ldd', sys.argv[1]], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    loaded = re.findall(r'^\s*(\S+\.so\.\S+) => /', out, re.M)
    for name in sys.argv[2:]:
        pattern = re.compile(r'lib' + re.escape(name) + r'(-[0-9.]+)?\.so\.[0-9.]+$')
        for soname in loaded:
            if pattern.match(soname):
                print(soname)
                break
    return 0


if __name__ == '__main__':
    sys.exit(main())
