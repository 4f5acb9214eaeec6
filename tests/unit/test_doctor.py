"""The doctor's verdicts, one test per check of the table, and its guard.

Each check: a bad fact gives FAIL or WARN with the fix, the good fact
PASS.  Every probe raising still gives every row; the generated table in
doc/source/doctor.rst is the code's.
"""

import os

import pytest

from fastclone_backend.manage import checktable
from fastclone_backend.manage import doctor
from fastclone_backend.manage import facts as facts_mod
from fastclone_backend.manage import probes
from fastclone_backend.spawn import explain

CAPS = ("ceph auth caps client.nova mon 'profile rbd' osd 'profile rbd "
        "pool=images, profile rbd pool=vms' mgr 'profile rbd pool=images, "
        "profile rbd pool=vms'")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _path(image_id, kind):
    return explain.Path(image_id=image_id, kind=kind, why='w')


STORES = [{'id': 'ceph', 'type': 'rbd',
           'properties': {'pool': 'images', 'fsid': 'F'}},
          {'id': 'fs', 'type': 'file', 'properties': {}}]
LIVE = {'pool': 'vms', 'object': 'fastclone-lock-a', 'lock': 'populate',
        'client': '4123', 'cookie': 'h:1:a', 'expires': 1060.0,
        'dead': False}


def _c(func, good, *bad):
    """(function, good args, [(bad args, status, text in the fix)])."""
    return func, good, list(bad)


