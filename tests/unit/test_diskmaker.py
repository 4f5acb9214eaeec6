"""DiskMaker: which way a disk is made (choose, pure), then the steps.

The steps are also run through FastRbd on mocked librbd in
tests/unit/test_imagebackend.py; here the lookup and the disk are mocks.
"""

from unittest import mock

import fixtures
import pytest

from nova import exception
from oslo_utils import units

from fastclone_backend.cache import naming
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import cachedbase
from fastclone_backend.spawn import diskclone
from fastclone_backend.spawn import diskmaker
from fastclone_backend.spawn import location
from fastclone_backend.spawn import snapfacts
from fastclone_backend.spawn import sources
from tests.unit import base
from tests.unit import fakes

FSID = '5eca15c8-e424-4fc8-9470-1d586b91059d'
IMAGE_ID = 'f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
GOOD = 'rbd://%s/images/%s/snap' % (FSID, IMAGE_ID)
META = {'id': IMAGE_ID, 'disk_format': 'raw', 'locations': []}


@pytest.mark.parametrize('found,store,copy,cache,way', [
    (True, 'ceph', True, False, diskmaker.DIRECT),
    (True, None, False, True, diskmaker.DIRECT),
    (False, 'ceph', True, False, diskmaker.COPY_TO_STORE),
    (False, 'ceph', True, True, diskmaker.COPY_TO_STORE),
    (False, 'ceph', False, False, diskmaker.STOCK),   # copied already
    (False, None, True, False, diskmaker.STOCK),
    (False, '', True, True, diskmaker.CACHE),
    (False, 'ceph', False, True, diskmaker.CACHE),
])
def test_choose(found, store, copy, cache, way):
    assert diskmaker.choose(found, store, copy, cache) == way


class DiskMakerTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        fc_conf.register_opts(diskmaker.CONF)
        self.show = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.spawn.glancerecord.show', autospec=True,
            return_value=META)).mock
        self.finder = mock.create_autospec(sources.Sources, instance=True)
        self.loc = location.parse(GOOD)
        self.facts = snapfacts.Facts(snap_id=7, size=units.Gi,
                                     protected=True, detected='raw')
        self.finder.find.return_value = ((self.loc, self.facts), {})
        self.disk = mock.create_autospec(diskclone.DiskClone, instance=True)
        self.disk.driver = mock.sentinel.driver
        self.disk.grow.return_value = 2 * units.Gi
        self.copy = mock.Mock(spec=lambda context, image_meta: None)
        self.maker = diskmaker.DiskMaker(self.finder, self.disk, self.copy)
        naming.STATS.clear()

    def _make(self):
        return self.maker.make(mock.sentinel.ctx, IMAGE_ID, 2 * units.Gi,
                               2 * units.Gi)

    def test_direct_clone_grown(self):
        self.assertEqual(2 * units.Gi, self._make())
        self.finder.find.assert_called_once_with(mock.sentinel.ctx, META,
                                                 2 * units.Gi)
        self.disk.clone_from.assert_called_once_with(self.loc, IMAGE_ID)
        self.disk.grow.assert_called_once_with(2 * units.Gi, units.Gi)
        self.copy.assert_not_called()

    def test_refused_image_is_counted_and_unacceptable(self):
        self.finder.find.side_effect = fc_exception.ImageRejected(
            image=IMAGE_ID, reason='too big')
        exc = self.assertRaises(exception.ImageUnacceptable, self._make)
        self.assertEqual('Image %s is unacceptable: too big' % IMAGE_ID,
                         str(exc))
        self.assertEqual(1, naming.STATS['refusals'])

    def test_snapshot_vanishing_twice_is_the_error(self):
        self.disk.clone_from.side_effect = fakes.RbdImageNotFound('gone')
        with mock.patch.object(snapfacts, 'forget', autospec=True) as forget:
            self.assertRaises(fakes.RbdImageNotFound, self._make)
        self.assertEqual([mock.call(self.loc.spec)] * 2,
                         forget.call_args_list)
        self.assertEqual(2, self.show.call_count)
        self.disk.grow.assert_not_called()

    def test_copied_to_the_store_once(self):
        self.flags(images_rbd_glance_store_name='ceph', group='libvirt')
        self.flags(cache_enabled=False, group='fastclone')
        self.finder.find.return_value = (None, {'file:///x': 'not rbd'})
        exc = self.assertRaises(cachedbase.NotClonable, self._make)
        self.copy.assert_called_once_with(mock.sentinel.ctx, META)
        self.assertEqual(2, self.show.call_count)
        self.assertEqual('[fastclone] cache_enabled = False, and no location '
                         'can be cloned: file:///x: not rbd', exc.reason)

    def test_cache_path_clones_the_cached_base(self):
        self.flags(cache_enabled=True, group='fastclone')
        self.finder.find.return_value = (None, {})
        with mock.patch.object(cachedbase, 'CachedBase',
                               autospec=True) as cached:
            cached.return_value.clone_into.return_value = 3 * units.Gi
            self.assertEqual(3 * units.Gi, self._make())
        cached.assert_called_once_with(mock.sentinel.driver)
        cached.return_value.clone_into.assert_called_once_with(
            self.disk, mock.sentinel.ctx, META, 2 * units.Gi, 2 * units.Gi)
        self.disk.clone_from.assert_not_called()
