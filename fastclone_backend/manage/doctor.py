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

"""The doctor's verdicts: pure functions over plain facts.  No I/O.

Each ``check_*`` function takes what :mod:`fastclone_backend.manage.probes`
read (strings, numbers, dicts) and returns a :class:`Verdict`: PASS, WARN
or FAIL, what it saw, and the exact fix (the config line or the ``ceph``
command).  The checks, what each catches and its fix, are the table of
:mod:`.checktable`; ``fastclone-manage doctor`` prints one row for each
and exits non-zero on any FAIL.  A check whose probe raised is a FAIL row
with what was raised (:func:`raised`); one whose facts could not be read
because an earlier check failed is a SKIP row naming that check.
"""

import dataclasses

from fastclone_backend.manage import checktable
from fastclone_backend import releases

PASS = 'PASS'
WARN = 'WARN'
FAIL = 'FAIL'
SKIP = 'SKIP'


@dataclasses.dataclass(frozen=True)
class Verdict:
    check: str
    status: str
    saw: str
    fix: str = ''


def _v(check, status, saw, fix=''):
    if check not in checktable.BY_NAME:
        raise KeyError('no check %r in checktable.CHECKS' % check)
    return Verdict(check=check, status=status, saw=saw, fix=fix)


def worst(verdicts) -> str:
    statuses = {v.status for v in verdicts}
    for status in (FAIL, WARN):
        if status in statuses:
            return status
    return PASS


def raised(check: str, error: BaseException) -> Verdict:
    """The row of a check whose probe raised: FAIL, with what it raised."""
    return _v(check, FAIL, 'the check raised %s: %s' % (
        type(error).__name__, error), checktable.BY_NAME[check].fix)


def skipped(check: str, because: str) -> Verdict:
    """The row of a check that needs what an earlier check found broken."""
    return _v(check, SKIP, 'not checked: %s failed' % because,
              'fix %s first' % because)


def _joined(check: str, problems: list, good: str) -> Verdict:
    """problems: [(status, saw, fix)]; the worst status, every saw and fix."""
    if not problems:
        return _v(check, PASS, good)
    status = FAIL if any(p[0] == FAIL for p in problems) else WARN
    return _v(check, status, '; '.join(p[1] for p in problems),
              '; '.join(dict.fromkeys(p[2] for p in problems)))


def caps_command(user: str, pools: list) -> str:
    """The ``ceph auth caps`` line that gives user what it needs."""
    osd = ', '.join('profile rbd pool=%s' % p for p in pools)
    return ("ceph auth caps client.%s mon 'profile rbd' osd '%s' "
            "mgr '%s'" % (user, osd, osd))


# ---------------------------------------------------------------- nova.conf
def check_images_type(requested: str) -> Verdict:
    name = 'images_type'
    saw = '[libvirt] images_type = %s' % requested
    if requested == 'fastrbd':
        return _v(name, PASS, saw)
    fix = ('[libvirt] images_type = fastrbd, and run nova-compute as '
           'nova-compute-fastrbd')
    if requested == 'rbd':
        return _v(name, WARN, saw + ' (stock rbd unless nova-compute runs '
                  'as nova-compute-fastrbd)', fix)
    return _v(name, FAIL, saw, fix)


def check_images_rbd_pool(value: str) -> Verdict:
    name = 'images_rbd_pool'
    if value:
        return _v(name, PASS, '[libvirt] images_rbd_pool = %s' % value)
    return _v(name, FAIL, '[libvirt] images_rbd_pool is empty',
              '[libvirt] images_rbd_pool = vms')


