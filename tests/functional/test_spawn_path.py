"""The spawn path through Nova's code, on the lab.

Raw-declared images whose bytes are qcow2 are planted in Glance's rbd store
the way they exist in older clouds (Glance 33 refuses the upload itself):
upload a placeholder, then replace its bytes in RBD as the Ceph admin.
"""

import concurrent.futures
import os
import subprocess

from nova import exception
import pytest
import rados
import rbd

from fastclone_backend.cache import naming
from fastclone_lab import novadisk
from tests.functional import conftest
from tests.functional.conftest import make_data
from tests.functional.conftest import REPO

MiB = 1 << 20


def _glance_downloads(image_id) -> int:
    """How many times Glance served the image's data (its request log)."""
    lab_dir = os.environ.get('FASTCLONE_LAB_DIR', os.path.join(REPO, '.lab'))
    with open(os.path.join(lab_dir, 'glance', 'log', 'uwsgi.log')) as f:
        return sum(1 for line in f
                   if 'GET /v2/images/%s/file' % image_id in line)


def _base_dir():
    import nova.conf
    return os.path.join(nova.conf.CONF.instances_path, '_base')


def _base_files():
    return sorted(os.listdir(_base_dir())) if os.path.isdir(
        _base_dir()) else []


def _base_file(image_id):
    """Whether Nova's _base holds a copy of the image (other tests' may)."""
    from nova.virt.libvirt import imagecache
    return imagecache.get_cache_fname(image_id) in _base_files()


def _pools(rados_admin, lab):
    names = {}
    for pool in (lab.images_pool, lab.vms_pool):
        with rados_admin.open_ioctx(pool) as ioctx:
            names[pool] = set(rbd.RBD().list(ioctx))
    return names


def _plant(rados_admin, lab, image_id, path):
    """Replace the bytes behind a Glance image's snapshot, as an admin."""
    with rados_admin.open_ioctx(lab.images_pool) as ioctx:
        conftest.replant(ioctx, image_id, path)


def _qcow2(tmp_path, name, *opts):
    path = str(tmp_path / name)
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', *opts, path, '64M'],
                   check=True, capture_output=True)
    return path


def _verdict(vms, lab, image_id):
    with rados.ReadOpCtx() as op:
        found, _ret = vms.get_omap_vals(
            op, '', '%s/%s@' % (lab.images_pool, image_id), 10)
        vms.operate_read_op(op, naming.VERDICTS_OBJECT)
        return {k: v.decode() for k, v in found}


def _disk_bytes(vms, name, length):
    with rbd.Image(vms, name, read_only=True) as img:
        return img.size(), img.read(0, length)


@pytest.mark.parametrize('planted, detail', [
    ('plain', ''),
    ('backing', 'backing_file'),
])
def test_raw_declared_qcow2_in_rbd_store_refused_once(
        nova_ctx, lab, images, vms, rados_admin, tmp_path, planted, detail):
    opts = ('-b', '/etc/passwd', '-F', 'raw') if planted == 'backing' else ()
    bad = _qcow2(tmp_path, planted + '.qcow2', *opts)
    image = images.upload(images.write(make_data(os.path.getsize(bad))))
    _plant(rados_admin, lab, image.id, bad)
    before = _pools(rados_admin, lab)
    instance = novadisk.make_instance(1)
    disk = novadisk.root_disk(instance)

    with pytest.raises(exception.ImageUnacceptable) as e:
        novadisk.create_root_disk(nova_ctx, instance, image.id)

    message = str(e.value)
    assert image.id in message
    assert ('disk_format is raw but the data in %s/%s@snap is qcow2'
            % (lab.images_pool, image.id)) in message, message
    assert detail in message
    assert 'upload it again with disk_format qcow2' in message
    assert _pools(rados_admin, lab) == before    # nothing created anywhere
    assert disk.rbd_name not in before[lab.vms_pool]
    assert _glance_downloads(image.id) == 0      # no second download, none
    assert not _base_file(image.id)              # no _base file
    # what its snapshot holds is known cluster-wide now
    [verdict] = _verdict(vms, lab, image.id).values()
    assert verdict.startswith('qcow2\n') and detail in verdict

    # the next spawn is refused from what was learnt: still nothing
    with pytest.raises(exception.ImageUnacceptable):
        novadisk.create_root_disk(nova_ctx, novadisk.make_instance(1),
                                  image.id)
    assert _glance_downloads(image.id) == 0

    # and a correct image right after still clones
    data = make_data(4 * MiB, marker=b'fastclone-after-refusal')
    good = images.upload(images.write(data))
    made = novadisk.create_root_disk(nova_ctx, novadisk.make_instance(1),
                                     good.id)
    size, head = _disk_bytes(vms, made.rbd_name, len(data))
    assert (size, head) == (1 << 30, data)
    assert not _base_file(good.id)


