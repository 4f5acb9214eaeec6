"""Faults on the real lab: a stalled OSD, a dead mon, Glance killed
mid-download, a host killed mid-population, a full work dir, a full pool,
qemu-img over its limits.

Each case asserts a bound on the time, a clear error naming the image,
nothing left in the pools, the work dir or the lock, and that the next
spawn works.  Each records what it measured: ``FASTCLONE_FAULT_REPORT=path``
writes the table (the README's "Faults" table comes from it).
"""

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time

import nova.conf
from nova import exception
import pytest
import rbd

from fastclone_backend.cache import naming
from fastclone_backend import exception as fc_exception
from fastclone_backend.lifecycle import runner
from fastclone_lab import novadisk
from tests.functional.conftest import LAB
from tests.functional.conftest import make_data
from tests.functional.conftest import REPO
from tests.functional import test_cache as tc

OP_TIMEOUT = 5
LEASE = 10
ROWS = []


@pytest.fixture(scope='module', autouse=True)
def fault_report():
    yield
    lines = ['| fault | measured | verdict |', '|---|---|---|']
    lines += ['| %s | %s | %s |' % row for row in ROWS]
    print('\n' + '\n'.join(lines))
    path = os.environ.get('FASTCLONE_FAULT_REPORT')
    if path:
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')


def _record(fault, measured, verdict='pass'):
    ROWS.append((fault, measured, verdict))


# ------------------------------------------------------------- the lab
def _pid(name) -> int:
    out = subprocess.run([LAB, 'pid', name], capture_output=True, text=True)
    assert out.returncode == 0, '%s is not running: %s' % (name, out.stderr)
    return int(out.stdout.strip())


