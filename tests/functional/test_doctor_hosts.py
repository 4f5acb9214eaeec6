"""The doctor on broken hosts: one per FAIL and WARN this machine can make.

Each case writes a nova.conf (and, for some, a Ceph user, a ceph.conf or a
cluster setting, undone afterwards), runs ``fastclone-manage doctor`` in
its own process, and asserts the check's row: its status, a word of what
it saw, its fix, and the exit status (1 on a FAIL).  Every other row is
still there (the table never goes missing).

``FASTCLONE_DOCTOR_REPORT=FILE`` writes the table "check | broken how |
doctor's row" of the cases run, for the closing note.  What this machine
cannot make (another Nova release, an image larger than the free space, a
Glance refusing the location API) is unit-tested only
(tests/unit/test_doctor.py); ``glance locations`` and ``images`` are made
on the lab by tests/functional/test_manage.py.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from fastclone_backend.cache import naming
from fastclone_backend.manage import checktable
from fastclone_backend.manage import doctor
from tests.functional.conftest import lab_environ
from tests.functional.conftest import REPO
from tests.functional.test_manage import _mgr
from tests.functional.test_manage import _mon

SECRET_UUID = '5f1c0d6e-7a51-4f0e-9b43-fa57c10e0001'
DEAD_LIBVIRT = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock'
REPORT = []


def nova_conf(lab, directory, libvirt='', sections=None, drop=()):
    """A nova.conf of a fastrbd host on the lab, with changes.

    :param libvirt: more [libvirt] lines.
    :param sections: {section: text} appended (a section may repeat).
    :param drop: (section, option) lines of the healthy host left out.
    """
    base = {
        'libvirt': [('images_type', 'fastrbd'),
                    ('images_rbd_pool', lab.vms_pool),
                    ('images_rbd_ceph_conf', lab.ceph_conf),
                    ('rbd_user', lab.nova_user),
                    ('rbd_secret_uuid', SECRET_UUID),
                    ('connection_uri', DEAD_LIBVIRT)],
        'fastclone': [('clone_allowed_pools', lab.images_pool)],
        'DEFAULT': [('instances_path', os.path.join(directory,
                                                    'instances'))],
        'glance': [('endpoint_override', lab.glance_url)],
        'oslo_concurrency': [('lock_path', os.path.join(directory,
                                                        'locks'))],
    }
    text = []
    for section, pairs in base.items():
        text.append('[%s]' % section)
        text += ['%s = %s' % (o, v) for o, v in pairs
                 if (section, o) not in drop]
        if section == 'libvirt' and libvirt:
            text.append(libvirt)
    for section, body in (sections or {}).items():
        text += ['[%s]' % section, body]
    path = os.path.join(directory, 'nova.conf')
    with open(path, 'w') as f:
        f.write('\n'.join(text) + '\n')
    return path


def run_doctor(lab, conf, env=None):
    """(rc, {check: row}, seconds) of the doctor in its own process."""
    cmd = [sys.executable, '-m', 'fastclone_backend.cmd.manage',
           '--config-file', conf, '--os-token', lab.glance_token, 'doctor',
           '-f', 'json']
    environ = lab_environ(lab)
    environ.update(env or {})
    start = time.monotonic()
    proc = subprocess.run(cmd, env=environ, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    seconds = time.monotonic() - start
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    assert [r['Check'] for r in rows] == list(checktable.NAMES), rows
    return proc.returncode, {r['Check']: r for r in rows}, seconds


@dataclasses.dataclass
class Case:
    check: str
    status: str
    how: str            # the broken host, in words
    saw: str            # a part of what the row says it saw
    fix: str            # a part of the row's fix
    libvirt: str = ''
    sections: dict = dataclasses.field(default_factory=dict)
    drop: tuple = ()
    setup: str = ''     # name of a setup function below
    env: dict = dataclasses.field(default_factory=dict)


CASES = [
    Case('images_type', doctor.FAIL, '[libvirt] images_type = qcow2',
         'images_type = qcow2', 'images_type = fastrbd',
         libvirt='images_type = qcow2'),
    Case('images_type', doctor.WARN, '[libvirt] images_type = rbd',
         'stock rbd', 'nova-compute-fastrbd', libvirt='images_type = rbd'),
    Case('images_rbd_pool', doctor.FAIL, '[libvirt] images_rbd_pool = '
         '(empty)', 'is empty', 'images_rbd_pool = vms',
         libvirt='images_rbd_pool ='),
    Case('ceph.conf', doctor.FAIL, '[libvirt] images_rbd_ceph_conf = '
         '/nonexistent/ceph.conf', 'no such file',
         'images_rbd_ceph_conf = the cluster',
         libvirt='images_rbd_ceph_conf = /nonexistent/ceph.conf'),
    Case('rbd_user', doctor.WARN, '[libvirt] rbd_user unset',
         'client.admin', 'rbd_user = nova',
         drop=(('libvirt', 'rbd_user'),)),
    Case('clone policy', doctor.WARN, '[fastclone] clone_allowed_pools = '
         '(empty)', 'is empty', 'clone_allowed_pools = ',
         sections={'fastclone': 'clone_allowed_pools ='}),
    Case('clone policy', doctor.WARN, '[fastclone] '
         'clone_require_image_id_match = False', 'added by hand',
         'clone_require_image_id_match = True',
         sections={'fastclone': 'clone_require_image_id_match = False'}),
    Case('cache settings', doctor.WARN, '[fastclone] cache_enabled = False',
         'copied in full', 'cache_enabled = True',
         sections={'fastclone': 'cache_enabled = False'}),
    Case('cache settings', doctor.WARN, '[fastclone] cache_wait_timeout = '
         '20 (lease 10)', 'shorter than 3 x', 'cache_wait_timeout = 1800',
         sections={'fastclone': 'cache_wait_timeout = 20'}),
    Case('cache settings', doctor.WARN, '[fastclone] rados_op_timeout = 3',
         'merely slow', 'rados_op_timeout = 30',
         sections={'fastclone': 'rados_op_timeout = 3'}),
    Case('convert limits', doctor.WARN, '[fastclone] '
         'convert_address_space_mib = 1024', 'librbd',
         'convert_address_space_mib = 4096',
         sections={'fastclone': 'convert_address_space_mib = 1024'}),
    Case('convert limits', doctor.WARN, '[fastclone] convert_cpu_seconds = '
         '60', 'killed halfway', 'convert_cpu_seconds = 3600',
         sections={'fastclone': 'convert_cpu_seconds = 60'}),
    Case('image_cache', doctor.WARN, '[image_cache] '
         'remove_unused_base_images = False', 'removes nothing',
         'remove_unused_base_images = True',
         sections={'image_cache': 'remove_unused_base_images = False'}),
    Case('image_cache', doctor.WARN, '[image_cache] manager_interval = -1',
         'never runs', 'manager_interval = 2400',
         sections={'image_cache': 'manager_interval = -1'}),
    Case('image_cache', doctor.WARN, '[image_cache] '
         'remove_unused_original_minimum_age_seconds = 60',
         'downloaded again', 'minimum_age_seconds = 86400',
         sections={'image_cache':
                   'remove_unused_original_minimum_age_seconds = 60'}),
    Case('glance rbd download', doctor.FAIL, '[glance] enable_rbd_download '
         '= True, no rbd_user/rbd_pool', 'rbd_user is not set',
         'enable_rbd_download = False',
         sections={'glance': 'enable_rbd_download = True'}),
    Case('service user', doctor.FAIL, '[service_user] password auth at a '
         'Keystone that does not answer', 'cannot ask Glance',
         '[service_user] auth_type',
         sections={'service_user': 'send_service_user_token = True\n'
                   'auth_type = password\n'
                   'auth_url = http://127.0.0.1:9/identity\n'
                   'username = nova\npassword = x\nproject_name = service\n'
                   'user_domain_name = Default\n'
                   'project_domain_name = Default'}),
    Case('service user', doctor.WARN, 'no [service_user], Glance needs a '
         'token (the lab)', 'without a token', '[service_user] auth_type'),
    Case('lock_path', doctor.FAIL, '[oslo_concurrency] lock_path under a '
         'regular file', 'is not a directory', 'lock_path = ',
         sections={'oslo_concurrency': 'lock_path = /etc/hostname/locks'}),
    Case('lock_path', doctor.WARN, '[oslo_concurrency] lock_path unset',
         'RequiredOptError', 'lock_path = ',
         drop=(('oslo_concurrency', 'lock_path'),)),
    Case('ceph keyring', doctor.FAIL, '[libvirt] rbd_user = a user without '
         'a keyring here', 'no key of client.fcghost',
         'ceph auth get client.fcghost', libvirt='rbd_user = fcghost'),
    Case('ceph reachable', doctor.FAIL, 'ceph.conf naming a monitor that '
         'does not answer (rbd_connect_timeout = 2)', 'cannot connect',
         'check the monitors', setup='dead_mon'),
    Case('pools', doctor.FAIL, '[libvirt] images_rbd_pool = nosuchpool',
         'nosuchpool ([libvirt] images_rbd_pool) does not exist',
         'ceph osd pool create nosuchpool',
         libvirt='images_rbd_pool = nosuchpool'),
    Case('caps osd', doctor.FAIL, 'Ceph user with profile rbd-read-only on '
         'the instances pool', 'cannot write', "ceph auth caps client.",
         setup='user_read_only_vms'),
    Case('caps mon', doctor.FAIL, "Ceph user with mon 'allow r' (no "
         'blocklist)', "'osd blocklist add' refused", "mon 'profile rbd'",
         setup='user_mon_read'),
    Case('caps mgr', doctor.WARN, 'Ceph user without mgr caps',
         "'rbd task list' refused", "mgr 'profile rbd",
         setup='user_no_mgr'),
    Case('clone format', doctor.WARN, 'require_min_compat_client luminous',
         'clone v1', 'ceph osd set-require-min-compat-client mimic',
         setup='luminous'),
    Case('trash purge schedule', doctor.WARN, 'no rbd trash purge schedule '
         'on the images pool', 'no rbd trash purge schedule on images',
         'rbd trash purge schedule add --pool images 1d',
         setup='no_schedule'),
    Case('leases', doctor.WARN, 'the lifecycle lease held by a process of '
         'this host that is gone', 'whose process is gone',
         'lock break fastclone-lifecycle', setup='stuck_lease'),
    Case('libvirt secret', doctor.FAIL, '[libvirt] rbd_secret_uuid unset',
         'rbd_secret_uuid is not set', 'rbd_secret_uuid = <uuid>',
         drop=(('libvirt', 'rbd_secret_uuid'),)),
    Case('libvirt secret', doctor.WARN, 'libvirt not reachable at '
         '[libvirt] connection_uri', 'could not ask libvirt',
         'virsh secret-get-value'),
    Case('qemu-img', doctor.FAIL, 'no qemu-img on the PATH (every other '
         'command of /usr/bin and /usr/sbin there)', 'not installed',
         'apt-get install qemu-utils', setup='no_qemu_img'),
    Case('work dir', doctor.FAIL, '[fastclone] work_dir under a regular '
         'file', 'is not a directory', 'work_dir = ',
         sections={'fastclone': 'work_dir = /etc/hostname/fastclone'}),
    Case('nova base dir', doctor.WARN, '[DEFAULT] instances_path under a '
         'regular file', 'is not a directory', 'instances_path',
         sections={'DEFAULT': 'instances_path = /etc/hostname/instances'}),
    Case('glance reachable', doctor.FAIL, '[glance] endpoint_override at a '
         'port where nothing listens', 'cannot list images',
         '[glance] api_servers',
         sections={'glance': 'endpoint_override = http://127.0.0.1:9'}),
    Case('glance stores', doctor.FAIL, '[libvirt] '
         'images_rbd_glance_store_name = nosuchstore', 'not a Glance store',
         'images_rbd_glance_store_name = <an rbd store',
         libvirt='images_rbd_glance_store_name = nosuchstore'),
    Case('glance stores', doctor.WARN, '[fastclone] clone_allowed_pools '
         'without the rbd store\'s pool', 'not in [fastclone] '
         'clone_allowed_pools', 'clone_allowed_pools = ',
         sections={'fastclone': 'clone_allowed_pools = vms'}),
]


def _case_id(case):
    return '%s-%s-%d' % (case.check.replace(' ', '_'), case.status,
                         CASES.index(case))


# ---------------------------------------------------------------- setups
class Setups:
    """Broken cluster states, each undone by the generator's end."""

    def __init__(self, lab, rados_admin, directory):
        self.lab = lab
        self.admin = rados_admin
        self.directory = directory

    def _user(self, **caps):
        name = 'fcdoc%s' % uuid.uuid4().hex[:6]
        args = []
        for service, cap in caps.items():
            args += [service, cap]
        out = _mon(self.admin, prefix='auth get-or-create',
                   entity='client.' + name, caps=args)
        path = os.path.join(os.path.dirname(self.lab.ceph_conf),
                            'ceph.client.%s.keyring' % name)
        with open(path, 'wb') as f:
            f.write(out)
        return name, path

    def _with_user(self, **caps):
        name, path = self._user(**caps)
        try:
            yield {'libvirt': 'rbd_user = %s' % name}
        finally:
            _mon(self.admin, prefix='auth del', entity='client.' + name)
            os.unlink(path)

    def user_read_only_vms(self):
        pools = 'pool=%s' % self.lab.images_pool
        yield from self._with_user(
            mon='profile rbd',
            osd='profile rbd-read-only pool=%s, profile rbd %s' % (
                self.lab.vms_pool, pools),
            mgr='profile rbd pool=%s, profile rbd %s' % (
                self.lab.vms_pool, pools))

    def user_mon_read(self):
        osd = 'profile rbd pool=%s, profile rbd pool=%s' % (
            self.lab.vms_pool, self.lab.images_pool)
        yield from self._with_user(mon='allow r', osd=osd, mgr=osd)

    def user_no_mgr(self):
        yield from self._with_user(
            mon='profile rbd', osd='profile rbd pool=%s, profile rbd '
            'pool=%s' % (self.lab.vms_pool, self.lab.images_pool))

    def dead_mon(self):
        with open(self.lab.ceph_conf) as f:
            text = f.read()
        lines = [line if not line.startswith('mon host') else
                 'mon host = [v2:127.0.0.1:9,v1:127.0.0.1:7]'
                 for line in text.splitlines()]
        path = os.path.join(self.directory, 'dead-mon.conf')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        yield {'libvirt': 'images_rbd_ceph_conf = %s\nrbd_connect_timeout '
                          '= 2' % path}

    def no_qemu_img(self):
        bindir = os.path.join(self.directory, 'bin')
        os.makedirs(bindir)
        for directory in ('/usr/sbin', '/usr/bin'):
            for name in os.listdir(directory):
                target = os.path.join(bindir, name)
                if name != 'qemu-img' and not os.path.exists(target):
                    os.symlink(os.path.join(directory, name), target)
        yield {'env': {'PATH': bindir}}

    def luminous(self):
        _mon(self.admin, prefix='osd set-require-min-compat-client',
             version='luminous')
        try:
            yield {}
        finally:
            _mon(self.admin, prefix='osd set-require-min-compat-client',
                 version='mimic')

    def no_schedule(self):
        level = {'level_spec': self.lab.images_pool + '/', 'interval': '1d'}
        _mgr(self.admin, prefix='rbd trash purge schedule remove', **level)
        try:
            yield {}
        finally:
            _mgr(self.admin, prefix='rbd trash purge schedule add', **level)

    def stuck_lease(self):
        import socket
        cookie = '%s:999999999:doctortest' % socket.gethostname()
        ioctx = self.admin.open_ioctx(self.lab.vms_pool)
        try:
            ioctx.lock_exclusive(naming.LIFECYCLE_OBJECT, 'lifecycle',
                                 cookie, desc='a dead doctor test host',
                                 duration=600)
            yield {}
        finally:
            ioctx.unlock(naming.LIFECYCLE_OBJECT, 'lifecycle', cookie)
            ioctx.close()