def test_hundred_concurrent_spawns_of_one_image(nova_ctx, lab, images, vms):
    import nova.conf
    from nova.virt.libvirt import imagecache
    data = make_data(4 * MiB, marker=b'fastclone-hundred')
    image = images.upload(images.write(data))
    instances = [novadisk.make_instance(1) for _ in range(100)]

    def spawn(instance):
        return novadisk.create_root_disk(nova_ctx, instance,
                                         image.id).rbd_name
    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        futures = [pool.submit(spawn, i) for i in instances]
        errors = [f.exception() for f in futures if f.exception()]
        names = [f.result() for f in futures if not f.exception()]
    try:
        assert errors == []
        assert len(set(names)) == 100
        for name in names:
            assert _disk_bytes(vms, name, len(data)) == (1 << 30, data)
        # made before Nova's per-image file lock: it was never taken
        lock = os.path.join(nova.conf.CONF.oslo_concurrency.lock_path,
                            'nova-' + imagecache.get_cache_fname(image.id))
        assert not os.path.exists(lock)
        assert _glance_downloads(image.id) == 0
    finally:
        for instance in instances:
            novadisk.delete_instance_disks(instance)


def test_cache_off_leaves_unclonable_images_to_nova(
        nova_ctx, lab, images, vms, fastclone_conf):
    fastclone_conf(cache_enabled=False)
    data = make_data(2 * MiB, marker=b'fastclone-stock-path')
    image = images.upload(images.write(data), store=lab.file_store)
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    try:
        # stock Nova: one download into _base, then rbd import
        assert _glance_downloads(image.id) == 1
        assert _base_file(image.id)
        size, head = _disk_bytes(vms, disk.rbd_name, len(data))
        assert (size, head) == (1 << 30, data)
    finally:
        novadisk.delete_instance_disks(instance)


def test_changed_bytes_refused_after_one_download(nova_ctx, lab, images,
                                                  rados_admin):
    data = make_data(2 * MiB)
    image = images.upload(images.write(data), store=lab.file_store)
    lab_dir = os.environ.get('FASTCLONE_LAB_DIR', os.path.join(REPO, '.lab'))
    stored = os.path.join(lab_dir, 'glance', 'images', image.id)
    with open(stored, 'r+b') as f:   # same size, other bytes
        f.write(b'tampered')
    before = _pools(rados_admin, lab)

    with pytest.raises(exception.ImageUnacceptable) as e:
        novadisk.create_root_disk(nova_ctx, novadisk.make_instance(1),
                                  image.id)

    assert str(e.value).count(image.id) == 1    # named once
    assert 'the data Glance sent does not match the hash it recorded' in \
        str(e.value)
    assert _glance_downloads(image.id) == 1     # Nova did not fetch again
    assert not _base_file(image.id)
    assert _pools(rados_admin, lab) == before   # no base, no tmp, no disk


def test_image_deleted_since_its_last_clone_is_not_cloned(
        nova_ctx, lab, images, vms, glance):
    data = make_data(4 * MiB, marker=b'fastclone-deleted-since')
    image = images.upload(images.write(data))
    first = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, first, image.id)
    glance.images.delete(image.id)   # to the trash: it has a clone
    second = novadisk.make_instance(1)
    try:
        with pytest.raises(exception.ImageNotFound):
            novadisk.create_root_disk(nova_ctx, second, image.id)
        # what the process learnt of its snapshot does not make it clone
        assert novadisk.root_disk(second).rbd_name not in rbd.RBD().list(vms)
    finally:
        novadisk.delete_instance_disks(first)
        novadisk.delete_instance_disks(second)


def test_remains_of_a_clone_that_timed_out_are_replaced(
        nova_ctx, lab, images, vms):
    """The remains of a clone that timed out do not block its disk.

    A clone that timed out leaves rbd_id.<disk> (and maybe a directory
    entry): the name is taken although no image opens.  The next build of
    that instance (here, or the host it is rescheduled to) removes them
    and clones; nothing of them is left.
    """
    data = make_data(2 * MiB, marker=b'fastclone-remains')
    image = images.upload(images.write(data))
    instance = novadisk.make_instance(1)
    name = novadisk.root_disk(instance).rbd_name
    orphan_id = b'fcdead0001'
    vms.write_full('rbd_id.' + name,
                   len(orphan_id).to_bytes(4, 'little') + orphan_id)
    with pytest.raises(rbd.ImageExists):
        rbd.RBD().create(vms, name, MiB)   # as librbd sees the name
    try:
        disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
        assert _disk_bytes(vms, disk.rbd_name, len(data)) == (1 << 30, data)
        with rbd.Image(vms, name, read_only=True) as made:
            assert made.id() != orphan_id.decode()
            assert made.parent_info()[1] == image.id
    finally:
        novadisk.delete_instance_disks(instance)
    assert name not in rbd.RBD().list(vms)
    with pytest.raises(rados.ObjectNotFound):
        vms.stat('rbd_id.' + name)