def _lab_up():
    proc = subprocess.run([LAB, 'up'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@contextlib.contextmanager
def _osd_stopped(lab):
    pid = _pid('ceph-osd.0')
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        _osd_serves(lab)


def _ceph(lab, *args, timeout=20):
    return subprocess.run(['timeout', str(timeout), 'ceph', '-c',
                           lab.ceph_conf, '--id', lab.admin_user] +
                          list(args), capture_output=True, text=True)


def _osd_serves(lab):
    """After a stop: the OSD serves I/O again.

    A lone OSD that was stopped can keep PGs active+clean+laggy (their read
    lease ran out, and no peer renews it) with every op on them blocked for
    minutes; marking it down makes it peer again (seconds).  A lab
    artifact: the cluster itself, not fastclone, is mended here.
    """
    deadline = time.monotonic() + 120
    marked = False
    while True:
        stat = _ceph(lab, 'pg', 'stat').stdout
        if stat and 'laggy' not in stat and 'peering' not in stat and \
                'down' not in stat:
            probe = subprocess.run(
                ['timeout', '10', 'rados', '-c', lab.ceph_conf, '--id',
                 lab.admin_user, '-p', lab.vms_pool, 'put', 'fastclone-probe',
                 '/etc/hostname'], capture_output=True)
            if probe.returncode == 0:
                return
        assert time.monotonic() < deadline, 'the OSD does not serve: ' + stat
        if not marked and 'laggy' in stat:
            _ceph(lab, 'osd', 'down', '0')
            marked = True
        time.sleep(1)


def _in_thread(fn):
    """Run fn in a thread; returns (thread, result dict)."""
    result = {}

    def run():
        start = time.monotonic()
        try:
            result['value'] = fn()
        except BaseException as e:   # the spawn's outcome, whatever it is
            result['error'] = e
        result['seconds'] = time.monotonic() - start
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


# ------------------------------------------------------------- checks
def _workdir():
    return os.path.join(nova.conf.CONF.instances_path, 'fastclone')


def _assert_nothing_left(vms, image_id, instance=None, pass_ctx=None,
                         watches=True):
    """No temp or retired image, no disk, no work file, no held lock.

    pass_ctx: run lifecycle passes (the collector of Ceph leftovers)
    until the temp images are gone, within 90 s.  watches: no liveness
    watch object either (one whose unwatch timed out is removed by the
    next holder of the lock).
    """
    if pass_ctx is not None:
        deadline = time.monotonic() + 90
        while tc._leftovers(vms, image_id):
            assert time.monotonic() < deadline, tc._leftovers(vms, image_id)
            runner.run_pass(pass_ctx, _driver(), force=True)
            time.sleep(2)
    names = rbd.RBD().list(vms)
    assert not [n for n in names if n.startswith(
        (naming.tmp_prefix(image_id), naming.retired_name(image_id, '')))]
    if instance is not None:
        assert not [n for n in names if n.startswith(instance.uuid)]
    assert tc._workdir_empty(), os.listdir(_workdir())
    _assert_lock_free(vms, image_id)
    if watches:
        assert not _watch_objects(vms, image_id)


def _watch_objects(vms, image_id):
    """The population lock's liveness watch objects (liveness.py)."""
    prefix = naming.lock_object(image_id) + '.'
    return [o.key for o in vms.list_objects() if o.key.startswith(prefix)]


def _assert_lock_free(vms, image_id, wait=0):
    deadline = time.monotonic() + wait
    while True:
        try:
            vms.lock_exclusive(naming.lock_object(image_id), naming.LOCK_NAME,
                               'test-probe', duration=5)
            break
        except Exception:   # rados.ObjectBusy: still held
            assert time.monotonic() < deadline, 'population lock held'
            time.sleep(0.5)
    vms.unlock(naming.lock_object(image_id), naming.LOCK_NAME, 'test-probe')


def _driver():
    from fastclone_backend import cluster
    return cluster.SharedRBDDriver()


def _spawn_works(nova_ctx, vms, image, data):
    """The next spawn: a disk reading the image's bytes; then deleted."""
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    assert tc._head(vms, disk.rbd_name, 1 << 20) == data[:1 << 20]
    novadisk.delete_instance_disks(instance)


def _nova_cleans_up(instance):
    """What Nova does after a failed build: LibvirtDriver._cleanup_rbd.

    The compute manager's cleanup of the build removes the instance's disks.
    """
    novadisk.delete_instance_disks(instance)


def _recovered(nova_ctx, vms, image, data, instance):
    """After Nova's cleanup nothing is left, and the next spawn works."""
    _nova_cleans_up(instance)
    _assert_nothing_left(vms, image.id, instance)
    _spawn_works(nova_ctx, vms, image, data)


@pytest.fixture
def bounded(fastclone_conf):
    fastclone_conf(rados_op_timeout=OP_TIMEOUT, cache_lock_lease=LEASE)
    return fastclone_conf


# ------------------------------------------------------------- the cases
def test_osd_stopped_during_a_clone(nova_ctx, lab, images, vms, bounded):
    data = make_data(4 << 20, marker=b'fastclone-osd-clone')
    image = images.upload(images.write(data))
    _spawn_works(nova_ctx, vms, image, data)   # the snapshot is known
    instance = novadisk.make_instance(1)
    with _osd_stopped(lab):
        start = time.monotonic()
        with pytest.raises(fc_exception.CephTimeout) as err:
            novadisk.create_root_disk(nova_ctx, instance, image.id)
        took = time.monotonic() - start
    message = str(err.value)
    assert image.id in message and 'rados_op_timeout' in message, message
    assert took < 3 * OP_TIMEOUT, took
    _recovered(nova_ctx, vms, image, data, instance)
    _record('OSD stopped (SIGSTOP) during a clone, rados_op_timeout %d s'
            % OP_TIMEOUT, 'spawn failed after %.1f s: `%s`; after SIGCONT '
            'nothing left, next spawn works' % (took, message[:110]))


def test_without_a_timeout_a_spawn_waits_out_a_stall(nova_ctx, lab, images,
                                                     vms, fastclone_conf):
    fastclone_conf(rados_op_timeout=0)   # the default: as librados
    data = make_data(4 << 20, marker=b'fastclone-osd-wait')
    image = images.upload(images.write(data))
    _spawn_works(nova_ctx, vms, image, data)
    instance = novadisk.make_instance(1)
    stall = 10
    with _osd_stopped(lab):
        thread, result = _in_thread(lambda: novadisk.create_root_disk(
            nova_ctx, instance, image.id))
        time.sleep(stall)
        assert thread.is_alive(), result   # it waits, as stock Nova would
    thread.join(60)
    assert 'error' not in result, repr(result.get('error'))
    assert result['seconds'] >= stall
    assert tc._head(vms, result['value'].rbd_name, 1 << 20) == data[:1 << 20]
    novadisk.delete_instance_disks(instance)
    _assert_nothing_left(vms, image.id, instance)
    _record('OSD stopped (SIGSTOP) %d s during a clone, rados_op_timeout 0 '
            '(the default)' % stall, 'the spawn waited %.1f s, then succeeded'
            % result['seconds'])


def test_osd_stopped_during_a_population(nova_ctx, lab, images, vms,
                                         bounded):
    data = make_data(512 << 20)
    image = images.upload(tc._qcow2(images, data, 'osd'),
                          disk_format='qcow2')
    instance = novadisk.make_instance(1)
    thread, result = _in_thread(lambda: novadisk.create_root_disk(
        nova_ctx, instance, image.id))
    _wait_for(lambda: tc._leftovers(vms, image.id) or not thread.is_alive(),
              120, 'no conversion started')
    assert thread.is_alive(), result
    with _osd_stopped(lab):
        stopped = time.monotonic()
        thread.join(120)
        took = time.monotonic() - stopped
        assert not thread.is_alive(), 'the spawn hangs with the OSD stopped'
    error = result.get('error')
    assert isinstance(error, fc_exception.CephTimeout), repr(error)
    message = str(error)
    assert image.id in message and 'convert' in message, message
    assert took < 60, took
    _nova_cleans_up(instance)
    # the stalled holder's unwatch timed out: its watch object stays until
    # the next holder of the lock removes it
    _assert_nothing_left(vms, image.id, instance, pass_ctx=nova_ctx,
                         watches=False)
    _spawn_works(nova_ctx, vms, image, data)
    assert not _watch_objects(vms, image.id)
    _record('OSD stopped (SIGSTOP) during a population (512 MiB qcow2)',
            'spawn failed %.1f s after the stop: `%s`; temp image removed by '
            'the lifecycle pass after SIGCONT; next spawn works'
            % (took, message[:120]))


def test_mon_down_during_spawns(nova_ctx, lab, images, vms, bounded):
    data = make_data(4 << 20, marker=b'fastclone-mon-down')
    image = images.upload(images.write(data))
    _spawn_works(nova_ctx, vms, image, data)
    os.kill(_pid('ceph-mon.a'), signal.SIGKILL)
    made, times, failures = [], [], []
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            instance = novadisk.make_instance(1)
            start = time.monotonic()
            try:
                novadisk.create_root_disk(nova_ctx, instance, image.id)
                made.append(instance)
            except Exception as e:   # counted and shown, never hidden
                failures.append(repr(e))
            times.append(time.monotonic() - start)
    finally:
        _lab_up()
    assert not failures, failures[:3]
    assert max(times) < OP_TIMEOUT, max(times)
    for instance in made:
        _nova_cleans_up(instance)
        _assert_nothing_left(vms, image.id, instance)
    _record('mon killed (-9) for 20 s during spawns',
            '%d spawns, %d failures, max %.0f ms'
            % (len(times), len(failures), max(times) * 1000))


def _kill_glance():
    """SIGKILL Glance's uwsgi and its workers (one process group)."""
    os.killpg(os.getpgid(_pid('glance')), signal.SIGKILL)


def test_glance_killed_mid_download(nova_ctx, lab, images, vms, bounded):
    data = make_data(512 << 20)
    image = images.upload(tc._qcow2(images, data, 'glance'),
                          disk_format='qcow2', store=lab.file_store)
    instance = novadisk.make_instance(1)
    thread, result = _in_thread(lambda: novadisk.create_root_disk(
        nova_ctx, instance, image.id))

    def downloading():
        path = _workdir()
        return any(name.endswith('.download') and
                   os.path.getsize(os.path.join(path, name)) > (16 << 20)
                   for name in (os.listdir(path) if os.path.isdir(path)
                                else []))
    try:
        _wait_for(lambda: downloading() or not thread.is_alive(), 120,
                  'no download started')
        assert thread.is_alive(), result
        killed = time.monotonic()
        _kill_glance()
        thread.join(60)
        took = time.monotonic() - killed
        assert not thread.is_alive()
    finally:
        _lab_up()
    error = result.get('error')
    assert isinstance(error, fc_exception.DownloadInterrupted), repr(error)
    message = str(error)
    assert message.startswith('Glance download of image %s interrupted '
                              'after ' % image.id), message
    assert took < 30, took
    _recovered(nova_ctx, vms, image, data, instance)
    _record('Glance killed (-9) mid-download on the cache path',
            'spawn failed %.1f s after the kill: `%s`; no temp file or image; '
            'next spawn after Glance restarts works' % (took, message[:120]))


def test_host_killed_mid_population_is_taken_over(nova_ctx, lab, images,
                                                  vms, tmp_path, bounded,
                                                  caplog):
    caplog.set_level(logging.INFO, logger='fastclone_backend.cache.populate')
    data = make_data(512 << 20)
    image = images.upload(tc._qcow2(images, data, 'takeover'),
                          disk_format='qcow2')
    cmd, env = tc._spawner_cmd(
        lab, image.id, tmp_path / 'crash',
        conf='[fastclone]\ncache_lock_lease = %d\n' % LEASE)
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: tc._leftovers(vms, image.id) or
                  proc.poll() is not None, 120, 'no conversion started')
        assert proc.poll() is None, 'populator ended before converting'
    finally:
        tc._kill([proc])
    killed = time.time()
    instance, takeover, done = spawn_after_the_kill(
        nova_ctx, lab, vms, image, data, caplog, killed)
    # the waiter's notify on the dead holder's watch times out (3 s): it
    # breaks the lock then, long before the lease would have run out
    assert takeover < LEASE - 2, takeover
    novadisk.delete_instance_disks(instance)
    _assert_nothing_left(vms, image.id, pass_ctx=nova_ctx)
    _record('compute host killed (-9) mid-population, another spawn waiting '
            '(cache_lock_lease %d s)' % LEASE,
            'took over %.1f s after the kill, disk ready %.1f s after it; '
            'the dead host and its qemu-img blocklisted, its temp image '
            'removed by the spawn that took over'
            % (takeover, done))


def spawn_after_the_kill(nova_ctx, lab, vms, image, data, caplog, killed):
    """The next spawn of image, its populating host killed at `killed`.

    Asserts the disk is a clone of the new base with the image's data and
    that this host populated it once; returns (instance, seconds from the
    kill until this host populated again, seconds until the disk).
    """
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    done = time.time() - killed
    assert tc._parent(vms, disk.rbd_name) == (
        lab.vms_pool, naming.base_name(image.id), 'snap')
    assert tc._head(vms, disk.rbd_name, 1 << 20) == data[:1 << 20]
    started = [r.created for r in caplog.records
               if 'cache miss, populating' in r.getMessage() and
               image.id in r.getMessage()]
    assert len(started) == 1, started   # this host populated, once
    return instance, started[0] - killed, done


@pytest.fixture
def small_workdir(tmp_path, fastclone_conf):
    path = tmp_path / 'small'
    path.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=50m', 'tmpfs',
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, 'cannot mount a tmpfs: %s' % proc.stderr
    fastclone_conf(work_dir=str(path))
    yield str(path)
    subprocess.run(['umount', str(path)], check=True)


def test_full_workdir_falls_back_visibly(nova_ctx, lab, images, vms,
                                         small_workdir, caplog):
    data = make_data(300 << 20)
    image = images.upload(tc._qcow2(images, data, 'full'),
                          disk_format='qcow2')
    before = dict(naming.STATS)
    instance = novadisk.make_instance(1)
    start = time.monotonic()
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    took = time.monotonic() - start
    assert tc._head(vms, disk.rbd_name, 1 << 20) == data[:1 << 20]
    assert tc._parent_or_none(vms, disk.rbd_name) == ''   # Nova's full copy
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING' and image.id in r.getMessage()]
    assert any('work directory %s is full' % small_workdir in w and
               "takes Nova's own download path" in w for w in warnings), \
        warnings
    assert naming.STATS['fallback_workdir_full'] - before.get(
        'fallback_workdir_full', 0) == 1
    assert os.listdir(small_workdir) == []
    novadisk.delete_instance_disks(instance)
    _assert_nothing_left(vms, image.id, instance)
    _record('work dir full (50 MiB tmpfs, 300 MiB qcow2)',
            "WARNING `...work directory ... is full: 364 MiB needed, 50 MiB "
            "free ...; this spawn takes Nova's own download path`, counted "
            "(fallback_workdir_full); disk made in %.1f s" % took)


def test_full_pool_fails_with_the_fix(nova_ctx, lab, images, vms,
                                      rados_admin, bounded):
    data = make_data(64 << 20)
    image = images.upload(tc._qcow2(images, data, 'quota'),
                          disk_format='qcow2')
    used = json.loads(rados_admin.mon_command(json.dumps(
        {'prefix': 'osd pool get-quota', 'pool': lab.vms_pool,
         'format': 'json'}), b'')[1])['current_num_bytes']
    _set_quota(rados_admin, lab.vms_pool, used + (16 << 20))
    instance = novadisk.make_instance(1)
    try:
        start = time.monotonic()
        with pytest.raises(fc_exception.CacheUnavailable) as err:
            novadisk.create_root_disk(nova_ctx, instance, image.id)
        took = time.monotonic() - start
    finally:
        _set_quota(rados_admin, lab.vms_pool, 0)
    message = str(err.value)
    assert image.id in message and 'quota' in message, message
    assert 'ceph osd pool set-quota %s max_bytes' % lab.vms_pool in message
    assert took < 30, took
    _recovered(nova_ctx, vms, image, data, instance)
    _record('cache pool full (pool quota 16 MiB above use, 64 MiB image)',
            'spawn failed in %.1f s before writing: `%s`'
            % (took, message[:160]))


def _set_quota(admin, pool, max_bytes):
    ret, _, err = admin.mon_command(json.dumps(
        {'prefix': 'osd pool set-quota', 'pool': pool, 'field': 'max_bytes',
         'val': str(max_bytes)}), b'')
    assert ret == 0, err


# 16 symbols: random bytes that zlib shrinks to about 55% and inflates slowly
_NIBBLES = bytes(97 + (b & 15) for b in range(256))


def _costly_qcow2(images, size, name):
    """A zlib-compressed qcow2 that costs qemu-img seconds of CPU to convert.

    Inflating and writing it into RBD took qemu-img about 11 ms of CPU per
    MiB on the lab (2.8 s for 256 MiB): a CPU limit of 1 s stops it on any
    host.  An address-space limit alone does not: whether qemu-img and
    librbd fit in 1 GiB depends on how many threads and malloc arenas they
    happen to start (5 of 6 tries on the lab fitted).
    """
    data = os.urandom(size).translate(_NIBBLES)
    raw = images.write(data, name + '.raw')
    path = raw[:-4] + '.qcow2'
    subprocess.run(['qemu-img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2',
                    raw, path], check=True)
    return data, path


def test_qemu_img_over_its_limits_is_refused(nova_ctx, lab, images, vms,
                                             bounded):
    data, path = _costly_qcow2(images, 384 << 20, 'limits')
    image = images.upload(path, disk_format='qcow2')
    bounded(convert_address_space_mib=4096, convert_cpu_seconds=1)
    instance = novadisk.make_instance(1)
    disk = novadisk.root_disk(instance)
    start = time.monotonic()
    with pytest.raises(exception.ImageUnacceptable) as err:
        disk.clone(nova_ctx, image.id)
    took = time.monotonic() - start
    message = str(err.value)
    assert image.id in message, message
    assert 'convert exceeded its limits' in message, message
    assert 'CPU 1 s' in message, message
    assert 'convert_cpu_seconds' in message, message
    assert took < 60, took
    _assert_nothing_left(vms, image.id, instance)
    bounded(convert_address_space_mib=4096, convert_cpu_seconds=3600)
    _spawn_works(nova_ctx, vms, image, data)
    _record('qemu-img convert over its prlimit (1 s CPU; a compressed '
            '384 MiB qcow2)',
            'refused in %.1f s: `%s`' % (took, message[:160]))
