"""The base index omap: entries written and read, in pages."""

from fastclone_backend.cache import baseindex
from fastclone_backend.cache import naming
from tests.unit import base
from tests.unit import fakes

IMAGE_ID = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'
OTHER = '7c4a6d2f-3e5b-4f9c-8d1a-1b2c3d4e5f60'
RBD_ID = '10aa20bb30cc'


def _published(image_id=IMAGE_ID, rbd_id=RBD_ID, used=1000.0):
    """A base as publish leaves it: fingerprint, mark, last use."""
    stored = dict(naming.fingerprint({'id': image_id, 'size': 10,
                                      'os_hash_value': 'h1'}),
                  **naming.mark(image_id, rbd_id))
    stored[naming.META + 'last_used'] = '%d' % used
    stored[naming.META + 'populated_by'] = 'compute-1:42'
    stored['someone.else'] = 'not ours to index'
    return naming.Base(name=naming.base_name(image_id), size=4 << 20,
                       last_used=used, stored=stored)


class EntryTestCase(base.TestCase):

    def test_entry_read_back_is_the_base_not_opened(self):
        published = _published()
        found = baseindex.parse(published.name, baseindex.entry(published),
                                used=2000.0)
        self.assertEqual(
            (published.name, 4 << 20, 2000.0, (), True, False, True, False),
            (found.name, found.size, found.last_used, found.children,
             found.has_snap, found.locked, found.owned, found.surveyed))
        # the fastclone metadata but its last use (kept apart, in used/)
        expected = {k: v for k, v in published.stored.items()
                    if k.startswith(naming.META) and
                    k != naming.META + 'last_used'}
        self.assertEqual(expected, found.stored)
        self.assertIsNone(naming.stale_reason(found.stored, {
            'id': IMAGE_ID, 'size': 10, 'os_hash_value': 'h1'}))

    def test_entry_under_another_name_is_not_ours(self):
        # a mark names the image id of its name
        published = _published()
        found = baseindex.parse(naming.base_name(OTHER),
                                baseindex.entry(published))
        self.assertFalse(found.owned)


class BaseIndexTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.ioctx = fakes.OmapIoctx()
        self.index = baseindex.BaseIndex(self.ioctx)

    def _keys(self):
        return sorted(self.ioctx.objects.get(naming.INDEX_OBJECT, {}))

    def test_no_index_yet_reads_empty(self):
        self.assertEqual(({}, {}), self.index.read())
        self.assertEqual(1, self.ioctx.reads)

    def test_put_writes_entry_and_last_use(self):
        published = _published(used=1234.0)
        self.index.put([published])
        self.assertEqual([baseindex.ENTRY + published.name,
                          baseindex.USED + published.name], self._keys())
        entries, used = self.index.read()
        self.assertEqual({published.name: 1234.0}, used)
        self.assertEqual(baseindex.entry(published),
                         entries[published.name])
        self.assertEqual(1, self.ioctx.writes)

    def test_use_writes_the_last_use_alone(self):
        published = _published(used=1000.0)
        self.index.put([published])
        self.index.use(published.name, '5000')
        entries, used = self.index.read()
        self.assertEqual({published.name: 5000.0}, used)
        self.assertEqual(baseindex.entry(published),
                         entries[published.name])
        self.assertEqual(2, self.ioctx.writes)

    def test_uses_write_the_last_use_of_each_in_one_write(self):
        mine, other = _published(), _published(OTHER)
        self.index.put([mine, other])
        self.index.uses([mine.name, other.name], '7000')
        self.assertEqual({mine.name: 7000.0, other.name: 7000.0},
                         self.index.read()[1])
        self.assertEqual(2, self.ioctx.writes)

    def test_use_of_a_base_never_indexed_is_only_a_last_use(self):
        self.index.use(naming.base_name(IMAGE_ID), '5000')
        self.assertEqual(({}, {naming.base_name(IMAGE_ID): 5000.0}),
                         self.index.read())

    def test_drop_removes_both_keys(self):
        mine, other = _published(), _published(OTHER)
        self.index.put([mine, other])
        self.index.drop([mine.name])
        self.assertEqual([baseindex.ENTRY + other.name,
                          baseindex.USED + other.name], self._keys())

    def test_drop_without_an_index_is_no_error(self):
        self.index.drop([naming.base_name(IMAGE_ID)])
        self.assertEqual(1, self.ioctx.writes)
        self.assertNotIn(naming.INDEX_OBJECT, self.ioctx.objects)

    def test_unreadable_last_use_counts_as_never(self):
        self.index.use(naming.base_name(IMAGE_ID), 'garbage')
        self.assertEqual({naming.base_name(IMAGE_ID): 0.0},
                         self.index.read()[1])
