#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""What the doctor reads: thin I/O around :mod:`.doctor`.

One probe per check of :mod:`.checktable` (nova.conf and the host here,
the cluster in :mod:`cephprobe`, Glance and the images in
:mod:`glanceprobe`), each reading plain facts for one verdict function.
:func:`run_all` runs them in the table's order, each guarded: a probe
that raises is its check's FAIL row, one that needs what an earlier check
found broken (:class:`Unavailable`) is a SKIP row.  Every wait is
bounded: Ceph calls by the client's op timeouts, Glance calls by
``[glance] timeout``, commands by a subprocess timeout.
"""

import os
import shutil
import subprocess
import tempfile

import nova.conf

from fastclone_backend.cache import workdir
from fastclone_backend import hook
from fastclone_backend.manage import cephprobe
from fastclone_backend.manage import checktable
from fastclone_backend.manage import doctor
from fastclone_backend.manage import facts as facts_mod
from fastclone_backend.manage import glanceprobe
from fastclone_backend.spawn import cachedbase

CONF = nova.conf.CONF
CMD_TIMEOUT = facts_mod.CMD_TIMEOUT
DEFAULT_CEPH_CONFS = ('$CEPH_CONF', '/etc/ceph/ceph.conf', '~/.ceph/config',
                      'ceph.conf')


# ---------------------------------------------------------------- files
def file_state(path: str) -> str:
    """'ok' if path is a readable file, else why not."""
    try:
        with open(path, 'rb') as f:
            f.read(1)
    except FileNotFoundError:
        return 'missing'
    except IsADirectoryError:
        return 'not a file'
    except OSError as e:
        return 'unreadable' if isinstance(e, PermissionError) else str(e)
    return 'ok'


def default_ceph_conf() -> str:
    """The ceph.conf librados reads when none is named ('' if none)."""
    for candidate in DEFAULT_CEPH_CONFS:
        path = os.path.expanduser(os.path.expandvars(candidate))
        if '$' not in path and os.path.isfile(path):
            return path
    return ''


def _ancestor(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def dir_state(path: str) -> str:
    """'ok' if a file can be written in path (made if need be), else why.

    Writes and removes one temporary file, in path or in its nearest
    existing ancestor.
    """
    if not path:
        return 'not set'
    found = _ancestor(path)
    if not os.path.isdir(found):
        return '%s is not a directory' % found
    try:
        with tempfile.TemporaryFile(dir=found, prefix='.fastclone-doctor-'):
            pass
    except OSError as e:
        return 'cannot write in %s (%s: %s)' % (found, type(e).__name__,
                                                e.strerror or e)
    return 'ok'


def free_bytes(path: str) -> int:
    st = os.statvfs(_ancestor(path))
    return st.f_bavail * st.f_frsize


# ---------------------------------------------------------------- nova.conf
def images_type(facts):
    return doctor.check_images_type(hook._state['requested'] or
                                    CONF.libvirt.images_type)


def images_rbd_pool(facts):
    return doctor.check_images_rbd_pool(CONF.libvirt.images_rbd_pool)


def ceph_conf(facts):
    path = CONF.libvirt.images_rbd_ceph_conf
    return doctor.check_ceph_conf(path, file_state(path) if path else '',
                                  '' if path else default_ceph_conf())


def rbd_user(facts):
    return doctor.check_rbd_user(CONF.libvirt.rbd_user)


def clone_policy(facts):
    fc = CONF.fastclone
    return doctor.check_clone_policy(list(fc.clone_allowed_pools),
                                     fc.clone_require_image_id_match)


def cache_settings(facts):
    fc = CONF.fastclone
    return doctor.check_cache_settings(fc.cache_enabled,
                                       fc.cache_wait_timeout,
                                       fc.cache_lock_lease,
                                       fc.rados_op_timeout)


def convert_limits(facts):
    fc = CONF.fastclone
    return doctor.check_convert_limits(fc.convert_address_space_mib,
                                       fc.convert_cpu_seconds,
                                       fc.convert_direct_to_rbd)


def image_cache(facts):
    ic, fc = CONF.image_cache, CONF.fastclone
    return doctor.check_image_cache(
        ic.remove_unused_base_images, ic.manager_interval,
        ic.remove_unused_original_minimum_age_seconds,
        bool(fc.cache_max_bytes or fc.cache_max_count))


def glance_rbd_download(facts):
    gl = CONF.glance
    if gl.rbd_ceph_conf:
        state = file_state(gl.rbd_ceph_conf)
    else:
        state = 'ok' if default_ceph_conf() else 'unset, and no default ' \
            'ceph.conf'
    return doctor.check_glance_rbd_download(gl.enable_rbd_download,
                                            gl.rbd_user, gl.rbd_pool, state)


def lock_path(facts):
    path = CONF.oslo_concurrency.lock_path
    return doctor.check_lock_path(path, dir_state(path) if path else '')


# ---------------------------------------------------------------- host
def libvirt_secret(facts):
    user, uuid = CONF.libvirt.rbd_user, CONF.libvirt.rbd_secret_uuid
    if not user and not uuid:
        return doctor.check_libvirt_secret('', '', '', '', '')
    seen, value = '', ''
    if uuid:
        seen, value = virsh_secret(uuid)
    key = facts.key() if uuid and not seen else ''
    return doctor.check_libvirt_secret(user or 'admin', uuid, seen, value,
                                       key)


def libvirt_uri() -> str:
    return CONF.libvirt.connection_uri or 'qemu:///system'


def virsh_secret(uuid: str):
    """('', value) or (what was seen instead, '')."""
    if shutil.which('virsh') is None:
        return 'virsh is not installed (libvirt-clients)', ''
    cmd = ['virsh', '-c', libvirt_uri(), 'secret-get-value', uuid]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 'virsh -c %s did not answer in %d s' % (libvirt_uri(),
                                                       CMD_TIMEOUT), ''
    if proc.returncode == 0:
        return '', proc.stdout.strip()
    err = ' '.join(proc.stderr.split())
    if 'no secret with matching uuid' in err.lower() or \
            'secret not found' in err.lower():
        return 'no secret', ''
    return 'virsh -c %s: %s' % (libvirt_uri(), err or 'rc %d'
                                % proc.returncode), ''


def qemu_img(facts):
    if shutil.which('qemu-img') is None:
        return doctor.check_qemu_img('', (), True)
    version = subprocess.run(['qemu-img', '--version'], capture_output=True,
                             text=True, timeout=CMD_TIMEOUT).stdout
    helptext = subprocess.run(['qemu-img', '--help'], capture_output=True,
                              text=True, timeout=CMD_TIMEOUT).stdout
    formats = ()
    for line in helptext.splitlines():
        if line.startswith('Supported formats:'):
            formats = line.split(':', 1)[1].split()
    return doctor.check_qemu_img(version.splitlines()[0].strip(), formats,
                                 CONF.fastclone.convert_direct_to_rbd)


def work_dir(facts):
    path = workdir.where(CONF)
    state = dir_state(path)
    if state != 'ok':
        return doctor.check_work_dir(path, state, 0, 0, '')
    needed, largest = facts.largest_population()
    return doctor.check_work_dir(path, state, free_bytes(path), needed,
                                 largest)


def nova_base_dir(facts):
    path = cachedbase.nova_base_dir()
    return doctor.check_nova_base_dir(path, dir_state(path))


def nova_check(facts=None):
    from nova import version
    return doctor.check_nova_version(version.version_string())


# ---------------------------------------------------------------- all
PROBES = {
    'images_type': images_type,
    'images_rbd_pool': images_rbd_pool,
    'ceph.conf': ceph_conf,
    'rbd_user': rbd_user,
    'clone policy': clone_policy,
    'cache settings': cache_settings,
    'convert limits': convert_limits,
    'image_cache': image_cache,
    'glance rbd download': glance_rbd_download,
    'service user': glanceprobe.service_user,
    'lock_path': lock_path,
    'ceph keyring': cephprobe.keyring,
    'ceph reachable': cephprobe.reachable,
    'pools': cephprobe.pools,
    'caps osd': cephprobe.osd_caps,
    'caps mon': cephprobe.blocklist,
    'caps mgr': cephprobe.mgr_caps,
    'clone format': cephprobe.clone_format,
    'trash purge schedule': cephprobe.trash_schedule,
    'leases': cephprobe.lease_check,
    'libvirt secret': libvirt_secret,
    'qemu-img': qemu_img,
    'work dir': work_dir,
    'nova base dir': nova_base_dir,
    'glance reachable': glanceprobe.reachable,
    'glance stores': glanceprobe.stores,
    'glance locations': glanceprobe.locations,
    'images': glanceprobe.images,
    'nova version': nova_check,
}
assert tuple(PROBES) == checktable.NAMES, 'PROBES and CHECKS differ'


def run_one(name: str, facts) -> doctor.Verdict:
    """The row of one check, whatever its probe does."""
    try:
        verdict = PROBES[name](facts)
    except facts_mod.Unavailable as e:
        return doctor.skipped(name, e.check)
    except Exception as e:
        return doctor.raised(name, e)
    if not isinstance(verdict, doctor.Verdict) or verdict.check != name:
        return doctor.raised(name, TypeError('the probe returned %r'
                                             % (verdict,)))
    return verdict


def run_all(context) -> list:
    """One verdict per check of the table, in its order."""
    facts = facts_mod.Facts(context)
    try:
        facts_mod.bound_glance_waits()
        return [run_one(name, facts) for name in checktable.NAMES]
    finally:
        facts.close()
