"""DiskClone: one disk cloned, over remains, grown (a driver mock).

The same paths through FastRbd, on mocked librbd, are in
tests/unit/test_imagebackend.py and test_faults.py.
"""

from unittest import mock

from oslo_utils import units

from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import diskclone
from fastclone_backend.spawn import location
from tests.unit import base
from tests.unit import fakes

FSID = '5eca15c8-e424-4fc8-9470-1d586b91059d'
IMAGE_ID = 'f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
GOOD = 'rbd://%s/images/%s/snap' % (FSID, IMAGE_ID)
NAME = 'a1b2c3d4-0000-4000-8000-000000000003_disk'


class DiskCloneTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.driver = mock.create_autospec(cluster.SharedRBDDriver,
                                           instance=True)
        self.driver.pool = 'vms'
        self.driver.op_timeout = 5
        self.driver.exists.return_value = False
        self.disk = diskclone.DiskClone(self.driver, NAME)
        self.loc = location.parse(GOOD)
        naming.STATS.clear()

    def test_clone_is_counted(self):
        self.disk.clone_from(self.loc, IMAGE_ID)
        self.driver.clone.assert_called_once_with({'url': GOOD}, NAME)
        self.assertEqual(1, naming.STATS['clones'])
        self.driver.remove_image.assert_not_called()

    def test_remains_are_removed_then_cloned_again(self):
        self.driver.clone.side_effect = [fakes.RbdImageExists('taken'), None]
        with mock.patch.object(diskclone.LOG, 'warning',
                               autospec=True) as warning:
            self.disk.clone_from(self.loc, IMAGE_ID)
        self.driver.exists.assert_called_once_with(NAME)
        self.driver.remove_image.assert_called_once_with(NAME)
        self.assertEqual(2, self.driver.clone.call_count)
        self.assertIn('remains of an earlier clone', warning.call_args[0][0])

    def test_a_disk_that_opens_is_never_removed(self):
        self.driver.clone.side_effect = fakes.RbdImageExists('taken')
        self.driver.exists.return_value = True
        self.assertRaises(fakes.RbdImageExists, self.disk.clone_from,
                          self.loc, IMAGE_ID)
        self.driver.remove_image.assert_not_called()
        self.assertEqual(0, naming.STATS['clones'])

    def test_timed_out_clone_is_removed_and_named(self):
        self.driver.clone.side_effect = fakes.RbdTimeout('timed out')
        exc = self.assertRaises(fc_exception.CephTimeout,
                                self.disk.clone_from, self.loc, IMAGE_ID)
        self.assertIn('while cloning images/%s@snap to vms/%s'
                      % (IMAGE_ID, NAME), str(exc))
        self.driver.remove_image.assert_called_once_with(NAME)

    def test_removal_that_fails_after_a_timeout_is_left_to_nova(self):
        self.driver.clone.side_effect = fakes.RbdTimeout('timed out')
        self.driver.remove_image.side_effect = fakes.RbdTimeout('again')
        with mock.patch.object(diskclone.LOG, 'warning',
                               autospec=True) as warning:
            self.assertRaises(fc_exception.CephTimeout, self.disk.clone_from,
                              self.loc, IMAGE_ID)
        self.assertIn("Nova's cleanup of the failed build removes it",
                      warning.call_args[0][0])
        self.assertEqual(NAME, warning.call_args[0][1]['name'])

    def test_grow_only_up(self):
        self.assertEqual(units.Gi, self.disk.grow(0, units.Gi))
        self.assertEqual(units.Gi, self.disk.grow(units.Gi // 2, units.Gi))
        self.driver.resize.assert_not_called()
        self.assertEqual(2 * units.Gi, self.disk.grow(2 * units.Gi, units.Gi))
        self.driver.resize.assert_called_once_with(NAME, 2 * units.Gi)

    def test_failed_growth_removes_the_clone(self):
        self.driver.resize.side_effect = fakes.RbdError('ENOSPC')
        self.assertRaises(fakes.RbdError, self.disk.grow, 2 * units.Gi,
                          units.Gi)
        self.driver.remove_image.assert_called_once_with(NAME)
