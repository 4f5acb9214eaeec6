"""The path an image takes, from what the spawn path found."""

import pytest

from fastclone_backend.spawn import explain
from fastclone_backend.spawn import location

FSID = 'b1e7ef2c-5a8e-4f0e-9b5a-8c3f1f0e2d11'
OTHER_FSID = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'
IMAGE = '6b3f5c1e-2d4a-4e8b-9c7f-0a1b2c3d4e5f'
POLICY = location.Policy(local_fsid=FSID, allowed_pools=('images',))
BASE = 'vms/fastclone-base-%s@snap' % IMAGE


def _url(fsid=FSID, pool='images', image=IMAGE):
    return 'rbd://%s/%s/%s/snap' % (fsid, pool, image)


@pytest.mark.parametrize('url,fmt,want', [
    ('file:///var/lib/glance/images/x', 'raw', 'not rbd'),
    (_url(fsid=OTHER_FSID), 'raw', 'other cluster'),
    (_url(pool='backup'), 'raw', 'pool'),
    (_url(image='someone-else'), 'raw', 'image id'),
    (_url(), 'qcow2', 'format'),
    (_url(), 'raw', 'snapshot')])
def test_category(url, fmt, want):
    meta = {'id': IMAGE, 'disk_format': fmt}
    assert explain.category(url, meta, POLICY) == want


def test_direct_keeps_the_other_refusals():
    path = explain.decide({'id': IMAGE, 'disk_format': 'raw'},
                          'images/%s@snap' % IMAGE,
                          {_url(fsid=OTHER_FSID): 'fsid ...'}, None, True,
                          POLICY, BASE)
    assert path.kind == 'direct'
    assert path.refusals == ((_url(fsid=OTHER_FSID), 'other cluster',
                              'fsid ...'),)


def test_qcow2_goes_through_the_cache():
    path = explain.decide({'id': IMAGE, 'disk_format': 'qcow2'}, None,
                          {_url(): 'disk_format is qcow2'}, None, True,
                          POLICY, BASE)
    assert (path.kind, path.source) == ('cache', BASE)
    assert 'no location can be cloned (format)' in path.why


def test_no_location_and_cache_off_is_stock():
    path = explain.decide({'id': IMAGE, 'disk_format': 'raw'}, None, {},
                          None, False, POLICY, BASE)
    assert path.kind == 'stock'
    assert path.refusals == (('', 'no location',
                              'Glance shows no location for it'),)


def test_rejected_wins():
    path = explain.decide({'id': IMAGE, 'disk_format': 'raw'}, None, {},
                          'data is qcow2', True, POLICY, BASE)
    assert (path.kind, path.why) == ('refused', 'data is qcow2')
