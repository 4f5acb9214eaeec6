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

"""Facts several doctor checks share, each read once (thin I/O).

The Ceph connection, the cluster's pools, the Ceph user's key, Glance's
active images and their paths.  A fact that could not be read raises
:class:`Unavailable` naming the check that reports why, so the checks that
need it are SKIP rows, not a second FAIL of the same cause.
"""

import time

import nova.conf
from nova.storage import rbd_utils

CONF = nova.conf.CONF

CMD_TIMEOUT = 10      # seconds for a command, a mon/mgr command, Glance
OP_TIMEOUT = '10'     # rados_osd_op_timeout / rados_mon_op_timeout


class Unavailable(Exception):
    """A fact another check reports broken."""

    def __init__(self, check: str):
        super().__init__(check)
        self.check = check


def err(e) -> str:
    return '%s: %s' % (type(e).__name__, e)


def bound_glance_waits() -> None:
    """Glance and Keystone calls of this process time out (not hang)."""
    for group in ('glance', 'service_user'):
        try:
            if getattr(CONF, group).timeout is None:
                CONF.set_override('timeout', CMD_TIMEOUT, group=group)
        except Exception:   # the group has no session options
            continue


def ceph_user() -> str:
    return CONF.libvirt.rbd_user or 'admin'


class Facts:
    """Read-once facts for one doctor run."""

    def __init__(self, context):
        self.context = context
        self._memo = {}
        self._client = None

    def _once(self, key, read):
        if key not in self._memo:
            try:
                self._memo[key] = (read(), None)
            except Exception as e:
                self._memo[key] = (None, e)
        value, error = self._memo[key]
        if error is not None:
            raise error
        return value

    def close(self) -> None:
        if self._client is not None:
            self._client.shutdown()
            self._client = None

    # ------------------------------------------------------------ Ceph
    def connect(self):
        """(seconds, error text or None); raises what the setup raised."""
        return self._once('connect', self._connect)

    def _connect(self):
        lv = CONF.libvirt
        client = rbd_utils.rados.Rados(rados_id=lv.rbd_user,
                                       conffile=lv.images_rbd_ceph_conf or '')
        client.conf_set('rados_osd_op_timeout', OP_TIMEOUT)
        client.conf_set('rados_mon_op_timeout', OP_TIMEOUT)
        start = time.monotonic()
        try:
            client.connect(timeout=lv.rbd_connect_timeout)
        except Exception as e:
            client.shutdown()
            return 0.0, err(e)
        self._client = client
        return time.monotonic() - start, None

    def client(self):
        """The connected rados.Rados, or Unavailable('ceph reachable')."""
        try:
            _seconds, error = self.connect()
        except Exception:
            raise Unavailable('ceph reachable')
        if error is not None:
            raise Unavailable('ceph reachable')
        return self._client

    def pools(self) -> set:
        client = self.client()
        return self._once('pools', lambda: set(client.list_pools()))

    def keyring(self):
        """(where it was looked for, {path: state}, key) of the Ceph user."""
        from fastclone_backend.manage import cephprobe
        return self._once('keyring', cephprobe.read_keyring)

    def key(self) -> str:
        """The Ceph user's key, '' if it could not be read."""
        try:
            return self.keyring()[2]
        except Exception:
            return ''

    # ------------------------------------------------------------ Glance
    def images(self) -> list:
        """Glance's active images (as the doctor's context sees them)."""
        try:
            return self._once('images', self._images)
        except Exception:
            raise Unavailable('glance reachable')

    def images_error(self):
        """What listing the images raised, or None."""
        try:
            self._once('images', self._images)
        except Exception as e:
            return e
        return None

    def _images(self):
        from fastclone_backend.manage import glanceprobe
        return glanceprobe.active_images(self.context)

    def records(self) -> list:
        images = self.images()
        from fastclone_backend.manage import glanceprobe
        return self._once('records', lambda: glanceprobe.records(
            self.context, images))

    def paths(self) -> list:
        """explain.Path of every active image (needs Ceph and Glance)."""
        self.client()
        records = self.records()
        from fastclone_backend.spawn import imagepath
        return self._once('paths', lambda: [
            imagepath.find(self.context, r, disk)
            for disk in [imagepath.probe()] for r in records])

    def largest_population(self):
        """(bytes, image id): the most an image needs in the work dir.

        Of the images that go through the cache: the download, plus the
        raw form without convert_direct_to_rbd; (0, '') if there is none.
        """
        try:
            records = {r['id']: r for r in self.records()}
            ids = [p.image_id for p in self.paths() if p.kind == 'cache']
        except Unavailable:
            return 0, ''
        best = (0, '')
        for image_id in ids:
            meta = records.get(image_id) or {}
            size = meta.get('size') or 0
            if not CONF.fastclone.convert_direct_to_rbd:
                size += max(meta.get('virtual_size') or 0, size)
            best = max(best, (size, image_id))
        return best
