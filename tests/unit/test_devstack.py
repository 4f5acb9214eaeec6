"""The devstack plugin: bashate, and what each phase does (devstack stubbed).

The settings it writes are checked against fastclone_backend.deploysettings
in tests/unit/test_one_source.py.
"""

import glob
import os
import re
import subprocess
import sys

from tests.unit import devstack_harness as harness

FILES = sorted(glob.glob(os.path.join(harness.DEVSTACK, '*.sh')) +
               glob.glob(os.path.join(harness.DEVSTACK, 'lib', '*')) +
               [os.path.join(harness.DEVSTACK, 'settings')])


def test_bashate_clean():
    """Every check bashate has, as errors, none ignored.

    (devstack-plugin-ceph's tox ignores E006; this does not.)
    """
    bashate = os.path.join(os.path.dirname(sys.executable), 'bashate')
    proc = subprocess.run([bashate, '-v', '--error', 'E'] + FILES,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'warning' not in proc.stdout + proc.stderr
    for path in FILES:
        assert 'Running bashate on %s' % path in proc.stdout


def test_bash_syntax():
    for path in FILES:
        proc = subprocess.run(['bash', '-n', path], capture_output=True,
                              text=True)
        assert proc.returncode == 0, (path, proc.stderr)


def test_settings_name_the_plugin_and_its_requirement():
    """Parsed as devstack's write-devstack-local-conf role parses them.

    It orders the enable_plugin lines by them (roles/
    write-devstack-local-conf/library/devstack_local_conf.py: define_re,
    require_re).
    """
    with open(os.path.join(harness.DEVSTACK, 'settings')) as f:
        text = f.read()
    assert re.findall(r'^define_plugin\s+(\S+).*', text, re.M) == [
        'fastclone-backend']
    assert re.findall(r'^plugin_requires\s+(\S+)\s+(\S+).*', text, re.M) == [
        ('fastclone-backend', 'devstack-plugin-ceph')]


def test_install_phase_pip_installs_the_checkout_without_deps(tmp_path):
    rc, calls, err = harness.phase(tmp_path, 'stack', 'install')
    assert rc == 0, err
    assert calls == [['pip_install', '--no-deps', '-e', harness.REPO]]


def test_install_refuses_per_project_venvs(tmp_path):
    rc, calls, _ = harness.phase(tmp_path, 'stack', 'install',
                                 {'USE_VENV': 'True'})
    assert rc == 3
    assert calls == [['die', 'fastclone-backend: USE_VENV=True is not '
                      'supported']]


def _dropin(tmp_path):
    return tmp_path / 'systemd' / 'devstack@n-cpu.service.d' / \
        'fastclone-backend.conf'


def test_post_config_starts_n_cpu_as_nova_compute_fastrbd(tmp_path):
    rc, calls, err = harness.phase(tmp_path, 'stack', 'post-config')
    assert rc == 0, err
    assert _dropin(tmp_path).read_text() == (
        '[Service]\n'
        'ExecStart=\n'
        'ExecStart=/opt/stack/data/venv/bin/nova-compute-fastrbd '
        '--config-file /etc/nova/nova-cpu.conf '
        '--config-file %s\n' % (tmp_path / 'nova-cpu-fastclone.conf'))
    assert ['systemctl', 'daemon-reload'] in calls
    # the Glance part and the nova-compute part, nothing else
    assert {c[1] for c in calls if c[0] == 'iniset'} == {
        '/etc/glance/glance-api.conf',
        str(tmp_path / 'nova-cpu-fastclone.conf')}


def test_post_config_on_a_compute_only_node(tmp_path):
    rc, calls, err = harness.phase(tmp_path, 'stack', 'post-config',
                                   {'ENABLED': 'n-cpu'})
    assert rc == 0, err
    assert harness.inisets(calls, '/etc/glance/glance-api.conf') == []
    assert harness.inisets(calls, str(tmp_path / 'nova-cpu-fastclone.conf'))
    assert _dropin(tmp_path).exists()


def test_post_config_without_ceph_for_nova_dies(tmp_path):
    rc, calls, _ = harness.phase(tmp_path, 'stack', 'post-config',
                                 {'CEPH_FOR': 'glance'})
    assert rc == 3
    assert calls[-1] == ['die', 'fastclone-backend needs Nova on Ceph '
                         '(devstack-plugin-ceph, ENABLE_CEPH_NOVA=True)']
    assert not _dropin(tmp_path).exists()


def test_post_config_rewrites_a_stale_nova_file(tmp_path):
    stale = tmp_path / 'nova-cpu-fastclone.conf'
    stale.write_text('[libvirt]\nimages_type = qcow2\n')
    rc, _, err = harness.phase(tmp_path, 'stack', 'post-config')
    assert rc == 0, err
    assert not stale.exists()  # removed; the stubbed iniset writes nothing


def test_extra_phase_finds_the_activation_line(tmp_path):
    rc, calls, err = harness.phase(tmp_path, 'stack', 'extra', {
        'ACTIVE_SINCE': 'Wed 2026-12-02 06:12:59 UTC',
        'JOURNAL': 'INFO fastclone_backend.hook fastclone-backend active: '
                   '[libvirt] images_type fastrbd runs as rbd'})
    assert rc == 0, err
    assert calls == [
        ['systemctl', 'show', '-p', 'ActiveEnterTimestamp', '--value',
         'devstack@n-cpu.service'],
        ['journalctl', '--no-pager', '-o', 'cat', '-u',
         'devstack@n-cpu.service', '--since', 'Wed 2026-12-02 06:12:59 UTC']]


def test_extra_phase_dies_when_n_cpu_is_stock(tmp_path):
    rc, calls, _ = harness.phase(tmp_path, 'stack', 'extra', {
        'ACTIVE_SINCE': 'Wed 2026-12-02 06:12:59 UTC',
        'JOURNAL': 'INFO nova.service Starting',
        'FASTCLONE_VERIFY_TIMEOUT': '3'})
    assert rc == 3
    assert sum(c[0] == 'journalctl' for c in calls) == 3
    assert calls[-1] == ['die', "n-cpu did not log 'fastclone-backend "
                         "active' within 3s: see journalctl -u "
                         "devstack@n-cpu.service"]


def test_extra_phase_waits_for_n_cpu_to_be_active(tmp_path):
    rc, calls, _ = harness.phase(tmp_path, 'stack', 'extra', {
        'ACTIVE_SINCE': '', 'FASTCLONE_VERIFY_TIMEOUT': '2',
        'JOURNAL': 'fastclone-backend active'})  # an older run's line
    assert rc == 3
    assert [c[0] for c in calls] == ['systemctl', 'systemctl', 'die']


def test_extra_phase_skipped_without_n_cpu(tmp_path):
    rc, calls, err = harness.phase(tmp_path, 'stack', 'extra',
                                   {'ENABLED': 'g-api'})
    assert (rc, calls) == (0, []), err


def test_unstack_removes_the_dropin_and_clean_the_rest(tmp_path):
    rc, _, err = harness.phase(tmp_path, 'stack', 'post-config')
    assert rc == 0, err
    nova_file = tmp_path / 'nova-cpu-fastclone.conf'
    nova_file.write_text('[libvirt]\n')  # as iniset would have written it
    rc, calls, err = harness.phase(tmp_path, 'unstack')
    assert rc == 0, err
    assert not _dropin(tmp_path).parent.exists()
    assert ['systemctl', 'daemon-reload'] in calls
    assert nova_file.exists()
    rc, calls, err = harness.phase(tmp_path, 'clean')
    assert rc == 0, err
    assert not nova_file.exists()
    assert ['pip_uninstall', 'fastclone-backend'] in calls
