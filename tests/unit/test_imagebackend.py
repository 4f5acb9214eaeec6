"""FastRbd.direct_fetch / clone with librbd mocked, in Nova's style."""

from unittest import mock

import fixtures

from nova import exception
from nova import objects
from oslo_utils import units

from fastclone_backend import cluster
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import cachedbase
from fastclone_backend.spawn import fastrbd
from fastclone_backend.spawn import snapfacts
from tests.unit import base
from tests.unit import fakes

FSID = '5eca15c8-e424-4fc8-9470-1d586b91059d'
OTHER = '0bd3a7a4-5dc6-4c9e-8a3b-7f3f8e0a1c22'
IMAGE_ID = 'f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
GOOD = 'rbd://%s/images/%s/snap' % (FSID, IMAGE_ID)


def _meta(*urls, disk_format='raw', direct_url=None):
    return {'id': IMAGE_ID, 'disk_format': disk_format,
            'direct_url': direct_url,
            'locations': [{'url': u, 'metadata': {}} for u in urls]}


class CloneFixtures(base.TestCase):
    """A FastRbd disk on mocked librbd, a raw image whose head is zeros."""

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.snap = self.ceph.rbd.Image.return_value
        self.snap.is_protected_snap.return_value = True
        self.snap.size.return_value = units.Gi
        self.snap.snap_get_id.return_value = 7
        self.snap.read.side_effect = lambda offset, length: b'\0' * length
        self.addCleanup(snapfacts.forget_all)
        self.clone_format = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cluster.ClusterHandle.clone_format',
            autospec=True, return_value=2)).mock
        self.flags(images_rbd_pool='vms', rbd_user='nova',
                   images_rbd_ceph_conf='/c.conf', group='libvirt')
        fastrbd.fc_conf.register_opts(fastrbd.CONF)
        # the refusal paths; the cache has FastRbdCacheTestCase
        self.flags(cache_enabled=False, group='fastclone')
        self.instance = objects.Instance(
            uuid='a1b2c3d4-0000-4000-8000-000000000001',
            flavor=objects.Flavor(root_gb=2))
        self.image_api = self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.imagebackend.IMAGE_API')).mock
        self.show = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.spawn.glancerecord.show', autospec=True)).mock
        self.driver = {}
        for name, value in (('get_fsid', FSID), ('clone', None),
                            ('size', units.Gi),
                            ('resize', None), ('remove_image', None)):
            self.driver[name] = self.useFixture(fixtures.MockPatch(
                'fastclone_backend.cluster.SharedRBDDriver.' + name,
                autospec=True, return_value=value)).mock
        self.disk = fastrbd.FastRbd(self.instance, 'disk')

    def _fetch(self, meta, **kwargs):
        self.show.return_value = meta
        return self.disk.direct_fetch(mock.sentinel.ctx, IMAGE_ID, **kwargs)


