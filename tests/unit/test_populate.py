"""Populator failure paths: nothing left behind, lock released."""

import hashlib
import os
import threading
import time
from unittest import mock

import fixtures

from fastclone_backend.cache import naming
from fastclone_backend.cache import populate
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend import inspect
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
            'fastclone_backend.glanceapi.download')).mock
        self.download.side_effect = self._serve
        self.served = DATA
        self.meta = {'id': IMAGE_ID, 'disk_format': 'qcow2',
                     'size': len(DATA), 'os_hash_algo': 'sha512',
                     'os_hash_value': hashlib.sha512(DATA).hexdigest()}

    def _serve(self, context, image_id, data):
        """As glanceapi.download: the bytes Glance sends, unchecked."""
        data.write(self.served)

    def _ioctx(self):
        return self.ceph.rados.Rados.return_value.open_ioctx.return_value

    def _assert_nothing_left(self):
        workdir = os.path.join(self.instances, 'fastclone')
        self.assertEqual([], os.listdir(workdir))
        (name,), kwargs = self.remove.call_args
        self.assertTrue(name.startswith(naming.tmp_prefix(IMAGE_ID)), name)
        self.assertEqual({'wait': populate.REMOVE_WAIT}, kwargs)
        lock = self._ioctx().lock_exclusive.call_args[0]
        self._ioctx().unlock.assert_called_once_with(
            naming.lock_object(IMAGE_ID), 'populate', lock[2])

    def test_hash_mismatch(self):
        self.served = DATA[:-1] + b'!'
        exc = self.assertRaises(fc_exception.ImageRejected,
                                self.populator.ensure, 'ctx', self.meta, 0)
        self.assertIn(
            'the data Glance sent does not match the hash it recorded: '
            'sha512 of the data is %s, Glance says %s' % (
                hashlib.sha512(self.served).hexdigest(),
                self.meta['os_hash_value']), exc.reason)
        self._assert_nothing_left()

    def test_interrupted_download_names_image_and_bytes(self):
        import requests

        def broken(context, image_id, data):
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

    def test_glance_timeout_passes_through(self):
        self.download.side_effect = fc_exception.GlanceTimeout(
            image=IMAGE_ID, timeout=3, doing='downloading it',
            cause='ReadTimeout: read timed out')
        exc = self.assertRaises(fc_exception.GlanceTimeout,
                                self.populator.ensure, 'ctx', self.meta, 0)
        self.assertEqual('Image %s: Glance did not answer within 3 s '
                         '([fastclone] glance_timeout) while downloading it: '
                         'ReadTimeout: read timed out' % IMAGE_ID, str(exc))
        self._assert_nothing_left()

    def test_a_killed_tools_writer_is_fenced_before_the_removal(self):
        broken = self.useFixture(fixtures.MockPatchObject(
            self.populator.store, 'break_writers', autospec=True,
            return_value=['127.0.0.1:0/9'])).mock
        timeout = fc_exception.ToolTimeout(
            image=IMAGE_ID, tool='rbd import', timeout=3,
            option='[fastclone] import_timeout', doing='writing import',
            done=1, total=2)
        with mock.patch.object(populate.Populator, '_fill', autospec=True,
                               side_effect=timeout):
            self.assertRaises(fc_exception.ToolTimeout,
                              self.populator.ensure, 'ctx', self.meta, 0)
        (tmp,), _ = broken.call_args
        self.assertEqual(((tmp,), {'wait': populate.REMOVE_WAIT}),
                         tuple(self.remove.call_args))

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
        with mock.patch('fastclone_backend.cache.fetch.free_bytes',
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
        tmp = naming.tmp_name(IMAGE_ID, 'dead')
        self.store.names.return_value = [tmp]
        self._metadata(None, None)
        self.populator._clear_leftovers(self.meta)
        self.store.names.assert_called_once_with(naming.tmp_prefix(IMAGE_ID))
        # its dead writer fenced first, so that no watch keeps it busy
        self.assertEqual([mock.call.break_writers(tmp), mock.call.remove(tmp)],
                         [c for c in self.store.mock_calls
                          if c[0] in ('break_writers', 'remove')])
        self.store.retire.assert_not_called()

    def test_base_without_snapshot_is_retired_not_removed(self):
        self.store.names.return_value = []
        self._metadata((10, {}), None)
        self.populator._clear_leftovers(self.meta)
        self.store.retire.assert_called_once_with(
            naming.base_name(IMAGE_ID), 'it has no snapshot')
        self.store.remove.assert_not_called()

    def test_stale_base_is_retired(self):
        self.store.names.return_value = []
        stored = naming.fingerprint(dict(self.meta, checksum='cd' * 16))
        self._metadata((10, stored), (10, stored))
        self.populator._clear_leftovers(self.meta)
        (name, why), _ = self.store.retire.call_args
        self.assertEqual(naming.base_name(IMAGE_ID), name)
        self.assertTrue(why.startswith('checksum is '), why)

    def test_current_base_is_never_retired(self):
        self.store.names.return_value = []
        stored = naming.fingerprint(self.meta)
        self._metadata((10, stored), (10, stored))
        self.populator._clear_leftovers(self.meta)
        self.store.retire.assert_not_called()


class WaitingTestCase(base.TestCase):
    """A spawn waiting on another host's population is woken, or polls."""

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', group='libvirt')
        fc_conf.register_opts(populate.CONF)
        self.populator = populate.Populator(cluster.SharedRBDDriver())
        self.ready = None
        self.useFixture(fixtures.MockPatchObject(
            self.populator.store, 'lookup', autospec=True,
            side_effect=lambda meta: self.ready))
        for name in ('touch', 'url'):
            self.useFixture(fixtures.MockPatchObject(
                self.populator.store, name, autospec=True))
        self.ioctx = self.ceph.rados.Rados.return_value.open_ioctx.return_value
        self.ioctx.lock_exclusive.side_effect = fakes.RadosObjectBusy(
            'held by another host')
        self.meta = {'id': IMAGE_ID, 'size': 10}

    def _publish_later(self, delay, notify=True):
        def publish():
            self.ready = (4096, {})
            if notify:   # the publisher's release: a notify on the lock
                self.ioctx.watch.call_args[0][1](1, 2, 3, b'released')
        threading.Timer(delay, publish).start()

    def test_a_waiter_is_woken_by_the_notify_not_the_poll(self):
        self.flags(cache_poll_interval=30, group='fastclone')
        self._publish_later(0.2)
        start = time.monotonic()
        url, size, hit = self.populator.ensure('ctx', self.meta, 0)
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual((4096, True), (size, hit))
        self.assertEqual(naming.lock_object(IMAGE_ID),
                         self.ioctx.watch.call_args[0][0])
        self.ioctx.watch.return_value.close.assert_called_once_with()

    def test_a_lost_notify_is_made_up_for_by_the_poll(self):
        self.flags(cache_poll_interval=0.3, group='fastclone')
        self._publish_later(0.2, notify=False)
        start = time.monotonic()
        url, size, hit = self.populator.ensure('ctx', self.meta, 0)
        self.assertGreaterEqual(time.monotonic() - start, 0.25)
        self.assertEqual((4096, True), (size, hit))

    def test_a_hit_needs_no_lock_and_no_watch(self):
        self.ready = (4096, {})
        self.populator.ensure('ctx', self.meta, 0)
        self.ioctx.lock_exclusive.assert_not_called()
        self.ioctx.watch.assert_not_called()

    def test_the_locks_go_through_their_own_connection(self):
        driver = self.populator.driver
        self.assertIsNot(driver.handle, driver.lock_handle)
        self.assertIs(driver.lock_handle, driver.lock_handle)

    def test_a_fenced_holder_fails_its_spawn_and_reconnects(self):
        from fastclone_backend import lease
        held = mock.Mock(fenced=True, unanswered=False, seconds=10)
        with mock.patch.object(self.populator.driver.lock_handle, 'reset',
                               autospec=True) as reset:
            exc = self.assertRaises(
                fc_exception.CacheError, self.populator._lease_lost_error,
                lease.LeaseLost(held, 'convert'), IMAGE_ID, 'the-client')
        reset.assert_called_once_with(broken='the-client')
        self.assertIn('fenced this one', str(exc))
