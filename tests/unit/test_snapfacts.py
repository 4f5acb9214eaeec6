"""The facts of a Glance snapshot: content detection and where it is kept.

Images are made at test time by qemu-img (as in test_inspect) and read
through a stand-in for an open librbd snapshot.
"""

import dataclasses
import pathlib
import struct
from unittest import mock

import pytest

from fastclone_backend.cache import naming
from fastclone_backend import inspect
from fastclone_backend.spawn import location
from fastclone_backend.spawn import snapfacts
from tests.unit import fakes
from tests.unit import test_inspect as images

IMAGE_ID = '7d1f3c2a-9b8e-4f6d-a5c4-3b2a19087f6e'
LOC = location.RbdLocation(url='rbd://fsid/images/%s/snap' % IMAGE_ID,
                           fsid='fsid', pool='images', image=IMAGE_ID,
                           snapshot='snap')


class Volume:
    """An open snapshot whose bytes are a local file; counts its reads."""

    def __init__(self, path):
        self.data = pathlib.Path(path).read_bytes()
        self.read_bytes = 0

    def read(self, offset, length):
        self.read_bytes += length
        return self.data[offset:offset + length]

    def size(self):
        return len(self.data)


def _detect(path):
    vol = Volume(path)
    return snapfacts.detect(vol, vol.size()), vol.read_bytes


@pytest.mark.parametrize('build, expected', [
    (images.random_raw, 'raw'),
    (images.qcow2_with_data, 'qcow2'),
    (images.gpt_disk, 'gpt'),
    (lambda tmp: images.created(tmp, 'vmdk', 'x.vmdk'), 'vmdk'),
    (lambda tmp: images.created(tmp, 'vpc', 'x.vhd'), 'vhd'),
    (lambda tmp: images.created(tmp, 'vhdx', 'x.vhdx'), 'vhdx'),
    (lambda tmp: images.created(tmp, 'vdi', 'x.vdi'), 'vdi'),
    (lambda tmp: images.created(tmp, 'qed', 'x.qed'), 'qed'),
])
def test_detects_the_format_from_the_head(tmp_path, build, expected):
    (found, detail), _read = _detect(build(tmp_path))
    assert found == expected
    # the inspector bans qed outright; every other one is safe as made
    assert ('banned' in detail) if expected == 'qed' else detail == ''


def test_backing_file_is_in_the_detail(tmp_path):
    (found, detail), _read = _detect(images.qcow2_with_backing_file(tmp_path))
    assert found == 'qcow2'
    assert 'backing_file' in detail


def test_reads_no_more_than_the_head(tmp_path):
    path = images.random_raw(tmp_path, size=16 * images.MiB)
    (found, _detail), read = _detect(path)
    assert found == 'raw'
    assert read <= snapfacts.HEAD_LIMIT


def test_a_qcow2_is_decided_from_its_first_chunk(tmp_path):
    path = images.qcow2_with_data(tmp_path, size=16 * images.MiB)
    (found, _detail), read = _detect(path)
    assert found == 'qcow2'
    assert read < snapfacts.HEAD_LIMIT


def test_refusal_names_image_declared_detected_and_what_to_do():
    with pytest.raises(inspect.ImageRejected) as e:
        inspect.check_clone_content(IMAGE_ID, 'images/x@snap', 'raw',
                                    'qcow2', 'backing_file: not allowed')
    msg = str(e.value)
    assert IMAGE_ID in msg
    assert ('disk_format is raw but the data in images/x@snap is qcow2 '
            '(backing_file: not allowed)') in msg
    assert 'no bootable disk' in msg
    assert 'upload it again with disk_format qcow2' in msg


def test_unknown_to_glance_says_convert():
    with pytest.raises(inspect.ImageRejected) as e:
        inspect.check_clone_content(IMAGE_ID, 'p/i@s', 'raw', 'luks')
    assert 'convert it to raw (qemu-img convert -O raw)' in str(e.value)


@pytest.mark.parametrize('detected', ['raw', 'gpt'])
def test_raw_content_accepted(detected):
    inspect.check_clone_content(IMAGE_ID, 'p/i@s', 'raw', detected)


class FakeDriver:
    def __init__(self, ioctx):
        self.ioctx = ioctx

    def _connect_to_rados(self, pool):
        return None, self.ioctx

    def _disconnect_from_rados(self, client, ioctx):
        pass


@pytest.fixture
def ceph():
    fixture = fakes.CephModules()
    fixture.setUp()
    yield fixture
    fixture.cleanUp()
    snapfacts.forget_all()


RBD_ID = '14878b39a096'


def _encoded(text):
    return struct.pack('<I', len(text)) + text.encode()


