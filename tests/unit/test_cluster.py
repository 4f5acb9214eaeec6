"""One shared cluster connection per process, reconnected on failure."""

import os
import threading
from unittest import mock

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from tests.unit import base
from tests.unit import fakes


class ClusterHandleTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.handle = cluster.ClusterHandle('/etc/ceph/x.conf', 'nova', 5)

    def test_connects_once_for_many_ioctxs(self):
        for pool in ('vms', 'images', 'vms'):
            self.handle.open_ioctx(pool)
        self.ceph.rados.Rados.assert_called_once_with(
            rados_id='nova', conffile='/etc/ceph/x.conf')
        client = self.ceph.rados.Rados.return_value
        client.connect.assert_called_once_with(timeout=5)
        self.assertEqual([mock.call('vms'), mock.call('images'),
                          mock.call('vms')],
                         client.open_ioctx.call_args_list)

    def test_failed_connect_shuts_down_and_raises(self):
        client = self.ceph.rados.Rados.return_value
        client.connect.side_effect = fakes.RadosError('timed out')
        self.assertRaises(fakes.RadosError, self.handle.open_ioctx, 'vms')
        client.shutdown.assert_called_once_with()
        client.connect.side_effect = None
        self.handle.open_ioctx('vms')  # the next call connects again
        self.assertEqual(2, client.connect.call_count)

    def test_reconnects_when_the_connection_broke(self):
        broken, fresh = mock.Mock(), mock.Mock()
        broken.open_ioctx.side_effect = fakes.RadosError('shutdown')
        self.ceph.rados.Rados.side_effect = [broken, fresh]
        client, ioctx = self.handle.open_ioctx('vms')
        self.assertIs(fresh, client)
        self.assertIs(fresh.open_ioctx.return_value, ioctx)
        broken.shutdown.assert_called_once_with()

    def test_missing_pool_is_not_a_broken_connection(self):
        client = self.ceph.rados.Rados.return_value
        client.open_ioctx.side_effect = fakes.RadosObjectNotFound('no pool')
        self.assertRaises(fakes.RadosObjectNotFound,
                          self.handle.open_ioctx, 'nopool')
        client.shutdown.assert_not_called()
        self.assertEqual(1, self.ceph.rados.Rados.call_count)

    def test_reset_of_a_replaced_client_is_ignored(self):
        client, ioctx = self.handle.open_ioctx('vms')
        self.handle.close_ioctx(client, ioctx)
        self.handle.reset(broken=mock.Mock())
        client.shutdown.assert_not_called()
        self.handle.reset()
        client.shutdown.assert_called_once_with()

    def test_a_client_in_use_is_shut_down_by_its_last_user(self):
        # rados_shutdown under an open ioctx or watch crashes the process
        old, new = mock.Mock(), mock.Mock()
        self.ceph.rados.Rados.side_effect = [old, new]
        first = self.handle.open_ioctx('vms')
        second = self.handle.open_ioctx('vms')
        self.handle.reset(broken=old)
        old.shutdown.assert_not_called()
        self.assertIs(new, self.handle.open_ioctx('vms')[0])  # next caller
        self.handle.close_ioctx(*first)
        old.shutdown.assert_not_called()
        first[1].close.assert_called_once_with()
        self.handle.close_ioctx(*second)
        old.shutdown.assert_called_once_with()
        new.shutdown.assert_not_called()

    def test_using_keeps_the_client_from_shutdown(self):
        client = self.ceph.rados.Rados.return_value
        with self.handle.using() as used:
            self.assertIs(client, used)
            self.handle.reset()
            client.shutdown.assert_not_called()
        client.shutdown.assert_called_once_with()

    def test_an_idle_client_is_shut_down_at_once(self):
        client, ioctx = self.handle.open_ioctx('vms')
        self.handle.close_ioctx(client, ioctx)
        self.handle.reset()
        client.shutdown.assert_called_once_with()

    def test_a_missing_pool_leaves_the_client_unused(self):
        client = self.ceph.rados.Rados.return_value
        client.open_ioctx.side_effect = fakes.RadosObjectNotFound('no pool')
        self.assertRaises(fakes.RadosObjectNotFound,
                          self.handle.open_ioctx, 'nopool')
        self.handle.reset()
        client.shutdown.assert_called_once_with()

    def test_clone_format_follows_min_compat_client(self):
        client = self.ceph.rados.Rados.return_value
        client.conf_get.return_value = 'auto'
        client.mon_command.return_value = (0, b'luminous\n', '')
        self.assertEqual(1, self.handle.clone_format())
        client.mon_command.return_value = (0, b'mimic\n', '')
        self.assertEqual(2, self.handle.clone_format())
        client.conf_get.assert_called_with('rbd_default_clone_format')

    def test_clone_format_mon_error_raises(self):
        client = self.ceph.rados.Rados.return_value
        client.mon_command.return_value = (-13, b'', 'access denied')
        self.assertRaises(fakes.RadosError, self.handle.clone_format)


