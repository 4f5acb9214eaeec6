"""fastclone-manage and Nova's precache on the real lab.

``doctor`` passes everything on the lab as tools/lab sets it up, then each
variation of the lab makes one check WARN or FAIL with its fix; every
variation is undone in a finally, so the lab stays usable.  The commands
run as a separate process, as an operator runs them.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import rbd

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend.manage import doctor
from fastclone_lab import novadisk
from tests.functional.conftest import lab_environ
from tests.functional.conftest import make_data
from tests.functional.conftest import REPO
from tests.functional import test_cache as tc

LAB_DIR = os.environ.get('FASTCLONE_LAB_DIR', os.path.join(REPO, '.lab'))
GLANCE_DIR = os.path.join(LAB_DIR, 'glance')
TEST_IMAGE_PREFIX = 'fastclone-test-'   # conftest.Images names them so


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# the guests' secret, and the libvirt the doctor asks for it: none runs here
LAB_LIBVIRT = ('[libvirt]\nrbd_secret_uuid = 5f1c0d6e-7a51-4f0e-9b43-'
               'fa57c10e0001\nconnection_uri = qemu+unix:///system?socket='
               '/nonexistent/libvirt-sock\n')


def _nova_conf(lab, directory, user=None, glance_url=None, extra=''):
    return novadisk.write_nova_conf(novadisk.Settings(
        ceph_conf=lab.ceph_conf, rbd_user=user or lab.nova_user,
        pool=lab.vms_pool, glance_url=glance_url or lab.glance_url,
        glance_token=lab.glance_token, workdir=str(directory),
        extra=LAB_LIBVIRT + extra))


def manage(lab, conf, *args):
    """(rc, stdout, stderr) of fastclone-manage, as its own process."""
    cmd = [sys.executable, '-m', 'fastclone_backend.cmd.manage',
           '--config-file', conf, '--os-token', lab.glance_token] + list(args)
    proc = subprocess.run(cmd, env=lab_environ(lab), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def manage_json(lab, conf, *args, rc=0):
    got, out, err = manage(lab, conf, *(list(args) + ['-f', 'json']))
    assert got == rc, 'rc %d: %s\n%s' % (got, out[-2000:], err[-3000:])
    return json.loads(out)


def run_doctor(lab, conf, rc=None):
    got, out, err = manage(lab, conf, 'doctor', '-f', 'json')
    rows = json.loads(out)
    if rc is not None:
        assert got == rc, (out, err[-3000:])
    return {r['Check']: r for r in rows}, got


def _qcow2(images, data):
    raw = images.write(data, 'img.raw')
    path = raw[:-4] + '.qcow2'
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True)
    return path


def _mon(client, **cmd):
    ret, out, err = client.mon_command(json.dumps(cmd), b'', timeout=30)
    assert ret == 0, (cmd, err)
    return out


def _mgr(client, **cmd):
    ret, out, err = client.mgr_command(json.dumps(cmd), b'', timeout=30)
    assert ret == 0, (cmd, err)
    return out


@pytest.fixture(scope='module')
def conf(lab, tmp_path_factory):
    return _nova_conf(lab, tmp_path_factory.mktemp('manage'))


@pytest.fixture(scope='module')
def raw_image(images, glance, lab):
    """The lab as set up, with one raw image.

    Test images are gone first: this session's earlier modules', and those
    a killed session left.
    """
    images.cleanup()
    images.ids.clear()
    for image in list(glance.images.list()):
        if image.name and image.name.startswith(TEST_IMAGE_PREFIX):
            glance.images.delete(image.id)
    return images.upload(images.write(make_data(4 << 20), 'doctor.raw'))


@pytest.fixture
def cephx_user(lab, rados_admin):
    """Make a Ceph user with given caps (its keyring beside ceph.conf)."""
    made = []

    def make(**caps):
        name = 'fctest%s' % uuid.uuid4().hex[:6]
        args = []
        for service, cap in caps.items():
            args += [service, cap]
        out = _mon(rados_admin, prefix='auth get-or-create',
                   entity='client.' + name, caps=args)
        path = os.path.join(os.path.dirname(lab.ceph_conf),
                            'ceph.client.%s.keyring' % name)
        with open(path, 'wb') as f:
            f.write(out)
        made.append((name, path))
        return name
    yield make
    for name, path in made:
        _mon(rados_admin, prefix='auth del', entity='client.' + name)
        os.unlink(path)


# What the lab cannot give a healthy compute host: no libvirtd runs to hold
# the guests' secret, and its Glance has no Keystone for a [service_user].
LAB_LIMITS = {'libvirt secret': doctor.WARN, 'service user': doctor.WARN}


def test_doctor_all_pass_on_the_lab(lab, conf, raw_image):
    checks, rc = run_doctor(lab, conf, rc=0)
    bad = {k: v['Status'] for k, v in checks.items()
           if v['Status'] != doctor.PASS}
    assert bad == LAB_LIMITS, checks
    for name in ('ceph reachable', 'caps mgr', 'caps mon', 'caps osd',
                 'clone format', 'trash purge schedule', 'qemu-img',
                 'glance reachable', 'glance locations', 'images',
                 'nova version', 'leases'):
        assert name in checks
    assert checks['images']['Saw'].startswith('1 clone directly, 0 through '
                                              'the cache')


def test_doctor_warns_of_a_qcow2_image(lab, conf, raw_image, images, glance):
    image = images.upload(_qcow2(images, make_data(4 << 20)),
                          disk_format='qcow2')
    try:
        checks, rc = run_doctor(lab, conf, rc=0)
        assert checks['images']['Status'] == doctor.WARN
        assert '1 through the cache' in checks['images']['Saw']
        assert 'format: %s' % image.id in checks['images']['Saw']
        assert checks['images']['Fix'] == 'format: ' + doctor.FIXES['format']
        got = manage_json(lab, conf, 'doctor', '--image', image.id)
        assert got[0]['Status'] == doctor.WARN
        assert got[0]['Saw'].startswith('cache: ')
        fields = manage_json(lab, conf, 'explain', image.id)
        assert fields['path'] == 'cache'
        assert 'disk_format is qcow2' in fields['refused locations']
    finally:
        glance.images.delete(image.id)


def test_doctor_fails_without_write_on_the_cache_pool(
        lab, raw_image, cephx_user, tmp_path):
    user = cephx_user(mon='profile rbd',
                      osd='profile rbd-read-only pool=vms, profile rbd '
                          'pool=images',
                      mgr='profile rbd pool=vms, profile rbd pool=images')
    checks, rc = run_doctor(lab, _nova_conf(lab, tmp_path, user=user), rc=1)
    check = checks['caps osd']
    assert check['Status'] == doctor.FAIL
    assert 'cannot write instances+cache pool vms' in check['Saw']
    assert 'images (Glance)' not in check['Saw']   # reading it works
    assert check['Fix'] == (
        "ceph auth caps client.%s mon 'profile rbd' osd 'profile rbd "
        "pool=images, profile rbd pool=vms' mgr 'profile rbd pool=images, "
        "profile rbd pool=vms'" % user)


def test_doctor_warns_without_mgr_caps(lab, raw_image, cephx_user,
                                       tmp_path):
    user = cephx_user(mon='profile rbd',
                      osd='profile rbd pool=vms, profile rbd pool=images')
    checks, rc = run_doctor(lab, _nova_conf(lab, tmp_path, user=user), rc=0)
    check = checks['caps mgr']
    assert check['Status'] == doctor.WARN
    assert "mgr 'profile rbd pool=images, profile rbd pool=vms'" in \
        check['Fix']
    assert checks['caps osd']['Status'] == doctor.PASS


def test_doctor_fails_without_the_blocklist_cap(lab, raw_image,
                                                cephx_user, tmp_path):
    user = cephx_user(mon='allow r',
                      osd='profile rbd pool=vms, profile rbd pool=images',
                      mgr='profile rbd pool=vms, profile rbd pool=images')
    checks, rc = run_doctor(lab, _nova_conf(lab, tmp_path, user=user), rc=1)
    check = checks['caps mon']
    assert check['Status'] == doctor.FAIL
    assert 'access denied' in check['Saw'], check
    assert check['Fix'].startswith(
        "ceph auth caps client.%s mon 'profile rbd'" % user)


def test_doctor_warns_of_clone_v1(lab, conf, raw_image, rados_admin):
    _mon(rados_admin, prefix='osd set-require-min-compat-client',
         version='luminous')
    try:
        checks, rc = run_doctor(lab, conf, rc=0)
    finally:
        _mon(rados_admin, prefix='osd set-require-min-compat-client',
             version='mimic')
    check = checks['clone format']
    assert check['Status'] == doctor.WARN
    assert 'clone v1' in check['Saw'] and 'luminous' in check['Saw']
    assert check['Fix'] == 'ceph osd set-require-min-compat-client mimic'


def test_doctor_warns_of_a_location_in_another_cluster(
        lab, conf, raw_image, glance, rados_admin):
    """A second location with a foreign fsid (the first one still clones).

    It names a throwaway RBD image: Glance checks that a location it adds
    exists, and deleting the location deletes the data it names.
    """
    other = str(uuid.uuid4())
    with rados_admin.open_ioctx(lab.images_pool) as ioctx:
        rbd.RBD().create(ioctx, other, 1 << 20)
        with rbd.Image(ioctx, other) as img:
            img.create_snap('snap')
    url = 'rbd://%s/%s/%s/snap' % (uuid.uuid4(), lab.images_pool, other)
    glance.images.add_location(raw_image.id, url, {'store': lab.rbd_store})
    try:
        checks, rc = run_doctor(lab, conf, rc=0)
        got = manage_json(lab, conf, 'doctor', '--image', raw_image.id)
    finally:
        glance.images.delete_locations(raw_image.id, {url})
        with rados_admin.open_ioctx(lab.images_pool) as ioctx:
            if other in rbd.RBD().list(ioctx):
                tc._destroy(ioctx, other)
    check = checks['images']
    assert check['Status'] == doctor.WARN, check
    assert 'other cluster: %s' % raw_image.id in check['Saw']
    assert check['Fix'] == 'other cluster: ' + doctor.FIXES['other cluster']
    rows = {r['Check']: r for r in got}
    assert rows['image %s' % raw_image.id]['Status'] == doctor.PASS
    assert rows['location %s' % url]['Saw'].startswith('other cluster: ')


def test_doctor_fails_when_glance_is_unreachable(lab, raw_image, tmp_path):
    dead = 'http://127.0.0.1:%d' % _free_port()
    checks, rc = run_doctor(lab, _nova_conf(lab, tmp_path, glance_url=dead),
                            rc=1)
    check = checks['glance reachable']
    assert check['Status'] == doctor.FAIL
    assert dead in check['Saw']
    assert check['Fix'].startswith('[glance] api_servers')


def test_doctor_warns_without_a_trash_purge_schedule(
        lab, conf, raw_image, rados_admin):
    level = {'level_spec': lab.images_pool + '/', 'interval': '1d'}
    _mgr(rados_admin, prefix='rbd trash purge schedule remove', **level)
    try:
        checks, rc = run_doctor(lab, conf, rc=0)
    finally:
        _mgr(rados_admin, prefix='rbd trash purge schedule add', **level)
    check = checks['trash purge schedule']
    assert check['Status'] == doctor.WARN
    assert check['Fix'] == 'rbd trash purge schedule add --pool %s 1d' % (
        lab.images_pool)


def _glance_pid():
    path = os.path.join(GLANCE_DIR, 'run', 'glance-uwsgi.pid')
    with open(path) as f:
        pid = int(f.read().strip())
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        assert os.path.join(GLANCE_DIR, 'etc', 'glance-uwsgi.ini').encode() \
            in f.read(), 'pid %d is not this lab\'s Glance' % pid
    return pid


def _stop_glance():
    pid = _glance_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while os.path.exists('/proc/%d' % pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _start_glance(lab):
    env = dict(os.environ, OS_GLANCE_CONFIG_DIR=os.path.join(GLANCE_DIR,
                                                             'etc'))
    subprocess.Popen(
        [os.path.join(LAB_DIR, 'venv-glance', 'bin', 'uwsgi'), '--ini',
         os.path.join(GLANCE_DIR, 'etc', 'glance-uwsgi.ini')],
        cwd=GLANCE_DIR, env=env, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    import urllib.request
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(lab.glance_url + '/healthcheck', timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_doctor_fails_without_direct_url_or_location_api(
        lab, raw_image, tmp_path):
    path = os.path.join(GLANCE_DIR, 'etc', 'glance-api.conf')
    with open(path) as f:
        text = f.read()
    assert 'show_image_direct_url = True' in text
    _stop_glance()
    try:
        with open(path, 'w') as f:
            f.write(text.replace('show_image_direct_url = True',
                                 'show_image_direct_url = False').replace(
                'show_multiple_locations = True',
                'show_multiple_locations = False'))
        _start_glance(lab)
        conf = _nova_conf(lab, tmp_path,
                          extra='[fastclone]\nuse_location_api = False\n')
        checks, rc = run_doctor(lab, conf, rc=1)
    finally:
        _stop_glance()
        subprocess.run([os.path.join(REPO, 'tools', 'lab'), 'up'],
                       check=True, capture_output=True, timeout=300)
    check = checks['glance locations']
    assert check['Status'] == doctor.FAIL
    assert 'use_location_api = False' in check['Saw']
    assert check['Fix'].startswith('show_image_direct_url = True in '
                                   'glance-api.conf')
    assert checks['images']['Status'] == doctor.WARN  # all through cache


def _glance_file_gets(image_id):
    """Downloads of the image Glance served, from its uwsgi log."""
    path = os.path.join(GLANCE_DIR, 'log', 'uwsgi.log')
    with open(path) as f:
        return f.read().count('GET /v2/images/%s/file' % image_id)


def _remove_base(image_id):
    store = basestore.BaseStore(cluster.SharedRBDDriver())
    for name in store.names(naming.base_name(image_id)):
        retired = store.retire(name, 'test cleanup')
        if retired:
            store.remove(retired)


def _parent(ioctx, name):
    with rbd.Image(ioctx, name, read_only=True) as img:
        return img.parent_info()


def test_prefetch_then_spawn_is_a_cache_hit(nova_ctx, lab, conf, images,
                                            vms, glance):
    data = make_data(8 << 20, marker=b'fastclone-prefetch')
    image = images.upload(_qcow2(images, data), disk_format='qcow2')
    rows = manage_json(lab, conf, 'cache', 'prefetch', image.id)
    assert [(r['Image'], r['Result']) for r in rows] == [(image.id,
                                                          'cached')]
    downloads = _glance_file_gets(image.id)
    assert downloads == 1
    before = dict(naming.STATS)
    instance = novadisk.make_instance(1)
    disk = novadisk.create_root_disk(nova_ctx, instance, image.id)
    try:
        assert _parent(vms, disk.rbd_name) == (
            lab.vms_pool, naming.base_name(image.id), 'snap')
        assert naming.STATS['hits'] - before.get('hits', 0) == 1
        assert naming.STATS['downloads'] - before.get('downloads', 0) == 0
        assert _glance_file_gets(image.id) == downloads
        listed = manage_json(lab, conf, 'cache', 'list')
        mine = [r for r in listed if r['Image'] == image.id]
        assert [(r['State'], r['Children']) for r in mine] == [('ready', 1)]
        chain = manage_json(lab, conf, 'chain', 'show', instance.uuid)
        assert [(r['Level'], r['Image']) for r in chain] == [
            (0, '%s/%s' % (lab.vms_pool, disk.rbd_name)),
            (1, '%s/%s' % (lab.vms_pool, naming.base_name(image.id)))]
        shown = manage_json(lab, conf, 'cache', 'show', image.id)
        assert (shown['state'], shown['children']) == (
            'ready', '%s/%s' % (lab.vms_pool, disk.rbd_name))
        assert 'os_hash_value=%s' % image.os_hash_value in \
            shown['fingerprint']
        per_process = manage_json(lab, conf, 'cache', 'stats',
                                  '--per-process')
        assert {r['Process'] for r in per_process} - {'all'}
        got, out, err = manage(lab, conf, 'cache', 'evict', image.id)
        assert got == 1 and 'has 1 clones' in err, (out, err)
        stats = manage_json(lab, conf, 'cache', 'stats')
        counts = {r['Name']: r['Value'] for r in stats
                  if r['Kind'] == 'count'}
        assert counts['populations'] >= 1 and counts['downloads'] >= 1
        queued = manage_json(lab, conf, 'flatten', instance.uuid)
        assert queued['image'] == '%s/%s' % (lab.vms_pool, disk.rbd_name)
        assert queued['task']
        deadline = time.monotonic() + 120
        while len(manage_json(lab, conf, 'chain', 'show',
                              instance.uuid)) > 1:
            assert time.monotonic() < deadline, 'not flattened in 120 s'
            time.sleep(2)
        evicted = manage_json(lab, conf, 'cache', 'evict', image.id)
        assert evicted['action'] == 'removed'   # no clone left
        assert naming.base_name(image.id) not in rbd.RBD().list(vms)
    finally:
        novadisk.delete_instance_disks(instance)
        _remove_base(image.id)
        glance.images.delete(image.id)


def test_precache_through_nova_compute_manager(nova_ctx, lab, images, vms,
                                               glance, raw_image, tmp_path):
    """ComputeManager.cache_images -> LibvirtDriver.cache_image (hooked).

    In its own process (tests/functional/precachehost.py), as a compute
    host: Nova's test fixtures monkey-patch the process that imports them.
    """
    image = images.upload(_qcow2(images, make_data(4 << 20)),
                          disk_format='qcow2')
    missing = str(uuid.uuid4())
    try:
        proc = subprocess.run(
            [sys.executable, '-m', 'tests.functional.precachehost',
             '--workdir', str(tmp_path), image.id, raw_image.id, missing],
            env=lab_environ(lab), cwd=REPO, capture_output=True, text=True,
            timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert (got['driver'], got['hooked']) == ('LibvirtDriver', True)
        assert got['first'] == {image.id: 'cached',
                                raw_image.id: 'existing',
                                missing: 'error'}
        assert got['again'] == {image.id: 'existing',
                                raw_image.id: 'existing',
                                missing: 'error'}
        assert naming.base_name(image.id) in rbd.RBD().list(vms)
        assert got['base_dir'] in (None, [])   # nothing in the local _base
    finally:
        _remove_base(image.id)
        glance.images.delete(image.id)


def test_list_commands_json_and_trash_purge(lab, conf, vms, raw_image):
    image_id = str(uuid.uuid4())
    name = naming.retired_name(image_id, 'trashtest')
    rbd.RBD().create(vms, name, 1 << 20)
    with rbd.Image(vms, name) as image:   # ours: marked as a population does
        for key, value in naming.mark(image_id, image.id()).items():
            image.metadata_set(key, value)
    rbd.RBD().trash_move(vms, name, 0)
    try:
        for args in (('cache', 'list'), ('cache', 'stats'),
                     ('cache', 'prune', '--dry-run'), ('trash', 'list'),
                     ('chain', 'show', raw_image.id),
                     ('trash', 'purge', '--dry-run'), ('doctor',)):
            rows = manage_json(lab, conf, *args)
            assert isinstance(rows, list), args
            assert all(isinstance(r, dict) for r in rows), args
        listed = manage_json(lab, conf, 'trash', 'list')
        mine = [r for r in listed if r['Name'] == name]
        assert [(r['Pool'], r['Decision']) for r in mine] == [
            (lab.vms_pool, 'purge')]
        planned = manage_json(lab, conf, 'cache', 'prune', '--dry-run')
        assert ['purge', '%s/%s' % (lab.vms_pool, name),
                'a cache image without clones'] in [
            [r['Action'], r['Target'], r['Why']] for r in planned]
        assert name in [e['name'] for e in rbd.RBD().trash_list(vms)]
        purged = manage_json(lab, conf, 'trash', 'purge')
        assert [r['Result'] for r in purged if r['Name'] == name] == [
            'purged']
        assert name not in [e['name'] for e in rbd.RBD().trash_list(vms)]
        ran = manage_json(lab, conf, 'cache', 'prune')
        assert all(set(r) == {'Action', 'Target', 'Why'} for r in ran), ran
    finally:
        for entry in rbd.RBD().trash_list(vms):
            if entry['name'] == name:
                rbd.RBD().trash_remove(vms, entry['id'], force=True)
