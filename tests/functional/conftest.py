"""Fixtures for functional tests on a real Ceph + Glance.

Endpoints and credentials come from the environment, as ``tools/lab env``
prints them, so the same tests can run against another deployment (a
devstack with Ceph) by exporting those variables.  When none is set, the
project's lab is started (and stopped again at the end if this session
started it; FASTCLONE_LAB_KEEP=1 keeps it).  A lab that cannot be reached
fails the tests: they never skip.
"""

import dataclasses
import os
import shlex
import subprocess
import time
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LAB = os.path.join(REPO, 'tools', 'lab')


@dataclasses.dataclass(frozen=True)
class Lab:
    ceph_conf: str
    fsid: str
    admin_user: str
    nova_user: str
    glance_user: str
    images_pool: str
    vms_pool: str
    glance_url: str
    glance_token: str
    rbd_store: str
    file_store: str


ENV_NAMES = {'ceph_conf': 'FASTCLONE_CEPH_CONF', 'fsid': 'FASTCLONE_CEPH_FSID',
             'admin_user': 'FASTCLONE_CEPH_ADMIN_USER',
             'nova_user': 'FASTCLONE_NOVA_RBD_USER',
             'glance_user': 'FASTCLONE_GLANCE_RBD_USER',
             'images_pool': 'FASTCLONE_IMAGES_POOL',
             'vms_pool': 'FASTCLONE_VMS_POOL',
             'glance_url': 'FASTCLONE_GLANCE_URL',
             'glance_token': 'FASTCLONE_GLANCE_TOKEN',
             'rbd_store': 'FASTCLONE_GLANCE_RBD_STORE',
             'file_store': 'FASTCLONE_GLANCE_FILE_STORE'}


def lab_environ(lab) -> dict:
    """The environment for a subprocess ("another host") on this lab.

    This process's environment plus the lab's FASTCLONE_* variables; a
    host that dies of a signal (an abort in librados) prints every thread's
    Python stack first (PYTHONFAULTHANDLER).
    """
    env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONFAULTHANDLER='1')
    env.update({ENV_NAMES[key]: value for key, value in vars(lab).items()})
    return env


def _parse_env(text):
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == 'export':
            key, _, value = words[1].partition('=')
            env[key] = value
    return env


def _lab_from(env):
    return Lab(**{key: env[name] for key, name in ENV_NAMES.items()})


def _run(*args):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        pytest.fail('%s failed (rc %d):\n%s\n%s' % (
            ' '.join(args), proc.returncode, proc.stdout[-3000:],
            proc.stderr[-3000:]), pytrace=False)
    return proc.stdout


def _check_reachable(lab):
    import glanceclient
    import rados
    client = rados.Rados(conffile=lab.ceph_conf, rados_id=lab.admin_user)
    try:
        client.connect(timeout=15)
        got = client.get_fsid()
    finally:
        client.shutdown()
    assert got == lab.fsid, 'cluster fsid %s, expected %s' % (got, lab.fsid)
    gc = glanceclient.Client('2', endpoint=lab.glance_url,
                             token=lab.glance_token)
    stores = [s['id'] for s in gc.images.get_stores_info()['stores']]
    assert lab.rbd_store in stores and lab.file_store in stores, stores


def _lab_running():
    return subprocess.run([LAB, 'status'], capture_output=True).returncode == 0


@pytest.fixture(scope='session')
def lab():
    """The lab named by FASTCLONE_* variables, else this project's.

    This session stops the project's lab at the end only if it started it
    (FASTCLONE_LAB_KEEP=1 keeps it), also when starting it failed halfway.
    """
    stop = False
    try:
        if 'FASTCLONE_CEPH_CONF' in os.environ:
            env = os.environ
        else:
            stop = not _lab_running() and \
                os.environ.get('FASTCLONE_LAB_KEEP') != '1'
            _run(LAB, 'up')
            env = _parse_env(_run(LAB, 'env'))
        info = _lab_from(env)
        try:
            _check_reachable(info)
        except Exception as e:
            pytest.fail('the lab cannot be reached (%s: %s); see tools/lab '
                        'status' % (type(e).__name__, e), pytrace=False)
        yield info
    finally:
        if stop:
            _run(LAB, 'down')


@pytest.fixture(scope='session')
def glance(lab):
    import glanceclient
    return glanceclient.Client('2', endpoint=lab.glance_url,
                               token=lab.glance_token)


