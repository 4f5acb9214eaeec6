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

"""The doctor's checks: one row each, what it catches and the fix.

Derived from what can be wrong (every ``[fastclone]`` option, the Nova
options this backend depends on, every outside dependency), not from the
tests.  :mod:`.doctor` makes the verdicts, :mod:`.probes` reads the facts
for each check named here, in this order; ``doctor`` prints one row per
check, always.  ``python -m fastclone_backend.manage.checktable`` prints
the table of ``doc/source/doctor.rst`` (a unit test compares them).
"""

import dataclasses
import sys
import textwrap


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    catches: str
    fix: str


CHECKS = (
    # ------------------------------------------------------------ nova.conf
    Check('images_type',
          '[libvirt] images_type is not fastrbd: Nova\'s own backend makes '
          'the disks (no clone of a cached base, a full copy per instance). '
          'rbd is a WARN: FastRbd only if nova-compute runs as '
          'nova-compute-fastrbd',
          '[libvirt] images_type = fastrbd, and run nova-compute as '
          'nova-compute-fastrbd'),
    Check('images_rbd_pool',
          '[libvirt] images_rbd_pool empty: no pool to clone into, every '
          'spawn fails',
          '[libvirt] images_rbd_pool = <the instances pool, e.g. vms>'),
    Check('ceph.conf',
          '[libvirt] images_rbd_ceph_conf names a file that does not exist '
          'or cannot be read (or is unset and librados finds no default '
          'ceph.conf): every RBD operation fails',
          '[libvirt] images_rbd_ceph_conf = the cluster\'s ceph.conf, '
          'readable by the user nova-compute runs as'),
    Check('rbd_user',
          '[libvirt] rbd_user unset: librados connects as client.admin',
          '[libvirt] rbd_user = nova (a user with the caps of '
          'doc/source/caps.rst)'),
    Check('clone policy',
          '[fastclone] clone_allowed_pools empty (no image is cloned in '
          'place: all go through the cache), or clone_require_image_id_match '
          '= False (a location added by hand can clone any image of the '
          'pool, another tenant\'s too)',
          '[fastclone] clone_allowed_pools = <Glance\'s rbd_store_pool>; '
          'clone_require_image_id_match = True'),
    Check('cache settings',
          '[fastclone] cache_enabled = False (images not clonable in place '
          'are downloaded on every host and copied in full per instance); '
          'cache_wait_timeout shorter than 3 x cache_lock_lease (a waiting '
          'spawn gives up before it can take a dead host\'s population '
          'over); rados_op_timeout between 1 and 9 s (merely slow Ceph '
          'operations fail spawns)',
          'cache_enabled = True; cache_wait_timeout >= 3 x cache_lock_lease '
          '(default 1800 and 10); rados_op_timeout = 0 or >= 30'),
    Check('convert limits',
          '[fastclone] convert_address_space_mib below 2048 with '
          'convert_direct_to_rbd (qemu-img with librbd needs about 1.5 GiB '
          'of address space: conversions into the cache fail); '
          'convert_cpu_seconds below 300 (large images are killed halfway)',
          'convert_address_space_mib = 4096; convert_cpu_seconds = 3600 '
          '(the defaults)'),
    Check('image_cache',
          '[image_cache] remove_unused_base_images = False (the lifecycle '
          'pass removes nothing: unused and deleted images\' bases and trash '
          'stay, cache_max_bytes/count are not enforced); manager_interval '
          '= -1 (this host never runs the pass; another host must); '
          'remove_unused_original_minimum_age_seconds shorter than the pass '
          'interval (a base unused for one pass is removed and downloaded '
          'again at the next boot)',
          '[image_cache] remove_unused_base_images = True; manager_interval '
          '>= 0 on at least one host; '
          'remove_unused_original_minimum_age_seconds = 86400'),
    Check('glance rbd download',
          '[glance] enable_rbd_download = True without rbd_user, rbd_pool '
          'or a readable rbd_ceph_conf: every download into the cache fails',
          '[glance] rbd_user, rbd_pool (Glance\'s pool) and rbd_ceph_conf, '
          'or enable_rbd_download = False'),
    Check('service user',
          'The context the lifecycle pass asks Glance with (Nova\'s '
          '[service_user], as periodic tasks carry no token) fails: the '
          'pass learns no image is deleted, so their bases and trash stay '
          'for ever (FAIL with a [service_user] section, WARN without '
          'one). WARN: [service_user] set up but send_service_user_token = '
          'False (a spawn outlasting the user\'s token fails)',
          '[service_user] auth_type, auth_url, username, password, '
          'project_name... of a user Glance shows every image to (admin), '
          'send_service_user_token = True; or no [service_user] for a Glance '
          'without Keystone'),
    Check('lock_path',
          '[oslo_concurrency] lock_path unset (Nova\'s external locks raise '
          'RequiredOptError: WARN) or not a writable directory (they fail: '
          'FAIL)',
          '[oslo_concurrency] lock_path = /var/lib/nova/tmp (a directory '
          'writable by nova-compute)'),
    # ------------------------------------------------------------ Ceph
    Check('ceph keyring',
          'No keyring of client.<rbd_user> where ceph.conf says '
          '(keyring, key, keyfile), unreadable, or without that user\'s '
          'key: the connection is refused',
          'ceph auth get client.<user> -o /etc/ceph/ceph.client.<user>'
          '.keyring on a monitor host, copy it here, readable by nova'),
    Check('ceph reachable',
          'The monitors in ceph.conf do not answer within [libvirt] '
          'rbd_connect_timeout, or refuse the key',
          'check the monitors in ceph.conf, the keyring, and [libvirt] '
          'rbd_connect_timeout'),
    Check('pools',
          'A pool named by [libvirt] images_rbd_pool, [fastclone] '
          'cache_pool or clone_allowed_pools does not exist: spawns fail '
          '(instances or cache pool) or nothing is cloned from it (Glance '
          'pool)',
          'ceph osd pool create <pool> && rbd pool init <pool>, or correct '
          'the option'),
    Check('caps osd',
          'client.<user> cannot list the Glance pools or write the '
          'instances and cache pools (probe object created and removed): '
          'clones, the cache or the lifecycle fail with EPERM',
          "ceph auth caps client.<user> mon 'profile rbd' osd 'profile rbd "
          "pool=<each pool>' mgr 'profile rbd pool=<each pool>'"),
    Check('caps mon',
          'client.<user> may not blocklist (mon \'profile rbd\'): a guest '
          'restarted elsewhere after its host died cannot break the dead '
          'client\'s exclusive lock, its disk hangs; a dead host\'s '
          'population is taken over unfenced (checked by blocklisting '
          '192.0.2.1:0/1, a documentation address, for 1 s)',
          "ceph auth caps client.<user> mon 'profile rbd' osd ... mgr ..."),
    Check('caps mgr',
          'client.<user> has no mgr \'profile rbd\': flatten tasks '
          '(retired bases, deep chains, flatten_* options) never run',
          "ceph auth caps client.<user> ... mgr 'profile rbd pool=<each "
          "pool>'"),
    Check('clone format',
          'Clone v1 (require_min_compat_client below mimic, or '
          'rbd_default_clone_format = 1): snapshots must be protected, a '
          'base with clones cannot be hidden in the trash',
          'ceph osd set-require-min-compat-client mimic, or '
          'rbd_default_clone_format = auto in ceph.conf'),
    Check('trash purge schedule',
          'No rbd trash purge schedule on a Glance or cache pool: expired '
          'trash entries the lifecycle pass does not own stay',
          'rbd trash purge schedule add --pool <pool> 1d'),
    Check('leases',
          'A population or lifecycle lease held by a process that is gone '
          'or no longer answers',
          'rados -p <pool> lock break <object> <lock> <client> '
          '--lock-cookie <cookie>, or wait for the lease to run out'),
    # ------------------------------------------------------------ host
    Check('libvirt secret',
          '[libvirt] rbd_secret_uuid unset, not defined in libvirt, or not '
          'holding the key of client.<rbd_user>: guests cannot open their '
          'root disk (QEMU is refused by Ceph). WARN when libvirt cannot be '
          'asked (virsh missing, libvirtd down): what was seen',
          'virsh secret-define (usage ceph, the uuid of rbd_secret_uuid) '
          'and virsh secret-set-value <uuid> --file <key of client.<user>> '
          '--plain'),
    Check('qemu-img',
          'qemu-img missing (no conversion into the cache), or without the '
          'rbd driver while [fastclone] convert_direct_to_rbd = True',
          'apt-get install qemu-utils qemu-block-extra, or [fastclone] '
          'convert_direct_to_rbd = False'),
    Check('work dir',
          '[fastclone] work_dir (default $instances_path/fastclone) cannot '
          'be created or written, or has less free space than the largest '
          'active image needs (its download, plus its raw size with '
          'convert_direct_to_rbd = False): populations fail',
          'a writable [fastclone] work_dir on a filesystem with room for '
          'the largest image'),
    Check('nova base dir',
          'Nova\'s $instances_path/[image_cache] subdirectory_name cannot be '
          'created or written: when the cache is unavailable, spawns fail '
          'instead of taking Nova\'s download path',
          'a writable [DEFAULT] instances_path (and subdirectory_name '
          'relative to it)'),
    # ------------------------------------------------------------ Glance
    Check('glance reachable',
          '[glance] api_servers / endpoint_override (or the catalog) does '
          'not reach glance-api, or it refuses the credentials',
          '[glance] api_servers (or endpoint_override, or the catalog of '
          '[glance] valid_interfaces) must reach glance-api'),
    Check('glance stores',
          'Glance has no rbd store, its pool is not in [fastclone] '
          'clone_allowed_pools, or its fsid is another cluster\'s (nothing '
          'is cloned in place: WARN); [libvirt] images_rbd_glance_store_name '
          'is not a Glance store (copy-to-store fails the spawn: FAIL)',
          '[fastclone] clone_allowed_pools = <rbd store pool>; '
          'images_rbd_glance_store_name = <an rbd store of this cluster>'),
    Check('glance locations',
          'Glance shows no rbd:// location of raw images and the location '
          'API is off or refused: no image is cloned in place',
          'show_image_direct_url = True in glance-api.conf, or the location '
          'API and [fastclone] use_location_api = True'),
    Check('images',
          'Active images that cannot be cloned in place (format, store, '
          'cluster, pool, name, snapshot) or are refused, by category',
          'per category: upload raw to the rbd store, remove a foreign '
          'location, add the pool, ...'),
    # ------------------------------------------------------------ Nova
    Check('nova version',
          'A Nova release outside 31 to 34 (2025.1 to 2026.2), whose '
          'internals the hook was never tested with; the row also says '
          'how the installed release is tested',
          'run fastclone-backend with Nova 31 to 34; see '
          'doc/source/releases.rst'),
)

