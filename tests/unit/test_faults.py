"""Faults: bounded Ceph operations, errors that explain, degradation on
purpose (librbd mocked; the real faults are tests/functional/test_faults.py).
"""

from unittest import mock

import fixtures
import pytest

from nova.compute import utils as compute_utils
from oslo_utils import units

from fastclone_backend.cache import degrade
from fastclone_backend.cache import fetch
from fastclone_backend.cache import naming
from fastclone_backend.cache import poolspace
from fastclone_backend.cache import populate
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import cachedbase
from tests.unit import base
from tests.unit import fakes
from tests.unit import test_imagebackend as tib

IMAGE_ID = tib.IMAGE_ID


# ------------------------------------------------------------- degrade
@pytest.mark.parametrize('kind,room,expected', [
    (degrade.WORKDIR_FULL, degrade.Room(10, 10, True), True),
    (degrade.WORKDIR_FULL, degrade.Room(11, 10, True), False),
    (degrade.POOL_FULL, degrade.Room(1, 100, True), False),
    (degrade.POOL_FULL, degrade.Room(1, 100, False), True),
    (degrade.POOL_FULL, degrade.Room(1, 100, False, True), False),
    ('anything else', degrade.Room(1, 100, False), False),
])
def test_fall_back_only_where_nova_s_path_can_work(kind, room, expected):
    assert degrade.fall_back(kind, room) is expected


def test_stock_needs_the_download_and_the_raw_file():
    assert degrade.stock_needs(300, 1000) == 1300
    assert degrade.stock_needs(300, None) == 600
    assert degrade.outcome('pool_full', False) == 'failed_pool_full'
    assert degrade.outcome('workdir_full', True) == 'fallback_workdir_full'


# ------------------------------------------------------------- poolspace
def _quota(**kwargs):
    values = dict(pool='vms', max_bytes=0, used_bytes=0, max_objects=0,
                  used_objects=0)
    values.update(kwargs)
    return poolspace.Quota(**values)


def test_pool_room_under_its_quota():
    assert poolspace.lacks_room(_quota(), 1 << 40) is None
    assert poolspace.lacks_room(
        _quota(max_bytes=100 << 20, used_bytes=40 << 20), 60 << 20) is None
    assert poolspace.lacks_room(
        _quota(max_bytes=100 << 20, used_bytes=40 << 20), 61 << 20) == (
        'pool vms has 40 MiB stored of its 100 MiB quota and this needs '
        '61 MiB more')
    assert poolspace.lacks_room(_quota(max_objects=5, used_objects=5), 0) \
        == 'pool vms is at its quota of 5 objects'


def test_pool_quota_from_the_monitor():
    client = mock.Mock()
    client.mon_command.return_value = (0, b'{"quota_max_bytes": 10, '
                                          b'"current_num_bytes": 4, '
                                          b'"quota_max_objects": 0, '
                                          b'"current_num_objects": 2}', '')
    assert poolspace.quota(client, 'vms') == _quota(max_bytes=10,
                                                    used_bytes=4,
                                                    used_objects=2)
    assert '"prefix": "osd pool get-quota"' in \
        client.mon_command.call_args[0][0]


# ------------------------------------------------------------- tool failures
@pytest.mark.parametrize('code,output,kind', [
    (-9, '', 'limits'),
    (-24, '', 'limits'),
    (1, 'qemu-img: Failed to allocate memory: Cannot allocate memory',
     'limits'),
    (-6, 'qemu: qemu_thread_create: Resource temporarily unavailable',
     'limits'),
    (1, 'rbd: error writing: (110) Connection timed out', 'timeout'),
    (1, 'error while writing sector 0: Disk quota exceeded', 'quota'),
    (1, 'qemu-img: Could not open: Invalid argument', 'failed'),
])
def test_failure_kind(code, output, kind):
    assert fetch.failure_kind(code, output) == kind


def test_timeouts_are_told_from_other_errors():
    assert cluster.timed_out(OSError(110, 'Connection timed out'))
    assert not cluster.timed_out(OSError(2, 'No such file'))
    assert cluster.op_timeout_conf(0) == {}
    assert cluster.connection_conf(5, 0) == {'client_mount_timeout': '5'}
    assert cluster.connection_conf(0, 7) == {'rados_osd_op_timeout': '7',
                                             'rados_mon_op_timeout': '7'}