CASES = {
    'images_type': _c(
        doctor.check_images_type, ('fastrbd',),
        (('rbd',), doctor.WARN, '[libvirt] images_type = fastrbd'),
        (('qcow2',), doctor.FAIL, '[libvirt] images_type = fastrbd')),
    'images_rbd_pool': _c(
        doctor.check_images_rbd_pool, ('vms',),
        (('',), doctor.FAIL, '[libvirt] images_rbd_pool = vms')),
    'ceph.conf': _c(
        doctor.check_ceph_conf, ('/etc/ceph/ceph.conf', 'ok', ''),
        (('/nope', 'missing', ''), doctor.FAIL, 'images_rbd_ceph_conf ='),
        (('/x', 'unreadable', ''), doctor.FAIL, 'readable by the user'),
        (('', '', ''), doctor.FAIL, 'images_rbd_ceph_conf =')),
    'rbd_user': _c(
        doctor.check_rbd_user, ('nova',),
        (('',), doctor.WARN, '[libvirt] rbd_user = nova')),
    'clone policy': _c(
        doctor.check_clone_policy, (['images'], True),
        (([], True), doctor.WARN, 'clone_allowed_pools = '),
        ((['images'], False), doctor.WARN,
         'clone_require_image_id_match = True')),
    'cache settings': _c(
        doctor.check_cache_settings, (True, 1800, 10, 0),
        ((False, 1800, 10, 0), doctor.WARN, 'cache_enabled = True'),
        ((True, 20, 10, 0), doctor.WARN, 'cache_wait_timeout = 1800'),
        ((True, 1800, 10, 3), doctor.WARN, 'rados_op_timeout = 30')),
    'convert limits': _c(
        doctor.check_convert_limits, (4096, 3600, True),
        ((1024, 3600, True), doctor.WARN,
         'convert_address_space_mib = 4096'),
        ((4096, 60, True), doctor.WARN, 'convert_cpu_seconds = 3600')),
    'image_cache': _c(
        doctor.check_image_cache, (True, 2400, 86400, True),
        ((False, 2400, 86400, True), doctor.WARN,
         'remove_unused_base_images = True'),
        ((True, -1, 86400, False), doctor.WARN, 'manager_interval = 2400'),
        ((True, 2400, 60, False), doctor.WARN,
         'remove_unused_original_minimum_age_seconds = 86400')),
    'glance rbd download': _c(
        doctor.check_glance_rbd_download, (True, 'nova', 'images', 'ok'),
        ((True, '', 'images', 'ok'), doctor.FAIL, 'enable_rbd_download = '
         'False'),
        ((True, 'nova', 'images', 'missing'), doctor.FAIL, 'rbd_ceph_conf')),
    'service user': _c(
        doctor.check_service_user, (True, True, 'nova', None),
        ((True, True, 'nova', 'ConnectFailure: refused'), doctor.FAIL,
         '[service_user] auth_type'),
        ((False, False, 'x', 'AuthorizationFailure: none'), doctor.WARN,
         '[service_user] auth_type'),
        ((True, False, 'nova', None), doctor.WARN,
         'send_service_user_token = True')),
    'lock_path': _c(
        doctor.check_lock_path, ('/var/lib/nova/tmp', 'ok'),
        (('', ''), doctor.WARN, 'lock_path = /var/lib/nova/tmp'),
        (('/proc/x', 'cannot write'), doctor.FAIL, 'lock_path = ')),
    'ceph keyring': _c(
        doctor.check_keyring, ('nova', 'k', {'/etc/ceph/k': 'ok'}),
        (('nova', 'k', {'/etc/ceph/k': 'missing'}), doctor.FAIL,
         'ceph auth get client.nova -o /etc/ceph/ceph.client.nova.keyring'),
        (('nova', 'k', {}), doctor.FAIL, 'ceph auth get client.nova')),
    'ceph reachable': _c(
        doctor.check_connect, ('nova', 'c', None, 0.1, 5),
        (('nova', '/etc/ceph/ceph.conf', 'TimedOut: timed out', 0, 5),
         doctor.FAIL, '/etc/ceph/ceph.client.nova.keyring')),
    'pools': _c(
        doctor.check_pools, ({'vms': 'x'}, {'vms'}),
        (({'vms': '[libvirt] images_rbd_pool',
           'cache': '[fastclone] cache_pool'}, {'vms', 'images'}),
         doctor.FAIL, 'ceph osd pool create cache && rbd pool init cache, '
         'or correct the option')),
    'caps osd': _c(
        doctor.check_osd_caps,
        ('nova', [('vms', 'cache', 'write', None)], ['vms']),
        (('nova', [('vms', 'cache', 'write', 'PermissionError: EPERM')],
          ['images', 'vms']), doctor.FAIL, CAPS)),
    'caps mon': _c(
        doctor.check_blocklist_cap, ('nova', None, ['vms']),
        (('nova', 'access denied (-13)', ['images', 'vms']), doctor.FAIL,
         CAPS)),
    'caps mgr': _c(
        doctor.check_mgr, ('nova', None, ['vms']),
        (('nova', 'access denied (-13)', ['images', 'vms']), doctor.WARN,
         CAPS)),
    'clone format': _c(
        doctor.check_clone_format, ('auto', 'mimic', 2),
        (('auto', 'luminous', 1), doctor.WARN,
         'ceph osd set-require-min-compat-client mimic'),
        (('1', 'reef', 1), doctor.WARN,
         'rbd_default_clone_format = auto (or 2) in ceph.conf [client]')),
    'trash purge schedule': _c(
        doctor.check_trash_schedule, ({'images': ['1d'], 'vms': ['12h']},),
        (({'images': [], 'vms': ['1d']},), doctor.WARN,
         'rbd trash purge schedule add --pool images 1d')),
    'leases': _c(
        doctor.check_leases,
        ([LIVE, dict(LIVE, expires=900.0, dead=True)], 1000.0),
        (([dict(LIVE, dead=True)], 1000.0), doctor.WARN,
         'rados -p vms lock break fastclone-lock-a populate client.4123 '
         '--lock-cookie h:1:a')),
    'libvirt secret': _c(
        doctor.check_libvirt_secret, ('nova', 'u', '', 'KEY', 'KEY'),
        (('nova', '', '', '', 'KEY'), doctor.FAIL,
         '[libvirt] rbd_secret_uuid = <uuid>'),
        (('nova', 'u', 'no secret', '', 'KEY'), doctor.FAIL,
         'virsh secret-define'),
        (('nova', 'u', '', 'OTHER', 'KEY'), doctor.FAIL,
         'virsh secret-set-value u'),
        (('nova', 'u', 'virsh: failed to connect', '', ''), doctor.WARN,
         'virsh secret-get-value u')),
    'qemu-img': _c(
        doctor.check_qemu_img, ('qemu-img version 7.2', ('raw', 'rbd'), True),
        (('', (), True), doctor.FAIL, 'apt-get install qemu-utils'),
        (('qemu-img version 7.2', ('raw',), True), doctor.FAIL,
         'qemu-block-extra')),
    'work dir': _c(
        doctor.check_work_dir, ('/w', 'ok', 10 << 30, 1 << 30, 'a'),
        (('/w', 'cannot write in /w', 0, 0, ''), doctor.FAIL,
         '[fastclone] work_dir = '),
        (('/w', 'ok', 1 << 30, 2 << 30, 'a'), doctor.FAIL,
         'room for the largest image')),
    'nova base dir': _c(
        doctor.check_nova_base_dir, ('/i/_base', 'ok'),
        (('/i/_base', '/i is not a directory'), doctor.WARN,
         'instances_path')),
    'glance reachable': _c(
        doctor.check_glance, ('http://g', None, 3),
        (('http://g', 'ConnectFailure: refused', 0), doctor.FAIL,
         '[glance] api_servers')),
    'glance stores': _c(
        doctor.check_glance_stores, (STORES, ['images'], 'F', ''),
        ((STORES, ['images'], 'F', 'nosuch'), doctor.FAIL,
         'images_rbd_glance_store_name = <an rbd store'),
        ((STORES[1:], ['images'], 'F', ''), doctor.WARN, 'rbd store'),
        ((STORES, ['other'], 'F', ''), doctor.WARN,
         'clone_allowed_pools = other,images'),
        ((STORES, ['images'], 'G', ''), doctor.WARN,
         'point the compute hosts at that cluster')),
    'glance locations': _c(
        doctor.check_locations, (2, 'a', True, None, True),
        ((0, None, False, None, True), doctor.WARN, 'upload a raw image'),
        ((2, None, True, None, True), doctor.WARN, 'rbd store'),
        ((2, None, False, None, False), doctor.FAIL,
         'show_image_direct_url = True')),
    'images': _c(
        doctor.check_images, ([_path('a', 'direct')], []),
        (([_path('a', 'direct'), _path('b', 'cache')],
          [('b', 'format', 'qcow2')]), doctor.WARN,
         'format: ' + doctor.FIXES['format'])),
    'nova version': _c(
        doctor.check_nova_version, ('34.0.0',),
        (('30.3.0',), doctor.FAIL, 'run fastclone-backend with Nova 31')),
}