class FastRbdCloneTestCase(CloneFixtures):

    def test_clones_trusted_location_and_grows_to_flavor(self):
        self._fetch(_meta(GOOD))
        self.show.assert_called_once_with(mock.sentinel.ctx, IMAGE_ID)
        ioctx = self.ceph.rados.Rados.return_value.open_ioctx.return_value
        self.ceph.rbd.Image.assert_called_once_with(
            ioctx, IMAGE_ID, snapshot='snap', read_only=True)
        self.snap.is_protected_snap.assert_called_once_with('snap')
        self.clone_format.assert_not_called()
        self.driver['clone'].assert_called_once_with(
            {'url': GOOD}, self.disk.rbd_name)
        self.driver['resize'].assert_called_once_with(
            self.disk.rbd_name, 2 * units.Gi)
        self.assertIsInstance(self.disk.driver, cluster.SharedRBDDriver)

    def test_driver_comes_through_novas_seam(self):
        # what replaces rbd_utils.RBDDriver (Nova's tests, a wrapper) is the
        # driver of the disk and of its source lookups, as for Nova's Rbd
        with mock.patch.object(fakes.rbd_utils, 'RBDDriver') as substitute:
            disk = fastrbd.FastRbd(self.instance, 'disk')
        self.assertIs(substitute.return_value, disk.driver)
        self.assertIs(disk.driver, disk.sources.driver)

    def test_nova_checks_after_the_clone_need_no_round_trip(self):
        self._fetch(_meta(GOOD))
        self.ceph.rbd.Image.reset_mock()
        self.assertTrue(self.disk.exists())
        self.assertEqual(2 * units.Gi, self.disk.get_disk_size('ignored'))
        self.ceph.rbd.Image.assert_not_called()
        self.driver['size'].assert_not_called()

    def test_resize_image_forgets_the_remembered_size(self):
        self._fetch(_meta(GOOD))
        self.disk.resize_image(3 * units.Gi)
        self.driver['size'].return_value = 3 * units.Gi
        self.assertEqual(3 * units.Gi, self.disk.get_disk_size('ignored'))
        self.driver['size'].assert_called_once_with(self.disk.rbd_name)

    def test_fresh_disk_asks_the_cluster(self):
        self.driver['size'].return_value = 5
        self.assertEqual(5, self.disk.get_disk_size('ignored'))

    def test_clone_is_direct_fetch(self):
        self.show.return_value = _meta(GOOD)
        self.disk.clone(mock.sentinel.ctx, IMAGE_ID)
        self.driver['clone'].assert_called_once_with(
            {'url': GOOD}, self.disk.rbd_name)

    def test_explicit_size_and_never_shrinks(self):
        self._fetch(_meta(GOOD), size=units.Gi // 2)
        self.driver['resize'].assert_not_called()

    def test_first_trusted_location_wins(self):
        bad = 'rbd://%s/images/%s/snap' % (OTHER, IMAGE_ID)
        self._fetch(_meta(bad, 'file:///x', GOOD))
        self.driver['clone'].assert_called_once_with(
            {'url': GOOD}, self.disk.rbd_name)

    def test_refuses_and_lists_reasons(self):
        other = 'rbd://%s/images/%s/snap' % (OTHER, IMAGE_ID)
        vms = 'rbd://%s/vms/%s/snap' % (FSID, IMAGE_ID)
        exc = self.assertRaises(exception.ImageUnacceptable, self._fetch,
                                _meta(other, vms, 'file:///var/x'))
        msg = str(exc)
        self.assertIn(IMAGE_ID, msg)
        self.assertIn('%s: fsid %s is not the local cluster' % (other, OTHER),
                      msg)
        self.assertIn('%s: pool vms is not in [fastclone] '
                      'clone_allowed_pools (images)' % vms, msg)
        self.assertIn('file:///var/x: scheme is not rbd://', msg)
        self.driver['clone'].assert_not_called()
        self.ceph.rbd.Image.assert_not_called()

    def test_non_raw_image_refused_per_location(self):
        exc = self.assertRaises(exception.ImageUnacceptable, self._fetch,
                                _meta(GOOD, disk_format='qcow2'))
        self.assertIn('disk_format is qcow2, only raw images can be cloned',
                      str(exc))
        self.driver['clone'].assert_not_called()

    def test_missing_snapshot_refused(self):
        self.ceph.rbd.Image.side_effect = fakes.RbdImageNotFound('ENOENT')
        exc = self.assertRaises(exception.ImageUnacceptable, self._fetch,
                                _meta(GOOD))
        self.assertIn('snapshot images/%s@snap does not exist' % IMAGE_ID,
                      str(exc))
        self.driver['clone'].assert_not_called()

    def test_unreadable_snapshot_refused(self):
        self.ceph.rbd.Image.side_effect = fakes.RbdPermissionError('EPERM')
        exc = self.assertRaises(exception.ImageUnacceptable, self._fetch,
                                _meta(GOOD))
        self.assertIn('cannot open images/%s@snap: EPERM' % IMAGE_ID,
                      str(exc))

    def test_unprotected_snapshot_cloned_as_v2(self):
        self.snap.is_protected_snap.return_value = False
        self._fetch(_meta(GOOD))
        self.clone_format.assert_called_once_with()
        self.driver['clone'].assert_called_once_with(
            {'url': GOOD}, self.disk.rbd_name)

    def test_unprotected_snapshot_refused_where_clones_are_v1(self):
        self.snap.is_protected_snap.return_value = False
        self.clone_format.return_value = 1
        exc = self.assertRaises(exception.ImageUnacceptable, self._fetch,
                                _meta(GOOD))
        self.assertIn('snapshot images/%s@snap is not protected and this '
                      'cluster makes clone v1' % IMAGE_ID, str(exc))
        self.driver['clone'].assert_not_called()

    def test_no_locations_names_the_glance_settings(self):
        exc = self.assertRaises(exception.ImageUnacceptable, self._fetch,
                                _meta())
        self.assertIn('Glance shows no location', str(exc))
        self.driver['get_fsid'].assert_not_called()

    def _location_api(self, result=None, error=None):
        session = mock.Mock()
        http = session._client.client.http_client
        http.get.return_value = (mock.Mock(), result)
        http.get.side_effect = error
        self.image_api._get_session_and_image_id.return_value = (
            session, IMAGE_ID)
        return http.get

    def test_location_api_used_when_record_has_none(self):
        call = self._location_api(result=[{'url': GOOD, 'metadata': {}}])
        self._fetch(_meta())
        call.assert_called_once_with('/v2/images/%s/locations' % IMAGE_ID,
                                     timeout=60)
        self.driver['clone'].assert_called_once_with(
            {'url': GOOD}, self.disk.rbd_name)

    def test_location_api_not_called_when_record_suffices(self):
        call = self._location_api(result=[])
        self._fetch(_meta(GOOD))
        call.assert_not_called()

    def test_location_api_refusal_is_skipped(self):
        self._location_api(error=Exception('403 Forbidden'))
        exc = self.assertRaises(exception.ImageUnacceptable, self._fetch,
                                _meta('file:///x'))
        self.assertIn('file:///x: scheme is not rbd://', str(exc))

    def test_location_api_not_asked_for_non_raw_images(self):
        call = self._location_api(result=[{'url': GOOD}])
        self.assertRaises(exception.ImageUnacceptable, self._fetch,
                          _meta(disk_format='qcow2'))
        call.assert_not_called()

    def test_location_api_disabled(self):
        self.flags(use_location_api=False, group='fastclone')
        call = self._location_api(result=[{'url': GOOD}])
        self.assertRaises(exception.ImageUnacceptable, self._fetch, _meta())
        call.assert_not_called()

    def test_resize_failure_removes_the_clone(self):
        self.driver['resize'].side_effect = fakes.RbdError('ENOSPC')
        self.assertRaises(fakes.RbdError, self._fetch, _meta(GOOD))
        self.driver['remove_image'].assert_called_once_with(
            self.disk.rbd_name)

    def test_failed_clone_removes_nothing(self):
        # e.g. ImageExists: the disk that exists is not ours to remove
        self.driver['clone'].side_effect = fakes.RbdImageExists('exists')
        self.assertRaises(fakes.RbdImageExists, self._fetch, _meta(GOOD))
        self.driver['remove_image'].assert_not_called()

    def test_copy_to_store_then_clone(self):
        self.flags(images_rbd_glance_store_name='ceph', group='libvirt')
        first, second = _meta('file:///x'), _meta('file:///x', GOOD)
        self.show.side_effect = [first, second]
        with mock.patch.object(self.disk, 'copy_to_store',
                               autospec=True) as copy:
            self.disk.clone(mock.sentinel.ctx, IMAGE_ID)
        copy.assert_called_once_with(mock.sentinel.ctx, first)
        self.driver['clone'].assert_called_once_with(
            {'url': GOOD}, self.disk.rbd_name)

    def test_copy_to_store_still_refused(self):
        self.flags(images_rbd_glance_store_name='ceph', group='libvirt')
        self.show.return_value = _meta('file:///x')
        with mock.patch.object(self.disk, 'copy_to_store',
                               autospec=True) as copy:
            self.assertRaises(exception.ImageUnacceptable, self.disk.clone,
                              mock.sentinel.ctx, IMAGE_ID)
        copy.assert_called_once_with(mock.sentinel.ctx, mock.ANY)

    def test_remains_of_an_earlier_clone_are_removed_then_cloned(self):
        # a timed-out clone leaves rbd_id (and more) under the disk's name:
        # the next clone of that disk finds the name taken
        self.driver['clone'].side_effect = [fakes.RbdImageExists(), None]
        with mock.patch('fastclone_backend.cluster.SharedRBDDriver.exists',
                        autospec=True, return_value=False) as exists:
            self._fetch(_meta(GOOD))
        exists.assert_called_once_with(self.disk.rbd_name)
        self.driver['remove_image'].assert_called_once_with(
            self.disk.rbd_name)
        self.assertEqual([mock.call({'url': GOOD}, self.disk.rbd_name)] * 2,
                         self.driver['clone'].call_args_list)
        self.driver['resize'].assert_called_once_with(
            self.disk.rbd_name, 2 * units.Gi)

    def test_a_whole_disk_under_the_name_is_never_removed(self):
        self.driver['clone'].side_effect = fakes.RbdImageExists()
        with mock.patch('fastclone_backend.cluster.SharedRBDDriver.exists',
                        autospec=True, return_value=True):
            self.assertRaises(fakes.RbdImageExists, self._fetch, _meta(GOOD))
        self.driver['remove_image'].assert_not_called()
        self.driver['clone'].assert_called_once()

    def test_flavor_root_bytes(self):
        self.assertEqual(2 * units.Gi,
                         fastrbd.flavor_root_bytes(self.instance))
        self.assertEqual(0, fastrbd.flavor_root_bytes(None))
        self.assertEqual(0, fastrbd.flavor_root_bytes(
            objects.Instance(uuid=self.instance.uuid)))


class DirectSnapshotPoolTestCase(CloneFixtures):
    """Nova's direct snapshot of a FastRbd disk lands in Glance's pool."""

    def _parent(self, name):
        parent_info = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cluster.SharedRBDDriver.parent_info',
            autospec=True)).mock
        if name is None:
            parent_info.side_effect = exception.ImageUnacceptable(
                image_id='disk', reason='no parent')
        else:
            parent_info.return_value = ('vms', name, 'snap')
        return parent_info

    def test_clone_of_a_cached_base_goes_to_the_images_location_pool(self):
        self._parent('fastclone-base-' + IMAGE_ID)
        self.show.return_value = _meta(
            'rbd://%s/elsewhere/%s/snap' % (OTHER, IMAGE_ID),
            'rbd://%s/glance-images/%s/snap' % (FSID, IMAGE_ID),
            disk_format='qcow2')
        self.assertEqual('glance-images', self.disk._get_parent_pool(
            mock.sentinel.ctx, IMAGE_ID, FSID))
        self.show.assert_called_once_with(mock.sentinel.ctx, IMAGE_ID)

    def test_clone_of_a_cached_base_without_a_location_here_uploads(self):
        # ImageUnacceptable is what makes Nova take the standard snapshot
        self._parent('fastclone-base-' + IMAGE_ID)
        self.show.return_value = _meta(
            'rbd://%s/images/%s/snap' % (OTHER, IMAGE_ID), 'file:///x')
        error = self.assertRaises(
            exception.ImageUnacceptable, self.disk._get_parent_pool,
            mock.sentinel.ctx, IMAGE_ID, FSID)
        self.assertIn(IMAGE_ID, str(error))
        self.assertIn('cached base', str(error))

    def test_clone_of_a_glance_image_keeps_novas_choice(self):
        parent_info = self._parent(IMAGE_ID)
        self.assertEqual('vms', self.disk._get_parent_pool(
            mock.sentinel.ctx, IMAGE_ID, FSID))
        self.show.assert_not_called()
        parent_info.assert_called_once_with(self.disk.rbd_name)

    def test_flat_disk_keeps_novas_choice(self):
        self._parent(None)
        self.image_api.get.return_value = _meta(GOOD)
        self.assertEqual('images', self.disk._get_parent_pool(
            mock.sentinel.ctx, IMAGE_ID, FSID))
        self.show.assert_not_called()