# ------------------------------------------------------------- messages
def test_messages_reach_the_instance_fault():
    # what Nova's compute manager stores for a failed build
    for exc in (fc_exception.CephTimeout(image=IMAGE_ID, timeout=5,
                                         doing='cloning x', cause='E'),
                fc_exception.PopulationFailed(image=IMAGE_ID,
                                              stage='publish', cause='E'),
                fc_exception.DownloadInterrupted(image=IMAGE_ID, done=111,
                                                 expected=700, cause='EOF')):
        fault = compute_utils.exception_to_dict(exc)
        assert fault['message'] == str(exc)
        assert IMAGE_ID in fault['message']
    assert str(fc_exception.DownloadInterrupted(
        image='X', done=111, expected=700, cause='connection broken')) == (
        'Glance download of image X interrupted after 111 of 700 MiB: '
        'connection broken')
    assert str(fc_exception.PopulationFailed(
        image='X', stage='convert', done=3, expected=10, cause='E')) == (
        'Image X: cache population failed at convert after 3 of 10 MiB: E')


class _Prog:
    image_id = IMAGE_ID
    step = 'convert'
    done = 3 << 20
    total = 10 << 20


class ToolFailureTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        fc_conf.register_opts(populate.CONF)
        self.flags(rados_op_timeout=5, group='fastclone')
        self.populator = populate.Populator(cluster.SharedRBDDriver())

    def test_over_its_limits_names_the_options(self):
        exc = self.populator._tool_failed(_Prog(), -9, 'killed')
        self.assertIsInstance(exc, fc_exception.ImageRejected)
        self.assertIn('convert exceeded its limits (exit -9: address space '
                      '4096 MiB, CPU 3600 s; [fastclone] '
                      'convert_address_space_mib, convert_cpu_seconds)',
                      str(exc))

    def test_timeout_names_the_step_and_the_bytes(self):
        exc = self.populator._tool_failed(_Prog(), 1, '(110) Connection '
                                          'timed out')
        self.assertIsInstance(exc, fc_exception.CephTimeout)
        self.assertIn('Ceph did not answer within 5 s ([fastclone] '
                      'rados_op_timeout) while writing convert into pool vms '
                      '(3 of 10 MiB done)', str(exc))

    def test_a_timeout_on_a_full_pool_is_the_full_pool(self):
        full = poolspace.Quota('vms', 100, 100, 0, 0)
        with mock.patch.object(self.populator, '_quota', autospec=True,
                               return_value=full):
            exc = self.populator._tool_failed(_Prog(), 1, 'Connection timed '
                                              'out')
        self.assertIsInstance(exc, fc_exception.CacheUnavailable)
        self.assertEqual('pool_full', exc.kind)

    def test_raw_import_under_a_timeout_goes_through_qemu_img(self):
        run = self.useFixture(fixtures.MockPatchObject(
            self.populator, '_run', autospec=True)).mock
        path = self.useFixture(fixtures.TempDir()).path + '/raw'
        with open(path, 'wb') as f:
            f.write(b'x' * 4096)
        self.populator._import(path, 'fastclone-tmp-x', IMAGE_ID)
        cmd = run.call_args[0][0]
        self.assertEqual(['qemu-img', 'convert', '-p', '-f', 'raw', '-O',
                          'raw'], cmd[:7])
        self.assertTrue(cmd[-1].startswith('rbd:vms/fastclone-tmp-x'))
        self.assertIn(':rados_osd_op_timeout=5:rados_mon_op_timeout=5',
                      cmd[-1])
        self.flags(rados_op_timeout=0, group='fastclone')
        self.populator = populate.Populator(cluster.SharedRBDDriver())
        run = self.useFixture(fixtures.MockPatchObject(
            self.populator, '_run', autospec=True)).mock
        self.populator._import(path, 'fastclone-tmp-x', IMAGE_ID)
        self.assertEqual(['rbd', 'import'], run.call_args[0][0][:2])

    def test_quota_is_the_pool_not_the_image(self):
        exc = self.populator._tool_failed(_Prog(), 1, 'Disk quota exceeded')
        self.assertIsInstance(exc, fc_exception.CacheUnavailable)
        self.assertEqual('pool_full', exc.kind)
        self.assertIn('ceph osd pool set-quota vms', str(exc))

    def test_other_failures_refuse_the_image_with_the_bytes(self):
        exc = self.populator._tool_failed(_Prog(), 1, 'bad sector')
        self.assertIsInstance(exc, fc_exception.ImageRejected)
        self.assertIn('convert failed (exit 1) after 3 of 10 MiB: bad sector',
                      str(exc))

    def test_stage_wraps_unexpected_errors(self):
        with pytest.raises(fc_exception.PopulationFailed) as err:
            with populate.stage(IMAGE_ID, 'publish'):
                raise fakes.RbdImageBusy('busy')
        assert str(err.value) == ('Image %s: cache population failed at '
                                  'publish: RbdImageBusy: busy' % IMAGE_ID)
        with pytest.raises(fc_exception.CephTimeout) as err:
            with populate.stage(IMAGE_ID, 'publish'):
                raise fakes.RbdTimeout('timed out')
        assert 'within 5 s' in str(err.value)
        assert 'while publish' in str(err.value)


