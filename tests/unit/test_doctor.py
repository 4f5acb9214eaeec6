"""The doctor's verdicts: pure functions over plain facts."""

import pytest

from fastclone_backend import doctor
from fastclone_backend import explain

CAPS = ("ceph auth caps client.nova mon 'profile rbd' osd 'profile rbd "
        "pool=images, profile rbd pool=vms' mgr 'profile rbd pool=images, "
        "profile rbd pool=vms'")


@pytest.mark.parametrize('requested,status', [
    ('fastrbd', doctor.PASS), ('rbd', doctor.WARN), ('qcow2', doctor.FAIL)])
def test_images_type(requested, status):
    verdict = doctor.check_images_type(requested)
    assert verdict.status == status
    if status != doctor.PASS:
        assert verdict.fix.startswith('[libvirt] images_type = fastrbd')


def test_required_option():
    assert doctor.check_required('[libvirt] images_rbd_pool', 'vms',
                                 'vms').status == doctor.PASS
    verdict = doctor.check_required('[libvirt] images_rbd_pool', '', 'vms')
    assert (verdict.status, verdict.fix) == (
        doctor.FAIL, '[libvirt] images_rbd_pool = vms')


def test_ceph_conf_and_user():
    assert doctor.check_ceph_conf('/etc/ceph/ceph.conf',
                                  True).status == doctor.PASS
    assert doctor.check_ceph_conf('/nope', False).status == doctor.FAIL
    verdict = doctor.check_rbd_user('')
    assert (verdict.status, verdict.fix) == (doctor.WARN,
                                             '[libvirt] rbd_user = nova')


def test_missing_pool_names_the_option_and_the_command():
    verdict = doctor.check_pools({'vms': '[libvirt] images_rbd_pool',
                                  'cache': '[fastclone] cache_pool'},
                                 {'vms', 'images'})
    assert verdict.status == doctor.FAIL
    assert verdict.saw == 'cache ([fastclone] cache_pool) does not exist'
    assert verdict.fix == ('ceph osd pool create cache && rbd pool init '
                           'cache, or correct the option')
    assert doctor.check_pools({'vms': 'x'}, {'vms'}).status == doctor.PASS


def test_connect():
    assert doctor.check_connect('nova', 'c', None, 0.1,
                                5).status == doctor.PASS
    verdict = doctor.check_connect('nova', '/etc/ceph/ceph.conf',
                                   'TimedOut: timed out', 0, 5)
    assert verdict.status == doctor.FAIL
    assert 'within 5 s: TimedOut' in verdict.saw
    assert '/etc/ceph/ceph.client.nova.keyring' in verdict.fix


def test_pool_access_fix_is_the_caps_command():
    verdict = doctor.check_pool_access('nova', 'vms', 'cache', 'write',
                                       'PermissionError: EPERM',
                                       ['images', 'vms'])
    assert verdict.check == 'caps write cache pool vms'
    assert (verdict.status, verdict.fix) == (doctor.FAIL, CAPS)
    assert doctor.check_pool_access('nova', 'vms', 'cache', 'write', None,
                                    ['vms']).status == doctor.PASS


def test_mgr_caps_missing_is_a_warning():
    verdict = doctor.check_mgr('nova', 'access denied (-13)',
                               ['images', 'vms'])
    assert (verdict.status, verdict.fix) == (doctor.WARN, CAPS)
    assert doctor.check_mgr('nova', None, ['vms']).status == doctor.PASS


@pytest.mark.parametrize('setting,compat,fmt,status,fix', [
    ('auto', 'mimic', 2, doctor.PASS, ''),
    ('auto', 'luminous', 1, doctor.WARN,
     'ceph osd set-require-min-compat-client mimic'),
    ('1', 'reef', 1, doctor.WARN,
     'rbd_default_clone_format = auto (or 2) in ceph.conf [client]')])
def test_clone_format(setting, compat, fmt, status, fix):
    verdict = doctor.check_clone_format(setting, compat, fmt)
    assert (verdict.status, verdict.fix) == (status, fix)