class Images:
    """Uploads test images to Glance; deletes them all at the end."""

    def __init__(self, glance, lab, tmp_path_factory):
        self.glance = glance
        self.lab = lab
        self.tmp = tmp_path_factory.mktemp('images')
        self.ids = []

    def write(self, data: bytes, name='img.raw'):
        path = self.tmp / ('%s-%s' % (uuid.uuid4().hex[:8], name))
        path.write_bytes(data)
        return str(path)

    def upload(self, path, disk_format='raw', store=None, name=None):
        image = self.glance.images.create(
            name=name or 'fastclone-test-%s' % os.path.basename(path),
            disk_format=disk_format, container_format='bare')
        self.ids.append(image.id)
        with open(path, 'rb') as f:
            self.glance.images.upload(image.id, f,
                                      backend=store or self.lab.rbd_store)
        return self.wait_active(image.id)

    def wait_active(self, image_id, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            image = self.glance.images.get(image_id)
            if image.status == 'active':
                return image
            if image.status in ('killed', 'deleted') or \
                    time.monotonic() > deadline:
                raise AssertionError('image %s is %s' % (image_id,
                                                         image.status))
            time.sleep(0.2)

    def cleanup(self):
        for image_id in self.ids:
            try:
                self.glance.images.delete(image_id)
            except Exception:  # already gone, or busy: not this test's point
                pass


@pytest.fixture(scope='session')
def images(glance, lab, tmp_path_factory):
    helper = Images(glance, lab, tmp_path_factory)
    yield helper
    helper.cleanup()


def _connected(lab, user):
    import rados
    client = rados.Rados(conffile=lab.ceph_conf, rados_id=user)
    client.connect(timeout=15)
    return client


@pytest.fixture(scope='session')
def rados_nova(lab):
    client = _connected(lab, lab.nova_user)
    yield client
    client.shutdown()


@pytest.fixture(scope='session')
def rados_admin(lab):
    client = _connected(lab, lab.admin_user)
    yield client
    client.shutdown()


@pytest.fixture(scope='session')
def vms(lab, rados_nova):
    """The instances (and cache) pool, as the compute hosts' user."""
    ioctx = rados_nova.open_ioctx(lab.vms_pool)
    yield ioctx
    ioctx.close()


@pytest.fixture(scope='session')
def nova_ctx(lab, tmp_path_factory):
    """This process parses a nova.conf with fastrbd, as a compute host."""
    import nova.conf

    from fastclone_backend import cluster
    from fastclone_backend import hook
    from fastclone_lab import novadisk
    settings = novadisk.Settings(
        ceph_conf=lab.ceph_conf, rbd_user=lab.nova_user, pool=lab.vms_pool,
        glance_url=lab.glance_url, glance_token=lab.glance_token,
        workdir=str(tmp_path_factory.mktemp('nova')),
        images_pool=lab.images_pool)
    ctx = novadisk.start(settings)
    yield ctx
    hook.uninstall()
    cluster.reset_all()
    nova.conf.CONF.reset()


def _conf_setter(group):
    import nova.conf
    conf = nova.conf.CONF
    names = []

    def set_(**kwargs):
        for name, value in kwargs.items():
            conf.set_override(name, value, group=group)
            names.append(name)
    yield set_
    for name in names:
        conf.clear_override(name, group=group)


@pytest.fixture
def fastclone_conf():
    """Set [fastclone] options in this process for one test."""
    yield from _conf_setter('fastclone')


@pytest.fixture
def image_cache_conf():
    """Set [image_cache] options in this process for one test."""
    yield from _conf_setter('image_cache')


def replant(ioctx, image_id: str, path: str) -> None:
    """Replace the bytes behind a Glance image's snapshot, as an admin.

    What glance_store's rbd driver leaves (image, snapshot 'snap',
    protected) with other bytes: a legacy image Glance 33 would refuse.
    """
    import rbd
    with open(path, 'rb') as f:
        data = f.read()
    with rbd.Image(ioctx, image_id) as img:
        img.unprotect_snap('snap')
        img.remove_snap('snap')
        img.resize(len(data))
        img.write(data, 0)
        img.create_snap('snap')
        img.protect_snap('snap')


def make_data(size: int, marker: bytes = b'') -> bytes:
    """size random bytes, marker (if any) at offset 1 MiB."""
    data = bytearray(os.urandom(size))
    if marker:
        data[1 << 20:(1 << 20) + len(marker)] = marker
    return bytes(data)


# ---------------------------------------------------------------- cloud tier
# tests/functional/cloud.py: the cloud tests (marker 'cloud') run last, as
# bringing the tier up moves Glance to Keystone auth; their results and
# times go to FASTCLONE_CLOUD_REPORT.
_CLOUD_IDS = set()


def pytest_collection_modifyitems(session, config, items):
    from tests.functional import cloud
    tier = [i for i in items if cloud.is_cloud_item(i)]
    if os.environ.get('FASTCLONE_CLOUD_SMOKE') == '1':   # CI's smoke set
        dropped = [i for i in tier if not cloud.is_smoke_item(i)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        tier = [i for i in tier if cloud.is_smoke_item(i)]
    _CLOUD_IDS.update(i.nodeid for i in tier)
    items[:] = [i for i in items if not cloud.is_cloud_item(i)] + tier


def pytest_runtest_logreport(report):
    if report.nodeid in _CLOUD_IDS:
        from tests.functional import cloud
        cloud.record(report, _CLOUD_IDS)


def pytest_sessionfinish(session, exitstatus):
    if _CLOUD_IDS:
        from tests.functional import cloud
        cloud.write_report()
