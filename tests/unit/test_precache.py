"""Nova's image precache on a fastrbd host: Ceph base, never _base."""

from unittest import mock

import fixtures
from nova import exception
from nova.virt.libvirt import driver as libvirt_driver

from fastclone_backend.cache import naming
from fastclone_backend import exception as fc_exception
from fastclone_backend import hook
from fastclone_backend.spawn import explain
from fastclone_backend.spawn import precache
from tests.unit import base
from tests.unit import fakes

IMAGE = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'
BASE = 'vms/fastclone-base-%s@snap' % IMAGE


def _path(kind, why='because'):
    return explain.Path(image_id=IMAGE, kind=kind, why=why, source=BASE)


class WarmTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.meta = {'id': IMAGE, 'disk_format': 'qcow2'}
        self.show = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.spawn.glancerecord.show', autospec=True,
            return_value=self.meta)).mock
        self.find = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.spawn.imagepath.find', autospec=True)).mock
        self.ensure = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.populate.Populator.ensure',
            autospec=True)).mock
        self.flush = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.statsstore.flush_quietly',
            autospec=True)).mock

    def test_direct_clone_needs_nothing(self):
        self.find.return_value = _path('direct')
        self.assertIs(False, precache.warm(mock.sentinel.ctx, IMAGE))
        self.ensure.assert_not_called()

    def test_cache_miss_populates_the_base(self):
        self.find.return_value = _path('cache')
        self.ensure.return_value = ('rbd://x', 1 << 20, False)
        before = naming.STATS['precaches']
        self.assertIs(True, precache.warm(mock.sentinel.ctx, IMAGE))
        self.ensure.assert_called_once_with(mock.sentinel.ctx, self.meta, 0)
        self.assertEqual(before + 1, naming.STATS['precaches'])
        self.flush.assert_called_once()

    def test_cache_hit_is_existing(self):
        self.find.return_value = _path('cache')
        self.ensure.return_value = ('rbd://x', 1 << 20, True)
        self.assertIs(False, precache.warm(mock.sentinel.ctx, IMAGE))

    def test_refused_image_raises_image_unacceptable(self):
        self.find.return_value = _path('refused', 'data is qcow2')
        exc = self.assertRaises(exception.ImageUnacceptable,
                                precache.warm, mock.sentinel.ctx, IMAGE)
        self.assertIn('data is qcow2', str(exc))
        self.ensure.assert_not_called()

    def test_refusal_while_populating_raises_image_unacceptable(self):
        self.find.return_value = _path('cache')
        self.ensure.side_effect = fc_exception.ImageRejected(
            image=IMAGE, reason='virtual size too big')
        self.assertRaises(exception.ImageUnacceptable, precache.warm,
                          mock.sentinel.ctx, IMAGE)

    def test_cache_off_leaves_it_to_nova(self):
        self.find.return_value = _path('stock')
        self.assertIs(precache.STOCK, precache.warm(mock.sentinel.ctx,
                                                    IMAGE))


class CacheImageHookTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.original = mock.create_autospec(
            libvirt_driver.LibvirtDriver.cache_image, return_value=True)
        self.useFixture(fixtures.MockPatchObject(
            libvirt_driver.LibvirtDriver, 'cache_image', self.original))
        self.warm = self.useFixture(fixtures.MockPatchObject(
            precache, 'warm', autospec=True, return_value=False)).mock
        self.addCleanup(hook.uninstall)
        hook.install()

    def _cache_image(self):
        return libvirt_driver.LibvirtDriver.cache_image(
            mock.sentinel.libvirt, mock.sentinel.ctx, IMAGE)

    def test_rbd_warms_ceph_not_base(self):
        self.flags(images_type='rbd', group='libvirt')
        self.assertIs(False, self._cache_image())
        self.warm.assert_called_once_with(mock.sentinel.ctx, IMAGE)
        self.original.assert_not_called()

    def test_stock_answer_runs_nova(self):
        self.flags(images_type='rbd', group='libvirt')
        self.warm.return_value = precache.STOCK
        self.assertIs(True, self._cache_image())
        self.original.assert_called_once_with(mock.sentinel.libvirt,
                                              mock.sentinel.ctx, IMAGE)

    def test_other_images_types_run_nova(self):
        self.flags(images_type='qcow2', group='libvirt')
        self.assertIs(True, self._cache_image())
        self.warm.assert_not_called()

    def test_uninstall_restores_nova_method(self):
        patched = libvirt_driver.LibvirtDriver.cache_image
        self.assertIs(self.original, patched.fastclone_original)
        hook.uninstall()
        self.assertIs(self.original, libvirt_driver.LibvirtDriver.cache_image)
