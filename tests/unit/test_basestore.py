"""BaseStore removal and retirement: never an image that has clones."""

import contextlib
import dataclasses
from unittest import mock

import fixtures

from fastclone_backend.cache import baseindex
from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from tests.unit import base
from tests.unit import fakes

IMAGE_ID = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'
OTHER_ID = '7c4a6d2f-3e5b-4f9c-8d1a-1b2c3d4e5f60'
RBD_ID = '10aa20bb30cc'
RETIRED = naming.retired_name(IMAGE_ID, 'ab12cd34')
CHILD = {'pool': 'vms', 'pool_namespace': '', 'trash': False,
         'image': '1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f0_disk',
         'id': '10f8e1a2b3c4'}
USER_SNAP = {'id': 4, 'name': naming.SNAP, 'namespace': 0}
# a user snapshot removed while it had a clone (clone v2)
TRASH_SNAP = {'id': 7, 'name': '0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6',
              'namespace': 2}


class FakeImage:
    """An open RBD image: snapshots and their clones, no librbd."""

    def __init__(self, snaps=(), children=None, protected=(), busy=False,
                 meta=None, rbd_id='10aa20bb30cc'):
        self.meta = dict(meta or {})
        self.rbd_id = rbd_id
        self.snaps = list(snaps)
        self.children = children or {}   # snapshot id: [child]
        self.protected = set(protected)
        self.busy = busy                 # a clone attaches at unprotect
        self.at = None
        self.removed = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def list_snaps(self):
        return iter(self.snaps)

    def id(self):
        return self.rbd_id

    def metadata_list(self):
        return iter(self.meta.items())

    def metadata_set(self, key, value):
        self.meta[key] = value

    def size(self):
        return 4 << 20

    def set_snap_by_id(self, snap_id):
        self.at = snap_id

    def set_snap(self, name):
        assert name is None
        self.at = None

    def list_children2(self):
        assert self.at is not None, 'children of the head image'
        return iter(self.children.get(self.at, ()))

    def is_protected_snap(self, name):
        return name in self.protected

    def unprotect_snap(self, name):
        if self.busy:
            raise fakes.RbdImageBusy('[errno 16] snapshot has children')
        self.protected.discard(name)

    def remove_snap(self, name):
        if name in self.protected:
            raise fakes.RbdImageBusy('[errno 16] snapshot is protected')
        self.removed.append(name)

    def remove_snap_by_id(self, snap_id):
        self.removed.append(snap_id)


class RemoveSnapsTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())

    def test_snapshot_with_clones_keeps_everything(self):
        image = FakeImage([USER_SNAP], children={4: [CHILD]},
                          protected=[naming.SNAP])
        self.assertFalse(basestore.remove_snaps(image))
        self.assertEqual([], image.removed)
        self.assertEqual({naming.SNAP}, image.protected)
        self.assertIsNone(image.at)

    def test_trash_namespace_snapshot_with_clones_keeps_everything(self):
        image = FakeImage([USER_SNAP, TRASH_SNAP], children={7: [CHILD]})
        self.assertFalse(basestore.remove_snaps(image))
        self.assertEqual([naming.SNAP], image.removed)  # only the childless

    def test_unprotect_refused_keeps_the_snapshot(self):
        image = FakeImage([USER_SNAP], protected=[naming.SNAP], busy=True)
        self.assertFalse(basestore.remove_snaps(image))
        self.assertEqual([], image.removed)

    def test_protected_snapshot_unprotected_then_removed(self):
        image = FakeImage([USER_SNAP], protected=[naming.SNAP])
        self.assertTrue(basestore.remove_snaps(image))
        self.assertEqual([naming.SNAP], image.removed)

    def test_trash_namespace_snapshot_removed_by_id(self):
        image = FakeImage([TRASH_SNAP])
        with mock.patch.object(image, 'remove_snap', autospec=True) as rm:
            self.assertTrue(basestore.remove_snaps(image))
        self.assertEqual([7], image.removed)
        rm.assert_not_called()


class BaseStoreTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ceph = self.useFixture(fakes.CephModules())
        self.rbd = self.ceph.rbd.RBD.return_value
        self.ioctx = mock.Mock(name='ioctx')
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'ioctx', autospec=True,
            return_value=contextlib.nullcontext(self.ioctx)))
        self.image = FakeImage([USER_SNAP], protected=[naming.SNAP],
                               meta=naming.mark(IMAGE_ID, '10aa20bb30cc'))
        self.open = self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, '_open', autospec=True,
            return_value=self.image)).mock
        self.ledger = set()
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'ledger', autospec=True,
            side_effect=lambda *_a: set(self.ledger)))
        self.ledgered = self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, '_ledger_do', autospec=True)).mock
        self.store = basestore.BaseStore(mock.sentinel.driver, pool='vms')

    def test_remove_childless_retired_image(self):
        self.assertTrue(self.store.remove(RETIRED))
        self.assertEqual([mock.call(RETIRED, read_only=True),
                          mock.call(RETIRED)], self.open.call_args_list)
        self.assertEqual([naming.SNAP], self.image.removed)
        self.rbd.remove.assert_called_once_with(self.ioctx, RETIRED)
        # in the ledger while it goes, out of it once gone
        self.assertEqual([mock.call('add', RETIRED, 'removal'),
                          mock.call('drop', RETIRED)],
                         self.ledgered.call_args_list)

    def test_look_alike_is_never_removed(self):
        self.image.meta = {}   # our name, no mark
        self.assertFalse(self.store.remove(RETIRED, wait=45))
        self.assertEqual([], self.image.removed)
        self.rbd.remove.assert_not_called()
        self.ledgered.assert_not_called()

    def test_copied_mark_is_not_ours(self):
        # librbd copies a parent's metadata into its clones: the mark names
        # the RBD id of the image it was set on
        self.image.rbd_id = 'ffee00112233'
        self.assertFalse(self.store.remove(RETIRED))
        self.rbd.remove.assert_not_called()

    def test_mark_for_another_image_is_not_ours(self):
        self.image.meta = naming.mark('0' * 36, '10aa20bb30cc')
        self.assertFalse(self.store.remove(RETIRED))
        self.rbd.remove.assert_not_called()

    def test_ledgered_tmp_without_mark_is_ours(self):
        # rbd import created it; the populator died before marking it
        tmp = naming.tmp_name(IMAGE_ID, 'ef56ab78')
        self.image.meta = {}
        self.ledger.add(tmp)
        self.assertTrue(self.store.remove(tmp))
        self.rbd.remove.assert_called_once_with(self.ioctx, tmp)

    def test_retired_image_with_clones_is_kept(self):
        self.image.children = {4: [CHILD]}
        self.assertFalse(self.store.remove(RETIRED))
        self.assertEqual([], self.image.removed)
        self.rbd.remove.assert_not_called()

    def test_unprotect_busy_keeps_the_image(self):
        self.image.busy = True
        self.assertFalse(self.store.remove(RETIRED))
        self.assertEqual([], self.image.removed)
        self.rbd.remove.assert_not_called()

    def test_clone_raced_in_keeps_the_image(self):
        # the snapshot gained a child and went to the trash namespace
        self.rbd.remove.side_effect = fakes.RbdImageHasSnapshots('ENOTEMPTY')
        self.assertFalse(self.store.remove(RETIRED))
        self.rbd.remove.assert_called_once_with(self.ioctx, RETIRED)

    def test_unopenable_name_is_removed_all_the_same(self):
        # an interrupted removal leaves a listed name whose header is gone:
        # only removing the name again clears it; the ledger proves it ours
        self.open.side_effect = fakes.RbdImageNotFound('ENOENT')
        self.ledger.add(RETIRED)
        self.assertTrue(self.store.remove(RETIRED))
        self.rbd.remove.assert_called_once_with(self.ioctx, RETIRED)

    def test_unopenable_name_not_in_the_ledger_is_left_alone(self):
        self.open.side_effect = fakes.RbdImageNotFound('ENOENT')
        self.rbd.list.return_value = [RETIRED]   # listed, header gone
        self.assertFalse(self.store.remove(RETIRED))
        self.rbd.remove.assert_not_called()

    def test_name_never_made_counts_as_removed(self):
        # a population that failed before its image was created
        self.open.side_effect = fakes.RbdImageNotFound('ENOENT')
        self.rbd.list.return_value = []
        self.rbd.remove.side_effect = fakes.RbdImageNotFound('ENOENT')
        tmp = naming.tmp_name(IMAGE_ID, 'ef56ab78')
        with mock.patch.object(basestore, 'report_foreign',
                               autospec=True) as reported:
            self.assertTrue(self.store.remove(tmp))
        reported.assert_not_called()

    def test_unopenable_leftover_is_described_for_removal(self):
        self.open.side_effect = fakes.RbdImageNotFound('ENOENT')
        tmp = naming.tmp_name(IMAGE_ID, 'ef56ab78')
        with mock.patch.object(self.store, 'locked', autospec=True,
                               return_value=False):
            found = self.store.describe(tmp, ledger={tmp})
            stranger = self.store.describe(tmp, ledger=set())
        self.assertEqual((tmp, 'tmp', (), False, False, True),
                         (found.name, found.kind, found.children,
                          found.has_snap, found.locked, found.owned))
        self.assertFalse(stranger.owned)
        self.assertIsNone(self.store.describe(naming.base_name(IMAGE_ID)))

    def test_base_of_an_earlier_release_is_adopted(self):
        base = naming.base_name(IMAGE_ID)
        self.image.meta = dict(naming.fingerprint({'id': IMAGE_ID}),
                               **{'fastclone.populated_by': 'host:1'})
        found = self.store.describe(base, ledger=set())
        self.assertTrue(found.owned)
        self.assertEqual(naming.mark(IMAGE_ID, '10aa20bb30cc'),
                         {k: self.image.meta[k] for k in (
                             naming.OWNER_KEY, naming.IMAGE_KEY,
                             naming.RBD_ID_KEY)})

    def test_look_alike_base_is_described_as_not_ours(self):
        base = naming.base_name(IMAGE_ID)
        self.image.meta = {'fastclone.id': IMAGE_ID}   # no populated_by
        found = self.store.describe(base, ledger=set())
        self.assertFalse(found.owned)
        self.assertNotIn(naming.OWNER_KEY, self.image.meta)

    def test_image_gone_before_its_removal_counts_as_removed(self):
        self.rbd.remove.side_effect = fakes.RbdImageNotFound('ENOENT')
        self.assertTrue(self.store.remove(RETIRED))

    def test_open_image_retried_until_the_wait_ends(self):
        tmp = naming.tmp_name(IMAGE_ID, 'ef56ab78')
        self.rbd.remove.side_effect = [fakes.RbdImageBusy('watchers'),
                                       fakes.RbdImageBusy('watchers'), None]
        with mock.patch.object(basestore.time, 'sleep',
                               autospec=True) as sleep:
            self.assertTrue(self.store.remove(tmp, wait=45))
        self.assertEqual(3, self.rbd.remove.call_count)
        self.assertEqual([mock.call(1)] * 2, sleep.call_args_list)

    def test_ready_base_is_never_removed(self):
        self.assertRaises(ValueError, self.store.remove,
                          naming.base_name(IMAGE_ID))
        self.open.assert_not_called()
        self.rbd.remove.assert_not_called()

    def test_retire_renames_to_a_retired_name(self):
        new = self.store.retire(naming.base_name(IMAGE_ID), 'image deleted')
        self.assertEqual('retired', naming.kind_of(new))
        self.assertEqual(IMAGE_ID, naming.image_id_of(new))
        self.rbd.rename.assert_called_once_with(
            self.ioctx, naming.base_name(IMAGE_ID), new)

    def test_retire_of_a_vanished_base(self):
        self.rbd.rename.side_effect = fakes.RbdImageNotFound('ENOENT')
        self.assertIsNone(self.store.retire(naming.base_name(IMAGE_ID),
                                            'image deleted'))


