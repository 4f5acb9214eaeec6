"""No unbounded wait: each stage's bound, on the real lab, in seconds.

* Glance that never answers: the image record of a spawn, the lifecycle
  pass's question (a stand-in on 127.0.0.1 accepts connections and never
  answers);
* Glance that stops in the middle of a download (a proxy to the lab's
  Glance that sends the first MiB of the file, then nothing);
* ``rbd import`` (``convert_direct_to_rbd = False``) that stops (SIGSTOP):
  killed at ``import_timeout``, its partial image removed;
* a removal that the cluster does not answer (the OSD stopped): failed at
  ``remove_timeout`` by the lifecycle pass, which keeps the image and
  removes it in a later pass.

Each prints its message and the time it took.
"""

import http.server
import os
import signal
import socket
import threading
import time

import nova.conf
import pytest
import rbd
import requests

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend.cache import populate
from fastclone_backend import cluster
from fastclone_backend import exception as fc_exception
from fastclone_backend.lifecycle import runner
from fastclone_lab import novadisk
from tests.functional.conftest import make_data
from tests.functional import test_cache as tc
from tests.functional.test_faults import _osd_stopped

MiB = 1 << 20
BOUND = 3   # seconds: every bound under test
SLACK = 5   # what the bound may be exceeded by (process, Ceph, Python)


@pytest.fixture
def glance_at():
    """Point this process's Nova at another Glance endpoint for one test."""
    conf = nova.conf.CONF

    def point(url):
        conf.set_override('endpoint_override', url, group='glance')
    yield point
    conf.clear_override('endpoint_override', group='glance')


@pytest.fixture
def silent_glance():
    """A Glance endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(64)   # never accepted: the kernel completes them
    yield 'http://127.0.0.1:%d' % server.getsockname()[1]
    server.close()


class _StallingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards GETs to the lab's Glance; an image file stops after 1 MiB."""

    upstream = ''
    release = threading.Event()

    def do_GET(self):
        resp = requests.get(self.upstream + self.path, stream=True,
                            headers={k: v for k, v in self.headers.items()
                                     if k.lower() != 'host'}, timeout=30)
        self.send_response(resp.status_code)
        for key, value in resp.headers.items():
            if key.lower() not in ('connection', 'transfer-encoding'):
                self.send_header(key, value)
        self.end_headers()
        if not self.path.endswith('/file'):
            self.wfile.write(resp.content)
            return
        self.wfile.write(next(resp.iter_content(MiB)))
        self.wfile.flush()
        self.release.wait(120)   # the rest never comes (until the end)

    def log_message(self, *args):
        pass


@pytest.fixture
def stalling_glance(lab):
    handler = type('Proxy', (_StallingProxy,), {
        'upstream': lab.glance_url, 'release': threading.Event()})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % server.server_address[1]
    handler.release.set()
    server.shutdown()
    server.server_close()


def _timed(fn):
    start = time.monotonic()
    try:
        fn()
    except Exception as e:   # the outcome under test, whatever it is
        return e, time.monotonic() - start
    raise AssertionError('no error after %.1f s'
                         % (time.monotonic() - start))


# ------------------------------------------------------------- Glance
def test_glance_that_never_answers_a_spawn(nova_ctx, lab, images, vms,
                                           fastclone_conf, glance_at,
                                           silent_glance):
    image = images.upload(images.write(make_data(MiB)))
    fastclone_conf(glance_timeout=BOUND)
    glance_at(silent_glance)
    instance = novadisk.make_instance(1)
    error, seconds = _timed(lambda: novadisk.create_root_disk(
        nova_ctx, instance, image.id))
    print('glance silent, spawn: %.2f s: %s' % (seconds, error))
    assert isinstance(error, fc_exception.GlanceTimeout), repr(error)
    assert str(error).startswith(
        'Image %s: Glance did not answer within %d s ([fastclone] '
        'glance_timeout) while reading the image record for a spawn: '
        % (image.id, BOUND))
    assert BOUND <= seconds < BOUND + SLACK
    assert not [n for n in rbd.RBD().list(vms)
                if n.startswith(instance.uuid)]


