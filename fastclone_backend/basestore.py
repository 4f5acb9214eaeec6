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

"""The cached bases in their pool: lookup, survey, retire, remove.

Removal never races a clone made on another host:

1. a base is first *retired*: renamed to ``fastclone-retired-<id>-<token>``
   (atomic in RBD), so every later lookup misses it; a clone that opened
   it before the rename completes against it and keeps it alive;
2. only a hidden (retired or tmp) image is removed, and only through what
   Ceph itself refuses while children exist: unprotecting a snapshot fails
   with EBUSY, and with clone v2 removing a snapshot that gained a child
   moves it to the trash namespace, after which removing the image fails
   with ENOTEMPTY.  Either way the image stays, retired with children, and
   a later pass removes it once the last clone is gone (librbd itself
   drops a trashed snapshot when its last child goes).
"""

import contextlib
import os
import socket
import threading
import time
import uuid

from oslo_log import log as logging

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend import cache
from fastclone_backend import policy

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

SNAP_NAMESPACE_USER = 0
TOUCH_EVERY = 60  # seconds between last-use stamps of a base


def _token() -> str:
    return uuid.uuid4().hex[:8]


# image id -> (size, metadata) of its base, as last found in this process
_KNOWN: dict = {}
_KNOWN_LOCK = threading.Lock()


def forget(image_id: str) -> None:
    """Drop what this process remembers of an image's base."""
    with _KNOWN_LOCK:
        _KNOWN.pop(image_id, None)


def stamp() -> str:
    """Now, in whole seconds, never ahead of the clock (a last-use time)."""
    return '%d' % int(time.time())