class BreakWritersTestCase(base.TestCase):
    """A dead population's writer fenced through librbd's break_lock."""

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.vol = mock.MagicMock(name='vol')
        self.vol.__enter__.return_value = self.vol
        self.open = self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, '_open', autospec=True,
            return_value=self.vol)).mock
        self.owned = self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, '_owned', autospec=True,
            return_value=True)).mock
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'ledger', autospec=True,
            return_value=set()))
        self.store = basestore.BaseStore(mock.sentinel.driver, pool='vms')
        self.tmp = naming.tmp_name(IMAGE_ID, 'ef56ab78')

    def test_a_look_alikes_writers_are_not_fenced(self):
        self.owned.return_value = False
        self.assertEqual([], self.store.break_writers(self.tmp))
        self.vol.list_lockers.assert_not_called()
        self.vol.break_lock.assert_not_called()

    def test_the_writer_is_broken_and_fenced(self):
        self.vol.list_lockers.return_value = {
            'tag': 'internal', 'exclusive': True,
            'lockers': [('client.4211', 'auto 140', '127.0.0.1:0/77')]}
        self.assertEqual(['127.0.0.1:0/77'],
                         self.store.break_writers(self.tmp))
        self.vol.break_lock.assert_called_once_with('client.4211', 'auto 140')

    def test_no_writer_nothing_broken(self):
        self.vol.list_lockers.return_value = []
        self.assertEqual([], self.store.break_writers(self.tmp))
        self.vol.break_lock.assert_not_called()

    def test_a_refused_break_is_only_logged(self):
        # without the "osd blocklist" cap librbd refuses: the removal then
        # waits for the dead watch, or leaves the image to the pass
        self.vol.list_lockers.return_value = {
            'lockers': [('client.4211', 'auto 140', '127.0.0.1:0/77')]}
        self.vol.break_lock.side_effect = fakes.RbdPermissionError('EACCES')
        self.assertEqual([], self.store.break_writers(self.tmp))

    def test_gone_already(self):
        self.open.side_effect = fakes.RbdImageNotFound('ENOENT')
        self.assertEqual([], self.store.break_writers(self.tmp))

    def test_only_temp_images(self):
        self.assertRaises(ValueError, self.store.break_writers,
                          naming.base_name(IMAGE_ID))
        self.open.assert_not_called()


class TouchTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.vol = mock.Mock(name='vol')
        self.vol.__enter__ = mock.Mock(return_value=self.vol)
        self.vol.__exit__ = mock.Mock(return_value=False)
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, '_open', autospec=True,
            return_value=self.vol))
        self.ioctx = fakes.OmapIoctx()
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'ioctx', autospec=True,
            side_effect=lambda *_a: contextlib.nullcontext(self.ioctx)))
        self.store = basestore.BaseStore(mock.sentinel.driver, pool='vms')

    def _indexed_use(self):
        return baseindex.BaseIndex(self.ioctx).read()[1].get(
            naming.base_name(IMAGE_ID))

    def test_recent_use_is_not_stamped_again(self):
        self.store.touch(IMAGE_ID, {'fastclone.last_used':
                                    basestore.stamp()})
        self.vol.metadata_set.assert_not_called()
        self.assertEqual(0, self.ioctx.writes)

    def test_old_use_is_stamped(self):
        self.store.touch(IMAGE_ID, {'fastclone.last_used': '1000'})
        self.vol.metadata_set.assert_called_once_with('fastclone.last_used',
                                                      mock.ANY)
        (_key, value), _ = self.vol.metadata_set.call_args
        # in the base index too: one write of its used/ key alone
        self.assertEqual(float(value), self._indexed_use())
        self.assertEqual(1, self.ioctx.writes)

    def test_use_recorded_in_the_index_when_the_image_refuses(self):
        self.vol.metadata_set.side_effect = fakes.RbdError('EROFS')
        self.store.touch(IMAGE_ID, {'fastclone.last_used': '1000'})
        self.assertGreater(self._indexed_use(), 1000)

    def test_index_that_cannot_be_written_is_no_error(self):
        self.ioctx.operate_write_op = mock.Mock(
            side_effect=fakes.RadosTimedOut('ETIMEDOUT'))
        self.store.touch(IMAGE_ID, {'fastclone.last_used': '1000'})
        self.assertEqual(1, self.vol.metadata_set.call_count)

    def test_unreadable_stamp_is_replaced(self):
        # the survey counts it as never used: a base in use must not stay
        # that way, or it would be evicted as unused
        self.store.touch(IMAGE_ID, {'fastclone.last_used': 'garbage'})
        (key, value), _ = self.vol.metadata_set.call_args
        self.assertEqual('fastclone.last_used', key)
        self.assertEqual(0.0, basestore._float('garbage'))
        self.assertGreater(basestore._float(value), 0)