def check_ceph_conf(path: str, state: str, default_found: str) -> Verdict:
    """state: 'ok', 'missing', 'unreadable', 'not a file' (path set).

    :param default_found: with path unset, the file librados reads then
        ('' if none).
    """
    name = 'ceph.conf'
    fix = ('[libvirt] images_rbd_ceph_conf = the cluster\'s ceph.conf, '
           'readable by the user nova-compute runs as')
    if not path:
        if default_found:
            return _v(name, PASS, '[libvirt] images_rbd_ceph_conf unset: '
                      'librados reads %s' % default_found)
        return _v(name, FAIL, '[libvirt] images_rbd_ceph_conf unset and no '
                  'ceph.conf where librados looks ($CEPH_CONF, '
                  '/etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf)', fix)
    saw = '[libvirt] images_rbd_ceph_conf = %s' % path
    if state == 'ok':
        return _v(name, PASS, saw)
    return _v(name, FAIL, '%s: %s' % (saw, {
        'missing': 'no such file',
        'unreadable': 'not readable by this user',
    }.get(state, state)), fix)


def check_rbd_user(user: str) -> Verdict:
    name = 'rbd_user'
    if user:
        return _v(name, PASS, '[libvirt] rbd_user = %s' % user)
    return _v(name, WARN, '[libvirt] rbd_user is not set (librados '
              'connects as client.admin)', '[libvirt] rbd_user = nova')


def check_clone_policy(pools: list, id_match: bool) -> Verdict:
    problems = []
    if not pools:
        problems.append((WARN, '[fastclone] clone_allowed_pools is empty: '
                         'no image is cloned where Glance keeps it, every '
                         'one goes through the cache',
                         '[fastclone] clone_allowed_pools = <Glance\'s '
                         'rbd_store_pool>'))
    if not id_match:
        problems.append((WARN, '[fastclone] clone_require_image_id_match = '
                         'False: a location added by hand can clone any '
                         'image of %s' % (', '.join(pools) or 'the pools'),
                         '[fastclone] clone_require_image_id_match = True'))
    return _joined('clone policy', problems, 'clones from %s, image id '
                   'match required' % ', '.join(pools))


def check_cache_settings(enabled: bool, wait: int, lease: int,
                         op_timeout: int) -> Verdict:
    problems = []
    if not enabled:
        problems.append((WARN, '[fastclone] cache_enabled = False: images '
                         'that cannot be cloned in place are downloaded on '
                         'every host and copied in full per instance',
                         '[fastclone] cache_enabled = True'))
    if wait < 3 * lease:
        problems.append((WARN, '[fastclone] cache_wait_timeout = %d is '
                         'shorter than 3 x cache_lock_lease (%d): a spawn '
                         'waiting on a dead host gives up before it can take '
                         'the population over' % (wait, lease),
                         '[fastclone] cache_wait_timeout = 1800'))
    if 0 < op_timeout < 10:
        problems.append((WARN, '[fastclone] rados_op_timeout = %d: Ceph '
                         'operations that are merely slow fail spawns'
                         % op_timeout, '[fastclone] rados_op_timeout = 30 '
                         '(or 0)'))
    return _joined('cache settings', problems, 'cache %s, wait %d s, lease '
                   '%d s, rados_op_timeout %s' % (
                       'on' if enabled else 'off', wait, lease,
                       op_timeout or '0 (none)'))


def check_convert_limits(address_mib: int, cpu_seconds: int,
                         direct_to_rbd: bool) -> Verdict:
    problems = []
    if direct_to_rbd and address_mib < 2048:
        problems.append((WARN, '[fastclone] convert_address_space_mib = %d '
                         'with convert_direct_to_rbd: qemu-img with librbd '
                         'needs about 1.5 GiB of address space'
                         % address_mib,
                         '[fastclone] convert_address_space_mib = 4096'))
    if cpu_seconds < 300:
        problems.append((WARN, '[fastclone] convert_cpu_seconds = %d: the '
                         'conversion of a large image is killed halfway'
                         % cpu_seconds,
                         '[fastclone] convert_cpu_seconds = 3600'))
    return _joined('convert limits', problems, 'address space %d MiB, cpu '
                   '%d s' % (address_mib, cpu_seconds))


