"""The lifecycle of bases, clones and trash, on the real lab.

Other "hosts" are separate processes (tests/functional/lifecyclehost.py),
one eventlet-patched and one on native threads where two run.
"""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from unittest import mock
import urllib.parse
import uuid

from oslo_utils import uuidutils
import pytest
import rbd

from fastclone_backend.cache import baseindex
from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend.cache import verdicts
from fastclone_backend import cluster
from fastclone_backend.lifecycle import runner
from fastclone_lab import novadisk
from tests.functional.conftest import lab_environ
from tests.functional.conftest import make_data
from tests.functional.conftest import REPO
from tests.functional.test_cache import _head
from tests.functional.test_cache import _kill
from tests.functional.test_cache import _parent
from tests.functional.test_cache import _qcow2
from tests.functional.test_cache import _spawn_elsewhere

MiB = 1 << 20


@pytest.fixture(scope='module')
def glance_pool(lab, rados_admin):
    ioctx = rados_admin.open_ioctx(lab.images_pool)
    yield ioctx
    ioctx.close()


def _pass(ctx):
    return runner.run_pass(ctx, cluster.SharedRBDDriver(), force=True)


def _ours(ioctx, image_id):
    return sorted(n for n in rbd.RBD().list(ioctx)
                  if naming.image_id_of(n) == image_id)


def _sha(ioctx, name, length):
    return hashlib.sha256(_head(ioctx, name, length)).hexdigest()


def _spawn(ctx, image_id):
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(ctx, instance, image_id)
    return instance, disk.rbd_name


def _has_parent(ioctx, name):
    try:
        _parent(ioctx, name)
        return True
    except rbd.ImageNotFound:
        return False


def _wait_flat(ioctx, names, timeout=60):
    deadline = time.monotonic() + timeout
    while any(_has_parent(ioctx, n) for n in names):
        assert time.monotonic() < deadline, 'flatten did not finish'
        time.sleep(0.2)


def _verdicts(ioctx):
    import rados
    with rados.ReadOpCtx() as op:
        found, _ret = ioctx.get_omap_keys(op, '', -1)
        ioctx.operate_read_op(op, naming.VERDICTS_OBJECT)
        return [k for k, _v in found]


def _trash_names(ioctx):
    return [e['name'] for e in rbd.RBD().trash_list(ioctx)]


def _host_cmd(lab, workdir, *action, eventlet=False, conf=''):
    cmd = [sys.executable, '-m', 'tests.functional.lifecyclehost',
           '--workdir', str(workdir), '--conf', conf]
    if eventlet:
        cmd.append('--eventlet')
    return cmd + list(action), lab_environ(lab)