class LookupTestCase(base.TestCase):
    """A base found once is remembered while it matches Glance's record."""

    def setUp(self):
        super().setUp()
        self.useFixture(fakes.CephModules())
        self.meta = {'id': IMAGE_ID, 'os_hash_value': 'h1', 'checksum': 'c',
                     'size': 10}
        stored = naming.fingerprint(self.meta)
        self.metadata = self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'metadata', autospec=True,
            return_value=(5, dict(stored)))).mock
        self.store = basestore.BaseStore(mock.sentinel.driver, pool='vms')

    def test_second_lookup_asks_nothing(self):
        self.assertEqual(5, self.store.lookup(self.meta)[0])
        self.assertEqual(5, self.store.lookup(self.meta)[0])
        self.metadata.assert_called_once_with(naming.base_name(IMAGE_ID),
                                              naming.SNAP)

    def test_changed_image_is_looked_up_again(self):
        self.store.lookup(self.meta)
        changed = dict(self.meta, os_hash_value='h2')
        self.assertIsNone(self.store.lookup(changed))
        self.assertEqual(2, self.metadata.call_count)
        self.assertNotIn(IMAGE_ID, basestore._KNOWN)

    def test_forgotten_after_a_retire_or_a_failed_clone(self):
        self.store.lookup(self.meta)
        basestore.forget(IMAGE_ID)
        self.store.lookup(self.meta)
        self.assertEqual(2, self.metadata.call_count)


def _ready(image_id, children=(), owned=True, used=1000.0, rbd_id=RBD_ID,
           has_snap=True):
    """A ready base as describe() finds it (opened)."""
    stored = dict(naming.fingerprint({'id': image_id}),
                  **naming.mark(image_id, rbd_id))
    return naming.Base(name=naming.base_name(image_id), size=4 << 20,
                       last_used=used, children=tuple(children),
                       has_snap=has_snap, stored=stored, owned=owned)


