"""CachedBase: a disk from the cached base, or Nova's path on purpose.

The disk (DiskClone) and the population (Populator.ensure) are mocked;
the same paths through FastRbd are in tests/unit/test_imagebackend.py
(FastRbdCacheTestCase) and test_faults.py (DegradeTestCase).
"""

import os
from unittest import mock

import fixtures

from nova import exception
from oslo_utils import units

from fastclone_backend.cache import degrade
from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import cachedbase
from fastclone_backend.spawn import diskclone
from fastclone_backend.spawn import location
from tests.unit import base
from tests.unit import fakes

FSID = '5eca15c8-e424-4fc8-9470-1d586b91059d'
IMAGE_ID = 'f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
BASE = 'rbd://%s/vms/fastclone-base-%s/snap' % (FSID, IMAGE_ID)
NAME = 'a1b2c3d4-0000-4000-8000-000000000004_disk'
META = {'id': IMAGE_ID, 'disk_format': 'qcow2', 'size': 300 * units.Mi,
        'virtual_size': units.Gi}


class CachedBaseTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        fc_conf.register_opts(cachedbase.CONF)
        self.instances = self.useFixture(fixtures.TempDir()).path
        self.flags(instances_path=self.instances)
        self.driver = mock.create_autospec(cluster.SharedRBDDriver,
                                           instance=True)
        self.driver.pool = 'vms'
        self.disk = mock.create_autospec(diskclone.DiskClone, instance=True)
        self.disk.name = NAME
        self.disk.grow.side_effect = lambda size, current: max(size, current)
        self.ensure = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.populate.Populator.ensure',
            autospec=True, return_value=(BASE, units.Gi, True))).mock
        self.flush = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.statsstore.flush_quietly',
            autospec=True)).mock
        self.forget = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.basestore.forget', autospec=True)).mock
        self.free = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.fetch.free_bytes', autospec=True)).mock
        self.cached = cachedbase.CachedBase(self.driver)
        naming.STATS.clear()

    def _clone(self, target=3 * units.Gi, limit=3 * units.Gi):
        return self.cached.clone_into(self.disk, mock.sentinel.ctx, META,
                                      target, limit)

    def test_hit_is_cloned_and_grown(self):
        self.assertEqual(3 * units.Gi, self._clone())
        self.ensure.assert_called_once_with(mock.sentinel.ctx, META,
                                            3 * units.Gi)
        self.disk.clone_from.assert_called_once_with(location.parse(BASE),
                                                     IMAGE_ID)
        self.disk.grow.assert_called_once_with(3 * units.Gi, units.Gi)
        self.assertEqual(1, naming.STATS['hits'])
        self.flush.assert_not_called()

    def test_miss_records_the_counters(self):
        self.ensure.return_value = (BASE, units.Gi, False)
        self._clone()
        self.assertEqual(1, naming.STATS['misses'])
        self.flush.assert_called_once_with(self.driver)

    def test_retired_base_is_forgotten_and_looked_up_again(self):
        self.disk.clone_from.side_effect = [fakes.RbdImageNotFound('gone'),
                                            None]
        with mock.patch.object(cachedbase.LOG, 'info',
                               autospec=True) as info:
            self._clone()
        self.forget.assert_called_once_with(IMAGE_ID)
        self.assertEqual(2, self.ensure.call_count)
        self.assertIn('cached base retired before the clone',
                      info.call_args[0][0])
        self.disk.grow.assert_called_once_with(3 * units.Gi, units.Gi)

    def test_base_vanishing_every_time_is_the_error(self):
        self.disk.clone_from.side_effect = fakes.RbdImageNotFound('gone')
        self.assertRaises(fakes.RbdImageNotFound, self._clone)
        self.assertEqual(cachedbase.CLONE_ATTEMPTS, self.forget.call_count)
        self.disk.grow.assert_not_called()

    def test_refused_image_is_counted_and_unacceptable(self):
        self.ensure.side_effect = fc_exception.ImageRejected(
            image=IMAGE_ID, reason='qcow2 failed safety checks: backing')
        exc = self.assertRaises(exception.ImageUnacceptable, self._clone)
        self.assertEqual('Image %s is unacceptable: qcow2 failed safety '
                         'checks: backing' % IMAGE_ID, str(exc))
        self.assertEqual(1, naming.STATS['refusals'])
        self.disk.clone_from.assert_not_called()

    def _unavailable(self, kind):
        self.ensure.side_effect = fc_exception.CacheUnavailable(
            image=IMAGE_ID, kind=kind, reason='why', fix='what')

    def test_fallback_is_nova_path(self):
        self._unavailable(degrade.WORKDIR_FULL)
        self.free.return_value = 2 * units.Gi
        exc = self.assertRaises(cachedbase.NotClonable, self._clone)
        self.assertEqual(IMAGE_ID, exc.image_id)
        self.assertEqual('the converted-image cache cannot be used: why; '
                         'to fix: what', exc.reason)
        self.assertEqual(1, naming.STATS['fallbacks'])
        self.disk.clone_from.assert_not_called()

    def test_no_room_for_nova_path_either_fails_with_the_figures(self):
        self._unavailable(degrade.WORKDIR_FULL)
        self.free.return_value = units.Gi   # 300 MiB + 1 GiB needed
        with mock.patch.object(cachedbase.LOG, 'warning',
                               autospec=True) as warning:
            self.assertRaises(fc_exception.CacheUnavailable, self._clone)
        # _base does not exist yet: the room is that of its first parent
        self.free.assert_called_once_with(self.instances)
        self.assertEqual({'need': 1324, 'free': 1024,
                          'base': os.path.join(self.instances, '_base')},
                         {k: warning.call_args[0][1][k]
                          for k in ('need', 'free', 'base')})
        self.assertEqual(1, naming.STATS['failed_workdir_full'])
        self.flush.assert_called_once_with(self.driver)

    def test_nova_base_dir_follows_novas_options(self):
        self.flags(subdirectory_name='cache', group='image_cache')
        self.assertEqual(os.path.join(self.instances, 'cache'),
                         cachedbase.nova_base_dir())