def test_glance_that_stops_mid_download(nova_ctx, lab, images, vms,
                                        fastclone_conf, glance_at,
                                        stalling_glance):
    data = make_data(8 * MiB, marker=b'fastclone-stall')
    image = images.upload(tc._qcow2(images, data, 'stall'),
                          disk_format='qcow2')
    fastclone_conf(glance_timeout=BOUND)
    glance_at(stalling_glance)
    instance = novadisk.make_instance(1)
    error, seconds = _timed(lambda: novadisk.create_root_disk(
        nova_ctx, instance, image.id))
    print('glance stalls mid-download: %.2f s: %s' % (seconds, error))
    assert isinstance(error, fc_exception.GlanceTimeout), repr(error)
    assert str(error).startswith(
        'Image %s: Glance did not answer within %d s ([fastclone] '
        'glance_timeout) while downloading it: ' % (image.id, BOUND))
    assert BOUND <= seconds < BOUND + SLACK
    assert tc._leftovers(vms, image.id) == []
    assert tc._workdir_empty()


def test_glance_that_never_answers_the_lifecycle_pass(
        nova_ctx, lab, images, vms, glance, fastclone_conf, glance_at,
        silent_glance, image_cache_conf, caplog):
    data = make_data(4 * MiB, marker=b'fastclone-pass-silent')
    image = images.upload(tc._qcow2(images, data, 'pass-silent'),
                          disk_format='qcow2')
    instance = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, instance, image.id)
    novadisk.delete_instance_disks(instance)
    glance.images.delete(image.id)     # what the pass would act on
    fastclone_conf(glance_timeout=BOUND)
    image_cache_conf(remove_unused_original_minimum_age_seconds=3600)
    glance_at(silent_glance)
    start = time.monotonic()
    report = runner.run_pass(nova_ctx, cluster.SharedRBDDriver(),
                             force=True)
    seconds = time.monotonic() - start
    said = [r.getMessage() for r in caplog.records
            if 'Glance did not answer for' in r.getMessage()]
    print('glance silent, lifecycle pass: %.2f s: %s' % (seconds, said))
    # the images are listed (in pages), each request bounded
    assert said and ('Glance did not answer within %d s ([fastclone] '
                     'glance_timeout) while listing it' % BOUND) in said[-1]
    assert 'for the lifecycle pass' in said[-1]
    asked, _of, total = said[-1].split()[5:8]
    assert asked == total    # every question timed out, none decided
    assert seconds < BOUND + SLACK    # the questions are asked in parallel
    assert naming.base_name(image.id) in rbd.RBD().list(vms)   # kept
    assert not [n for n in report['retired'] if image.id in n]


# ------------------------------------------------------------- rbd import
def _children():
    """PIDs of this process's children (the tools a population runs)."""
    me = os.getpid()
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me:
            found.append(int(pid))
    return found


def _import_of(tmp_prefix):
    """(pid, image name) of our running rbd import, or None."""
    for pid in _children():
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmd = [a.decode() for a in f.read().split(b'\0')]
        except OSError:
            continue
        names = [a for a in cmd if a.startswith(tmp_prefix)]
        if os.path.basename(cmd[0]) == 'rbd' and cmd[1:2] == ['import'] \
                and names:
            return pid, names[0]
    return None


def _stop_the_import(tmp_prefix, found):
    """SIGSTOP our rbd import once its image exists (within 60 s)."""
    deadline = time.monotonic() + 60
    running = None
    while time.monotonic() < deadline:
        running = running or _import_of(tmp_prefix)
        if running and running[1] in rbd.RBD().list(found['io']):
            os.kill(running[0], signal.SIGSTOP)
            found.update(pid=running[0], image=running[1],
                         stopped=time.monotonic())
            return
        time.sleep(0.001)


