"""The cluster-wide converted-image cache, on the real lab.

Other "hosts" are separate processes with their own instances path
(benchmarks/worker.py --keep).
"""

import json
import os
import signal
import subprocess
import sys
import time

from nova import exception
import pytest
import rbd

from fastclone_backend.cache import naming
from fastclone_backend.cache import workdir
from fastclone_lab import novadisk
from tests.functional.conftest import lab_environ
from tests.functional.conftest import make_data
from tests.functional.conftest import REPO


def _qcow2(images, data, name='img'):
    raw = images.write(data, name + '.raw')
    path = raw[:-4] + '.qcow2'
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True)
    return path


def _spawner_cmd(lab, image_id, workdir, count=1, threads=1, conf=''):
    """Another compute host: benchmarks/worker.py, keeping its disks."""
    cmd = [sys.executable, '-m', 'benchmarks.worker', '--backend', 'fastrbd',
           '--keep', '--root-gb', '1', '--image', image_id, '--count',
           str(count), '--threads', str(threads), '--workdir', str(workdir),
           '--conf', conf]
    return cmd, lab_environ(lab)


def _spawn_elsewhere(lab, image_id, workdir, **kwargs):
    cmd, env = _spawner_cmd(lab, image_id, workdir, **kwargs)
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module', autouse=True)
def clean_cache(vms, rados_nova):
    """Remove what the tests left: clones of cached bases, then bases."""
    yield
    names = rbd.RBD().list(vms)
    for name in names:
        if not naming.is_cache_name(name) and \
                naming.is_cache_name(_parent_or_none(vms, name)):
            rbd.RBD().remove(vms, name)
    for name in names:
        if naming.is_cache_name(name):
            _destroy(vms, name)


def _parent_or_none(ioctx, name):
    try:
        return _parent(ioctx, name)[1]
    except rbd.ImageNotFound:
        return ''


def _destroy(ioctx, name):
    with rbd.Image(ioctx, name) as img:
        for snap in list(img.list_snaps()):
            if img.is_protected_snap(snap['name']):
                img.unprotect_snap(snap['name'])
            img.remove_snap(snap['name'])
    rbd.RBD().remove(ioctx, name)


def _remove(ioctx, names):
    for name in names:
        rbd.RBD().remove(ioctx, name)


def _parent(ioctx, name):
    with rbd.Image(ioctx, name, read_only=True) as img:
        return img.parent_info()


def _head(ioctx, name, length):
    with rbd.Image(ioctx, name, read_only=True) as img:
        return img.read(0, length)


def _leftovers(ioctx, image_id):
    return [n for n in rbd.RBD().list(ioctx)
            if n.startswith(naming.tmp_prefix(image_id))]


def _spawn_cached(nova_ctx, lab, vms, image, data):
    """One root disk through Nova, from the image's cached base.

    Checks it is a clone of the base holding the image's bytes; returns
    (instance, this spawn's download/conversion/import counts).
    """
    before = dict(naming.STATS)
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    assert _parent(vms, disk.rbd_name) == (
        lab.vms_pool, naming.base_name(image.id), 'snap')
    assert _head(vms, disk.rbd_name, len(data)) == data
    return instance, _stats_delta(before)