def check_image_cache(remove_unused: bool, interval: int, min_age: int,
                      limits: bool) -> Verdict:
    """[image_cache], which drives the lifecycle pass.

    :param limits: whether cache_max_bytes or cache_max_count is set.
    """
    problems = []
    if not remove_unused:
        problems.append((WARN, '[image_cache] remove_unused_base_images = '
                         'False: the lifecycle pass removes nothing (bases '
                         'of unused and deleted images and their trash '
                         'stay%s)' % (', cache_max_bytes/count are not '
                                      'enforced' if limits else ''),
                         '[image_cache] remove_unused_base_images = True'))
    if interval < 0:
        problems.append((WARN, '[image_cache] manager_interval = %d: this '
                         'host never runs the lifecycle pass (another host '
                         'must)' % interval,
                         '[image_cache] manager_interval = 2400 (on at '
                         'least one host)'))
    effective = max(interval, 60)
    if remove_unused and interval >= 0 and min_age < effective:
        problems.append((WARN, '[image_cache] remove_unused_original_'
                         'minimum_age_seconds = %d is shorter than the pass '
                         'interval (%d s): a base unused for one pass is '
                         'removed and downloaded again at the next boot'
                         % (min_age, effective),
                         '[image_cache] remove_unused_original_minimum_age_'
                         'seconds = 86400'))
    return _joined('image_cache', problems, 'pass every %d s, unused bases '
                   'removed after %d s' % (effective, min_age))


def check_glance_rbd_download(enabled: bool, user: str, pool: str,
                              conf_state: str) -> Verdict:
    """conf_state: 'ok' or why [glance] rbd_ceph_conf cannot be read."""
    name = 'glance rbd download'
    if not enabled:
        return _v(name, PASS, '[glance] enable_rbd_download = False '
                  '(downloads over HTTP)')
    missing = [o for o, val in (('rbd_user', user), ('rbd_pool', pool))
               if not val]
    problems = ['[glance] %s is not set' % o for o in missing]
    if conf_state != 'ok':
        problems.append('[glance] rbd_ceph_conf: %s' % conf_state)
    if not problems:
        return _v(name, PASS, '[glance] enable_rbd_download as client.%s '
                  'from pool %s' % (user, pool))
    return _v(name, FAIL, '[glance] enable_rbd_download = True but %s: '
              'every download into the cache fails' % '; '.join(problems),
              '[glance] rbd_user, rbd_pool (Glance\'s pool) and a readable '
              'rbd_ceph_conf, or enable_rbd_download = False')


def check_service_user(configured: bool, send_token: bool, who: str,
                       error) -> Verdict:
    """The context the lifecycle pass asks Glance with.

    :param configured: whether [service_user] has an auth_type.
    :param who: the user it asked as, for the PASS line.
    :param error: what listing one image with it raised, or None.
    """
    name = 'service user'
    fix = checktable.BY_NAME[name].fix
    if error is not None:
        return _v(name, FAIL if configured else WARN, 'the lifecycle pass '
                  'cannot ask Glance as %s: %s; it learns no image is '
                  'deleted, so their bases and trash stay' % (who, error),
                  fix)
    if configured and not send_token:
        return _v(name, WARN, 'Glance answers %s, but [service_user] '
                  'send_service_user_token = False: a spawn that outlasts '
                  'the user\'s token fails' % who,
                  '[service_user] send_service_user_token = True')
    return _v(name, PASS, 'Glance answers the lifecycle pass as %s' % who)


def check_lock_path(path: str, state: str) -> Verdict:
    """state: 'ok' or why the directory cannot be used."""
    name = 'lock_path'
    fix = ('[oslo_concurrency] lock_path = /var/lib/nova/tmp (a directory '
           'writable by nova-compute)')
    if not path:
        return _v(name, WARN, '[oslo_concurrency] lock_path is not set: '
                  'Nova\'s external locks raise RequiredOptError', fix)
    if state == 'ok':
        return _v(name, PASS, '[oslo_concurrency] lock_path = %s' % path)
    return _v(name, FAIL, '[oslo_concurrency] lock_path = %s: %s: Nova\'s '
              'external locks fail' % (path, state), fix)


