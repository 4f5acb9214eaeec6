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
command).  ``fastclone-manage doctor`` prints them and exits non-zero on
any FAIL.
"""

import dataclasses

PASS = 'PASS'
WARN = 'WARN'
FAIL = 'FAIL'

# the Nova releases this backend is built for: [first, last] inclusive
NOVA_SUPPORTED = ((34, 0), (34, 99))


@dataclasses.dataclass(frozen=True)
class Verdict:
    check: str
    status: str
    saw: str
    fix: str = ''


def _v(check, status, saw, fix=''):
    return Verdict(check=check, status=status, saw=saw, fix=fix)


def worst(verdicts) -> str:
    statuses = {v.status for v in verdicts}
    for status in (FAIL, WARN):
        if status in statuses:
            return status
    return PASS


def caps_command(user: str, pools: list) -> str:
    """The ``ceph auth caps`` line that gives user what it needs."""
    osd = ', '.join('profile rbd pool=%s' % p for p in pools)
    return ("ceph auth caps client.%s mon 'profile rbd' osd '%s' "
            "mgr '%s'" % (user, osd, osd))


# ---------------------------------------------------------------- nova.conf
def check_images_type(requested: str) -> Verdict:
    name = 'nova.conf images_type'
    saw = '[libvirt] images_type = %s' % requested
    if requested == 'fastrbd':
        return _v(name, PASS, saw)
    fix = ('[libvirt] images_type = fastrbd, and run nova-compute as '
           'nova-compute-fastrbd')
    if requested == 'rbd':
        return _v(name, WARN, saw + ' (stock rbd unless nova-compute runs '
                  'as nova-compute-fastrbd)', fix)
    return _v(name, FAIL, saw, fix)


def check_required(option: str, value, example: str) -> Verdict:
    """An option that must be set (e.g. [libvirt] images_rbd_pool)."""
    name = 'nova.conf %s' % option
    if value:
        return _v(name, PASS, '%s = %s' % (option, value))
    return _v(name, FAIL, '%s is not set' % option,
              '%s = %s' % (option, example))


def check_ceph_conf(path: str, exists: bool) -> Verdict:
    name = 'nova.conf images_rbd_ceph_conf'
    if path and exists:
        return _v(name, PASS, '[libvirt] images_rbd_ceph_conf = %s' % path)
    return _v(name, FAIL, '%s does not exist' % (path or '(not set)'),
              '[libvirt] images_rbd_ceph_conf = /etc/ceph/ceph.conf (a '
              'readable ceph.conf of the cluster)')


def check_rbd_user(user: str) -> Verdict:
    name = 'nova.conf rbd_user'
    if user:
        return _v(name, PASS, '[libvirt] rbd_user = %s' % user)
    return _v(name, WARN, '[libvirt] rbd_user is not set (librados '
              'connects as client.admin)', '[libvirt] rbd_user = nova')


def check_pools(wanted: dict, existing) -> Verdict:
    """wanted: {pool: the option naming it}; existing: the cluster's."""
    name = 'pools exist'
    missing = {p: opt for p, opt in wanted.items() if p not in existing}
    if not missing:
        return _v(name, PASS, ', '.join(sorted(wanted)))
    saw = '; '.join('%s (%s) does not exist' % (p, opt)
                    for p, opt in sorted(missing.items()))
    fix = ' && '.join('ceph osd pool create %s && rbd pool init %s' % (p, p)
                      for p in sorted(missing))
    return _v(name, FAIL, saw, fix + ', or correct the option')


# ---------------------------------------------------------------- Ceph
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


def check_pool_access(user: str, pool: str, role: str, mode: str, error,
                      all_pools: list) -> Verdict:
    """mode 'read' or 'write' (a probe object created and removed)."""
    name = 'caps %s %s pool %s' % (mode, role, pool)
    if error is None:
        what = ('listed RBD images' if mode == 'read'
                else 'created and removed a probe object')
        return _v(name, PASS, '%s in %s as client.%s' % (what, pool, user))
    return _v(name, FAIL, 'client.%s cannot %s in %s: %s'
              % (user, mode, pool, error), caps_command(user, all_pools))


def check_mgr(user: str, error, pools: list) -> Verdict:
    name = 'caps mgr (flatten tasks)'
    if error is None:
        return _v(name, PASS, "'rbd task list' answered for client.%s"
                  % user)
    return _v(name, WARN, "'rbd task list' refused for client.%s (%s): "
              "clones are not flattened in the background" % (user, error),
              caps_command(user, pools))


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
    name = 'nova version'
    try:
        parts = tuple(int(p) for p in version.split('.')[:2])
    except ValueError:
        parts = ()
    low, high = NOVA_SUPPORTED
    saw = 'nova %s (supported: %d.%d to %d.x)' % (
        version, low[0], low[1], high[0])
    if parts and low <= parts <= high:
        return _v(name, PASS, saw)
    return _v(name, FAIL, saw, 'install the fastclone-backend release '
              'built for nova %s' % version)


# ---------------------------------------------------------------- Glance
def check_glance(endpoint: str, error, count: int) -> Verdict:
    name = 'glance reachable'
    if error is None:
        return _v(name, PASS, '%s answered (%d images)' % (endpoint, count))
    return _v(name, FAIL, 'cannot list images at %s: %s' % (endpoint, error),
              '[glance] api_servers (or endpoint_override, or the catalog '
              'of [glance] valid_interfaces) must reach glance-api')


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