def test_every_check_has_cases():
    assert sorted(CASES) == sorted(checktable.NAMES)


@pytest.mark.parametrize('name', checktable.NAMES)
def test_good_fact_passes(name):
    func, good, _bad = CASES[name]
    verdict = func(*good)
    assert (verdict.check, verdict.status) == (name, doctor.PASS), verdict


@pytest.mark.parametrize('name,case', [
    (name, i) for name in checktable.NAMES
    for i in range(len(CASES[name][2]))])
def test_bad_fact_fails_or_warns_with_the_fix(name, case):
    func, _good, bad = CASES[name]
    args, status, fix = bad[case]
    verdict = func(*args)
    assert (verdict.check, verdict.status) == (name, status), verdict
    assert fix in verdict.fix, verdict


@pytest.mark.parametrize('version,status,says', [
    ('31.0.0', doctor.PASS, 'supported (2025.1 series)'),
    ('32.2.1', doctor.PASS, 'supported (2025.2 series)'),
    ('33.0.2', doctor.PASS, 'supported (2026.1 series)'),
    ('34.1.1', doctor.PASS, 'supported (2026.2 series), tested: unit suite, '
     "Nova 34's RbdTestCase and the Nova-actions suite"),
    ('30.3.0', doctor.FAIL, 'not supported: older than Nova 31 (2025.1)'),
    ('35.0.0', doctor.FAIL, 'not supported: newer than Nova 34 (2026.2)'),
    ('junk', doctor.FAIL, 'not supported: not a Nova release number')])