# ---------------------------------------------------------------- Ceph
def check_keyring(user: str, where: str, found: dict) -> Verdict:
    """found: {path: 'ok' | why it does not serve}; where: the setting.

    A key given inline (``key``) is passed as {'key option': 'ok'}.
    """
    name = 'ceph keyring'
    good = [p for p, state in found.items() if state == 'ok']
    if good:
        return _v(name, PASS, 'key of client.%s in %s' % (user, good[0]))
    tried = '; '.join('%s: %s' % (p, state)
                      for p, state in found.items()) or where
    return _v(name, FAIL, 'no key of client.%s (%s)' % (user, tried),
              'ceph auth get client.%s -o /etc/ceph/ceph.client.%s.keyring '
              'on a monitor host, copy it here, readable by the user '
              'nova-compute runs as' % (user, user))


def check_connect(user: str, conffile: str, error, seconds: float,
                  timeout: int) -> Verdict:
    name = 'ceph reachable'
    if error is None:
        return _v(name, PASS, 'connected as client.%s in %.2f s (timeout '
                  '%d s)' % (user, seconds, timeout))
    return _v(name, FAIL, 'cannot connect as client.%s with %s within %d '
              's: %s' % (user, conffile, timeout, error),
              'check the monitors in %s, the keyring of client.%s '
              '(/etc/ceph/ceph.client.%s.keyring) and [libvirt] '
              'rbd_connect_timeout' % (conffile, user, user))


def check_pools(wanted: dict, existing) -> Verdict:
    """wanted: {pool: the option naming it}; existing: the cluster's."""
    name = 'pools'
    missing = {p: opt for p, opt in wanted.items() if p not in existing}
    if not missing:
        return _v(name, PASS, ', '.join(sorted(wanted)))
    saw = '; '.join('%s (%s) does not exist' % (p, opt)
                    for p, opt in sorted(missing.items()))
    fix = ' && '.join('ceph osd pool create %s && rbd pool init %s' % (p, p)
                      for p in sorted(missing))
    return _v(name, FAIL, saw, fix + ', or correct the option')


def check_osd_caps(user: str, results: list, all_pools: list) -> Verdict:
    """results: [(pool, role, mode, error or None)], mode read or write."""
    bad = [r for r in results if r[3] is not None]
    if not bad:
        return _v('caps osd', PASS, '; '.join(
            '%s %s (%s)' % (mode, pool, role)
            for pool, role, mode, _e in results) + ' as client.%s' % user)
    return _v('caps osd', FAIL, '; '.join(
        'client.%s cannot %s %s pool %s: %s' % (user, mode, role, pool, e)
        for pool, role, mode, e in bad), caps_command(user, all_pools))


def check_mgr(user: str, error, pools: list) -> Verdict:
    name = 'caps mgr'
    if error is None:
        return _v(name, PASS, "'rbd task list' answered for client.%s"
                  % user)
    return _v(name, WARN, "'rbd task list' refused for client.%s (%s): "
              "clones are not flattened in the background" % (user, error),
              caps_command(user, pools))


def check_blocklist_cap(user: str, error, pools: list) -> Verdict:
    """May the user blocklist a dead client?

    error: None if a probe ``osd blocklist add`` (of a documentation
    address, for one second) was accepted, else why it was refused.
    """
    name = 'caps mon'
    if error is None:
        return _v(name, PASS, "client.%s may blocklist a dead client ('osd "
                  "blocklist add' accepted)" % user)
    return _v(name, FAIL, "'osd blocklist add' refused for client.%s (%s): "
              'a guest restarted after its host died cannot break the dead '
              'client\'s exclusive lock on its disk; a population whose host '
              'died is taken over unfenced, its temp image removed only by '
              "the lifecycle pass; mon 'profile rbd' or mon "
              '\'allow command "osd blocklist"\' allows it'
              % (user, error), caps_command(user, pools))


def check_clone_format(setting: str, min_compat: str, fmt: int) -> Verdict:
    name = 'clone format'
    saw = ('clone v%d (rbd_default_clone_format %s, '
           'require_min_compat_client %s)' % (fmt, setting, min_compat))
    if fmt == 2:
        return _v(name, PASS, saw)
    if setting == '1':
        fix = 'rbd_default_clone_format = auto (or 2) in ceph.conf [client]'
    else:
        fix = 'ceph osd set-require-min-compat-client mimic'
    return _v(name, WARN, saw + ': snapshots must be protected, a base '
              'with clones cannot be hidden in the trash', fix)


