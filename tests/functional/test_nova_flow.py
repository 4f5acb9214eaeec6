"""images_type = fastrbd through Nova's real code, on the real lab."""

import os

from nova import exception
from oslo_utils import units
import pytest
import rbd

from fastclone_backend import imagebackend
from fastclone_lab import novadisk
from tests.functional.conftest import make_data


@pytest.fixture(scope='module')
def raw_image(images, lab):
    data = make_data(4 << 20, marker=b'fastclone-raw-marker')
    return images.upload(images.write(data)), data


def _base_file(image_id):
    import nova.conf
    from nova.virt.libvirt import imagecache
    return os.path.join(nova.conf.CONF.instances_path, '_base',
                        imagecache.get_cache_fname(image_id))


def _disk_info(ioctx, name, length):
    with rbd.Image(ioctx, name, read_only=True) as img:
        try:
            parent = img.parent_info()
        except rbd.ImageNotFound:
            parent = None
        return parent, img.size(), img.read(0, length)


def test_nova_conf_fastrbd_runs_as_rbd(nova_ctx):
    import nova.conf
    from nova.virt.libvirt import imagebackend as nova_imagebackend
    assert nova.conf.CONF.libvirt.images_type == 'rbd'
    instance = novadisk.make_instance(1)
    backend = nova_imagebackend.Backend(False)
    by_name = backend.by_name(instance, 'disk')
    by_path = backend.by_libvirt_path(instance,
                                      'vms/%s_disk' % instance.uuid)
    assert isinstance(by_name, imagebackend.FastRbd)
    assert isinstance(by_path, imagebackend.FastRbd)
    assert by_name.rbd_name == by_path.rbd_name == '%s_disk' % instance.uuid


def test_root_disk_is_a_clone_with_flavor_size(nova_ctx, lab, raw_image,
                                               rados_nova):
    image, data = raw_image
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)

    ioctx = rados_nova.open_ioctx(lab.vms_pool)
    try:
        parent, size, head = _disk_info(ioctx, disk.rbd_name, len(data))
        assert parent == (lab.images_pool, image.id, 'snap')
        assert size == 1 * units.Gi
        assert head == data
        with rbd.Image(ioctx, disk.rbd_name, read_only=True) as img:
            assert img.op_features() & rbd.RBD_OPERATION_FEATURE_CLONE_CHILD
        assert not os.path.exists(_base_file(image.id))  # no download

        novadisk.delete_instance_disks(instance)
        assert disk.rbd_name not in rbd.RBD().list(ioctx)
    finally:
        ioctx.close()


def test_untrusted_image_refused_then_nova_downloads(nova_ctx, lab, images,
                                                     rados_nova,
                                                     fastclone_conf):
    fastclone_conf(cache_enabled=False)  # the cache has tests of its own
    data = make_data(2 << 20, marker=b'fastclone-fs-marker')
    image = images.upload(images.write(data), store=lab.file_store)
    instance = novadisk.make_instance(1)

    disk = novadisk.root_disk(instance)
    with pytest.raises(exception.ImageUnacceptable) as err:
        disk.clone(nova_ctx, image.id)
    assert image.id in str(err.value)
    assert 'scheme is not rbd://' in str(err.value)

    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    ioctx = rados_nova.open_ioctx(lab.vms_pool)
    try:
        parent, size, head = _disk_info(ioctx, disk.rbd_name, len(data))
        assert parent is None  # Nova's fallback: download + rbd import
        assert os.path.exists(_base_file(image.id))
        assert size == 1 * units.Gi
        assert head == data
        novadisk.delete_instance_disks(instance)
        assert disk.rbd_name not in rbd.RBD().list(ioctx)
    finally:
        ioctx.close()


@pytest.fixture
def admin(lab):
    import rados
    client = rados.Rados(conffile=lab.ceph_conf, rados_id=lab.admin_user)
    client.connect(timeout=15)
    yield client
    client.shutdown()


def _min_compat(admin_client, release=None):
    """Set require_min_compat_client (or read it); returns the old value."""
    import json
    ret, out, err = admin_client.mon_command(json.dumps(
        {'prefix': 'osd get-require-min-compat-client'}), b'')
    assert ret == 0, err
    if release:
        ret, _, err = admin_client.mon_command(json.dumps(
            {'prefix': 'osd set-require-min-compat-client',
             'version': release}), b'')
        assert ret == 0, err
    return out.decode().strip()


@pytest.fixture
def luminous_cluster(admin):
    """A cluster whose clients may be pre-mimic: librbd makes clone v1."""
    before = _min_compat(admin, 'luminous')
    yield admin
    _min_compat(admin, before)


def _is_clone_v2(ioctx, name):
    with rbd.Image(ioctx, name, read_only=True) as img:
        return bool(img.op_features() & rbd.RBD_OPERATION_FEATURE_CLONE_CHILD)


def test_clone_v1_from_protected_snapshot_where_required(
        nova_ctx, lab, raw_image, rados_nova, luminous_cluster):
    image, data = raw_image
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    ioctx = rados_nova.open_ioctx(lab.vms_pool)
    try:
        parent, _, head = _disk_info(ioctx, disk.rbd_name, len(data))
        assert parent == (lab.images_pool, image.id, 'snap')
        assert head == data
        assert not _is_clone_v2(ioctx, disk.rbd_name)
    finally:
        novadisk.delete_instance_disks(instance)
        ioctx.close()


@pytest.fixture
def unprotected_image(lab, images, admin):
    data = make_data(2 << 20)
    image = images.upload(images.write(data))
    ioctx = admin.open_ioctx(lab.images_pool)
    with rbd.Image(ioctx, image.id) as img:
        img.unprotect_snap('snap')
    yield image
    with rbd.Image(ioctx, image.id) as img:
        img.protect_snap('snap')  # as Glance left it, for its delete
    ioctx.close()


def test_unprotected_snapshot_refused_where_clone_v1(
        nova_ctx, lab, unprotected_image, rados_nova, luminous_cluster,
        fastclone_conf):
    fastclone_conf(cache_enabled=False)  # else the cache would copy it
    instance = novadisk.make_instance(1)
    disk = novadisk.root_disk(instance)
    with pytest.raises(exception.ImageUnacceptable) as err:
        disk.clone(nova_ctx, unprotected_image.id)
    assert 'is not protected and this cluster makes clone v1' in \
        str(err.value)
    ioctx = rados_nova.open_ioctx(lab.vms_pool)
    try:
        assert disk.rbd_name not in rbd.RBD().list(ioctx)
    finally:
        ioctx.close()


def test_unprotected_snapshot_cloned_as_v2(nova_ctx, lab, unprotected_image,
                                           rados_nova):
    instance = novadisk.make_instance(1)
    disk = novadisk.root_disk(instance)
    disk.clone(nova_ctx, unprotected_image.id)
    ioctx = rados_nova.open_ioctx(lab.vms_pool)
    try:
        assert _is_clone_v2(ioctx, disk.rbd_name)
    finally:
        novadisk.delete_instance_disks(instance)
        ioctx.close()
