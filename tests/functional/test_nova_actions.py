"""Nova itself on FastRbd disks: API, conductor, scheduler, two computes.

The scenarios are in :mod:`tests.functional.novaactionshost` (Nova's own
libvirt functional base, ``ServersTestBase``, with the image backend and
Glance real); they run in their own process, because importing
``nova.tests.fixtures`` monkey-patches eventlet into the importing process.
This module uploads the images to the lab's Glance, runs that process with
the interpreter running this one (so with this venv's Nova release) once
per concurrency mode the suite has on that release
(:func:`fastclone_backend.releases.actions_modes`: eventlet; native threads
from Nova 34), and reports each scenario as a test here, with its traceback
when it fails.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from fastclone_backend import releases
from tests.functional import conftest

HOST = 'tests.functional.novaactionshost'
SCENARIOS = (
    'BootTest.test_boot_raw_then_delete',
    'BootTest.test_boot_qcow2_then_delete',
    'ActionsTest.test_hard_reboot',
    'ActionsTest.test_rescue_unrescue',
    'ActionsTest.test_resize_revert',
    'ActionsTest.test_resize_confirm',
    'ActionsTest.test_cold_migrate',
    'ActionsTest.test_rebuild_to_another_image',
    'ActionsTest.test_snapshot_then_boot_from_it',
    'ActionsTest.test_snapshot_of_a_server_on_a_cached_base',
    'ActionsTest.test_shelve_unshelve_on_the_other_compute',
    'CloneChoiceTest.test_file_store_raw_goes_through_the_cache',
    'CloneChoiceTest.test_no_clone_no_cache_then_nova_downloads',
    'CloneChoiceTest.test_clone_v1_where_the_cluster_requires_it',
    'CloneChoiceTest.test_unprotected_snapshot_cloned_as_v2',
    'CloneChoiceTest.test_unprotected_snapshot_where_clone_v1_downloads',
    'ConfigDriveTest.test_config_drive_imported_into_rbd',
    'LocalDisksTest.test_ephemeral_and_swap_disks',
    'PrecacheTest.test_aggregate_precache_then_boot',
    'EvacuateTest.test_evacuate_then_source_compute_returns',
    'LiveMigrateTest.test_live_migrate_there_auto_and_back_without_block',
    'LiveMigrateToStockRbdTest.test_live_migrate_to_stock_then_delete_there',
)
# Each scenario has SCENARIO_TIMEOUT (Nova's TestCase enforces
# OS_TEST_TIMEOUT, oslotest's Timeout fixture: a hung scenario fails, the
# next one runs); the whole host run has TIMEOUT, and pytest a little more.
# Measured on a 2-core machine running other suites beside it: 16 to 50 s
# a scenario, 11 minutes a run (load average 15); 50 to 70 s a scenario at
# load average 30, where 15 minutes were not enough.
SCENARIO_TIMEOUT = 300
TIMEOUT = 2700
pytestmark = pytest.mark.timeout(TIMEOUT + 300)


def _qcow2(images, data):
    raw = images.write(data, 'nova.raw')
    path = raw[:-4] + '.qcow2'
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True, capture_output=True)
    return path


@pytest.fixture(scope='module')
def nova_files(images):
    """(raw, qcow2) files of the same data: every scenario's image holds it."""
    data = conftest.make_data(16 << 20, marker=b'fastclone-nova-actions')
    return images.write(data, 'nova.raw'), _qcow2(images, data)


@pytest.fixture(scope='module')
def uploaded(images, lab, nova_files):
    """{env name: image id}: the images the scenarios boot from."""
    raw, qcow2 = nova_files
    return {
        'FASTCLONE_NOVA_RAW_IMAGE': images.upload(raw).id,
        'FASTCLONE_NOVA_QCOW2_IMAGE': images.upload(
            qcow2, disk_format='qcow2').id,
        # raw, but in Glance's file store: no rbd:// location to clone
        'FASTCLONE_NOVA_FILE_IMAGE': images.upload(
            raw, store=lab.file_store).id,
        # raw in the rbd store; the scenario unprotects its snapshot
        'FASTCLONE_NOVA_SPARE_RAW_IMAGE': images.upload(raw).id,
    }


# Nova's own switch: OS_NOVA_DISABLE_EVENTLET_PATCHING for each mode
SWITCH = {'eventlet': '0', 'threading': '1'}
ONLY = 'FASTCLONE_NOVA_ACTIONS_MODES'   # e.g. 'eventlet': run that mode only


