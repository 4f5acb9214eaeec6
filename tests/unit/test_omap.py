"""Omap read in pages past the OSD's cap, written in batches."""

from unittest import mock

from fastclone_backend.cache import naming
from fastclone_backend.cache import omap
from fastclone_backend.cache import verdicts
from tests.unit import base
from tests.unit import fakes

IMAGE_ID = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'


class OmapPagesTestCase(base.TestCase):
    """An OSD answers at most so many entries to one read."""

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())

    def _filled(self, count, cap):
        ioctx = fakes.OmapIoctx(cap=cap)
        ioctx.objects['obj'] = {'k%04d' % i: b'v%d' % i
                                for i in range(count)}
        return ioctx

    def test_every_key_read_past_the_osd_cap(self):
        # the OSD answers 3 a read whatever is asked: 10 keys in 4 reads,
        # and one more that comes back empty
        ioctx = self._filled(10, cap=3)
        found = omap.items(ioctx, 'obj')
        self.assertEqual(ioctx.objects['obj'], found)
        self.assertEqual(-(-10 // 3) + 1, ioctx.reads)

    def test_pages_of_the_size_asked(self):
        ioctx = self._filled(2500, cap=1024)
        self.assertEqual(2500, len(omap.items(ioctx, 'obj')))
        self.assertEqual(-(-2500 // omap.PAGE) + 1, ioctx.reads)

    def test_prefix(self):
        ioctx = self._filled(5, cap=2)
        ioctx.objects['obj']['other'] = b'x'
        self.assertEqual({'other': b'x'}, omap.items(ioctx, 'obj', 'oth'))

    def test_writes_in_batches(self):
        ioctx = fakes.OmapIoctx()
        values = {'k%04d' % i: b'v' for i in range(25)}
        with mock.patch.object(omap, 'WRITE_BATCH', 10):
            omap.put(ioctx, 'obj', values)
            self.assertEqual(3, ioctx.writes)
            omap.drop(ioctx, 'obj', list(values)[:15])
        self.assertEqual(5, ioctx.writes)
        self.assertEqual(sorted(values)[15:], sorted(ioctx.objects['obj']))

    def test_every_verdict_key_read_past_the_osd_cap(self):
        ioctx = fakes.OmapIoctx(cap=2)
        keys = ['images/%s@%d' % (IMAGE_ID, i) for i in range(5)]
        ioctx.objects[naming.VERDICTS_OBJECT] = {k: b'raw\n' for k in keys}
        driver = mock.Mock()
        driver._connect_to_rados.return_value = (mock.Mock(), ioctx)
        self.assertEqual(keys, verdicts.Verdicts(driver, 'vms').keys())
        del ioctx.objects[naming.VERDICTS_OBJECT]   # none recorded yet
        self.assertEqual([], verdicts.Verdicts(driver, 'vms').keys())