class CloneFormatTestCase(base.TestCase):

    def test_table(self):
        for setting, release, expected in (
                ('auto', 'jewel', 1), ('auto', 'luminous', 1),
                ('auto', 'mimic', 2), ('auto', 'pacific', 2),
                ('auto', 'squid', 2), ('1', 'reef', 1),
                ('2', 'luminous', 2)):
            self.assertEqual(expected,
                             cluster.clone_format_for(setting, release),
                             (setting, release))


class HandleRegistryTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())

    def test_one_handle_per_cluster_and_user(self):
        a = cluster.handle_for('/c.conf', 'nova', 5)
        self.assertIs(a, cluster.handle_for('/c.conf', 'nova', 5))
        self.assertIsNot(a, cluster.handle_for('/c.conf', 'admin', 5))
        self.assertIsNot(a, cluster.handle_for('/d.conf', 'nova', 5))

    def test_a_forked_child_gets_its_own_handle(self):
        parent = cluster.handle_for('/c.conf', 'nova', 5)
        with mock.patch.object(os, 'getpid', return_value=-1):
            self.assertIsNot(parent, cluster.handle_for('/c.conf', 'nova', 5))

    def test_reset_all_shuts_down_every_connection(self):
        handle = cluster.handle_for('/c.conf', 'nova', 5)
        client, ioctx = handle.open_ioctx('vms')
        cluster.reset_all()
        client.shutdown.assert_not_called()   # its ioctx is still open
        handle.close_ioctx(client, ioctx)
        client.shutdown.assert_called_once_with()
        self.assertIsNot(handle, cluster.handle_for('/c.conf', 'nova', 5))


class ShutdownAtExitTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.ceph.rados.Rados.side_effect = lambda **kw: mock.Mock()

    def _connected(self, *args):
        """A connected handle, its client idle: (handle, client)."""
        handle = cluster.handle_for(*args)
        client, ioctx = handle.open_ioctx('vms')
        handle.close_ioctx(client, ioctx)
        return handle, client

    @mock.patch.object(cluster.atexit, 'register', autospec=True)
    def test_the_first_handle_registers_the_exit_hook_once(self, register):
        with mock.patch.object(cluster, '_exit_hooked', False):
            cluster.handle_for('/c.conf', 'nova', 5)
            cluster.handle_for('/c.conf', 'nova', 5, role='locks')
            cluster.handle_for('/d.conf', 'admin', 5)
        register.assert_called_once_with(cluster.shutdown_at_exit)

    @mock.patch.object(cluster.atexit, 'register', autospec=True)
    def test_a_registered_hook_is_not_registered_again(self, register):
        with mock.patch.object(cluster, '_exit_hooked', True):
            cluster.handle_for('/c.conf', 'nova', 5)
        register.assert_not_called()

    def test_every_idle_connection_is_shut_down_at_exit(self):
        clients = [self._connected('/c.conf', 'nova', 5)[1],
                   self._connected('/c.conf', 'nova', 5, 0, 'locks')[1]]
        self.assertIsNot(clients[0], clients[1])
        cluster.shutdown_at_exit()
        for client in clients:
            client.shutdown.assert_called_once_with()

    def test_a_second_run_shuts_nothing_down_again(self):
        _handle, client = self._connected('/c.conf', 'nova', 5)
        cluster.shutdown_at_exit()
        cluster.shutdown_at_exit()
        client.shutdown.assert_called_once_with()

    def test_a_client_in_use_at_exit_is_left_to_its_last_user(self):
        handle = cluster.handle_for('/c.conf', 'nova', 5)
        client, ioctx = handle.open_ioctx('vms')   # a watch's, a thread's
        cluster.shutdown_at_exit()
        client.shutdown.assert_not_called()
        ioctx.close.assert_not_called()
        handle.close_ioctx(client, ioctx)
        client.shutdown.assert_called_once_with()

    def test_a_parents_connection_is_forgotten_not_shut_down(self):
        with mock.patch.object(os, 'getpid', return_value=-1):
            parent, client = self._connected('/c.conf', 'nova', 5)
        cluster.shutdown_at_exit()   # in the forked child
        client.shutdown.assert_not_called()
        with mock.patch.object(os, 'getpid', return_value=-1):
            self.assertIsNot(parent, cluster.handle_for('/c.conf', 'nova', 5))

    def test_the_watches_end_before_the_connections(self):
        calls = mock.Mock()
        with mock.patch.object(cluster.wake, 'unwatch_all', autospec=True,
                               side_effect=calls.unwatch_all), \
                mock.patch.object(cluster, 'reset_all', autospec=True,
                                  side_effect=calls.reset_all):
            cluster.shutdown_at_exit()
        self.assertEqual([mock.call.unwatch_all(), mock.call.reset_all()],
                         calls.mock_calls)

    @mock.patch.object(cluster, 'reset_all', autospec=True)
    def test_a_failure_never_fails_the_exit(self, reset_all):
        reset_all.side_effect = RuntimeError('boom')
        with mock.patch.object(cluster.LOG, 'warning',
                               autospec=True) as warning:
            self.assertIsNone(cluster.shutdown_at_exit())
        reset_all.assert_called_once_with()
        self.assertIn('boom', str(warning.call_args))


class SharedRBDDriverTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', rbd_user='nova',
                   images_rbd_ceph_conf='/c.conf', rbd_connect_timeout=7,
                   group='libvirt')

    def test_nova_driver_methods_share_one_connection(self):
        client = self.ceph.rados.Rados.return_value
        client.get_fsid.return_value = b'fsid-1'
        driver = cluster.SharedRBDDriver()
        driver.exists('disk-a')
        driver.size('disk-a')
        self.assertEqual('fsid-1', driver.get_fsid())
        self.ceph.rados.Rados.assert_called_once_with(
            rados_id='nova', conffile='/c.conf')
        client.connect.assert_called_once_with(timeout=7)
        client.shutdown.assert_not_called()
        ioctx = client.open_ioctx.return_value
        self.assertEqual(3, ioctx.close.call_count)

    def test_two_drivers_share_the_connection(self):
        cluster.SharedRBDDriver().exists('a')
        cluster.SharedRBDDriver().exists('b')
        self.assertEqual(1, self.ceph.rados.Rados.call_count)


class Wrapper(rbd_utils.RBDDriver):
    """An operator's wrapper of Nova's driver, counting exists() calls."""

    calls = 0

    def exists(self, name, *args, **kwargs):
        Wrapper.calls += 1
        return super().exists(name, *args, **kwargs)


class RbdDriverSeamTestCase(base.TestCase):
    """cluster.rbd_driver() goes through rbd_utils.RBDDriver as it reads."""

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.flags(images_rbd_pool='vms', rbd_user='nova',
                   images_rbd_ceph_conf='/c.conf', group='libvirt')
        Wrapper.calls = 0

    def test_novas_class_gives_the_shared_driver(self):
        driver = cluster.rbd_driver()
        self.assertIs(cluster.SharedRBDDriver, type(driver))
        driver.exists('a')
        cluster.rbd_driver().exists('b')
        self.assertEqual(1, self.ceph.rados.Rados.call_count)

    def test_a_mock_of_the_class_is_used_untouched(self):
        with mock.patch.object(rbd_utils, 'RBDDriver') as substitute:
            driver = cluster.rbd_driver(pool='p')
        substitute.assert_called_once_with(pool='p')
        self.assertIs(substitute.return_value, driver)
        self.ceph.rados.Rados.assert_not_called()

    def test_a_patched_method_of_novas_class_reaches_the_driver(self):
        with mock.patch.object(rbd_utils.RBDDriver, 'clone') as clone:
            cluster.rbd_driver().clone({'url': 'u'}, 'disk')
        clone.assert_called_once_with({'url': 'u'}, 'disk')

    def test_a_wrapper_class_keeps_its_methods_on_the_shared_connection(self):
        fc_conf.register_opts(nova.conf.CONF)
        self.flags(rados_op_timeout=9, group='fastclone')
        with mock.patch.object(rbd_utils, 'RBDDriver', Wrapper):
            first, second = cluster.rbd_driver(), cluster.rbd_driver()
        self.assertIs(type(first), type(second))
        self.assertIsInstance(first, Wrapper)
        self.assertIsInstance(first, cluster.SharedConnection)
        first.exists('a')
        second.exists('b')
        self.assertEqual(2, Wrapper.calls)
        self.assertEqual(1, self.ceph.rados.Rados.call_count)
        self.ceph.rados.Rados.return_value.shutdown.assert_not_called()
        self.assertEqual(9, first.op_timeout)   # bounded as ours are
        self.ceph.rados.Rados.return_value.conf_set.assert_any_call(
            'rados_osd_op_timeout', '9')

    def test_one_shared_class_per_wrapper_across_threads(self):
        class Fresh(rbd_utils.RBDDriver):
            pass
        made, start = [], threading.Barrier(8)

        def make():
            start.wait()
            made.append(cluster.shared_class(Fresh))
        threads = [threading.Thread(target=make) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(8, len(made))
        self.assertEqual({made[0]}, set(made))
        self.assertIs(cluster.SharedRBDDriver,
                      cluster.shared_class(rbd_utils.RBDDriver))
