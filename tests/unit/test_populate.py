"""Populator failure paths: nothing left behind, lock released."""

import hashlib
import os
from unittest import mock

import fixtures

from fastclone_backend import cache
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend import inspect
from fastclone_backend import populate
from tests.unit import base
from tests.unit import fakes

IMAGE_ID = 'f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
DATA = b'qcow2-ish bytes' * 100


class PopulationFailureTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.instances = self.useFixture(fixtures.TempDir()).path
        self.flags(images_rbd_pool='vms', group='libvirt')
        self.flags(instances_path=self.instances)
        fc_conf.register_opts(populate.CONF)
        self.populator = populate.Populator(cluster.SharedRBDDriver())
        for name, value in (('lookup', None), ('names', []),
                            ('metadata', None)):
            self.useFixture(fixtures.MockPatchObject(
                self.populator.store, name, autospec=True,
                return_value=value))
        self.remove = self.useFixture(fixtures.MockPatchObject(
            self.populator.store, 'remove', autospec=True)).mock
        self.download = self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.imagebackend.IMAGE_API.download')).mock
        self.download.side_effect = self._serve
        self.served = DATA
        self.meta = {'id': IMAGE_ID, 'disk_format': 'qcow2',
                     'size': len(DATA), 'os_hash_algo': 'sha512',
                     'os_hash_value': hashlib.sha512(DATA).hexdigest()}

    def _serve(self, context, image_id, data=None, dest_path=None):
        """As Nova's download through glanceclient, which checks the hash."""
        data.write(self.served)
        computed = hashlib.sha512(self.served).hexdigest()
        if computed != self.meta['os_hash_value']:
            raise IOError(32, 'Corrupt image download. Hash was %s expected '
                          '%s' % (computed, self.meta['os_hash_value']))

    def _ioctx(self):
        return self.ceph.rados.Rados.return_value.open_ioctx.return_value

    def _assert_nothing_left(self):
        workdir = os.path.join(self.instances, 'fastclone')
        self.assertEqual([], os.listdir(workdir))
        (name,), kwargs = self.remove.call_args
        self.assertTrue(name.startswith(cache.tmp_prefix(IMAGE_ID)), name)
        self.assertEqual({'wait': populate.REMOVE_WAIT}, kwargs)
        lock = self._ioctx().lock_exclusive.call_args[0]
        self._ioctx().unlock.assert_called_once_with(
            cache.lock_object(IMAGE_ID), 'populate', lock[2])

    def test_hash_mismatch(self):
        self.served = DATA[:-1] + b'!'
        exc = self.assertRaises(fc_exception.ImageRejected,
                                self.populator.ensure, 'ctx', self.meta, 0)
        self.assertIn('the data Glance sent does not match the hash it '
                      'recorded: [Errno 32] Corrupt image download',
                      exc.reason)
        self._assert_nothing_left()

    def test_interrupted_download_names_image_and_bytes(self):
        import requests

        def broken(context, image_id, data=None, dest_path=None):
            data.write(b'x' * (3 * 1024 * 1024))
            raise requests.exceptions.ChunkedEncodingError(
                'Connection broken: IncompleteRead')
        self.download.side_effect = broken
        self.meta['size'] = 10 * 1024 * 1024
        exc = self.assertRaises(fc_exception.DownloadInterrupted,
                                self.populator.ensure, 'ctx', self.meta, 0)
        self.assertEqual('Glance download of image %s interrupted after 3 '
                         'of 10 MiB: ChunkedEncodingError: Connection '
                         'broken: IncompleteRead' % IMAGE_ID, str(exc))
        self._assert_nothing_left()

    def test_novas_own_download_errors_pass_through(self):
        from nova import exception as nova_exception
        self.download.side_effect = nova_exception.ImageNotFound(
            image_id=IMAGE_ID)
        self.assertRaises(nova_exception.ImageNotFound,
                          self.populator.ensure, 'ctx', self.meta, 0)
        self._assert_nothing_left()

    def test_size_mismatch(self):
        self.served = DATA + b'more'
        # a hash that matches, so the size check is what refuses it
        self.meta['os_hash_value'] = hashlib.sha512(self.served).hexdigest()
        exc = self.assertRaises(fc_exception.ImageRejected,
                                self.populator.ensure, 'ctx', self.meta, 0)
        self.assertIn('Glance says %d' % len(DATA), exc.reason)
        self._assert_nothing_left()

    def test_refused_by_inspection(self):
        with mock.patch.object(inspect, 'inspect_image', autospec=True,
                               side_effect=fc_exception.ImageRejected(
                                   image=IMAGE_ID, reason='backing file')):
            self.assertRaises(fc_exception.ImageRejected,
                              self.populator.ensure, 'ctx', self.meta, 0)
        self._assert_nothing_left()

    def test_no_room_refused_before_download(self):
        with mock.patch('fastclone_backend.fetch.free_bytes',
                        return_value=10):
            exc = self.assertRaises(fc_exception.CacheUnavailable,
                                    self.populator.ensure, 'ctx', self.meta, 0)
        self.assertEqual('workdir_full', exc.kind)
        self.assertIn('is full: 64 MiB needed, 0 MiB free', str(exc))
        self.download.assert_not_called()
        self._assert_nothing_left()

    def test_waiter_gives_up_after_the_timeout(self):
        self.flags(cache_wait_timeout=1, cache_poll_interval=0.05,
                   group='fastclone')
        self._ioctx().lock_exclusive.side_effect = fakes.RadosObjectBusy(
            'held by another host')
        exc = self.assertRaises(fc_exception.CacheError, self.populator.ensure,
                                'ctx', self.meta, 0)
        self.assertIn('waiting for another host', str(exc))
        self.download.assert_not_called()