class Pool:
    """The omaps and objects a snapshot's facts are checked against."""

    def __init__(self, stored=(), rbd_id=RBD_ID, snaps=None):
        self.verdicts = dict(stored)
        self.rbd_id = rbd_id
        self.snaps = {42: 'snap'} if snaps is None else snaps
        self.ioctx = mock.Mock()
        self.ioctx.get_omap_vals_by_keys.side_effect = self._omap
        self.ioctx.read.side_effect = lambda obj, length: (
            _encoded(self.rbd_id) if obj == 'rbd_id.' + IMAGE_ID else b'')

    def _omap(self, op, keys):
        (key,) = keys
        if key.startswith('snapshot_'):
            name = self.snaps.get(int(key[len('snapshot_'):], 16))
            value = b'\x06\x01' + _encoded(name) if name else None
            return ([(key, value)] if value else []), 0
        return ([(key, self.verdicts[key])] if key in self.verdicts
                else []), 0


def _facts(ceph, vol, stored=(), pool=None):
    pool = pool or Pool(stored)
    ceph.rbd.Image.return_value = vol
    vol.is_protected_snap = mock.Mock(return_value=True)
    vol.snap_get_id = mock.Mock(return_value=42)
    vol.id = mock.Mock(return_value=RBD_ID)
    vol.close = mock.Mock()
    facts = snapfacts.SnapFacts(FakeDriver(pool.ioctx), 'vms').get(LOC)
    return facts, pool.ioctx


def test_learns_once_and_stores_the_verdict(ceph, tmp_path):
    vol = Volume(images.qcow2_with_data(tmp_path))
    facts, ioctx = _facts(ceph, vol)
    assert dataclasses.astuple(facts)[:4] == (42, vol.size(), True, 'qcow2')
    key = 'images/%s@42' % IMAGE_ID
    ioctx.set_omap.assert_called_once_with(mock.ANY, (key,), (b'qcow2\n',))
    ioctx.operate_write_op.assert_called_once_with(mock.ANY,
                                                   naming.VERDICTS_OBJECT)
    # the next spawn in this process opens nothing: two small reads
    ceph.rbd.Image.reset_mock()
    pool = Pool()
    again = snapfacts.SnapFacts(FakeDriver(pool.ioctx), 'vms').get(LOC)
    assert again == facts
    ceph.rbd.Image.assert_not_called()
    pool.ioctx.read.assert_called_once_with('rbd_id.' + IMAGE_ID, 256)
    pool.ioctx.operate_read_op.assert_called_once_with(
        mock.ANY, 'rbd_header.' + RBD_ID)


@pytest.mark.parametrize('changed', [
    {'snaps': {}},                       # the snapshot was deleted
    {'snaps': {43: 'snap'}},             # ... and re-created: a new id
    {'snaps': {42: 'old'}},              # renamed
    {'rbd_id': 'ffee00112233'},          # the image replaced under its name
])
def test_a_changed_snapshot_is_learnt_and_inspected_again(ceph, tmp_path,
                                                          changed):
    _facts(ceph, Volume(images.random_raw(tmp_path)))
    ceph.rbd.Image.reset_mock()
    vol = Volume(images.qcow2_with_data(tmp_path))   # what it holds now
    facts, ioctx = _facts(ceph, vol, pool=Pool(**changed))
    ceph.rbd.Image.assert_called_once()
    assert facts.detected == 'qcow2'
    assert vol.read_bytes > 0


def test_verdict_of_another_host_is_not_read_again(ceph, tmp_path):
    vol = Volume(images.random_raw(tmp_path))
    key = 'images/%s@42' % IMAGE_ID
    facts, ioctx = _facts(ceph, vol, stored=[(key, b'qcow2\nbacking')])
    assert (facts.detected, facts.detail) == ('qcow2', 'backing')
    assert vol.read_bytes == 0
    ioctx.set_omap.assert_not_called()


def test_forget_makes_it_learn_again(ceph, tmp_path):
    vol = Volume(images.random_raw(tmp_path))
    _facts(ceph, vol)
    snapfacts.forget(LOC.spec)
    ceph.rbd.Image.reset_mock()
    _facts(ceph, vol)
    ceph.rbd.Image.assert_called_once()


def test_concurrent_spawns_learn_once(ceph, tmp_path):
    import threading
    import time
    vol = Volume(images.random_raw(tmp_path))
    opened = []

    def slow_open(*args, **kwargs):
        opened.append(1)
        time.sleep(0.05)
        return vol
    ceph.rbd.Image.side_effect = slow_open
    vol.is_protected_snap = mock.Mock(return_value=True)
    vol.snap_get_id = mock.Mock(return_value=42)
    vol.id = mock.Mock(return_value=RBD_ID)
    vol.close = mock.Mock()
    ioctx = Pool().ioctx
    found = []
    threads = [threading.Thread(target=lambda: found.append(
        snapfacts.SnapFacts(FakeDriver(ioctx), 'vms').get(LOC)))
        for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1
    assert len(found) == 8 and len(set(found)) == 1
