"""The lab itself: Glance's rbd store hands out clonable RBD snapshots."""

import rbd

from tests.functional.conftest import make_data


def _read(ioctx, name, length, snapshot=None):
    with rbd.Image(ioctx, name, snapshot=snapshot, read_only=True) as img:
        return img.read(0, length)


def test_raw_image_in_ceph_store_clones_as_nova(lab, images, rados_nova):
    data = make_data(8 << 20, marker=b'fastclone-lab-marker')
    image = images.upload(images.write(data), store=lab.rbd_store)

    assert image.direct_url == 'rbd://%s/%s/%s/snap' % (
        lab.fsid, lab.images_pool, image.id)
    assert image.stores == lab.rbd_store

    src = rados_nova.open_ioctx(lab.images_pool)
    dst = rados_nova.open_ioctx(lab.vms_pool)
    clone_name = 'fastclone-lab-test-%s' % image.id
    try:
        rbd.RBD().clone(src, image.id, 'snap', dst, clone_name)
        try:
            with rbd.Image(dst, clone_name, read_only=True) as clone:
                assert clone.parent_info() == (lab.images_pool, image.id,
                                               'snap')
                assert clone.size() == len(data)
            assert _read(dst, clone_name, len(data)) == data
        finally:
            rbd.RBD().remove(dst, clone_name)
    finally:
        src.close()
        dst.close()


def test_image_in_file_store_has_no_rbd_location(lab, images):
    data = make_data(1 << 20)
    image = images.upload(images.write(data), store=lab.file_store)

    assert image.stores == lab.file_store
    assert image.direct_url.startswith('file://'), image.direct_url
    assert image.locations, 'show_multiple_locations is off'
    urls = [loc['url'] for loc in image.locations]
    assert all(url.startswith('file://') for url in urls), urls