def test_rbd_import_that_stops_is_killed_and_removed(
        nova_ctx, lab, images, vms, fastclone_conf):
    data = make_data(256 * MiB, marker=b'fastclone-import-stop')
    image = images.upload(images.write(data), store=lab.file_store)
    fastclone_conf(convert_direct_to_rbd=False, import_timeout=BOUND)
    found = {'io': vms}
    watcher = threading.Thread(target=_stop_the_import, args=(
        naming.tmp_prefix(image.id), found), daemon=True)
    watcher.start()
    instance = novadisk.make_instance(1)
    error, seconds = _timed(lambda: novadisk.create_root_disk(
        nova_ctx, instance, image.id))
    watcher.join()
    print('rbd import stopped: %.2f s (stopped %s): %s' % (
        seconds, 'after its image existed' if 'stopped' in found else
        'never', error))
    assert 'stopped' in found, 'the import was not caught running'
    assert isinstance(error, fc_exception.ToolTimeout), repr(error)
    assert str(error).startswith(
        'Image %s: rbd import did not finish within %d s ([fastclone] '
        'import_timeout) while writing import into pool %s: killed after '
        % (image.id, BOUND, lab.vms_pool))
    assert found['image'] not in rbd.RBD().list(vms)   # partial: removed
    assert tc._leftovers(vms, image.id) == []
    assert found['image'] not in basestore.BaseStore(
        cluster.SharedRBDDriver()).ledger()
    with pytest.raises(ProcessLookupError):
        os.kill(found['pid'], 0)
    # the removal waits for the killed client's watch to expire (30 s)
    assert BOUND <= seconds < BOUND + populate.REMOVE_WAIT + SLACK


# ------------------------------------------------------------- removal
def test_removal_the_cluster_does_not_answer_is_bounded(
        nova_ctx, lab, images, vms, glance, fastclone_conf,
        image_cache_conf, caplog):
    data = make_data(4 * MiB, marker=b'fastclone-remove-stall')
    image = images.upload(tc._qcow2(images, data, 'remove-stall'),
                          disk_format='qcow2')
    instance = novadisk.make_instance(1)
    novadisk.create_root_disk(nova_ctx, instance, image.id)
    novadisk.delete_instance_disks(instance)
    glance.images.delete(image.id)
    fastclone_conf(remove_timeout=BOUND)
    remove_once = basestore.BaseStore._remove_once
    timing = {}

    def stalled(self, name):
        if image.id not in name:
            return remove_once(self, name)   # others: not this test's
        with _osd_stopped(lab):
            start = time.monotonic()
            try:
                return remove_once(self, name)
            finally:
                timing['seconds'] = time.monotonic() - start
    from unittest import mock
    with mock.patch.object(basestore.BaseStore, '_remove_once',
                           autospec=True, side_effect=stalled):
        report = runner.run_pass(nova_ctx, cluster.SharedRBDDriver(),
                                 force=True)
    (retired,) = [n for n in report['retired'] if image.id in n]
    said = [r.getMessage() for r in caplog.records
            if 'remove_timeout' in r.getMessage() and retired in
            r.getMessage()]
    print('removal stalled: %.2f s: %s' % (timing['seconds'], said))
    assert retired in report['kept']
    assert said and said[-1].startswith(
        'lifecycle pass: Image %s: Ceph did not answer within %d s '
        '([fastclone] remove_timeout) while removing %s/%s: '
        % (image.id, BOUND, lab.vms_pool, retired))
    assert BOUND <= timing['seconds'] < BOUND + SLACK
    report = runner.run_pass(nova_ctx, cluster.SharedRBDDriver(),
                             force=True)
    assert retired in report['removed']     # the next pass, OSD back
    assert tc._leftovers(vms, image.id) == []