def check_trash_schedule(schedules: dict) -> Verdict:
    """schedules: {pool: [interval, ...]} of 'rbd trash purge schedule'."""
    name = 'trash purge schedule'
    bare = sorted(p for p, found in schedules.items() if not found)
    if not bare:
        return _v(name, PASS, '; '.join(
            '%s: every %s' % (p, ', '.join(s))
            for p, s in sorted(schedules.items())))
    return _v(name, WARN, 'no rbd trash purge schedule on %s: expired '
              'trash entries the lifecycle pass does not own stay'
              % ', '.join(bare),
              ' && '.join('rbd trash purge schedule add --pool %s 1d' % p
                          for p in bare))


def check_leases(leases: list, now: float) -> Verdict:
    """leases: dicts object, cookie, expires (0: never), dead (bool)."""
    name = 'leases'
    stuck = [x for x in leases if x['dead'] and
             (not x['expires'] or x['expires'] > now)]
    expired = [x for x in leases if x['expires'] and x['expires'] <= now]
    if not stuck:
        return _v(name, PASS, '%d held, %d expired (the next holder breaks '
                  'them)' % (len(leases) - len(expired), len(expired)))
    return _v(name, WARN, '; '.join(
        '%s held by %s, whose process is gone or no longer answers' % (
            x['object'], x['cookie'])
        for x in stuck), ' && '.join(
        'rados -p %s lock break %s %s client.%s --lock-cookie %s' % (
            x['pool'], x['object'], x['lock'], x['client'], x['cookie'])
        for x in stuck) + ' (or wait for the lease to run out)')


# ---------------------------------------------------------------- host
def check_libvirt_secret(user: str, uuid: str, seen: str, value: str,
                         key: str) -> Verdict:
    """Whether libvirt holds client.<user>'s key under rbd_secret_uuid.

    :param seen: '' when libvirt answered with value, else what was seen
        (virsh missing, libvirtd down, no such secret: 'no secret').
    :param key: the key of the user from its keyring ('' if unknown).
    """
    name = 'libvirt secret'
    fix = ('virsh secret-define a ceph secret with uuid %s, then virsh '
           'secret-set-value %s --file <file holding the key of client.%s> '
           '--plain' % (uuid or '<uuid>', uuid or '<uuid>', user))
    if not uuid:
        return _v(name, FAIL, '[libvirt] rbd_secret_uuid is not set: QEMU '
                  'has no key for client.%s, guests cannot open their '
                  'disks' % user, '[libvirt] rbd_secret_uuid = <uuid>, and '
                  + fix)
    if seen == 'no secret':
        return _v(name, FAIL, 'libvirt has no secret %s: guests cannot '
                  'open their disks' % uuid, fix)
    if seen:
        return _v(name, WARN, 'could not ask libvirt for secret %s: %s'
                  % (uuid, seen), 'run the doctor where libvirtd runs, or '
                  'check by hand: virsh secret-get-value %s' % uuid)
    if key and value.strip() != key:
        return _v(name, FAIL, 'libvirt secret %s does not hold the key of '
                  'client.%s: Ceph refuses the guests\' disks'
                  % (uuid, user), fix)
    return _v(name, PASS, 'libvirt secret %s holds the key of client.%s%s'
              % (uuid, user, '' if key else ' (key not compared: no '
                 'keyring read)'))


def _gib(n: int) -> str:
    return '%.1f GiB' % (n / float(1 << 30))


def check_work_dir(path: str, state: str, free: int, needed: int,
                   largest: str) -> Verdict:
    """Room for a population in the work directory.

    :param state: 'ok' or why path cannot be used.
    :param needed: bytes the largest active image (id largest) needs.
    """
    name = 'work dir'
    fix = ('[fastclone] work_dir = a writable directory with room for the '
           'largest image')
    if state != 'ok':
        return _v(name, FAIL, '%s: %s: populations of the cache fail'
                  % (path, state), fix)
    saw = '%s: %s free' % (path, _gib(free))
    if needed > free:
        return _v(name, FAIL, '%s, image %s needs %s: its population fails'
                  % (saw, largest, _gib(needed)), fix)
    return _v(name, PASS, saw + (', the largest image needs %s'
                                 % _gib(needed) if largest else ''))