def test_run_with_progress_stops_when_asked(tmp_path):
    prog = mock.Mock(total=0)
    script = 'import time\nfor i in range(100):\n print(i, flush=True)\n' \
             ' time.sleep(0.1)\n'
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2
    import sys
    assert fetch.run_with_progress([sys.executable, '-c', script], prog,
                                   stop=stop) is False
    assert len(calls) == 3
    prog.finish.assert_not_called()


# ------------------------------------------------------------- backend
class DegradeTestCase(tib.SpawnFixtures):
    """The cache path cannot work here: Nova's path, or a clear error."""

    def setUp(self):
        super().setUp()
        self.flags(cache_enabled=True, group='fastclone')
        self.flags(instances_path=self.useFixture(
            fixtures.TempDir()).path)
        self.ensure = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.populate.Populator.ensure',
            autospec=True)).mock
        self.free = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.fetch.free_bytes', autospec=True)).mock
        naming.STATS.clear()

    def _unavailable(self, kind):
        self.ensure.side_effect = fc_exception.CacheUnavailable(
            image=IMAGE_ID, kind=kind, reason='why', fix='what')

    def _qcow2(self):
        meta = tib._meta(disk_format='qcow2')
        meta.update(size=300 * units.Mi, virtual_size=units.Gi)
        return meta

    def test_full_workdir_falls_back_where_base_has_room(self):
        self._unavailable(degrade.WORKDIR_FULL)
        self.free.return_value = 2 * units.Gi
        with mock.patch.object(cachedbase.LOG, 'warning',
                               autospec=True) as warning:
            self._cache(meta=self._qcow2())
        self.nova_cache.assert_called_once()
        self.assertIn("takes Nova's own download path",
                      warning.call_args[0][0])
        self.assertEqual(1, naming.STATS['fallbacks'])
        self.assertEqual(1, naming.STATS['fallback_workdir_full'])
        # Nova's closure then calls clone(): no second Glance request
        exc = self.assertRaises(tib.exception.ImageUnacceptable,
                                self.disk.clone, mock.sentinel.ctx, IMAGE_ID)
        self.assertIn('the converted-image cache cannot be used: why',
                      str(exc))
        self.show.assert_called_once()

    def test_full_workdir_fails_when_base_lacks_room_too(self):
        self._unavailable(degrade.WORKDIR_FULL)
        self.free.return_value = units.Gi   # needs 300 MiB + 1 GiB
        exc = self.assertRaises(fc_exception.CacheUnavailable, self._cache,
                                meta=self._qcow2())
        self.assertIn('to fix: what', str(exc))
        self.nova_cache.assert_not_called()
        self.assertEqual(1, naming.STATS['failed_workdir_full'])
        self.assertEqual(0, naming.STATS['fallbacks'])

    def test_full_cache_pool_shared_with_instances_fails(self):
        self._unavailable(degrade.POOL_FULL)
        self.free.return_value = 100 * units.Gi
        self.assertRaises(fc_exception.CacheUnavailable, self._cache,
                          meta=self._qcow2())
        self.nova_cache.assert_not_called()
        self.assertEqual(1, naming.STATS['failed_pool_full'])

    def test_full_separate_cache_pool_falls_back(self):
        self.flags(cache_pool='cache', group='fastclone')
        self._unavailable(degrade.POOL_FULL)
        self.free.return_value = 100 * units.Gi
        self._cache(meta=self._qcow2())
        self.nova_cache.assert_called_once()
        self.assertEqual(1, naming.STATS['fallback_pool_full'])