class ClearLeftoversTestCase(base.TestCase):
    """Under the lock: tmp leftovers removed, a bad base only retired."""

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        fc_conf.register_opts(populate.CONF)
        self.populator = populate.Populator(cluster.SharedRBDDriver())
        self.store = self.useFixture(fixtures.MockPatchObject(
            self.populator, 'store', autospec=True)).mock
        self.meta = {'id': IMAGE_ID, 'size': 10, 'checksum': 'ab' * 16}

    def _metadata(self, base, snap):
        self.store.metadata.side_effect = lambda name, snapshot=None: (
            snap if snapshot else base)

    def test_crashed_tmp_removed_without_waiting(self):
        tmp = cache.tmp_name(IMAGE_ID, 'dead')
        self.store.names.return_value = [tmp]
        self._metadata(None, None)
        self.populator._clear_leftovers(self.meta)
        self.store.names.assert_called_once_with(cache.tmp_prefix(IMAGE_ID))
        self.store.remove.assert_called_once_with(tmp)
        self.store.retire.assert_not_called()

    def test_base_without_snapshot_is_retired_not_removed(self):
        self.store.names.return_value = []
        self._metadata((10, {}), None)
        self.populator._clear_leftovers(self.meta)
        self.store.retire.assert_called_once_with(
            cache.base_name(IMAGE_ID), 'it has no snapshot')
        self.store.remove.assert_not_called()

    def test_stale_base_is_retired(self):
        self.store.names.return_value = []
        stored = cache.fingerprint(dict(self.meta, checksum='cd' * 16))
        self._metadata((10, stored), (10, stored))
        self.populator._clear_leftovers(self.meta)
        (name, why), _ = self.store.retire.call_args
        self.assertEqual(cache.base_name(IMAGE_ID), name)
        self.assertTrue(why.startswith('checksum is '), why)

    def test_current_base_is_never_retired(self):
        self.store.names.return_value = []
        stored = cache.fingerprint(self.meta)
        self._metadata((10, stored), (10, stored))
        self.populator._clear_leftovers(self.meta)
        self.store.retire.assert_not_called()
