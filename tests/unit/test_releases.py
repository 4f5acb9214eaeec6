#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""The supported Nova releases and the start-up gate of both programs."""

import os
import subprocess
import sys
from unittest import mock

import pytest

from fastclone_backend import exception
from fastclone_backend import hook
from fastclone_backend import releases

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@pytest.mark.parametrize('version,major,supported', [
    ('31.0.0', 31, True), ('32.2.1', 32, True), ('33.0.2', 33, True),
    ('34.0.0', 34, True), ('34.0.1.dev12', 34, True),
    ('30.3.0', 30, False), ('35.0.0', 35, False), ('', None, False),
    ('junk', None, False)])
def test_support(version, major, supported):
    found = releases.support(version)
    assert (found.major, found.supported) == (major, supported)


def test_every_tested_release_has_its_pins():
    # tools/venv --nova N and tox env novaN read constraints/novaN.txt
    for major, series in releases.SERIES.items():
        pins = os.path.join(REPO, 'constraints', 'nova%d.txt' % major)
        with open(pins) as f:
            lines = f.read().splitlines()
        assert '-c upper-constraints-%s.txt' % series in lines
        assert any(line.startswith('nova==%d.' % major) for line in lines)
        assert os.path.isfile(os.path.join(
            REPO, 'constraints', 'upper-constraints-%s.txt' % series))


def test_requirements_never_name_nova():
    with open(os.path.join(REPO, 'requirements.txt')) as f:
        names = [line.split('>')[0].split('=')[0].split('<')[0].strip()
                 for line in f if line.strip() and not line.startswith('#')]
    assert 'nova' not in names
    for line in open(os.path.join(REPO, 'requirements.txt')):
        assert '==' not in line.split('#')[0], line   # lower bounds only


def test_refusal_is_one_line_naming_release_and_outcome():
    line = releases.refusal('nova-compute-fastrbd', '30.3.0',
                            'nova-compute not started')
    assert line == ('nova-compute-fastrbd: Nova 30.3.0 is not supported: '
                    'older than Nova 31 (2025.1), the first release '
                    'fastclone-backend runs with; nova-compute not started')
    assert releases.refusal('x', '33.0.2', 'y') is None
    assert 'no Nova is installed' in releases.refusal('x', None, 'y')


def test_hook_refuses_unsupported_release():
    with mock.patch.object(releases, 'installed_version',
                           return_value='35.0.0'):
        exc = pytest.raises(exception.NovaReleaseUnsupported, hook.install)
    assert 'Nova 35.0.0 is not supported: newer than Nova 34' in str(
        exc.value)
    assert not hook.installed()


def test_lacking_warns_once_naming_the_release_that_brings_it():
    releases._lacking_said.discard('thing')
    with mock.patch('oslo_log.log.getLogger') as get_logger:
        releases.lacking('thing', 33, 'done without')
        releases.lacking('thing', 33, 'done without')
    warning = get_logger.return_value.warning
    warning.assert_called_once()
    args = warning.call_args[0][1]
    assert (args['feature'], args['first'], args['series'],
            args['then']) == ('thing', 33, '2026.1', 'done without')
    assert args['version'] == releases.installed_version()


# A Nova 30 distribution ahead of the real one on sys.path: what
# importlib.metadata (and so the gate) sees first.  Then the program's main,
# in a fresh interpreter; it must not import Nova at all.
GATED = """
import sys
sys.path.insert(0, sys.argv[1])
from fastclone_backend.cmd import %(module)s as cmd
rc = cmd.main()
print('nova imported: %%s' %% any(m == 'nova' or m.startswith('nova.')
                                  for m in sys.modules))
sys.exit(rc)
"""


@pytest.mark.parametrize('module,line_end', [
    ('compute', 'nova-compute not started'),
    ('manage', 'nothing done')])