def _kill(procs):
    """SIGKILL each process group that is still running (a host crash)."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _stats_delta(before):
    return {k: naming.STATS[k] - before.get(k, 0) for k in
            ('downloads', 'conversions', 'imports')}


def test_qcow2_populates_once_then_another_host_clones(
        nova_ctx, lab, images, vms, tmp_path):
    data = make_data(8 << 20, marker=b'fastclone-qcow2-marker')
    image = images.upload(_qcow2(images, data), disk_format='qcow2')
    base = naming.base_name(image.id)

    instance, counts = _spawn_cached(nova_ctx, lab, vms, image, data)
    assert counts == {'downloads': 1, 'conversions': 1, 'imports': 0}

    other = _spawn_elsewhere(lab, image.id, tmp_path / 'host2')
    assert other['errors'] == []
    assert other['cache_stats'].get('downloads', 0) == 0
    assert other['conversions'] == 0
    assert _parent(vms, other['disks'][0]) == (lab.vms_pool, base, 'snap')
    assert _head(vms, other['disks'][0], len(data)) == data
    workdir = tmp_path / 'host2' / 'instances' / 'fastclone'
    assert not workdir.exists() or not os.listdir(workdir)
    novadisk.delete_instance_disks(instance)
    _remove(vms, other['disks'])


def test_twenty_concurrent_spawns_from_four_hosts_convert_once(
        lab, images, vms, tmp_path):
    data = make_data(16 << 20, marker=b'fastclone-concurrent')
    image = images.upload(_qcow2(images, data), disk_format='qcow2')
    procs = []
    try:
        for host in range(4):
            cmd, env = _spawner_cmd(lab, image.id, tmp_path / ('h%d' % host),
                                    count=5, threads=5)
            procs.append(subprocess.Popen(
                cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True))
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        _kill(procs)
    assert [r['errors'] for r in results] == [[]] * 4
    assert sum(r['cache_stats'].get('downloads', 0) for r in results) == 1
    assert sum(r['conversions'] for r in results) == 1
    disks = [d for r in results for d in r['disks']]
    assert len(set(disks)) == 20
    base = naming.base_name(image.id)
    for name in disks:
        assert _parent(vms, name) == (lab.vms_pool, base, 'snap')
        assert _head(vms, name, len(data)) == data
    _remove(vms, disks)


def test_raw_image_in_file_store_is_imported_without_conversion(
        nova_ctx, lab, images, vms):
    data = make_data(4 << 20, marker=b'fastclone-fs-raw')
    image = images.upload(images.write(data), store=lab.file_store)
    instance, counts = _spawn_cached(nova_ctx, lab, vms, image, data)
    assert counts == {'downloads': 1, 'conversions': 0, 'imports': 1}
    novadisk.delete_instance_disks(instance)


def test_killed_populator_is_recovered(nova_ctx, lab, images, vms, tmp_path,
                                       fastclone_conf):
    data = make_data(384 << 20)
    image = images.upload(_qcow2(images, data), disk_format='qcow2')
    cmd, env = _spawner_cmd(lab, image.id, tmp_path / 'crash',
                            conf='[fastclone]\ncache_lock_lease = 5\n')
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _leftovers(vms, image.id):
            assert proc.poll() is None, 'populator ended before the import'
            assert time.monotonic() < deadline, 'no import started'
            time.sleep(0.05)
    finally:
        _kill([proc])  # the "host" dies, qemu-img too
    assert _leftovers(vms, image.id)
    # on the dead host: its download and its claim, swept when it restarts
    crashed = str(tmp_path / 'crash' / 'instances' / 'fastclone')
    left = sorted(os.listdir(crashed))
    assert [name.rsplit('.', 1)[1] for name in left] == ['download', 'lock']
    assert sorted(workdir.sweep(crashed)) == left
    assert os.listdir(crashed) == []

    fastclone_conf(cache_lock_lease=5)
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    assert _parent(vms, disk.rbd_name) == (
        lab.vms_pool, naming.base_name(image.id), 'snap')
    assert _head(vms, disk.rbd_name, 1 << 20) == data[:1 << 20]
    # the dead qemu-img is fenced and its temp image removed by the spawn
    # that took over; were fencing refused, the lifecycle pass removes it
    from fastclone_backend.cache import basestore
    from fastclone_backend import cluster
    from fastclone_backend.lifecycle import runner
    store = basestore.BaseStore(cluster.SharedRBDDriver())
    deadline = time.monotonic() + 120
    report = None
    while _leftovers(vms, image.id):
        # what the pass saw, should it not remove the leftover in time
        assert time.monotonic() < deadline, (
            [store.describe(n) for n in _leftovers(vms, image.id)], report)
        report = runner.run_pass(nova_ctx, cluster.SharedRBDDriver(),
                                 force=True)
        time.sleep(2)
    vms.lock_exclusive(naming.lock_object(image.id), naming.LOCK_NAME,
                       'test-probe', duration=5)  # nobody holds it
    vms.unlock(naming.lock_object(image.id), naming.LOCK_NAME, 'test-probe')
    novadisk.delete_instance_disks(instance)


def test_changed_image_invalidates_the_base(nova_ctx, lab, images, vms):
    data = make_data(4 << 20, marker=b'fastclone-invalidate')
    image = images.upload(_qcow2(images, data), disk_format='qcow2')
    first = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, first, image.id)
    base = naming.base_name(image.id)
    with rbd.Image(vms, base) as img:   # as if Glance's data had changed
        img.metadata_set('fastclone.os_hash_value', 'an-older-hash')

    before = dict(naming.STATS)
    second = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, second, image.id)
    assert _stats_delta(before)['downloads'] == 1
    with rbd.Image(vms, base, read_only=True) as img:
        assert img.metadata_get('fastclone.os_hash_value') == \
            image.os_hash_value
    retired = [n for n in rbd.RBD().list(vms)
               if n.startswith(naming.retired_name(image.id, ''))]
    assert len(retired) == 1  # kept: the first disk is still its clone
    assert _parent(vms, disk.rbd_name) == (lab.vms_pool, base, 'snap')
    novadisk.delete_instance_disks(first)
    novadisk.delete_instance_disks(second)


def test_eviction_keeps_bases_with_clones(nova_ctx, lab, images, vms,
                                          fastclone_conf, image_cache_conf):
    from fastclone_backend import cluster
    from fastclone_backend.lifecycle import runner

    def one_pass():
        return runner.run_pass(nova_ctx, cluster.SharedRBDDriver(),
                               force=True)
    # other tests' bases without clones would be evicted first: gone now
    image_cache_conf(remove_unused_original_minimum_age_seconds=0)
    one_pass()
    image_cache_conf(remove_unused_original_minimum_age_seconds=86400)
    made = {}
    for tag in ('a', 'b', 'c'):
        data = make_data(2 << 20, marker=b'fastclone-evict-' + tag.encode())
        made[tag] = images.upload(_qcow2(images, data, tag),
                                  disk_format='qcow2')
    kept = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, kept, made['a'].id)  # a has a clone
    gone = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, gone, made['b'].id)
    novadisk.delete_instance_disks(gone)                      # b has none
    last = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, last, made['c'].id)

    ours = {naming.base_name(made[t].id) for t in 'abc'}
    others = [n for n in rbd.RBD().list(vms)
              if naming.kind_of(n) == 'base' and n not in ours]
    fastclone_conf(cache_max_count=len(others) + 2)   # one too many
    report = one_pass()
    names = rbd.RBD().list(vms)
    assert naming.base_name(made['a'].id) in names
    assert naming.base_name(made['b'].id) not in names
    assert naming.base_name(made['c'].id) in names
    assert len(report['removed']) == 1
    assert report['removed'][0].startswith(
        naming.retired_name(made['b'].id, ''))
    novadisk.delete_instance_disks(kept)
    novadisk.delete_instance_disks(last)


def _assert_rejected(nova_ctx, vms, image, reason, root_gb=1):
    instance = novadisk.make_instance(root_gb)
    disk = novadisk.root_disk(instance)
    with pytest.raises(exception.ImageUnacceptable) as err:
        disk.clone(nova_ctx, image.id)
    message = str(err.value)
    assert image.id in message
    assert reason in message, message
    names = rbd.RBD().list(vms)
    assert not [n for n in names if image.id in n]  # no base, no tmp
    assert disk.rbd_name not in names
    vms.lock_exclusive(naming.lock_object(image.id), naming.LOCK_NAME,
                       'test-probe', duration=5)  # no stuck lock
    vms.unlock(naming.lock_object(image.id), naming.LOCK_NAME, 'test-probe')


def _workdir_empty():
    import nova.conf
    path = os.path.join(nova.conf.CONF.instances_path, 'fastclone')
    return not os.path.exists(path) or os.listdir(path) == []


def test_qcow2_declared_raw_is_refused(nova_ctx, lab, images, vms):
    path = _qcow2(images, make_data(2 << 20), 'liar')
    image = images.upload(path, disk_format='raw', store=lab.file_store)
    _assert_rejected(nova_ctx, vms, image,
                     'content is qcow2 but disk_format is raw')
    assert _workdir_empty()


def test_virtual_size_above_flavor_is_refused(nova_ctx, lab, images, vms,
                                              tmp_path):
    path = str(tmp_path / 'big.qcow2')
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', path, '3G'],
                   check=True, capture_output=True)
    image = images.upload(path, disk_format='qcow2')
    _assert_rejected(nova_ctx, vms, image, 'virtual size 3221225472 bytes '
                     "exceeds the flavor's root disk of 1073741824 bytes",
                     root_gb=1)
    assert _workdir_empty()


def test_truncated_qcow2_is_refused(nova_ctx, lab, images, vms):
    # A qcow2 with a backing file or an external data file never gets this
    # far: Glance 33 refuses its upload (HTTP 415, "Image failed safety
    # checks"); tests/unit/test_inspect.py covers them on real files.
    path = _qcow2(images, make_data(8 << 20), 'cut')
    os.truncate(path, os.path.getsize(path) // 2)
    image = images.upload(path, disk_format='qcow2', store=lab.file_store)
    _assert_rejected(nova_ctx, vms, image, 'qcow2 is damaged')
    assert _workdir_empty()


@pytest.fixture
def glance_rbd_download(lab):
    """[glance] enable_rbd_download: Nova exports the image with rbd."""
    import nova.conf
    conf = nova.conf.CONF
    values = {'enable_rbd_download': True, 'rbd_user': lab.nova_user,
              'rbd_pool': lab.images_pool, 'rbd_ceph_conf': lab.ceph_conf}
    for name, value in values.items():
        conf.set_override(name, value, group='glance')
    yield
    for name in values:
        conf.clear_override(name, group='glance')


def test_rbd_download_populates_the_cache(nova_ctx, lab, images, vms,
                                          glance_rbd_download, caplog):
    import logging
    caplog.set_level(logging.INFO)
    data = make_data(4 << 20, marker=b'fastclone-rbd-export')
    image = images.upload(_qcow2(images, data), disk_format='qcow2')
    instance, counts = _spawn_cached(nova_ctx, lab, vms, image, data)
    assert counts['downloads'] == 1
    assert 'Successfully transferred using rbd' in caplog.text
    assert _workdir_empty()
    novadisk.delete_instance_disks(instance)


def test_convert_through_a_local_file(nova_ctx, lab, images, vms,
                                      fastclone_conf):
    fastclone_conf(convert_direct_to_rbd=False)
    data = make_data(4 << 20, marker=b'fastclone-via-file')
    image = images.upload(_qcow2(images, data), disk_format='qcow2')
    instance, counts = _spawn_cached(nova_ctx, lab, vms, image, data)
    assert counts == {'downloads': 1, 'conversions': 1, 'imports': 1}
    assert _workdir_empty()
    novadisk.delete_instance_disks(instance)
