"""Waiting on another host's population, on the real lab: woken, not
polling; and a dead holder's population taken over in seconds.

Other "hosts" are separate processes (tests/functional/wakehost.py,
benchmarks/worker.py), with the default ``[fastclone]`` options
(``cache_poll_interval`` 1 s, ``cache_holder_timeout`` 2 s).
"""

import json
import logging
import subprocess
import sys
import time

import rbd

from fastclone_backend.cache import naming
from fastclone_backend import liveness
from fastclone_lab import novadisk
from tests.functional.conftest import lab_environ
from tests.functional.conftest import make_data
from tests.functional.conftest import REPO
from tests.functional import test_cache as tc
from tests.functional import test_faults as tf

WAKE_BOUND = 0.2   # seconds from the publication to the end of the wait
POLL_INTERVAL = 1.0   # [fastclone] cache_poll_interval's default
RUNS = 3


def _host(lab, image_id, workdir, *args):
    cmd = [sys.executable, '-m', 'tests.functional.wakehost', '--workdir',
           str(workdir), '--image', image_id] + list(args)
    return subprocess.Popen(cmd, env=lab_environ(lab), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _result(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _one_run(lab, images, vms, tmp_path, tag, *populator_args):
    """A populates (publishing once B waits), B waits: their records."""
    data = make_data(16 << 20, marker=b'fastclone-wake-' + tag.encode())
    image = images.upload(tc._qcow2(images, data, tag), disk_format='qcow2')
    procs = [_host(lab, image.id, tmp_path / (tag + '-a'),
                   '--hold-publish', '1', *populator_args)]
    try:
        tf._wait_for(lambda: tc._leftovers(vms, image.id) or
                     procs[0].poll() is not None, 120,
                     'the populator never started')
        procs.append(_host(lab, image.id, tmp_path / (tag + '-b')))
        a, b = [_result(proc) for proc in procs]
    finally:
        tc._kill(procs)
    for disk in (a['disk'], b['disk']):
        assert tc._parent(vms, disk) == (lab.vms_pool,
                                         naming.base_name(image.id), 'snap')
        assert tc._head(vms, disk, 1 << 20) == data[:1 << 20]
    tc._remove(vms, [a['disk'], b['disk']])
    assert 'published' in a and 'published' not in b
    return a, b


def test_a_waiting_spawn_is_woken_by_the_publication(lab, images, vms,
                                                     tmp_path):
    waited, finished = [], []
    for run in range(RUNS):
        a, b = _one_run(lab, images, vms, tmp_path, 'wake%d' % run)
        assert b['waits'][-1] is True, b['waits']   # woken, not polled
        waited.append(b['ensured'] - a['published'])
        finished.append(b['finished'] - a['published'])
    print('\nwake-up: the waiter had the base %s s after the publication, '
          'its disk %s s after it' % (_seconds(waited), _seconds(finished)))
    # the wait ends within the bound each time: the notify, not the poll
    assert max(waited) < WAKE_BOUND, waited
    # the disk follows: Nova's clone and resize, which on the lab's two
    # cores take 0.1 to 0.2 s while the populating host makes its own
    # disk; never near a poll interval
    assert max(finished) < POLL_INTERVAL / 2, finished


def _seconds(values) -> str:
    return ', '.join('%.3f' % value for value in values)


def test_a_lost_notify_is_made_up_for_by_the_poll(lab, images, vms,
                                                  tmp_path):
    a, b = _one_run(lab, images, vms, tmp_path, 'lost', '--lose-notify')
    latency = b['finished'] - a['published']
    print('\nlost notify: waiter finished %.3f s after the publication '
          '(polls every 1 s)' % latency)
    assert b['waits'][-1] is False, b['waits']   # the poll found it
    assert latency < 1.0 + 0.5, latency


# ----------------------------------------------------------- kill -9
def _holder(vms, image_id):
    return liveness.parse_holder(vms.get_xattr(naming.lock_object(image_id),
                                               liveness.HOLDER_XATTR))


def _writers(vms, image_id):
    addrs = []
    for name in tc._leftovers(vms, image_id):
        try:
            with rbd.Image(vms, name, read_only=True) as img:
                found = img.list_lockers() or {}
        except rbd.ImageNotFound:   # published or removed since the listing
            continue
        addrs += [addr for _, _, addr in found.get('lockers', [])]
    return addrs


def _blocklist(lab):
    out = tf._ceph(lab, 'osd', 'blocklist', 'ls', '--format', 'json')
    assert out.returncode == 0, out.stderr
    # the addresses, then (Pacific) the ranges: two JSON documents
    entries, _ = json.JSONDecoder().raw_decode(out.stdout.strip())
    return {entry['addr'] for entry in entries}


def test_a_host_killed_mid_population_is_fenced_and_taken_over(
        nova_ctx, lab, images, vms, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='fastclone_backend')
    data = make_data(512 << 20)
    image = images.upload(tc._qcow2(images, data, 'fence'),
                          disk_format='qcow2')
    cmd, env = tc._spawner_cmd(lab, image.id, tmp_path / 'crash')
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        tf._wait_for(lambda: _writers(vms, image.id) or
                     proc.poll() is not None, 120, 'no conversion started')
        assert proc.poll() is None, 'populator ended before converting'
        holder, writers = _holder(vms, image.id), _writers(vms, image.id)
    finally:
        tc._kill([proc])   # the host and its qemu-img
    killed = time.time()
    # fenced, broken, cleaned up: then this host populated, once
    instance, takeover, done = tf.spawn_after_the_kill(
        nova_ctx, lab, vms, image, data, caplog, killed)
    own = done - takeover               # its own population and clone
    print('\nkill -9: populating again %.2f s after the kill (fenced and '
          'cleaned up), disk ready %.2f s after it (own steps %.2f s)'
          % (takeover, done, own))
    assert takeover < 5, takeover
    fenced = _blocklist(lab)
    assert holder['addr'] in fenced, (holder, fenced)
    assert set(writers) <= fenced, (writers, fenced)
    # nothing of the dead population left, without a lifecycle pass
    names = rbd.RBD().list(vms)
    assert not [n for n in names if n.startswith(
        naming.tmp_prefix(image.id))], names
    assert not tf._watch_objects(vms, image.id)
    novadisk.delete_instance_disks(instance)
    tf._assert_lock_free(vms, image.id)