def test_programs_refuse_nova_30_without_starting(tmp_path, module,
                                                  line_end):
    dist = tmp_path / 'nova-30.3.0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: nova\n'
                                   'Version: 30.3.0\n')
    proc = subprocess.run(
        [sys.executable, '-c', GATED % {'module': module}, str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == 'nova imported: False'
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('nova-compute-fastrbd: Nova 30.3.0 is not '
                               'supported' if module == 'compute' else
                               'fastclone-manage: Nova 30.3.0 is not '
                               'supported')
    assert lines[0].endswith('; ' + line_end)


@pytest.mark.parametrize('version,modes', [
    ('31.3.1', ('eventlet',)), ('32.2.1', ('eventlet',)),
    ('33.0.2', ('eventlet', 'threading')),
    ('34.0.0', ('threading', 'eventlet')), ('30.3.0', ()), ('junk', ())])
def test_concurrency_modes(version, modes):
    assert releases.concurrency_modes(version) == modes


@pytest.mark.parametrize('version,modes', [
    ('31.3.1', ('eventlet',)), ('32.2.1', ('eventlet',)),
    ('33.0.2', ('eventlet',)), ('34.0.0', ('threading', 'eventlet')),
    ('35.0.0', ())])
def test_actions_modes(version, modes):
    assert releases.actions_modes(version) == modes


@pytest.mark.parametrize('version,mode,gap', [
    ('34.0.0', 'threading', None), ('33.0.2', 'eventlet', None),
    ('33.0.2', 'threading',
     "Nova 33.0.2's functional test base has no native threads"),
    ('32.2.1', 'threading', "Nova 32.2.1's nova-compute has no native "
     'threads'),
    ('35.0.0', 'eventlet', "Nova 35.0.0's nova-compute has no eventlet"),
    ('34.0.0', 'gevent', "Nova 34.0.0's nova-compute has no gevent")])
def test_actions_mode_gap(version, mode, gap):
    assert releases.actions_mode_gap(version, mode) == gap


def test_actions_modes_are_modes_of_nova_compute():
    for major, modes in releases.ACTIONS_MODES.items():
        assert set(modes) <= set(releases.CONCURRENCY[major]), major
        assert 'eventlet' in modes, major


def _nova_source(*parts):
    import nova
    path = os.path.join(os.path.dirname(nova.__file__), *parts)
    with open(path) as f:
        return f.read()


def test_concurrency_modes_are_the_installed_novas():
    """What CONCURRENCY says of this venv's Nova is what its code does.

    nova-compute runs on native threads where its entry point serves
    without forking (``no_fork=True``, Nova 33's "Do not fork compute
    workers in native threading mode", part of nova-compute's native
    threading; Nova 32 switches every service alike, from
    ``nova/cmd/__init__``, and supports it for API, scheduler and metadata
    only); they are the default where the entry point asks patch() for
    backend='threading'.
    """
    modes = releases.concurrency_modes(releases.installed_version())
    compute = _nova_source('cmd', 'compute.py')
    threading = ('BackendType.THREADING' in _nova_source('monkey_patch.py')
                 and 'no_fork=True' in compute)
    default = ('threading' if "patch(backend='threading')" in compute
               else 'eventlet')
    assert ('threading' in modes) == threading, modes
    assert 'eventlet' in modes
    assert modes[0] == default, modes


def test_actions_modes_are_the_installed_novas():
    """The suite runs threads where Nova's functional base can.

    Nova's versioned-notification fixture walks eventlet's greenlets for
    the sending test case except on native threads; before Nova 34 it
    always does, and fails any notification sent on native threads.
    """
    modes = releases.actions_modes(releases.installed_version())
    notifier = _nova_source('tests', 'fixtures', 'notifications.py')
    threading = ('threading' in releases.concurrency_modes(
        releases.installed_version()) and
        'concurrency_mode_threading' in notifier)
    assert ('threading' in modes) == threading, modes
    assert modes[0] == releases.concurrency_modes(
        releases.installed_version())[0], modes