class FastRbdCacheTestCase(base.TestCase):
    """When no location can be cloned, the cached base is."""

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.image_api = self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.imagebackend.IMAGE_API')).mock
        self.show = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.spawn.glancerecord.show', autospec=True)).mock
        self.ensure = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.populate.Populator.ensure',
            autospec=True)).mock
        self.driver = {}
        for name in ('get_fsid', 'clone', 'resize', 'remove_image'):
            self.driver[name] = self.useFixture(fixtures.MockPatch(
                'fastclone_backend.cluster.SharedRBDDriver.' + name,
                autospec=True,
                return_value=FSID if name == 'get_fsid' else None)).mock
        self.instance = objects.Instance(
            uuid='a1b2c3d4-0000-4000-8000-000000000002',
            flavor=objects.Flavor(root_gb=3))
        self.disk = fastrbd.FastRbd(self.instance, 'disk')
        self.base_url = 'rbd://%s/vms/fastclone-base-%s/snap' % (FSID,
                                                                 IMAGE_ID)

    def test_qcow2_cloned_from_the_cached_base(self):
        meta = _meta(GOOD, disk_format='qcow2')
        self.show.return_value = meta
        self.ensure.return_value = (self.base_url, units.Gi, True)
        self.disk.clone(mock.sentinel.ctx, IMAGE_ID)
        self.ensure.assert_called_once_with(mock.sentinel.ctx, meta,
                                            3 * units.Gi)
        self.driver['clone'].assert_called_once_with(
            {'url': self.base_url}, self.disk.rbd_name)
        self.driver['resize'].assert_called_once_with(self.disk.rbd_name,
                                                      3 * units.Gi)

    def test_base_retired_before_the_clone_is_looked_up_again(self):
        self.show.return_value = _meta(disk_format='qcow2')
        self.ensure.return_value = (self.base_url, units.Gi, True)
        self.driver['clone'].side_effect = [fakes.RbdImageNotFound('gone'),
                                            fakes.RbdImageNotFound('gone'),
                                            None]
        self.disk.clone(mock.sentinel.ctx, IMAGE_ID)
        self.assertEqual(3, self.ensure.call_count)
        self.assertEqual(3, self.driver['clone'].call_count)
        self.driver['resize'].assert_called_once_with(self.disk.rbd_name,
                                                      3 * units.Gi)

    def test_base_vanishing_on_every_attempt_is_an_error(self):
        self.show.return_value = _meta(disk_format='qcow2')
        self.ensure.return_value = (self.base_url, units.Gi, True)
        self.driver['clone'].side_effect = fakes.RbdImageNotFound('gone')
        self.assertRaises(fakes.RbdImageNotFound, self.disk.clone,
                          mock.sentinel.ctx, IMAGE_ID)
        self.assertEqual(cachedbase.CLONE_ATTEMPTS,
                         self.ensure.call_count)
        self.assertEqual(cachedbase.CLONE_ATTEMPTS,
                         self.driver['clone'].call_count)
        self.driver['resize'].assert_not_called()

    def test_other_clone_errors_are_not_retried(self):
        self.show.return_value = _meta(disk_format='qcow2')
        self.ensure.return_value = (self.base_url, units.Gi, True)
        self.driver['clone'].side_effect = fakes.RbdImageExists('exists')
        self.assertRaises(fakes.RbdImageExists, self.disk.clone,
                          mock.sentinel.ctx, IMAGE_ID)
        self.assertEqual(1, self.ensure.call_count)
        self.assertEqual(1, self.driver['clone'].call_count)

    def test_rejected_image_is_image_unacceptable(self):
        self.show.return_value = _meta(disk_format='qcow2')
        self.ensure.side_effect = fc_exception.ImageRejected(
            image=IMAGE_ID, reason='qcow2 failed safety checks: backing')
        exc = self.assertRaises(exception.ImageUnacceptable,
                                self.disk.clone, mock.sentinel.ctx, IMAGE_ID)
        self.assertIn('qcow2 failed safety checks: backing', str(exc))
        self.assertIn(IMAGE_ID, str(exc))
        self.driver['clone'].assert_not_called()

    def test_wait_timeout_is_image_unacceptable(self):
        self.show.return_value = _meta(disk_format='qcow2')
        self.ensure.side_effect = fc_exception.CacheError(
            image=IMAGE_ID, reason='gave up after 1800s')
        exc = self.assertRaises(exception.ImageUnacceptable,
                                self.disk.clone, mock.sentinel.ctx, IMAGE_ID)
        self.assertEqual('Image %s is unacceptable: cached base image: gave '
                         'up after 1800s' % IMAGE_ID, str(exc))

    def test_trusted_raw_location_never_touches_the_cache(self):
        self.show.return_value = _meta(GOOD)
        facts = snapfacts.Facts(snap_id=7, size=units.Gi, protected=True,
                                detected='raw')
        with mock.patch.object(self.disk.sources, 'snapshot_facts',
                               autospec=True, return_value=facts):
            self.disk.clone(mock.sentinel.ctx, IMAGE_ID)
        self.ensure.assert_not_called()