def test_trash_schedule():
    assert doctor.check_trash_schedule(
        {'images': ['1d'], 'vms': ['12h']}).status == doctor.PASS
    verdict = doctor.check_trash_schedule({'images': [], 'vms': ['1d']})
    assert (verdict.status, verdict.fix) == (
        doctor.WARN, 'rbd trash purge schedule add --pool images 1d')


def test_leases_of_dead_holders():
    now = 1000.0
    live = {'pool': 'vms', 'object': 'fastclone-lock-a', 'lock': 'populate',
            'client': '4123', 'cookie': 'h:1:a', 'expires': 1060.0,
            'dead': False}
    expired = dict(live, expires=900.0, dead=True)
    assert doctor.check_leases([live, expired], now).status == doctor.PASS
    stuck = dict(live, dead=True)
    verdict = doctor.check_leases([stuck], now)
    assert verdict.status == doctor.WARN
    assert verdict.fix.startswith('rados -p vms lock break fastclone-lock-a '
                                  'populate client.4123 --lock-cookie h:1:a')


@pytest.mark.parametrize('version,formats,direct,status', [
    ('', (), True, doctor.FAIL),
    ('qemu-img version 7.2', ('raw', 'rbd'), True, doctor.PASS),
    ('qemu-img version 7.2', ('raw',), True, doctor.FAIL),
    ('qemu-img version 7.2', ('raw',), False, doctor.PASS)])
def test_qemu_img(version, formats, direct, status):
    assert doctor.check_qemu_img(version, formats, direct).status == status


@pytest.mark.parametrize('version,status', [
    ('34.0.0', doctor.PASS), ('34.1.1', doctor.PASS),
    ('33.0.0', doctor.FAIL), ('35.0.0', doctor.FAIL),
    ('junk', doctor.FAIL)])
def test_nova_version(version, status):
    assert doctor.check_nova_version(version).status == status


def test_glance():
    assert doctor.check_glance('http://g', None, 3).status == doctor.PASS
    verdict = doctor.check_glance('http://g', 'ConnectFailure: refused', 0)
    assert verdict.status == doctor.FAIL
    assert verdict.fix.startswith('[glance] api_servers')


def test_locations():
    assert doctor.check_locations(2, 'a', True, None,
                                  True).status == doctor.PASS
    assert doctor.check_locations(2, None, False, 'a',
                                  True).status == doctor.PASS
    assert doctor.check_locations(0, None, False, None,
                                  True).status == doctor.WARN
    assert doctor.check_locations(2, None, True, None,
                                  True).status == doctor.WARN
    verdict = doctor.check_locations(2, None, False, None, False)
    assert verdict.status == doctor.FAIL
    assert 'use_location_api = False' in verdict.saw
    assert verdict.fix.startswith('show_image_direct_url = True')


def _path(image_id, kind):
    return explain.Path(image_id=image_id, kind=kind, why='w')


def test_images_all_direct_pass():
    verdict = doctor.check_images([_path('a', 'direct')], [])
    assert verdict.status == doctor.PASS
    assert verdict.saw.startswith('1 clone directly, 0 through the cache')


def test_images_by_category_with_fixes():
    verdict = doctor.check_images(
        [_path('a', 'direct'), _path('b', 'cache'), _path('c', 'refused')],
        [('a', 'other cluster', 'fsid'), ('b', 'format', 'qcow2')])
    assert verdict.status == doctor.WARN
    assert '(format: b; other cluster: a; refused: c (w))' in verdict.saw
    assert verdict.fix == ' | '.join([
        'format: ' + doctor.FIXES['format'],
        'other cluster: ' + doctor.FIXES['other cluster'],
        'refused: ' + doctor.FIXES['refused']])


def test_worst():
    v = doctor.Verdict
    assert doctor.worst([v('a', doctor.PASS, '')]) == doctor.PASS
    assert doctor.worst([v('a', doctor.WARN, ''),
                         v('b', doctor.PASS, '')]) == doctor.WARN
    assert doctor.worst([v('a', doctor.WARN, ''),
                         v('b', doctor.FAIL, '')]) == doctor.FAIL
