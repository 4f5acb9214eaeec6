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

"""Room in a Ceph pool under its quota, asked before writing a base.

Ceph pauses writes to a pool at its quota (they wait until it has room
again), so a population that does not fit would hang, or time out, half
written.  One monitor command per population answers beforehand.
"""

import dataclasses
import json

from nova.storage import rbd_utils


@dataclasses.dataclass(frozen=True)
class Quota:
    pool: str
    max_bytes: int       # 0: no quota
    used_bytes: int
    max_objects: int     # 0: no quota
    used_objects: int


def lacks_room(quota: Quota, needed: int):
    """Why writing needed bytes would exceed the quota, or None."""
    if quota.max_objects and quota.used_objects >= quota.max_objects:
        return 'pool %s is at its quota of %d objects' % (
            quota.pool, quota.max_objects)
    if quota.max_bytes and quota.used_bytes + needed > quota.max_bytes:
        return ('pool %s has %d MiB stored of its %d MiB quota and this '
                'needs %d MiB more' % (quota.pool, quota.used_bytes >> 20,
                                       quota.max_bytes >> 20, needed >> 20))
    return None


def fix(pool: str) -> str:
    return ('raise the quota (ceph osd pool set-quota %s max_bytes <bytes>) '
            'or free space in it; the lifecycle pass evicts unused bases '
            'beyond [fastclone] cache_max_bytes' % pool)


def quota(client, pool: str) -> Quota:
    """The pool's quota and use, as the monitor reports them."""
    cmd = json.dumps({'prefix': 'osd pool get-quota', 'pool': pool,
                      'format': 'json'})
    ret, out, err = client.mon_command(cmd, b'')
    if ret:
        raise rbd_utils.rados.Error('osd pool get-quota %s: %s' % (pool, err))
    got = json.loads(out)
    return Quota(pool=pool, max_bytes=int(got.get('quota_max_bytes', 0)),
                 used_bytes=int(got.get('current_num_bytes', 0)),
                 max_objects=int(got.get('quota_max_objects', 0)),
                 used_objects=int(got.get('current_num_objects', 0)))