class CephTimeoutTestCase(tib.SpawnFixtures):

    def setUp(self):
        super().setUp()
        self.flags(rados_op_timeout=5, group='fastclone')
        self.disk = tib.fastrbd.FastRbd(self.instance, 'disk')

    def test_timed_out_clone_is_removed_and_named(self):
        self.driver['clone'].side_effect = fakes.RbdTimeout('timed out')
        exc = self.assertRaises(fc_exception.CephTimeout, self._cache)
        self.assertEqual(
            'Image %s: Ceph did not answer within 5 s ([fastclone] '
            'rados_op_timeout) while cloning images/%s@snap to vms/%s: '
            'RbdTimeout: timed out' % (IMAGE_ID, IMAGE_ID, self.disk.rbd_name),
            str(exc))
        self.driver['remove_image'].assert_called_once_with(
            self.disk.rbd_name)
        self.nova_cache.assert_not_called()   # Nova reschedules the build

    def test_timed_out_lookup_is_named(self):
        self.ceph.rbd.Image.side_effect = fakes.RbdTimeout('timed out')
        exc = self.assertRaises(fc_exception.CephTimeout, self._cache)
        self.assertIn('while making disk vms/%s' % self.disk.rbd_name,
                      str(exc))
        self.driver['clone'].assert_not_called()

    def test_timed_out_existence_check_is_named(self):
        """Nova's first question of a spawn: does the disk exist?"""
        self.instance.image_ref = IMAGE_ID
        self.driver['exists'].side_effect = fakes.RbdTimeout('timed out')
        exc = self.assertRaises(fc_exception.CephTimeout, self.disk.exists)
        self.assertEqual(
            'Image %s: Ceph did not answer within 5 s ([fastclone] '
            'rados_op_timeout) while checking for disk vms/%s: '
            'RbdTimeout: timed out' % (IMAGE_ID, self.disk.rbd_name),
            str(exc))

    def test_existence_check_of_a_spawn_names_the_image_being_made(self):
        """A rescue disk: the rescue image, not the instance's own."""
        self.instance.image_ref = 'the-instance-image'
        self.driver['exists'].side_effect = fakes.RbdTimeout('timed out')
        exc = self.assertRaises(fc_exception.CephTimeout, self._cache)
        self.assertTrue(str(exc).startswith(
            'Image %s: Ceph did not answer' % IMAGE_ID), str(exc))
        self.assertIn('while making disk vms/%s' % self.disk.rbd_name,
                      str(exc))

    def test_existence_check_without_an_image_says_so(self):
        self.driver['exists'].side_effect = fakes.RbdTimeout('timed out')
        exc = self.assertRaises(fc_exception.CephTimeout, self.disk.exists)
        self.assertTrue(str(exc).startswith('Image unknown: '), str(exc))

    def test_the_connection_is_bounded(self):
        rados = self.ceph.rados.Rados.return_value
        cluster.SharedRBDDriver().handle.client()
        rados.conf_set.assert_has_calls(
            [mock.call('rados_osd_op_timeout', '5'),
             mock.call('rados_mon_op_timeout', '5'),
             mock.call('client_mount_timeout', '5')], any_order=True)
        # rbd import with an op timeout reports success over lost writes
        self.assertEqual(['--id', 'nova', '--conf', '/c.conf'],
                         cluster.SharedRBDDriver().ceph_args())