class SurveyFromIndexTestCase(base.TestCase):
    """The pass's survey: the index for ready bases, the pool for the rest."""

    def setUp(self):
        super().setUp()
        ceph = self.useFixture(fakes.CephModules())
        self.images = {}   # name: the naming.Base describe() finds
        ceph.rbd.RBD.return_value.list.side_effect = \
            lambda _ioctx: list(self.images)
        self.ioctx = fakes.OmapIoctx()
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'ioctx', autospec=True,
            side_effect=lambda *_a: contextlib.nullcontext(self.ioctx)))
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'ledger', autospec=True,
            return_value=set()))
        self.describe = self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'describe', autospec=True,
            side_effect=lambda name, ledger=None: self.images.get(
                name))).mock
        self.foreign = self.useFixture(fixtures.MockPatchObject(
            basestore, 'report_foreign', autospec=True)).mock
        self.store = basestore.BaseStore(mock.sentinel.driver, pool='vms')
        self.index = baseindex.BaseIndex(self.ioctx)

    def _add(self, *bases, indexed=False):
        for found in bases:
            self.images[found.name] = found
        if indexed:
            self.index.put(bases)

    def _opened(self):
        return [c.args[0] for c in self.describe.call_args_list]

    def test_indexed_bases_are_not_opened(self):
        self._add(_ready(IMAGE_ID, children=[CHILD['image']]),
                  _ready(OTHER_ID), indexed=True)
        found = self.store.survey_from_index()
        self.assertEqual([], self._opened())
        self.assertEqual(sorted(self.images), sorted(b.name for b in found))
        for got in found:
            self.assertEqual((False, True, ()), (got.surveyed, got.owned,
                                                 got.children))
            self.assertEqual(self.images[got.name].stored, got.stored)

    def test_unindexed_base_is_opened_once_then_indexed(self):
        # made before the index existed, or the index was lost
        self._add(_ready(IMAGE_ID))
        (first,) = self.store.survey_from_index()
        self.assertTrue(first.surveyed)
        (second,) = self.store.survey_from_index()
        self.assertFalse(second.surveyed)
        self.assertEqual([naming.base_name(IMAGE_ID)], self._opened())

    def test_retired_and_tmp_images_always_opened_never_indexed(self):
        retired = naming.Base(name=RETIRED, stored=naming.mark(
            IMAGE_ID, RBD_ID))
        tmp = naming.Base(name=naming.tmp_name(IMAGE_ID, 'ef56ab78'))
        self._add(retired, tmp)
        self.store.survey_from_index()
        self.store.survey_from_index()
        self.assertEqual(sorted([RETIRED, tmp.name] * 2),
                         sorted(self._opened()))
        self.assertEqual(({}, {}), self.index.read())

    def test_look_alike_is_reported_and_never_indexed(self):
        self._add(_ready(IMAGE_ID, owned=False))
        for _ in range(2):
            (found,) = self.store.survey_from_index()
            self.assertFalse(found.owned)
        self.assertEqual(2, self.describe.call_count)
        self.foreign.assert_called_with('vms', naming.base_name(IMAGE_ID))
        self.assertEqual(({}, {}), self.index.read())

    def test_partial_base_is_not_indexed(self):
        self._add(_ready(IMAGE_ID, has_snap=False))
        (found,) = self.store.survey_from_index()
        self.assertFalse(found.has_snap)
        self.assertEqual(({}, {}), self.index.read())

    def test_entries_of_images_gone_are_dropped(self):
        gone = _ready(OTHER_ID)
        self._add(_ready(IMAGE_ID), gone, indexed=True)
        del self.images[gone.name]
        self.index.use(naming.base_name('0' * 36), '1000')   # a stray use
        self.store.survey_from_index()
        entries, used = self.index.read()
        self.assertEqual([naming.base_name(IMAGE_ID)], list(entries))
        self.assertEqual([naming.base_name(IMAGE_ID)], list(used))

    def test_bases_in_use_recorded_in_the_index_alone(self):
        self._add(_ready(IMAGE_ID, children=[CHILD['image']]),
                  _ready(OTHER_ID), indexed=True)
        writes = self.ioctx.writes
        self.store.in_use([naming.base_name(IMAGE_ID)])
        self.assertEqual(writes + 1, self.ioctx.writes)
        found = {b.name: b for b in self.store.survey_from_index()}
        self.assertGreater(found[naming.base_name(IMAGE_ID)].last_used,
                           1000.0)
        self.assertEqual(1000.0, found[naming.base_name(OTHER_ID)].last_used)
        self.assertEqual([], self._opened())

    def test_last_use_is_the_later_of_image_and_index(self):
        self._add(_ready(IMAGE_ID, used=1000.0), indexed=True)
        self.index.use(naming.base_name(IMAGE_ID), '3000')
        (found,) = self.store.survey_from_index()
        self.assertEqual(3000.0, found.last_used)
        self._add(_ready(OTHER_ID, used=5000.0))     # unindexed, opened
        self.index.use(naming.base_name(OTHER_ID), '4000')
        found = {b.name: b for b in self.store.survey_from_index()}
        self.assertEqual(5000.0, found[naming.base_name(OTHER_ID)].last_used)

    def test_entry_whose_mark_is_not_for_its_name_is_opened(self):
        self.index.put([dataclasses.replace(
            _ready(OTHER_ID), name=naming.base_name(IMAGE_ID))])
        self._add(_ready(IMAGE_ID))
        (found,) = self.store.survey_from_index()
        self.assertTrue(found.surveyed)
        (found,) = self.store.survey_from_index()   # indexed afresh
        self.assertFalse(found.surveyed)

    def test_unreadable_entry_is_opened(self):
        self._add(_ready(IMAGE_ID))
        self.ioctx.objects[naming.INDEX_OBJECT] = {
            baseindex.ENTRY + naming.base_name(IMAGE_ID): b'not json'}
        (found,) = self.store.survey_from_index()
        self.assertTrue(found.surveyed)

    def test_index_that_cannot_be_written_costs_an_open_next_time(self):
        self._add(_ready(IMAGE_ID))
        self.ioctx.operate_write_op = mock.Mock(
            side_effect=fakes.RadosTimedOut('ETIMEDOUT'))
        self.store.survey_from_index()
        self.store.survey_from_index()
        self.assertEqual(2, self.describe.call_count)

    def test_look_opens_only_the_named_bases(self):
        self._add(_ready(IMAGE_ID, children=[CHILD['image']]),
                  _ready(OTHER_ID), indexed=True)
        bases = self.store.survey_from_index()
        looked = self.store.look(bases, [naming.base_name(IMAGE_ID)])
        self.assertEqual([naming.base_name(IMAGE_ID)], self._opened())
        found = {b.name: b for b in looked}
        mine = found[naming.base_name(IMAGE_ID)]
        self.assertEqual((True, (CHILD['image'],)),
                         (mine.surveyed, mine.children))
        self.assertFalse(found[naming.base_name(OTHER_ID)].surveyed)

    def test_look_keeps_the_later_last_use(self):
        self._add(_ready(IMAGE_ID, used=1000.0), indexed=True)
        self.index.use(naming.base_name(IMAGE_ID), '3000')
        (looked,) = self.store.look(self.store.survey_from_index(),
                                    [naming.base_name(IMAGE_ID)])
        self.assertEqual((True, 3000.0), (looked.surveyed, looked.last_used))

    def test_look_at_a_vanished_base_drops_it(self):
        self._add(_ready(IMAGE_ID), _ready(OTHER_ID), indexed=True)
        bases = self.store.survey_from_index()
        del self.images[naming.base_name(IMAGE_ID)]   # retired elsewhere
        looked = self.store.look(bases, [naming.base_name(IMAGE_ID)])
        self.assertEqual([naming.base_name(OTHER_ID)],
                         [b.name for b in looked])
        self.assertEqual([naming.base_name(OTHER_ID)],
                         list(self.index.read()[0]))

    def test_look_finds_a_look_alike_in_place_of_ours(self):
        # our base replaced by someone's image of the same name
        self._add(_ready(IMAGE_ID), indexed=True)
        bases = self.store.survey_from_index()
        self._add(_ready(IMAGE_ID, owned=False, rbd_id='ffee00112233'))
        (looked,) = self.store.look(bases, [naming.base_name(IMAGE_ID)])
        self.assertEqual((True, False), (looked.surveyed, looked.owned))
        self.assertEqual(({}, {}), self.index.read())