def test_nova_version(version, status, says):
    verdict = doctor.check_nova_version(version)
    assert verdict.status == status
    assert verdict.saw.startswith('nova %s: %s' % (version, says))
    if status == doctor.FAIL:
        assert verdict.fix.startswith('run fastclone-backend with Nova 31 to '
                                      '34 (2025.1 to 2026.2)')


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


def test_several_problems_in_one_row_the_worst_wins():
    verdict = doctor.check_glance_stores(STORES, ['other'], 'F', 'nosuch')
    assert verdict.status == doctor.FAIL
    assert 'nosuch' in verdict.saw and 'writes pool images' in verdict.saw


def test_blocklist_refused_names_both_consequences():
    verdict = doctor.check_blocklist_cap('nova', 'access denied (-13)',
                                         ['images', 'vms'])
    assert 'access denied' in verdict.saw
    assert 'exclusive lock' in verdict.saw and 'unfenced' in verdict.saw


def test_worst():
    v = doctor.Verdict
    assert doctor.worst([v('a', doctor.PASS, '')]) == doctor.PASS
    assert doctor.worst([v('a', doctor.SKIP, '')]) == doctor.PASS
    assert doctor.worst([v('a', doctor.WARN, ''),
                         v('b', doctor.PASS, '')]) == doctor.WARN
    assert doctor.worst([v('a', doctor.WARN, ''),
                         v('b', doctor.FAIL, '')]) == doctor.FAIL


def test_a_verdict_names_a_check_of_the_table():
    with pytest.raises(KeyError):
        doctor._v('no such check', doctor.PASS, '')


# ---------------------------------------------------------------- the guard
class _Boom(Exception):
    pass


def test_every_probe_raising_still_gives_every_row(monkeypatch):
    for name in probes.PROBES:
        def boom(facts, name=name):
            raise _Boom('probe %s broke' % name)
        monkeypatch.setitem(probes.PROBES, name, boom)
    rows = probes.run_all(context=None)
    assert [r.check for r in rows] == list(checktable.NAMES)
    for row in rows:
        assert row.status == doctor.FAIL
        assert row.saw == 'the check raised _Boom: probe %s broke' % row.check
        assert row.fix == checktable.BY_NAME[row.check].fix


def test_a_broken_dependency_skips_the_checks_that_need_it(monkeypatch):
    def no_ceph(facts):
        raise facts_mod.Unavailable('ceph reachable')
    monkeypatch.setitem(probes.PROBES, 'pools', no_ceph)
    row = probes.run_one('pools', facts_mod.Facts(None))
    assert (row.status, row.saw) == (doctor.SKIP, 'not checked: ceph '
                                     'reachable failed')


def test_a_probe_returning_another_check_is_a_fail(monkeypatch):
    monkeypatch.setitem(probes.PROBES, 'pools',
                        lambda facts: doctor.check_rbd_user('nova'))
    row = probes.run_one('pools', facts_mod.Facts(None))
    assert row.status == doctor.FAIL and 'TypeError' in row.saw


def test_facts_remember_a_failed_connection(monkeypatch):
    calls = []

    def setup():
        calls.append(1)
        raise OSError('conf_read_file')
    facts = facts_mod.Facts(None)
    monkeypatch.setattr(facts, '_connect', setup)
    with pytest.raises(OSError):
        facts.connect()
    with pytest.raises(facts_mod.Unavailable):
        facts.client()
    assert calls == [1]


# ---------------------------------------------------------------- the doc
def test_doc_table_is_the_code():
    with open(os.path.join(REPO, 'doc', 'source', 'doctor.rst')) as f:
        text = f.read()
    assert checktable.rst_table() in text, (
        'regenerate it: python -m fastclone_backend.manage.checktable')


def test_probe_helpers_on_real_paths(tmp_path):
    assert probes.file_state(str(tmp_path / 'nope')) == 'missing'
    assert probes.file_state(str(tmp_path)) == 'not a file'
    assert probes.dir_state(str(tmp_path / 'a' / 'b')) == 'ok'
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    assert probes.dir_state(str(blocker / 'sub')) == (
        '%s is not a directory' % blocker)