def check_nova_base_dir(path: str, state: str) -> Verdict:
    name = 'nova base dir'
    if state == 'ok':
        return _v(name, PASS, '%s is writable (Nova\'s download path, when '
                  'the cache is unavailable)' % path)
    return _v(name, WARN, '%s: %s: when the cache is unavailable, spawns '
              'fail instead of taking Nova\'s download path' % (path, state),
              'a writable [DEFAULT] instances_path')


def check_qemu_img(version: str, formats, direct_to_rbd: bool) -> Verdict:
    name = 'qemu-img'
    if not version:
        return _v(name, FAIL, 'qemu-img is not installed',
                  'apt-get install qemu-utils')
    if 'rbd' in formats:
        return _v(name, PASS, '%s with the rbd driver' % version)
    saw = '%s without the rbd driver' % version
    if direct_to_rbd:
        return _v(name, FAIL, saw + ' ([fastclone] convert_direct_to_rbd '
                  '= True)', 'apt-get install qemu-block-extra, or '
                  '[fastclone] convert_direct_to_rbd = False')
    return _v(name, PASS, saw + ' (converts to a local file first)')


def check_nova_version(version: str) -> Verdict:
    """The Nova release, and what fastclone-backend says of it."""
    name = 'nova version'
    found = releases.support(version)
    saw = 'nova %s: %s' % (version, found.level)
    if found.supported:
        return _v(name, PASS, saw)
    return _v(name, FAIL, saw, 'run fastclone-backend with Nova %d to %d '
              '(%s to %s); see doc/source/releases.rst'
              % (releases.FIRST, releases.LAST,
                 releases.SERIES[releases.FIRST],
                 releases.SERIES[releases.LAST]))


# ---------------------------------------------------------------- Glance
def check_glance(endpoint: str, error, count: int) -> Verdict:
    name = 'glance reachable'
    if error is None:
        return _v(name, PASS, '%s answered (%d images)' % (endpoint, count))
    return _v(name, FAIL, 'cannot list images at %s: %s' % (endpoint, error),
              '[glance] api_servers (or endpoint_override, or the catalog '
              'of [glance] valid_interfaces) must reach glance-api')


def check_glance_stores(stores: list, allowed: list, fsid: str,
                        copy_store: str) -> Verdict:
    """stores: Glance's stores detail: dicts id, type, properties.

    ``None`` when Glance did not give the details (then only the ids of a
    plain listing are in stores, without type).
    """
    name = 'glance stores'
    problems = []
    ids = [s.get('id') for s in stores]
    if copy_store and copy_store not in ids:
        problems.append((FAIL, '[libvirt] images_rbd_glance_store_name = %s '
                         'is not a Glance store (%s): copying an image '
                         'there fails the spawn' % (copy_store,
                                                    ', '.join(ids)),
                         '[libvirt] images_rbd_glance_store_name = <an rbd '
                         'store of this cluster>, or unset'))
    rbd = [s for s in stores if s.get('type') == 'rbd']
    typed = any('type' in s for s in stores)
    if typed and not rbd:
        problems.append((WARN, 'Glance has no rbd store (%s): no image is '
                         'cloned in place' % ', '.join(ids),
                         'configure an rbd store in glance-api.conf on '
                         'this cluster'))
    for store in rbd:
        props = store.get('properties') or {}
        pool, theirs = props.get('pool'), props.get('fsid')
        if theirs and theirs != fsid:
            problems.append((WARN, 'rbd store %s is in cluster %s, not '
                             'this one (%s): its images are not cloned in '
                             'place' % (store['id'], theirs, fsid),
                             'point the compute hosts at that cluster, or '
                             'Glance at this one'))
        elif pool and pool not in allowed:
            problems.append((WARN, 'rbd store %s writes pool %s, not in '
                             '[fastclone] clone_allowed_pools (%s): its '
                             'images are not cloned in place' % (
                                 store['id'], pool, ', '.join(allowed)),
                             '[fastclone] clone_allowed_pools = %s'
                             % ','.join(list(allowed) + [pool])))
    return _joined(name, problems, '; '.join(
        '%s (%s%s)' % (s.get('id'), s.get('type', '?'),
                       ' pool %s' % (s.get('properties') or {}).get('pool')
                       if s.get('type') == 'rbd' else '')
        for s in stores) or 'no store listed')