class IndexFollowsTheBaseTestCase(base.TestCase):
    """Publish indexes a base, retire drops it."""

    def setUp(self):
        super().setUp()
        ceph = self.useFixture(fakes.CephModules())
        self.rbd = ceph.rbd.RBD.return_value
        self.ioctx = fakes.OmapIoctx()
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, 'ioctx', autospec=True,
            side_effect=lambda *_a: contextlib.nullcontext(self.ioctx)))
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, '_ledger_do', autospec=True))
        self.image = FakeImage(rbd_id=RBD_ID)
        self.image.create_snap = mock.Mock()
        self.image.protect_snap = mock.Mock()
        self.useFixture(fixtures.MockPatchObject(
            basestore.BaseStore, '_open', autospec=True,
            return_value=self.image))
        driver = mock.Mock()
        driver.handle.clone_format.return_value = 2
        self.store = basestore.BaseStore(driver, pool='vms')
        self.meta = {'id': IMAGE_ID, 'os_hash_value': 'h1', 'checksum': 'c',
                     'size': 10}

    def test_publish_indexes_the_base_as_stamped(self):
        self.store.publish(naming.tmp_name(IMAGE_ID, 'ef56ab78'), self.meta)
        entries, used = baseindex.BaseIndex(self.ioctx).read()
        name = naming.base_name(IMAGE_ID)
        found = baseindex.parse(name, entries[name], used[name])
        self.assertTrue(found.owned)
        self.assertEqual(float(self.image.meta['fastclone.last_used']),
                         found.last_used)
        self.assertEqual({k: v for k, v in self.image.meta.items()
                          if k != 'fastclone.last_used'}, found.stored)
        self.assertEqual((4 << 20, True), (found.size, found.has_snap))

    def test_retire_drops_the_base_from_the_index(self):
        self.store.publish(naming.tmp_name(IMAGE_ID, 'ef56ab78'), self.meta)
        self.store.retire(naming.base_name(IMAGE_ID), 'image deleted')
        self.assertEqual(({}, {}), baseindex.BaseIndex(self.ioctx).read())

    def test_retire_of_a_vanished_base_drops_it_too(self):
        self.store.publish(naming.tmp_name(IMAGE_ID, 'ef56ab78'), self.meta)
        self.rbd.rename.side_effect = fakes.RbdImageNotFound('ENOENT')
        self.assertIsNone(self.store.retire(naming.base_name(IMAGE_ID),
                                            'image deleted'))
        self.assertEqual(({}, {}), baseindex.BaseIndex(self.ioctx).read())

    def test_a_failed_rename_keeps_the_entry(self):
        self.store.publish(naming.tmp_name(IMAGE_ID, 'ef56ab78'), self.meta)
        self.rbd.rename.side_effect = fakes.RbdTimeout('ETIMEDOUT')
        self.assertRaises(fakes.RbdTimeout, self.store.retire,
                          naming.base_name(IMAGE_ID), 'image deleted')
        self.assertEqual([naming.base_name(IMAGE_ID)],
                         list(baseindex.BaseIndex(self.ioctx).read()[0]))