NAMES = tuple(c.name for c in CHECKS)
BY_NAME = {c.name: c for c in CHECKS}

HEADER = ('.. The table below is generated by ``python -m '
          'fastclone_backend.manage.checktable``;\n   a unit test compares '
          'it with the code.  Do not edit it by hand.\n\n')


def _cell(text: str, width: int) -> list:
    return textwrap.wrap(text, width) or ['']


def rst_table() -> str:
    """CHECKS as a reStructuredText grid table (check, catches, fix)."""
    widths = (22, 56, 40)
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+\n'
    head = rule.replace('-', '=')
    out = [rule]
    out.append(_row(('Check', 'What it catches', 'Fix'), widths))
    out.append(head)
    for check in CHECKS:
        out.append(_row((check.name, check.catches, check.fix), widths))
        out.append(rule)
    return HEADER + ''.join(out)


def _row(cells, widths) -> str:
    wrapped = [_cell(c, w) for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    lines = []
    for i in range(height):
        parts = [(w[i] if i < len(w) else '').ljust(n)
                 for w, n in zip(wrapped, widths)]
        lines.append('| ' + ' | '.join(parts) + ' |\n')
    return ''.join(lines)


def main() -> int:
    sys.stdout.write(rst_table())
    return 0


if __name__ == '__main__':
    sys.exit(main())