def _start_host(lab, workdir, *action, **kwargs):
    cmd, env = _host_cmd(lab, workdir, *action, **kwargs)
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _result(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _cached_image(images, tag, size=4 * MiB):
    data = make_data(size, marker=b'fastclone-life-' + tag.encode())
    return images.upload(_qcow2(images, data, tag), disk_format='qcow2'), data


def _childless_base(ctx, images, tag):
    """A qcow2 image whose cached base exists and has no clone."""
    image, data = _cached_image(images, tag)
    instance, _disk = _spawn(ctx, image.id)
    novadisk.delete_instance_disks(instance)
    return image, data


# ------------------------------------------------------------ the race
def _next_spawn_works_and_the_base_goes(ctx, lab, vms, image, data, racer,
                                        retired):
    """Nothing wedged: the next spawn repopulates the base.

    Once the racing clone is gone, one pass removes the retired base.
    """
    second, mine = _spawn(ctx, image.id)
    assert _parent(vms, mine) == (lab.vms_pool, naming.base_name(image.id),
                                  'snap')
    assert _head(vms, mine, len(data)) == data
    rbd.RBD().remove(vms, racer)
    report = _pass(ctx)
    assert retired in report['removed']
    assert _ours(vms, image.id) == [naming.base_name(image.id)]
    novadisk.delete_instance_disks(second)


def test_clone_racing_the_retirement_keeps_the_base(
        nova_ctx, lab, images, vms, tmp_path, image_cache_conf):
    """A clone made between the children check and the retirement.

    Another host clones the base then: it is kept with that clone, and
    nothing wedges.
    """
    image, data = _childless_base(nova_ctx, images, 'race-a')
    image_cache_conf(remove_unused_original_minimum_age_seconds=0)
    other = {}
    act = runner.Pass._act_on_bases

    def clone_in_the_window(self, plan, bases):
        other.update(_spawn_elsewhere(lab, image.id, tmp_path / 'host2'))
        return act(self, plan, bases)
    with mock.patch.object(runner.Pass, '_act_on_bases', autospec=True,
                           side_effect=clone_in_the_window):
        report = _pass(nova_ctx)

    assert other['errors'] == []
    (retired,) = [n for n in report['retired'] if image.id in n]
    assert retired in report['kept'] and retired not in report['removed']
    (theirs,) = other['disks']
    assert _parent(vms, theirs) == (lab.vms_pool, retired, 'snap')
    assert _head(vms, theirs, len(data)) == data
    _next_spawn_works_and_the_base_goes(nova_ctx, lab, vms, image, data,
                                        racer=theirs, retired=retired)


def test_clone_racing_the_snapshot_removal_keeps_the_base(
        nova_ctx, lab, images, vms, image_cache_conf):
    """A clone made between the children check and the snapshot removal.

    Clone v2 moves the snapshot to the trash namespace; the base stays
    retired with its child, and goes when the child goes.
    """
    image, data = _childless_base(nova_ctx, images, 'race-b')
    image_cache_conf(remove_unused_original_minimum_age_seconds=0)
    child = 'fastclone-test-racer-%s' % image.id[:8]
    armed = []
    check = basestore.children_of
    remove_once = basestore.BaseStore._remove_once

    def arm(self, name):
        if image.id in name:
            armed.append(name)
        return remove_once(self, name)

    def children_then_clone(vol, snap):
        found = check(vol, snap)
        if armed and snap.get('namespace', 0) == 0:
            rbd.RBD().clone(vms, armed.pop(), naming.SNAP, vms, child)
        return found
    with mock.patch.object(basestore.BaseStore, '_remove_once',
                           autospec=True, side_effect=arm), \
            mock.patch.object(basestore, 'children_of', autospec=True,
                              side_effect=children_then_clone):
        report = _pass(nova_ctx)

    (retired,) = [n for n in report['retired'] if image.id in n]
    assert retired in report['kept']
    assert _parent(vms, child)[:2] == (lab.vms_pool, retired)
    assert _head(vms, child, len(data)) == data
    with rbd.Image(vms, retired, read_only=True) as img:
        assert [s['namespace'] for s in img.list_snaps()] == [2]  # trash
    _next_spawn_works_and_the_base_goes(nova_ctx, lab, vms, image, data,
                                        racer=child, retired=retired)


def test_crashed_population_leftover_is_removed(nova_ctx, lab, images,
                                                vms):
    image, _data = _cached_image(images, 'leftover')
    tmp = naming.tmp_name(image.id, 'dead0001')
    store = basestore.BaseStore(cluster.SharedRBDDriver())
    store.create(tmp, 4 * MiB, image.id)   # ours; nobody holds its lock
    report = _pass(nova_ctx)
    assert tmp in report['removed']
    assert tmp not in rbd.RBD().list(vms)


def test_half_removed_leftover_is_removed(nova_ctx, lab, images, vms,
                                          rados_admin):
    # an interrupted removal leaves the name listed, its header gone
    image, _data = _cached_image(images, 'half-removed')
    tmp = naming.tmp_name(image.id, 'dead0002')
    store = basestore.BaseStore(cluster.SharedRBDDriver())
    store.create(tmp, 4 * MiB, image.id)   # in our ledger until removed
    with rbd.Image(vms, tmp, read_only=True) as img:
        header = 'rbd_header.' + img.id()
    with rados_admin.open_ioctx(lab.vms_pool) as admin:
        admin.remove_object(header)
    assert tmp in rbd.RBD().list(vms)
    with pytest.raises(rbd.ImageNotFound):
        rbd.Image(vms, tmp, read_only=True)
    report = _pass(nova_ctx)
    assert tmp in report['removed']
    assert tmp not in rbd.RBD().list(vms)


# ------------------------------------------------------------ deleted images
def test_deleted_image_base_waits_for_its_clones(nova_ctx, lab, images,
                                                 vms, glance):
    image, data = _cached_image(images, 'deleted-keep')
    made = [_spawn(nova_ctx, image.id) for _ in range(2)]
    glance.images.delete(image.id)
    report = _pass(nova_ctx)
    (retired,) = [n for n in report['retired'] if image.id in n]
    assert _ours(vms, image.id) == [retired]
    assert report['flatten'] == []
    for _instance, disk in made:
        assert _parent(vms, disk)[:2] == (lab.vms_pool, retired)
        assert _head(vms, disk, len(data)) == data
    for instance, _disk in made:
        novadisk.delete_instance_disks(instance)
    report = _pass(nova_ctx)
    assert retired in report['removed']
    assert _ours(vms, image.id) == []


def test_deleted_image_clones_are_flattened_and_the_base_goes(
        nova_ctx, lab, images, vms, glance, fastclone_conf):
    fastclone_conf(flatten_retired_clones=True)
    image, data = _cached_image(images, 'deleted-flatten', size=16 * MiB)
    made = [_spawn(nova_ctx, image.id) for _ in range(3)]
    disks = [disk for _instance, disk in made]
    glance.images.delete(image.id)
    report = _pass(nova_ctx)
    (retired,) = [n for n in report['retired'] if image.id in n]
    assert sorted(report['flatten']) == sorted(
        '%s/%s' % (lab.vms_pool, d) for d in disks)
    _wait_flat(vms, disks)
    report = _pass(nova_ctx)
    assert retired in report['removed']
    assert _ours(vms, image.id) == []
    for disk in disks:               # the instances live on, flat
        assert _head(vms, disk, len(data)) == data
    for instance, _disk in made:
        novadisk.delete_instance_disks(instance)


def test_deleted_raw_image_is_purged_from_the_trash_after_its_clones(
        nova_ctx, lab, images, vms, glance, glance_pool):
    gone_data = make_data(4 * MiB, marker=b'fastclone-trash-gone')
    gone = images.upload(images.write(gone_data))
    live_data = make_data(4 * MiB, marker=b'fastclone-trash-live')
    live = images.upload(images.write(live_data))
    moved = images.upload(images.write(make_data(MiB)))
    made = [_spawn(nova_ctx, gone.id) for _ in range(2)]
    kept_instance, kept_disk = _spawn(nova_ctx, live.id)
    assert _parent(vms, made[0][1]) == (lab.images_pool, gone.id, 'snap')
    glance.images.delete(gone.id)        # glance_store: to the trash
    assert gone.id in _trash_names(glance_pool)
    rbd.RBD().trash_move(glance_pool, moved.id)   # an active image's data

    report = _pass(nova_ctx)
    assert report['purged'] == []
    for _instance, disk in made:
        assert _head(vms, disk, len(gone_data)) == gone_data
    for instance, _disk in made:
        novadisk.delete_instance_disks(instance)
    assert [k for k in _verdicts(vms) if gone.id in k]   # we cloned it
    report = _pass(nova_ctx)
    assert report['purged'] == ['%s/%s' % (lab.images_pool, gone.id)]
    assert not [k for k in _verdicts(vms) if gone.id in k]   # pruned
    assert [k for k in _verdicts(vms) if live.id in k]       # kept
    trash = _trash_names(glance_pool)
    assert gone.id not in trash and moved.id in trash   # active: untouched
    with rbd.Image(glance_pool, live.id, 'snap', read_only=True) as img:
        assert img.read(0, 64) == live_data[:64]
    assert _head(vms, kept_disk, len(live_data)) == live_data
    (entry,) = [e for e in rbd.RBD().trash_list(glance_pool)
                if e['name'] == moved.id]
    rbd.RBD().trash_restore(glance_pool, entry['id'], moved.id)
    novadisk.delete_instance_disks(kept_instance)


# ------------------------------------------------------------ hosts
def test_two_hosts_at_once_exactly_one_does_the_work(
        nova_ctx, lab, images, vms, glance, tmp_path):
    image, _data = _cached_image(images, 'two-hosts')
    instance, _disk = _spawn(nova_ctx, image.id)
    glance.images.delete(image.id)   # work for the pass: retire its base
    runner.Records(vms).drop([runner.LAST_PASS])
    at = ['pass', '--start-at', str(time.time() + 10)]   # both started
    procs = [_start_host(lab, tmp_path / 'eventlet', *at, eventlet=True),
             _start_host(lab, tmp_path / 'native', *at)]
    try:
        results = [_result(proc) for proc in procs]
    finally:
        _kill(procs)
    print('two hosts: %s' % json.dumps(results))
    assert sorted(r['threading'] for r in results) == [False, True]
    assert sorted(r['ran'] for r in results) == [False, True]
    (worker,) = [r for r in results if r['ran']]
    (skipper,) = [r for r in results if not r['ran']]
    assert skipper['why'] == 'another host is running it' or \
        skipper['why'].startswith('ran at ')
    assert [n for n in worker['retired'] if image.id in n] == \
        _ours(vms, image.id)
    novadisk.delete_instance_disks(instance)
    _pass(nova_ctx)
    assert _ours(vms, image.id) == []


def test_killed_pass_mid_flatten_the_next_pass_completes(
        nova_ctx, lab, images, vms, glance, tmp_path, fastclone_conf):
    image, data = _cached_image(images, 'kill-flatten', size=16 * MiB)
    made = [_spawn(nova_ctx, image.id) for _ in range(3)]
    disks = [disk for _instance, disk in made]
    digest = hashlib.sha256(data).hexdigest()
    glance.images.delete(image.id)
    conf = ('[fastclone]\nflatten_retired_clones = True\n'
            'cache_lock_lease = 5\n')
    proc = _start_host(lab, tmp_path / 'killed', 'pass', '--force',
                       '--stall-after-submit', conf=conf)
    try:
        line = proc.stdout.readline()
        assert 'submitted' in line, proc.stderr.read()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the host dies mid-pass
        proc.wait()

    fastclone_conf(flatten_retired_clones=True, cache_lock_lease=5)
    start = time.monotonic()
    while _ours(vms, image.id):
        assert time.monotonic() - start < 120, _ours(vms, image.id)
        report = _pass(nova_ctx)   # skipped while the dead lease lasts
        time.sleep(1)
    assert report['ran'] and report['removed']
    for disk in disks:
        assert not _has_parent(vms, disk)
        assert _sha(vms, disk, len(data)) == digest
    for instance, _disk in made:
        novadisk.delete_instance_disks(instance)


def test_soak_spawns_deletes_and_passes_on_two_hosts(
        nova_ctx, lab, images, vms, glance_pool, tmp_path,
        image_cache_conf):
    seconds = float(os.environ.get('FASTCLONE_SOAK_SECONDS', '90'))
    made = []
    for tag, store, fmt in (('soak-q', None, 'qcow2'),
                            ('soak-r', None, 'raw'),
                            ('soak-f', lab.file_store, 'raw')):
        data = make_data(2 * MiB, marker=tag.encode())
        path = (_qcow2(images, data, tag) if fmt == 'qcow2'
                else images.write(data))
        image = images.upload(path, disk_format=fmt, store=store)
        made.append((image.id, hashlib.sha256(data).hexdigest(), len(data)))
    args = ['soak', '--seconds', str(seconds)]
    for spec in made:
        args += ['--image', '%s:%s:%d' % spec]
    conf = '[image_cache]\nremove_unused_original_minimum_age_seconds = 0\n'
    procs = [_start_host(lab, tmp_path / 'a', *args, eventlet=True,
                         conf=conf),
             _start_host(lab, tmp_path / 'b', *args, conf=conf)]
    try:
        results = [_result(p, timeout=seconds + 600) for p in procs]
    finally:
        _kill(procs)
    print('soak results: %s' % json.dumps(results))
    for result in results:
        assert result['errors'] == [], result
        assert result['failures'] == 0 and result['mismatches'] == 0
        assert result['spawns'] > 0 and result['passes'] > 0
    image_cache_conf(remove_unused_original_minimum_age_seconds=0)
    _pass(nova_ctx)
    ids = [spec[0] for spec in made]
    assert [n for n in rbd.RBD().list(vms)
            if naming.image_id_of(n) in ids] == []
    assert [n for n in _trash_names(vms) if naming.is_cache_name(n)] == []
    assert [n for n in _trash_names(glance_pool) if n in ids] == []


# ------------------------------------------------------------ at scale
# The base index and Glance in pages: a mixed cache, the requests counted
# where they leave this process (requests' HTTP adapter).
PAGE = 2   # [fastclone] glance_ids_per_request: a few images, many pages


@contextlib.contextmanager
def _glance_requests(lab):
    """[(method, url)] of every request this process sends to Glance."""
    from requests import adapters
    send = adapters.HTTPAdapter.send
    sent = []

    def counted(adapter, request, *args, **kwargs):
        if request.url.startswith(lab.glance_url):
            sent.append((request.method, request.url))
        return send(adapter, request, *args, **kwargs)
    with mock.patch.object(adapters.HTTPAdapter, 'send', autospec=True,
                           side_effect=counted):
        yield sent


def _listed_ids(url):
    """(ids asked, hidden?) of a list request; None for anything else."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    if not query.get('id'):
        return None
    (ids,) = query['id']
    assert ids.startswith('in:'), url
    return ids[3:].split(','), query.get('os_hidden') == ['true']


class _Cache:
    """Glance records (no data) and the bases published for them."""

    def __init__(self, ctx, lab, glance, vms, glance_pool):
        self.ctx, self.lab, self.glance = ctx, lab, glance
        self.vms, self.glance_pool = vms, glance_pool
        self.store = basestore.BaseStore(cluster.SharedRBDDriver())
        self.image_ids, self.clones, self.trash, self.rbd_names = \
            [], [], [], []

    def record(self, tag):
        image = self.glance.images.create(
            name='fastclone-test-index-' + tag, disk_format='raw',
            container_format='bare')
        self.image_ids.append(image.id)
        return image.id

    def base(self, tag, clone=False):
        """A base published for a new record, as a population does."""
        from nova.virt.libvirt import imagebackend
        image_id = self.record(tag)
        tmp = naming.tmp_name(image_id, uuid.uuid4().hex[:8])
        self.store.create(tmp, 4 * MiB, image_id)
        self.store.publish(tmp, imagebackend.IMAGE_API.get(self.ctx,
                                                           image_id))
        if clone:
            name = 'fastclone-test-index-clone-' + image_id[:8]
            rbd.RBD().clone(self.vms, naming.base_name(image_id),
                            naming.SNAP, self.vms, name)
            self.clones.append(name)
        return image_id

    def trashed(self, tag):
        """A record whose RBD image we cloned from, now in the trash."""
        image_id = self.record(tag)
        rbd.RBD().create(self.glance_pool, image_id, MiB)
        with rbd.Image(self.glance_pool, image_id) as img:
            img.create_snap('snap')
            (snap,) = img.list_snaps()
        verdicts.Verdicts(cluster.SharedRBDDriver(), self.lab.vms_pool).put(
            verdicts.key(self.lab.images_pool, image_id, snap['id']), 'raw',
            'test')
        rbd.RBD().trash_move(self.glance_pool, image_id)
        self.trash.append(image_id)
        return image_id

    def look_alike(self):
        name = naming.base_name(str(uuid.uuid4()))   # no mark: not ours
        rbd.RBD().create(self.vms, name, MiB)
        self.rbd_names.append(name)
        return name

    def cleanup(self):
        for name in self.clones + self.rbd_names:
            _quietly(rbd.RBD().remove, self.vms, name)
        for image_id in self.image_ids:
            for name in _ours(self.vms, image_id):
                retired = name
                if naming.kind_of(name) == 'base':
                    retired = self.store.retire(name, 'test cleanup')
                _quietly(self.store.remove, retired)
            _quietly(self.glance.images.delete, image_id)
        for entry in rbd.RBD().trash_list(self.glance_pool):
            if entry['name'] in self.trash:
                _quietly(self._purge, entry['id'])

    def _purge(self, rbd_id):
        with rbd.Image(self.glance_pool, image_id=rbd_id) as img:
            for snap in list(img.list_snaps()):
                img.remove_snap(snap['name'])
        rbd.RBD().trash_remove(self.glance_pool, rbd_id)


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:   # already gone: cleanup only
        pass


def _not_listed(glance, image_id):
    """Does Glance's default list leave image_id out (deleted, hidden)?"""
    import glanceclient.exc
    try:
        return bool(glance.images.get(image_id).get('os_hidden'))
    except glanceclient.exc.HTTPNotFound:
        return True


def _check_requests(sent, asked, confirm, glance):
    """The pass asked Glance in pages, and one GET per confirmed id only.

    :param asked: the ids the pass gave glancestate.states; confirm: those
        to confirm one by one (trash entries).
    """
    lists = [_listed_ids(url) for _m, url in sent]
    plain = [ids for found in lists if found and not found[1]
             for ids in [found[0]]]
    hidden = [ids for found in lists if found and found[1]
              for ids in [found[0]]]
    left_out = {i for i in asked if _not_listed(glance, i)}
    gets = sorted(url.rsplit('/', 1)[1] for m, url in sent
                  if m == 'GET' and '/v2/images/' in url)
    assert all(len(url) < 7000 for _m, url in sent)
    assert sorted(i for ids in plain for i in ids) == sorted(asked)
    # the pages go out 8 at a time, in threads: in any order
    assert sorted(len(ids) for ids in plain) == sorted(
        [PAGE] * (len(asked) // PAGE) +
        ([len(asked) % PAGE] if len(asked) % PAGE else []))
    assert sorted(i for ids in hidden for i in ids) == sorted(
        left_out - set(confirm))
    assert len(hidden) == -(-len(left_out - set(confirm)) // PAGE)
    assert gets == sorted(left_out & set(confirm))
    others = [u for m, u in sent if '/v2/schemas/' not in u and
              _listed_ids(u) is None and '/v2/images/' not in u]
    assert others == []
    return len(plain) + len(hidden) + len(gets)


def _pass_counted(ctx, lab):
    """(report, requests sent, ids asked, ids to confirm) of one pass."""
    from fastclone_backend.lifecycle import glancestate
    states = glancestate.states
    asked = {}

    def recorded(context, image_ids, confirm=()):
        asked.update(ids=[i for i in set(image_ids)
                          if uuidutils.is_uuid_like(i)],
                     confirm=set(confirm))
        return states(context, image_ids, confirm=confirm)
    with _glance_requests(lab) as sent, mock.patch.object(
            glancestate, 'states', autospec=True, side_effect=recorded):
        report = _pass(ctx)
    return report, sent, asked['ids'], asked['confirm']


def test_pass_from_the_index_with_glance_in_pages(
        nova_ctx, lab, glance, vms, glance_pool, fastclone_conf):
    fastclone_conf(glance_ids_per_request=PAGE)
    cache = _Cache(nova_ctx, lab, glance, vms, glance_pool)
    index = baseindex.BaseIndex(vms)
    try:
        live = [cache.base('live-%d' % i, clone=i == 0) for i in range(3)]
        hidden = cache.base('hidden')
        glance.images.update(hidden, os_hidden=True)
        gone, gone_pinned = cache.base('gone'), cache.base('gone-pinned',
                                                           clone=True)
        changed = cache.base('changed')
        unindexed = cache.base('unindexed')
        stranger = cache.look_alike()
        trash_gone, trash_live = cache.trashed('trash-gone'), \
            cache.trashed('trash-live')
        for image_id in (gone, gone_pinned, trash_gone):
            glance.images.delete(image_id)
        # a base of older data: its metadata and its index entry say so
        with rbd.Image(vms, naming.base_name(changed)) as img:
            img.metadata_set('fastclone.os_hash_value', 'an-older-hash')
        (entry,) = [b for b in basestore.BaseStore(
            cluster.SharedRBDDriver()).survey()
            if b.name == naming.base_name(changed)]
        index.put([entry])
        index.drop([naming.base_name(unindexed)])   # made before the index

        report, sent, asked, confirm = _pass_counted(nova_ctx, lab)
        print('first pass: %d Glance requests, %d of %d opened' % (
            len(sent), report['opened'], report['bases']))
        assert {trash_gone, trash_live} <= confirm
        assert set(live + [hidden, gone, gone_pinned, changed, unindexed,
                           trash_gone, trash_live]) <= set(asked)
        _check_requests(sent, asked, confirm, glance)

        (retired,) = _ours(vms, gone_pinned)          # kept for its clone
        assert retired in report['retired']
        assert retired not in report['removed']
        assert _ours(vms, gone) == [] and _ours(vms, changed) == []
        for image_id in live + [hidden, unindexed]:
            assert _ours(vms, image_id) == [naming.base_name(image_id)]
        assert stranger in rbd.RBD().list(vms)
        assert report['purged'] == ['%s/%s' % (lab.images_pool,
                                               trash_gone)]
        assert _trash_names(glance_pool).count(trash_live) == 1
        assert trash_gone not in _trash_names(glance_pool)

        # steady state: no ready base opened, the unindexed one indexed
        entries, _used = index.read()
        assert naming.base_name(unindexed) in entries
        assert stranger not in entries
        report, sent, asked, confirm = _pass_counted(nova_ctx, lab)
        print('steady state: %d Glance requests, %d of %d opened' % (
            len(sent), report['opened'], report['bases']))
        listed = [n for n in rbd.RBD().list(vms) if naming.is_cache_name(n)]
        entries, _used = index.read()
        assert report['bases'] == len(listed)
        assert report['opened'] == len([n for n in listed
                                        if n not in entries])
        assert report['retired'] == report['removed'] == []
        _check_requests(sent, asked, confirm, glance)
        assert trash_live in confirm and trash_gone not in confirm
    finally:
        cache.cleanup()
