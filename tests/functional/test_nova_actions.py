"""Nova itself on FastRbd disks: API, conductor, scheduler, two computes.

The scenarios are in :mod:`tests.functional.novaactionshost` (Nova's own
libvirt functional base, ``ServersTestBase``, with the image backend and
Glance real); they run in their own process, because importing
``nova.tests.fixtures`` monkey-patches eventlet into the importing process.
This module uploads the images to the lab's Glance, runs that process once
with Nova on eventlet and once on native threads, and reports each scenario
as a test here, with its traceback when it fails.
"""

import json
import subprocess
import sys

import pytest

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
    'ActionsTest.test_shelve_unshelve_on_the_other_compute',
    'EvacuateTest.test_evacuate_then_source_compute_returns',
    'LiveMigrateTest.test_live_migrate_there_auto_and_back_without_block',
    'LiveMigrateToStockRbdTest.test_live_migrate_to_stock_then_delete_there',
)
TIMEOUT = 900


def _qcow2(images, data):
    raw = images.write(data, 'nova.raw')
    path = raw[:-4] + '.qcow2'
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True, capture_output=True)
    return path


@pytest.fixture(scope='module')
def uploaded(images):
    data = conftest.make_data(16 << 20, marker=b'fastclone-nova-actions')
    raw = images.upload(images.write(data, 'nova.raw'))
    qcow2 = images.upload(_qcow2(images, data), disk_format='qcow2')
    return raw.id, qcow2.id


# Nova 34's services run on native threads by default, eventlet is still
# possible: the whole suite runs in both (Nova's own switch)
MODES = {'eventlet': '0', 'threading': '1'}


@pytest.fixture(scope='module', params=sorted(MODES))
def outcomes(request, lab, uploaded, tmp_path_factory):
    mode = request.param
    out = tmp_path_factory.mktemp('nova-actions-' + mode) / 'outcomes.json'
    env = dict(conftest.lab_environ(lab),
               FASTCLONE_NOVA_RAW_IMAGE=uploaded[0],
               FASTCLONE_NOVA_QCOW2_IMAGE=uploaded[1],
               FASTCLONE_NOVA_CONCURRENCY=mode,
               OS_NOVA_DISABLE_EVENTLET_PATCHING=MODES[mode])
    proc = subprocess.run(
        [sys.executable, '-m', HOST, str(out)], cwd=conftest.REPO, env=env,
        capture_output=True, text=True, timeout=TIMEOUT)
    if not out.exists():
        pytest.fail('%s wrote no outcomes (rc %d):\n%s\n%s' % (
            HOST, proc.returncode, proc.stdout[-3000:],
            proc.stderr[-5000:]), pytrace=False)
    with open(out) as f:
        got = json.load(f)
    return {name.split('.', 1)[1]: outcome for name, outcome in got.items()}


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