# ---------------------------------------------------------------- tests
@pytest.fixture(scope='module')
def report():
    yield REPORT
    path = os.environ.get('FASTCLONE_DOCTOR_REPORT')
    if path and REPORT:
        with open(path, 'w') as f:
            f.write('| check | broken how | doctor\'s row (status: saw / '
                    'fix) | rc | s |\n|---|---|---|---|---|\n')
            for line in REPORT:
                f.write(line + '\n')


def _cell(text):
    return ' '.join(text.split()).replace('|', '\\|')


def _merged(case, extra):
    extra = dict(extra)
    extra.pop('env', None)
    sections = dict(case.sections)
    libvirt = case.libvirt
    for section, body in extra.items():
        if section == 'libvirt':
            libvirt = '\n'.join(x for x in (libvirt, body) if x)
        else:
            sections[section] = body
    return libvirt, sections


@pytest.mark.parametrize('case', CASES, ids=_case_id)
def test_broken_host(case, lab, rados_admin, tmp_path, report):
    setups = Setups(lab, rados_admin, str(tmp_path))
    state = getattr(setups, case.setup)() if case.setup else iter([{}])
    extra = next(state)
    try:
        libvirt, sections = _merged(case, extra)
        conf = nova_conf(lab, str(tmp_path), libvirt, sections, case.drop)
        rc, rows, seconds = run_doctor(lab, conf,
                                       dict(case.env, **extra.get('env', {})))
    finally:
        for _ in state:     # undo the setup
            pass
    row = rows[case.check]
    report.append('| %s | %s | %s: %s / %s | %d | %.1f |' % (
        case.check, _cell(case.how), row['Status'], _cell(row['Saw']),
        _cell(row['Fix']), rc, seconds))
    assert row['Status'] == case.status, row
    assert case.saw in row['Saw'], row
    assert case.fix in row['Fix'], row
    failed = [r for r in rows.values() if r['Status'] == doctor.FAIL]
    assert rc == (1 if failed else 0), (rc, failed)
    if case.status == doctor.FAIL:
        assert rc == 1


def test_every_check_has_a_broken_host_or_is_listed_as_unit_only():
    made = {c.check for c in CASES}
    unit_only = {'nova version', 'glance locations', 'images'}
    assert made | unit_only == set(checktable.NAMES)