def have():
    """The modes the suite runs in on the installed Nova (ACTIONS_MODES).

    Eventlet only on Nova 31 to 33; native threads and eventlet on 34.
    """
    return releases.actions_modes(releases.installed_version() or '')


def modes():
    """The modes to run the whole suite in: ONLY's, else every one it has.

    A mode asked for that this release lacks fails its tests (no skip).
    """
    asked = [m for m in os.environ.get(ONLY, '').split(',') if m]
    return sorted(asked or have())


@pytest.fixture(scope='module', params=modes())
def outcomes(request, lab, images, uploaded, nova_files, tmp_path_factory):
    mode = request.param
    gap = releases.actions_mode_gap(releases.installed_version() or '',
                                    mode)
    if gap is not None:
        pytest.fail('%s: the suite runs in %s only' % (
            gap, ', '.join(have()) or 'no mode'), pytrace=False)
    out = tmp_path_factory.mktemp('nova-actions-' + mode) / 'outcomes.json'
    env = dict(conftest.lab_environ(lab), **uploaded,
               # a qcow2 image of its own for each run: no cached base yet
               FASTCLONE_NOVA_PRECACHE_IMAGE=images.upload(
                   nova_files[1], disk_format='qcow2').id,
               FASTCLONE_NOVA_CONCURRENCY=mode,
               OS_TEST_TIMEOUT=str(SCENARIO_TIMEOUT),
               OS_NOVA_DISABLE_EVENTLET_PATCHING=SWITCH[mode])
    run_host(out, env)
    with open(out) as f:
        got = json.load(f)
    outcomes = {name.split('.', 1)[1]: outcome
                for name, outcome in got.items()}
    if os.environ.get(REPORT):
        with open(os.environ[REPORT], 'a') as f:
            f.write(report(mode, outcomes))
    return outcomes


def run_host(out, env):
    """Run the host (this interpreter: this venv's Nova) until it is done.

    Its output goes to host.log beside out; its last lines are the failure
    when it writes no outcomes.  Past TIMEOUT it gets SIGABRT: with
    PYTHONFAULTHANDLER (conftest.lab_environ) it prints every thread's
    stack first.
    """
    log = out.parent / 'host.log'
    with open(log, 'w') as f:
        proc = subprocess.Popen([sys.executable, '-m', HOST, str(out)],
                                cwd=conftest.REPO, env=env, stdout=f,
                                stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=TIMEOUT)
            why = 'rc %d' % rc
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            proc.wait()
            why = 'still running after %d s' % TIMEOUT
    if not out.exists():
        with open(log) as f:
            tail = f.read()[-8000:]
        pytest.fail('%s wrote no outcomes (%s); its output (%s) ends:\n%s' % (
            HOST, why, log, tail), pytrace=False)


REPORT = 'FASTCLONE_NOVA_ACTIONS_REPORT'   # a file to append the table to


def report(mode, outcomes):
    """A table: scenario, outcome, RBD images before delete, leftovers."""
    rows = ['', '%s mode' % mode, '',
            '| scenario | outcome | RBD images after it (before delete) '
            '| cached bases kept | leftovers after delete |',
            '|---|---|---|---|---|']
    for name in SCENARIOS:
        outcome = outcomes.get(name, {'status': 'missing', 'seconds': 0})
        servers = outcome.get('rbd', {}).values()
        rows.append('| %s | %s %.1f s | %s | %s | %s |' % (
            name.split('.', 1)[1], outcome['status'], outcome['seconds'],
            '<br>'.join(i for s in servers for i in s.get('before_delete',
                                                          [])),
            '<br>'.join(sorted({b for s in servers
                                for b in s.get('bases', [])})) or '-',
            '<br>'.join(i for s in servers for i in s.get('left', []))
            or 'none'))
    return '\n'.join(rows) + '\n'


def test_every_scenario_ran(outcomes):
    assert sorted(outcomes) == sorted(SCENARIOS)
    assert not [n for n, o in outcomes.items() if o['status'] == 'skip']


@pytest.mark.parametrize('scenario', SCENARIOS)
def test_scenario(outcomes, scenario):
    outcome = outcomes.get(scenario)
    assert outcome is not None, '%s did not run' % scenario
    if outcome['status'] != 'pass':
        detail = outcome['detail']
        start = detail.find('Traceback')
        pytest.fail('%s: %s after %.1f s\n%s' % (
            scenario, outcome['status'], outcome['seconds'],
            detail[start:] if start >= 0 else detail[-8000:]),
            pytrace=False)
    print('%s: %.1f s' % (scenario, outcome['seconds']))