def clone_fallback_to_fetch(context, target, image_id, trusted_certs=None):
    """Stands for LibvirtDriver's closure: FastRbd knows it by its name."""
    raise AssertionError('Nova\'s fallback must not run')


class SpawnFixtures(CloneFixtures):
    """FastRbd.cache() as LibvirtDriver calls it, Nova's own path mocked."""

    def setUp(self):
        super().setUp()
        self.nova_cache = self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.imagebackend.Image.cache',
            autospec=True)).mock
        self.driver['exists'] = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cluster.SharedRBDDriver.exists',
            autospec=True, return_value=False)).mock

    def _snapshot_holds_qcow2(self):
        """The Glance snapshot's head is a qcow2 header (v3)."""
        self.snap.read.side_effect = lambda offset, length: (
            b'QFI\xfb\x00\x00\x00\x03' + b'\0' * (length - 8))

    def _cache(self, fetch_func=clone_fallback_to_fetch, size=2 * units.Gi,
               meta=None):
        self.show.return_value = meta or _meta(GOOD)
        self.disk.cache(fetch_func=fetch_func, context=mock.sentinel.ctx,
                        filename='fname', image_id=IMAGE_ID, size=size,
                        trusted_certs=None)


class SpawnPathTestCase(SpawnFixtures):
    """FastRbd.cache(): the root disk is made before Nova's image lock."""

    def test_clones_without_nova_or_its_lock(self):
        self._cache()
        self.nova_cache.assert_not_called()
        self.show.assert_called_once_with(mock.sentinel.ctx, IMAGE_ID)
        self.driver['clone'].assert_called_once_with(
            {'url': GOOD}, self.disk.rbd_name)
        self.driver['resize'].assert_called_once_with(
            self.disk.rbd_name, 2 * units.Gi)

    def test_rescue_disk_is_not_resized(self):
        self._cache(size=None)
        self.nova_cache.assert_not_called()
        self.driver['resize'].assert_not_called()

    def test_other_disks_and_existing_ones_are_novas(self):
        self._cache(fetch_func=mock.Mock(__name__='_create_ephemeral'))
        self.driver['exists'].return_value = True
        self._cache()
        self.assertEqual(2, self.nova_cache.call_count)
        self.driver['clone'].assert_not_called()
        self.show.assert_not_called()

    def test_raw_declared_qcow2_refused_once(self):
        self._snapshot_holds_qcow2()
        exc = self.assertRaises(exception.ImageUnacceptable, self._cache)
        msg = str(exc)
        self.assertIn(IMAGE_ID, msg)
        self.assertIn('disk_format is raw but the data in images/%s@snap is '
                      'qcow2' % IMAGE_ID, msg)
        self.assertIn('upload it again with disk_format qcow2', msg)
        self.nova_cache.assert_not_called()   # so no download into _base
        self.driver['clone'].assert_not_called()
        self.show.assert_called_once()

    def test_refused_image_never_goes_to_the_cache(self):
        self.flags(cache_enabled=True, group='fastclone')
        ensure = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.populate.Populator.ensure',
            autospec=True)).mock
        self._snapshot_holds_qcow2()
        self.assertRaises(exception.ImageUnacceptable, self._cache)
        ensure.assert_not_called()

    def test_interrupted_download_is_not_the_images_fault(self):
        # not ImageUnacceptable: Nova reschedules the build to another host
        self.flags(cache_enabled=True, group='fastclone')
        self.useFixture(fixtures.MockPatch(
            'fastclone_backend.cache.populate.Populator.ensure', autospec=True,
            side_effect=fc_exception.DownloadInterrupted(
                image=IMAGE_ID, done=3, expected=10, cause='EOF')))
        exc = self.assertRaises(fc_exception.DownloadInterrupted,
                                self._cache,
                                meta=_meta(disk_format='qcow2'))
        self.assertIn('interrupted after 3 of 10 MiB: EOF', str(exc))
        self.nova_cache.assert_not_called()

    def test_image_larger_than_the_root_disk_refused(self):
        exc = self.assertRaises(exception.ImageUnacceptable, self._cache,
                                size=units.Gi // 2)
        self.assertIn("virtual size 1073741824 bytes exceeds the flavor's "
                      'root disk of 536870912 bytes', str(exc))
        self.nova_cache.assert_not_called()
        self.driver['clone'].assert_not_called()

    def test_content_is_inspected_once_per_process(self):
        self._cache()
        self.disk = fastrbd.FastRbd(self.instance, 'disk2')
        self.ceph.rbd.Image.reset_mock()
        with mock.patch.object(snapfacts, 'still_true', autospec=True,
                               return_value=True) as checked:
            self._cache()
        self.ceph.rbd.Image.assert_not_called()
        checked.assert_called_once()   # two reads, no image open
        self.assertEqual(2, self.driver['clone'].call_count)

    def test_not_clonable_with_cache_off_is_novas_download(self):
        self._cache(meta=_meta('file:///x'))
        self.nova_cache.assert_called_once_with(
            clone_fallback_to_fetch, 'fname', 2 * units.Gi,
            context=mock.sentinel.ctx, image_id=IMAGE_ID,
            trusted_certs=None)
        # Nova's closure then calls clone(): refused at once, from memory
        exc = self.assertRaises(exception.ImageUnacceptable, self.disk.clone,
                                mock.sentinel.ctx, IMAGE_ID)
        self.assertIn('file:///x: scheme is not rbd://', str(exc))
        self.show.assert_called_once()

    def test_disk_made_meanwhile_is_left_to_nova(self):
        self.driver['clone'].side_effect = fakes.RbdImageExists('exists')
        self._cache()
        self.nova_cache.assert_called_once()

    def test_vanished_snapshot_is_looked_at_again(self):
        self.driver['clone'].side_effect = [fakes.RbdImageNotFound('gone'),
                                            None]
        self._cache()
        self.assertEqual(2, self.show.call_count)
        self.assertEqual(2, self.ceph.rbd.Image.call_count)  # relearnt
        self.assertEqual(2, self.driver['clone'].call_count)


def test_nova_still_names_its_clone_closure():
    # FastRbd.cache() recognises Nova's root-disk fetch by this name
    import inspect as pyinspect

    from nova.virt.libvirt import driver
    source = pyinspect.getsource(
        driver.LibvirtDriver._create_and_inject_local_root)
    assert 'def clone_fallback_to_fetch(' in source
    assert fastrbd.is_nova_clone(clone_fallback_to_fetch)
