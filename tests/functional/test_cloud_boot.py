"""The boot benchmark's and ``tools/demo --boot``'s pieces on the cloud tier.

fastclone_lab.cloudboot boots servers through Nova's API and measures what
they cost; here one group each on a fastrbd host and on the stock host,
with what each must show: the qcow2 image on fastrbd is downloaded once and
converted once (into the cluster-wide cache), the raw image on the stock
Rbd host is cloned in place (no download, no conversion).  About two
minutes on a started tier under TCG (FASTCLONE_CLOUD=1).
"""

import os

import pytest

from fastclone_lab import cloudboot
from tests.functional import cloud as cloudmod
from tests.functional.cloud import cloud  # noqa: F401 (fixture)

pytestmark = pytest.mark.cloud


@pytest.fixture(scope='module')
def images(cloud, tmp_path_factory):  # noqa: F811
    cache = os.environ.get('FASTCLONE_GUEST_CACHE') or str(
        tmp_path_factory.mktemp('guest'))
    made = cloudboot.upload_images(cloud.conn, cache, 'test')
    yield made
    cloudboot.delete_images(cloud.conn, made)


def _group(cloud, hosts, image):  # noqa: F811
    env = cloud.env
    glance_log = cloudboot.LogTail(os.path.join(
        env['FASTCLONE_LAB_DIR'], 'glance', 'log', 'uwsgi.log'))
    flavor = cloud.conn.compute.find_flavor(cloud.flavor).id
    with cloudboot.ProcWatch(env['FASTCLONE_LAB_DIR']) as procs:
        boots = cloudboot.boot_group(
            cloud.conn, hosts, image, len(hosts), flavor,
            cloudboot.nova_dir(env), 'test', timeout=400)
    try:
        for b in boots:
            assert not b.error and b.marker_s is not None, b
            assert b.active_s is not None and b.active_s > 0
            assert 'uuid=%s' % b.server_id in b.marker_line
            assert 'sum=%s' % image.sum in b.marker_line
        downloads = cloudboot.glance_downloads(glance_log.read(),
                                               [image.id])[0]
        return downloads, procs.counts()
    finally:
        assert cloudboot.delete_servers(cloud.conn, boots) == []


def test_qcow2_on_fastrbd_hosts_downloads_and_converts_once(
        cloud, images):  # noqa: F811
    downloads, counts = _group(cloud, list(cloudmod.FASTRBD_HOSTS),
                               images['qcow2'])
    assert (downloads, counts['conversion']) == (1, 1)


def test_raw_on_the_stock_rbd_host_is_a_clone(cloud, images):  # noqa: F811
    downloads, counts = _group(cloud, list(cloudmod.STOCK_HOSTS),
                               images['raw'])
    assert (downloads, counts) == (0, {'conversion': 0, 'import': 0})


def test_pool_stored_answers(cloud):  # noqa: F811
    assert cloudboot.vms_stored(cloud.env['FASTCLONE_CEPH_CONF']) >= 0
