"""What nova-compute and fastclone-manage import holds no lab code.

The demo, the benchmark and the functional tests' one-disk helper live in
``fastclone_lab`` (the repository's, never installed); the installed
package is only what a compute host runs.
"""

import pkgutil
import subprocess
import sys

import fastclone_backend

ENTRY_POINTS = ('fastclone_backend.cmd.compute',
                'fastclone_backend.cmd.manage', 'fastclone_backend.hook',
                'fastclone_backend.spawn.fastrbd')


def test_entry_points_import_no_lab_code():
    code = ('import importlib, sys\n'
            'for name in %r: importlib.import_module(name)\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("fastclone_lab", "benchmarks", "tests")))' % (ENTRY_POINTS,))
    # from / so that the repository's own packages are not importable
    out = subprocess.run([sys.executable, '-c', code], cwd='/',
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'


def test_installed_package_has_no_lab_modules():
    names = {m.name for m in pkgutil.walk_packages(
        fastclone_backend.__path__, 'fastclone_backend.')}
    assert 'fastclone_backend.spawn.fastrbd' in names
    lab_only = {'fastclone_backend.novaflow', 'fastclone_backend.labkit',
                'fastclone_backend.cmd.demo'}
    assert names & lab_only == set()