def check_locations(raw_images: int, rbd_sample, any_shown: bool,
                    api_sample, use_api: bool) -> Verdict:
    """Whether Nova learns where raw images are in RBD.

    :param raw_images: how many active raw images there are.
    :param rbd_sample: id of one that shows an rbd:// location, or None.
    :param any_shown: whether any shows a location at all.
    :param api_sample: id of one the location API answered for, or None.
    """
    name = 'glance locations'
    fix = ('show_image_direct_url = True in glance-api.conf [DEFAULT], or '
           'give Nova\'s user the location API (image API v2.17, policy '
           'fetch_image_location) and [fastclone] use_location_api = True')
    if rbd_sample:
        return _v(name, PASS, 'image %s shows its rbd:// location'
                  % rbd_sample)
    if api_sample:
        return _v(name, PASS, 'image %s: the location API answers'
                  % api_sample)
    if not raw_images:
        return _v(name, WARN, 'no active raw image to ask about',
                  'upload a raw image to check again')
    if any_shown:
        return _v(name, WARN, 'no raw image shows an rbd:// location (only '
                  'other stores)', "upload raw images to Glance's rbd store")
    why = ('the location API gave none' if use_api
           else '[fastclone] use_location_api = False')
    return _v(name, FAIL, '%d raw images show no location and %s: no image '
              'is cloned in place' % (raw_images, why), fix)


# ---------------------------------------------------------------- images
FIXES = {
    'format': 'upload it as raw (qemu-img convert -O raw, then image '
              'create --disk-format raw): it is converted once into the '
              'cache now',
    'not rbd': 'upload it to Glance\'s rbd store (or import it there: '
               'glance image-import --import-method copy-image --stores '
               '<rbd store>)',
    'other cluster': 'the location\'s fsid is not this cluster\'s: remove '
                     'that location (glance location-delete) or point the '
                     'compute hosts at that cluster',
    'pool': 'add the pool to [fastclone] clone_allowed_pools if Glance '
            'writes there',
    'image id': 'the RBD image name must be the Glance image id: the '
                'location was added by hand; remove it',
    'snapshot': 'the RBD snapshot is missing or unreadable: upload the '
                'image again',
    'no location': 'see the glance locations check',
    'refused': 'upload the image again with the right disk_format',
}


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit - 3] + '...'


def check_images(paths: list, location_refusals: list) -> Verdict:
    """How the active images would boot.

    :param paths: explain.Path of every active image.
    :param location_refusals: (image id, category, reason) of each
        location that cannot be cloned, also of images that clone
        through another one.
    """
    name = 'images'
    counts = {'direct': 0, 'cache': 0, 'refused': 0, 'stock': 0}
    for path in paths:
        counts[path.kind] += 1
    saw = ('%(direct)d clone directly, %(cache)d through the cache, '
           '%(refused)d refused, %(stock)d by Nova\'s download' % counts)
    problems = {}
    for image_id, category, reason in location_refusals:
        problems.setdefault(category, []).append(image_id)
    for path in paths:
        if path.kind == 'refused':
            problems.setdefault('refused', []).append(
                '%s (%s)' % (path.image_id, _short(path.why)))
    if not problems:
        return _v(name, PASS, saw)
    details = '; '.join('%s: %s' % (cat, ', '.join(sorted(set(ids))))
                        for cat, ids in sorted(problems.items()))
    fix = ' | '.join('%s: %s' % (cat, FIXES[cat])
                     for cat in sorted(problems))
    return _v(name, WARN, '%s (%s)' % (saw, details), fix)
