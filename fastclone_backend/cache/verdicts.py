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

"""What each Glance snapshot cloned in place holds: the verdict omap.

``fastclone-verdicts`` in the cache pool holds, for each Glance snapshot
whose content was inspected, the format found and why its safety checks
fail, keyed by ``<pool>/<image>@<snapshot id>`` (snapshot ids are never
reused in a pool).  The spawn flow writes and reads it
(:mod:`fastclone_backend.spawn.snapfacts`); the lifecycle pass drops the
keys of images that are gone, and uses them as proof that an image in a
Glance pool was one we cloned from.
"""

from nova.storage import rbd_utils

from fastclone_backend.cache import naming
from fastclone_backend.cache import omap

SEP = '\n'


def key(pool: str, image: str, snap_id: int) -> str:
    return '%s/%s@%d' % (pool, image, snap_id)


def image_of(found: str):
    """(pool, image) of a verdict key."""
    spec = found.rpartition('@')[0]
    pool, _sep, image = spec.partition('/')
    return pool, image


class Verdicts:
    """The content of each snapshot, in the cache pool's verdict omap."""

    def __init__(self, driver, pool: str):
        self.driver = driver
        self.pool = pool

    def get(self, key: str):
        """(format, detail) stored for key, or None."""
        with rbd_utils.RADOSClient(self.driver, self.pool) as client, \
                rbd_utils.rados.ReadOpCtx() as op:
            found, _ret = client.ioctx.get_omap_vals_by_keys(op, (key,))
            try:
                client.ioctx.operate_read_op(op, naming.VERDICTS_OBJECT)
            except rbd_utils.rados.ObjectNotFound:
                return None
            values = dict(found)
        if key not in values:
            return None
        detected, _sep, detail = values[key].decode().partition(SEP)
        return detected, detail

    def put(self, key: str, detected: str, detail: str) -> None:
        with rbd_utils.RADOSClient(self.driver, self.pool) as client, \
                rbd_utils.rados.WriteOpCtx() as op:
            client.ioctx.set_omap(op, (key,),
                                  ((detected + SEP + detail).encode(),))
            client.ioctx.operate_write_op(op, naming.VERDICTS_OBJECT)

    def keys(self) -> list:
        """Every verdict key ([] when there is none yet).

        In pages: one read returns at most 1024 (see
        :mod:`fastclone_backend.cache.omap`).
        """
        with rbd_utils.RADOSClient(self.driver, self.pool) as client:
            return sorted(omap.items(client.ioctx, naming.VERDICTS_OBJECT))

    def drop(self, keys) -> None:
        if not keys:
            return
        with rbd_utils.RADOSClient(self.driver, self.pool) as client, \
                rbd_utils.rados.WriteOpCtx() as op:
            client.ioctx.remove_omap_keys(op, tuple(keys))
            client.ioctx.operate_write_op(op, naming.VERDICTS_OBJECT)