class BaseStore:
    """Our images in one pool, through one SharedRBDDriver."""

    def __init__(self, driver, pool=None):
        self.driver = driver
        self.pool = pool or CONF.fastclone.cache_pool or driver.pool

    def url(self, image_id: str) -> str:
        return 'rbd://%s/%s/%s/%s' % (self.driver.get_fsid(), self.pool,
                                      cache.base_name(image_id), cache.SNAP)

    @contextlib.contextmanager
    def ioctx(self):
        with rbd_utils.RADOSClient(self.driver, self.pool) as client:
            yield client.ioctx

    def _open(self, name, **kwargs):
        return rbd_utils.RBDVolumeProxy(self.driver, name, pool=self.pool,
                                        **kwargs)

    # ------------------------------------------------------------ lookup
    def metadata(self, name: str, snapshot=None):
        """(size, metadata dict) of an image, or None if it is missing."""
        try:
            with self._open(name, snapshot=snapshot, read_only=True) as vol:
                return vol.size(), dict(vol.metadata_list())
        except rbd_utils.rbd.ImageNotFound:
            return None

    def lookup(self, image_meta: dict):
        """(size, metadata) of the image's usable base, or None.

        None: missing, stale or partial (no snapshot).  A base found once
        is remembered in the process, for as long as it matches Glance's
        record: a clone of it that fails because it is gone makes the
        caller forget() it and look again.
        """
        image_id = image_meta['id']
        with _KNOWN_LOCK:
            found = _KNOWN.get(image_id)
        if found is None or cache.stale_reason(found[1], image_meta):
            found = self.metadata(cache.base_name(image_id), cache.SNAP)
        if found is None or cache.stale_reason(found[1], image_meta):
            forget(image_id)
            return None
        with _KNOWN_LOCK:
            _KNOWN[image_id] = found
        return found

    def touch(self, image_id: str, meta: dict) -> None:
        """Record the use, at most once a minute, best effort."""
        name = cache.base_name(image_id)
        if time.time() - _float(meta.get(cache.META + 'last_used')) < \
                TOUCH_EVERY:
            return
        now = stamp()
        meta[cache.META + 'last_used'] = now   # the remembered copy too
        try:
            with self._open(name) as vol:
                vol.metadata_set(cache.META + 'last_used', now)
        except (rbd_utils.rbd.Error, rbd_utils.rados.Error) as e:
            LOG.debug('could not record use of %(name)s: %(err)s',
                      {'name': name, 'err': e})

    def names(self, prefix: str = '') -> list:
        """Our image names in the pool (starting with prefix, if given)."""
        with self.ioctx() as ioctx:
            names = rbd_utils.RbdProxy().list(ioctx)
        return [n for n in names
                if cache.is_cache_name(n) and n.startswith(prefix)]

    # ------------------------------------------------------------ survey
    def survey(self) -> list:
        """A policy.Base for each of our images (vanished ones skipped)."""
        found = []
        for name in self.names():
            base = self.describe(name)
            if base is not None:
                found.append(base)
        return found

    def describe(self, name: str):
        """A policy.Base for the image, None if it is gone.

        A tmp or retired name that is listed but cannot be opened (an
        interrupted removal leaves its directory entry) is described as
        an empty image, so the pass removes what is left of it.
        """
        try:
            with self._open(name, read_only=True) as vol:
                meta = dict(vol.metadata_list())
                snaps = list(vol.list_snaps())
                children = tuple(spec(c) for s in snaps
                                 for c in children_of(vol, s))
                size = vol.size()
        except rbd_utils.rbd.ImageNotFound:
            if cache.kind_of(name) not in ('tmp', 'retired'):
                return None
            meta, snaps, children, size = {}, [], (), 0
        return policy.Base(
            name=name, size=size, last_used=_float(
                meta.get(cache.META + 'last_used')),
            children=children,
            has_snap=any(s['name'] == cache.SNAP and _user(s) for s in snaps),
            locked=(cache.kind_of(name) == 'tmp' and
                    self.locked(cache.image_id_of(name))),
            stored=meta)

    def locked(self, image_id: str) -> bool:
        """Whether a live holder has the image's population lock.

        Probed by taking it for a moment: RADOS breaks an expired lease,
        and the lock class cannot list who holds it from Python.
        """
        obj = cache.lock_object(image_id)
        cookie = 'probe-' + _token()
        with self.ioctx() as ioctx:
            try:
                ioctx.lock_exclusive(obj, cache.LOCK_NAME, cookie,
                                     desc='fastclone-backend probe',
                                     duration=1)
            except rbd_utils.rados.ObjectBusy:
                return True
            ioctx.unlock(obj, cache.LOCK_NAME, cookie)
        return False

    # ------------------------------------------------------------ change
    def rename(self, src: str, dst: str) -> None:
        with self.ioctx() as ioctx:
            rbd_utils.RbdProxy().rename(ioctx, src, dst)

    def publish(self, tmp: str, image_meta: dict) -> int:
        """Stamp and snapshot tmp, then rename it to the base name."""
        protect = self.driver.handle.clone_format() == 1
        with self._open(tmp) as vol:
            for key, value in cache.fingerprint(image_meta).items():
                vol.metadata_set(key, value)
            vol.metadata_set(cache.META + 'last_used', stamp())
            vol.metadata_set(cache.META + 'populated_by', '%s:%d' % (
                socket.gethostname(), os.getpid()))
            vol.create_snap(cache.SNAP)
            if protect:
                vol.protect_snap(cache.SNAP)
            size = vol.size()
        self.rename(tmp, cache.base_name(image_meta['id']))
        return size

    def retire(self, name: str, why: str):
        """Hide a base from lookups; returns its retired name.

        None when it is gone already (another host retired it).
        """
        image_id = cache.image_id_of(name)
        forget(image_id)
        new = cache.retired_name(image_id, _token())
        try:
            self.rename(name, new)
        except rbd_utils.rbd.ImageNotFound:
            return None
        LOG.info('retired cached base %(pool)s/%(name)s as %(new)s: %(why)s',
                 {'pool': self.pool, 'name': name, 'new': new, 'why': why})
        return new

    def remove(self, name: str, wait: float = 0) -> bool:
        """Remove a hidden image unless it has clones; True when gone.

        Only for retired and tmp names: a base is retired first.

        :param wait: seconds to keep trying while a client (a killed
            qemu-img's watch lasts 30 s) still has the image open.
        """
        if cache.kind_of(name) == 'base':
            raise ValueError('%s must be retired before removal' % name)
        deadline = time.monotonic() + wait
        while not self._remove_once(name):
            if time.monotonic() >= deadline:
                return False
            time.sleep(1)
        return True

    def _remove_once(self, name: str) -> bool:
        try:
            with self._open(name) as vol:
                if not remove_snaps(vol):
                    return False
        except rbd_utils.rbd.ImageNotFound:
            pass   # gone, or a name left by an interrupted removal
        try:
            with self.ioctx() as ioctx:
                rbd_utils.RbdProxy().remove(ioctx, name)
        except rbd_utils.rbd.ImageNotFound:
            return True
        except (rbd_utils.rbd.ImageHasSnapshots,
                rbd_utils.rbd.ImageBusy) as e:
            # a clone attached between our check and the snapshot removal
            # (its snapshot is in the trash namespace now), or a client
            # still has the image open: a later pass tries again
            LOG.info('kept %(pool)s/%(name)s for now: %(err)s',
                     {'pool': self.pool, 'name': name, 'err': e})
            return False
        LOG.info('removed %(pool)s/%(name)s', {'pool': self.pool,
                                               'name': name})
        return True

    def remove_lock_object(self, image_id: str) -> None:
        with self.ioctx() as ioctx:
            try:
                ioctx.remove_object(cache.lock_object(image_id))
            except rbd_utils.rados.ObjectNotFound:
                pass


def _float(value) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0  # not ours to interpret: never used, as far as we know


def _user(snap: dict) -> bool:
    return snap.get('namespace', SNAP_NAMESPACE_USER) == SNAP_NAMESPACE_USER


def spec(child: dict) -> str:
    return '%s/%s' % (child['pool'], child['image'])


def children_of(vol, snap: dict) -> list:
    """Direct clones of one snapshot (user or trash namespace)."""
    vol.set_snap_by_id(snap['id'])
    try:
        return list(vol.list_children2())
    finally:
        vol.set_snap(None)


def remove_snaps(vol) -> bool:
    """Remove every snapshot of an image that has no clones.

    False, and nothing more removed, as soon as one has clones.
    """
    for snap in list(vol.list_snaps()):
        if children_of(vol, snap):
            return False
        if not _user(snap):
            vol.remove_snap_by_id(snap['id'])
            continue
        if vol.is_protected_snap(snap['name']):
            try:
                vol.unprotect_snap(snap['name'])
            except rbd_utils.rbd.ImageBusy:
                return False  # a clone attached since the check
        vol.remove_snap(snap['name'])
    return True
