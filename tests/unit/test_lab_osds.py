"""tools/lab's OSD count (FASTCLONE_LAB_OSDS), without starting a daemon.

The script itself is run on a lab directory made by hand: what it does
before it would start anything (refuse a count, list its daemons).
"""

import os
import subprocess

LAB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'tools', 'lab')


def _lab(lab_dir, *args, osds=None):
    env = dict(os.environ, FASTCLONE_LAB_DIR=str(lab_dir))
    env.pop('FASTCLONE_LAB_OSDS', None)
    if osds is not None:
        env['FASTCLONE_LAB_OSDS'] = osds
    return subprocess.run([LAB] + list(args), env=env, capture_output=True,
                          text=True, timeout=60)


def _bootstrapped(lab_dir, osds=None):
    ceph = lab_dir / 'ceph'
    ceph.mkdir(parents=True)
    (ceph / 'bootstrapped').write_text('fsid\n')
    if osds is not None:
        (ceph / 'osds').write_text('%d\n' % osds)


def test_a_count_out_of_range_is_refused(tmp_path):
    for bad in ('0', '10', 'three'):
        proc = _lab(tmp_path, 'up', osds=bad)
        assert proc.returncode == 1
        assert 'FASTCLONE_LAB_OSDS must be 1..9' in proc.stderr
    assert not (tmp_path / 'ceph').exists()


def test_status_and_pid_follow_the_recorded_count(tmp_path):
    _bootstrapped(tmp_path, osds=3)
    proc = _lab(tmp_path, 'status')
    assert proc.returncode == 1   # nothing runs
    assert proc.stdout.splitlines() == [
        'glance down', 'ceph-osd.0 down', 'ceph-osd.1 down',
        'ceph-osd.2 down', 'ceph-mgr.x down', 'ceph-mon.a down']
    assert _lab(tmp_path, 'pid', 'ceph-osd.2').returncode == 1
    proc = _lab(tmp_path, 'pid', 'ceph-osd.3')
    assert "no daemon named 'ceph-osd.3'" in proc.stderr


def test_a_lab_of_another_count_is_refused(tmp_path):
    _bootstrapped(tmp_path, osds=3)
    proc = _lab(tmp_path, 'up', osds='1')
    assert proc.returncode == 1
    assert 'has 3 OSD(s), FASTCLONE_LAB_OSDS=1' in proc.stderr
    assert not (tmp_path / 'ceph' / 'run').exists()   # nothing started


def test_a_lab_from_before_the_count_has_one_osd(tmp_path):
    _bootstrapped(tmp_path)
    proc = _lab(tmp_path, 'status')
    assert [line for line in proc.stdout.splitlines()
            if line.startswith('ceph-osd')] == ['ceph-osd.0 down']
    proc = _lab(tmp_path, 'up', osds='3')
    assert 'has 1 OSD(s), FASTCLONE_LAB_OSDS=3' in proc.stderr
