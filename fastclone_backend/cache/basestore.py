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

Only what is ours is touched (:func:`fastclone_backend.cache.naming.owned`):
a population's tmp image is ours by the ledger, where its name is written
before it is created (by us, :meth:`BaseStore.create`, or by ``rbd
import``) and from which it is dropped once :meth:`BaseStore.publish` has
marked it and renamed it to its base name; a removal writes the name in
the ledger before it starts, so a removal interrupted after the image
header went still proves the name ours.  A look-alike (our prefix, no
valid mark, not in the ledger) is reported once and left alone.

The base index (:mod:`fastclone_backend.cache.baseindex`) follows each
ready base: :meth:`BaseStore.publish` indexes it, :meth:`BaseStore.touch`
records its uses there too, :meth:`BaseStore.retire` drops it.  The
lifecycle pass surveys from it (:meth:`BaseStore.survey_from_index`) and
opens only the bases it may act on (:meth:`BaseStore.look`).
"""

import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
import uuid

from oslo_log import log as logging

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend.cache import baseindex
from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend import liveness

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


# names reported as not ours in this process (reported once each)
_REPORTED: set = set()


def report_foreign(pool: str, name: str) -> None:
    """Log once per process that a look-alike is left alone."""
    if (pool, name) in _REPORTED:
        return
    _REPORTED.add((pool, name))
    LOG.warning('%(pool)s/%(name)s has our name but is not ours (no valid '
                'fastclone.owner mark, not in our ledger): left alone',
                {'pool': pool, 'name': name})


class Ledger:
    """Names of hidden images we are making or removing (an omap)."""

    def __init__(self, ioctx):
        self.ioctx = ioctx

    def names(self) -> set:
        with rbd_utils.rados.ReadOpCtx() as op:
            items, _ret = self.ioctx.get_omap_vals(op, '', '', -1)
            try:
                self.ioctx.operate_read_op(op, naming.LEDGER_OBJECT)
            except rbd_utils.rados.ObjectNotFound:
                return set()
            return {k for k, _v in items}

    def add(self, name: str, why: str) -> None:
        value = json.dumps({'why': why, 'at': int(time.time()),
                            'by': '%s:%d' % (socket.gethostname(),
                                             os.getpid())})
        with rbd_utils.rados.WriteOpCtx() as op:
            self.ioctx.set_omap(op, (name,), (value.encode(),))
            self.ioctx.operate_write_op(op, naming.LEDGER_OBJECT)

    def drop(self, name: str) -> None:
        with rbd_utils.rados.WriteOpCtx() as op:
            self.ioctx.remove_omap_keys(op, (name,))
            try:
                self.ioctx.operate_write_op(op, naming.LEDGER_OBJECT)
            except rbd_utils.rados.ObjectNotFound:
                pass


def stamp() -> str:
    """Now, in whole seconds, never ahead of the clock (a last-use time)."""
    return '%d' % int(time.time())


class BaseStore:
    """Our images in one pool, through one driver (cluster.rbd_driver)."""

    def __init__(self, driver, pool=None):
        fc_conf.register_opts(CONF)
        self.driver = driver
        self.pool = pool or CONF.fastclone.cache_pool or driver.pool

    def url(self, image_id: str) -> str:
        return 'rbd://%s/%s/%s/%s' % (self.driver.get_fsid(), self.pool,
                                      naming.base_name(image_id), naming.SNAP)

    @contextlib.contextmanager
    def ioctx(self):
        with rbd_utils.RADOSClient(self.driver, self.pool) as client:
            yield client.ioctx

    def _open(self, name, **kwargs):
        return rbd_utils.RBDVolumeProxy(self.driver, name, pool=self.pool,
                                        **kwargs)

    # ------------------------------------------------------------ lookup
    def ledger(self) -> set:
        with self.ioctx() as ioctx:
            return Ledger(ioctx).names()

    def _ledger_do(self, action: str, name: str, why: str = '') -> None:
        with self.ioctx() as ioctx:
            ledger = Ledger(ioctx)
            if action == 'add':
                ledger.add(name, why)
            else:
                ledger.drop(name)

    def metadata(self, name: str, snapshot=None):
        """(size, metadata dict) of one of our images, None if missing.

        A base made before the mark existed is adopted (marked) here.

        :raises: exception.NotOurs for a look-alike.
        """
        try:
            with self._open(name, snapshot=snapshot, read_only=True) as vol:
                size, meta = vol.size(), dict(vol.metadata_list())
                rbd_id = vol.id()
                has_snap = any(s['name'] == naming.SNAP and _user(s)
                               for s in vol.list_snaps())
        except rbd_utils.rbd.ImageNotFound:
            return None
        if naming.marked(name, meta, rbd_id):
            return size, meta
        if naming.adoptable(name, meta, has_snap):
            meta.update(self.adopt(name, rbd_id))
            return size, meta
        if naming.kind_of(name) != 'base' and name in self.ledger():
            return size, meta
        raise fc_exception.NotOurs(image=naming.image_id_of(name),
                                   pool=self.pool, name=name)

    def adopt(self, name: str, rbd_id: str) -> dict:
        """Mark a base an older release made (naming.adoptable)."""
        found = naming.mark(naming.image_id_of(name), rbd_id)
        with self._open(name) as vol:
            for key, value in found.items():
                vol.metadata_set(key, value)
        LOG.info('adopted %(pool)s/%(name)s, made by an earlier release '
                 '(our fingerprint and snapshot): marked as ours',
                 {'pool': self.pool, 'name': name})
        return found

    def expect(self, name: str, image_id: str) -> None:
        """Ledger a name we (or rbd import) are about to create."""
        self._ledger_do('add', name, 'population of %s' % image_id)

    def create(self, name: str, size: int, image_id: str) -> None:
        """Create an empty image for a population, ours by the ledger.

        Its name is in the ledger from before its creation until publish
        (which marks it) or removal: a crash at any point leaves a name
        proven ours.  Nothing else is written to it here: a metadata
        write takes the image's exclusive lock, one more round trip
        (and one more way to fail) before the data.
        """
        self.expect(name, image_id)
        with self.ioctx() as ioctx:
            rbd_utils.RbdProxy().create(ioctx, name, size, old_format=False)

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
        if found is None or naming.stale_reason(found[1], image_meta):
            found = self.metadata(naming.base_name(image_id), naming.SNAP)
        if found is None or naming.stale_reason(found[1], image_meta):
            forget(image_id)
            return None
        with _KNOWN_LOCK:
            _KNOWN[image_id] = found
        return found

    def touch(self, image_id: str, meta: dict) -> None:
        """Record the use, at most once a minute, best effort."""
        name = naming.base_name(image_id)
        if time.time() - _float(meta.get(naming.META + 'last_used')) < \
                TOUCH_EVERY:
            return
        now = stamp()
        meta[naming.META + 'last_used'] = now   # the remembered copy too
        try:
            with self._open(name) as vol:
                vol.metadata_set(naming.META + 'last_used', now)
        except (rbd_utils.rbd.Error, rbd_utils.rados.Error) as e:
            LOG.debug('could not record use of %(name)s: %(err)s',
                      {'name': name, 'err': e})
        self._index_do('use of ' + name, lambda index: index.use(name, now))

    def in_use(self, names) -> None:
        """Record a use of bases now, in the base index alone, best effort.

        The lifecycle pass's record of the bases it found with clones (see
        :func:`fastclone_backend.lifecycle.policy.in_use`): one write for
        all; their images keep the time of their last spawn.
        """
        now = stamp()
        self._index_do('use of %d bases with clones' % len(names),
                       lambda index: index.uses(names, now))

    def names(self, prefix: str = '') -> list:
        """Our image names in the pool (starting with prefix, if given)."""
        with self.ioctx() as ioctx:
            names = rbd_utils.RbdProxy().list(ioctx)
        return [n for n in names
                if naming.is_cache_name(n) and n.startswith(prefix)]

    # ------------------------------------------------------------ survey
    def survey(self) -> list:
        """A naming.Base for each image named like ours (vanished skipped).

        Base.owned says which are ours; the others are reported once and
        must be left alone.
        """
        found = []
        ledger = self.ledger()
        for name in self.names():
            base = self.describe(name, ledger)
            if base is not None:
                found.append(base)
                if not base.owned:
                    report_foreign(self.pool, name)
        return found

    def describe(self, name: str, ledger=None):
        """A naming.Base for the image, None if it is gone.

        A tmp or retired name in our ledger that is listed but cannot be
        opened (an interrupted removal leaves its directory entry) is
        described as an empty image, so the pass removes what is left of
        it.  A base of an earlier release is adopted (marked) here.
        """
        ledger = self.ledger() if ledger is None else ledger
        try:
            with self._open(name, read_only=True) as vol:
                meta = dict(vol.metadata_list())
                snaps = list(vol.list_snaps())
                children = tuple(spec(c) for s in snaps
                                 for c in children_of(vol, s))
                size = vol.size()
                rbd_id = vol.id()
        except rbd_utils.rbd.ImageNotFound:
            if naming.kind_of(name) not in ('tmp', 'retired'):
                return None
            meta, snaps, children, size, rbd_id = {}, [], (), 0, None
        has_snap = any(s['name'] == naming.SNAP and _user(s) for s in snaps)
        owned = naming.owned(name, meta, rbd_id, ledger)
        if not owned and rbd_id and naming.adoptable(name, meta, has_snap):
            meta.update(self.adopt(name, rbd_id))
            owned = True
        return naming.Base(
            name=name, size=size, last_used=_float(
                meta.get(naming.META + 'last_used')),
            children=children, has_snap=has_snap,
            locked=(owned and naming.kind_of(name) == 'tmp' and
                    self.locked(naming.image_id_of(name))),
            stored=meta, owned=owned)

    def survey_from_index(self) -> list:
        """A naming.Base for each image named like ours, for the pass.

        The ready bases of the base index come from it, not opened
        (``Base.surveyed`` False: clones unknown, see :meth:`look`); every
        other image named like ours is described (opened), and a ready
        base of ours found that way is indexed.  Entries of images no
        longer listed are dropped.  One omap read (per 1024 keys) and one
        pool listing, plus the images opened.
        """
        with self.ioctx() as ioctx:
            entries, used = baseindex.BaseIndex(ioctx).read()
            names = [n for n in rbd_utils.RbdProxy().list(ioctx)
                     if naming.is_cache_name(n)]
        ledger = self.ledger()
        found = [b for b in (self._indexed(n, entries, used, ledger)
                             for n in names) if b is not None]
        self._reindex([b for b in found if b.surveyed],
                      gone=(set(entries) | set(used)) - set(names))
        return found

    def _indexed(self, name: str, entries: dict, used: dict, ledger):
        """name's Base from its index entry; else described, or None."""
        if name in entries:
            try:
                base = baseindex.parse(name, entries[name],
                                       used.get(name, 0.0))
            except (ValueError, TypeError, AttributeError):
                base = None   # not an entry we wrote: open the image
            if base is not None and base.owned:
                return base
        base = self.describe(name, ledger)
        if base is None:
            return None
        if not base.owned:
            report_foreign(self.pool, name)
        return _used_since(base, used.get(name, 0.0))

    def look(self, bases: list, names) -> list:
        """bases, those named opened and described afresh (gone: left out).

        The base index follows what was found: a ready base of ours is
        indexed afresh, anything else (gone, no snapshot, not ours) is
        dropped from it.
        """
        names = set(names)
        ledger = self.ledger()
        found = []
        for base in bases:
            if base.name not in names:
                found.append(base)
                continue
            fresh = self.describe(base.name, ledger)
            if fresh is not None:
                found.append(_used_since(fresh, base.last_used))
        self._reindex([b for b in found if b.name in names],
                      gone=names - {b.name for b in found})
        return found

    def _reindex(self, described: list, gone=()) -> None:
        """Index the ready bases of ours described; drop the others."""
        ready = [b for b in described if b.kind == 'base']
        good = [b for b in ready if b.owned and b.has_snap]
        drop = set(gone) | ({b.name for b in ready} -
                            {b.name for b in good})
        if good or drop:
            self._index_do('survey', lambda index: (index.put(good),
                                                    index.drop(drop)))

    def _index_do(self, doing: str, write) -> None:
        """One change to the base index, best effort.

        A change lost costs the next lifecycle pass one image opened (a
        base it lacks) or one entry dropped (an image gone), nothing more.
        """
        try:
            with self.ioctx() as ioctx:
                write(baseindex.BaseIndex(ioctx))
        except (rbd_utils.rados.Error, rbd_utils.rbd.Error) as e:
            LOG.debug('base index of pool %(pool)s not updated (%(doing)s): '
                      '%(err)s; the lifecycle pass corrects it',
                      {'pool': self.pool, 'doing': doing, 'err': e})

    def locked(self, image_id: str) -> bool:
        """Whether a live holder has the image's population lock.

        Probed by taking it for a moment: RADOS breaks an expired lease,
        and the lock class cannot list who holds it from Python.
        """
        obj = naming.lock_object(image_id)
        cookie = 'probe-' + _token()
        with self.ioctx() as ioctx:
            try:
                ioctx.lock_exclusive(obj, naming.LOCK_NAME, cookie,
                                     desc='fastclone-backend probe',
                                     duration=1)
            except rbd_utils.rados.ObjectBusy:
                return True
            ioctx.unlock(obj, naming.LOCK_NAME, cookie)
        return False

    # ------------------------------------------------------------ change
    def rename(self, src: str, dst: str) -> None:
        with self.ioctx() as ioctx:
            rbd_utils.RbdProxy().rename(ioctx, src, dst)

    def publish(self, tmp: str, image_meta: dict) -> int:
        """Stamp and snapshot tmp, then rename it to the base name."""
        protect = self.driver.handle.clone_format() == 1
        with self._open(tmp) as vol:
            stamped = dict(naming.fingerprint(image_meta),
                           **naming.mark(image_meta['id'], vol.id()))
            stamped[naming.META + 'last_used'] = stamp()
            stamped[naming.META + 'populated_by'] = '%s:%d' % (
                socket.gethostname(), os.getpid())
            for key, value in stamped.items():
                vol.metadata_set(key, value)
            vol.create_snap(naming.SNAP)
            if protect:
                vol.protect_snap(naming.SNAP)
            size = vol.size()
        name = naming.base_name(image_meta['id'])
        self.rename(tmp, name)
        self._ledger_do('drop', tmp)   # the mark proves it ours now
        base = naming.Base(name=name, size=size, stored=stamped,
                           last_used=_float(
                               stamped[naming.META + 'last_used']))
        self._index_do('publish of ' + name, lambda index: index.put([base]))
        return size

    def retire(self, name: str, why: str):
        """Hide a base from lookups; returns its retired name.

        None when it is gone already (another host retired it).
        """
        image_id = naming.image_id_of(name)
        forget(image_id)
        new = naming.retired_name(image_id, _token())
        try:
            self.rename(name, new)
        except rbd_utils.rbd.ImageNotFound:
            self._unindex(name)
            return None
        self._unindex(name)
        LOG.info('retired cached base %(pool)s/%(name)s as %(new)s: %(why)s',
                 {'pool': self.pool, 'name': name, 'new': new, 'why': why})
        return new

    def _unindex(self, name: str) -> None:
        self._index_do('retirement of ' + name,
                       lambda index: index.drop([name]))

    def remove(self, name: str, wait: float = 0) -> bool:
        """Remove a hidden image of ours unless it has clones; True: gone.

        Only for retired and tmp names: a base is retired first.  A
        look-alike is never removed (False, reported once).  Bounded by
        ``[fastclone] remove_timeout`` per Ceph operation: a removal that
        the cluster blocks (a full pool) fails with a CephTimeout naming
        the image.

        :param wait: seconds to keep trying while a client (a killed
            qemu-img's watch lasts 30 s) still has the image open.
        """
        if naming.kind_of(name) == 'base':
            raise ValueError('%s must be retired before removal' % name)
        if not self._ours_to_remove(name):
            report_foreign(self.pool, name)
            return False
        deadline = time.monotonic() + wait
        timeout = CONF.fastclone.remove_timeout
        with cluster.answering(naming.image_id_of(name), 'removing %s/%s' % (
                self.pool, name), timeout, '[fastclone] remove_timeout'):
            while not self._remove_once(name):
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1)
        return True

    def _ours_to_remove(self, name: str) -> bool:
        """Proven ours; then in the ledger until it is gone."""
        ledger = self.ledger()
        owned = self._owned(name, ledger)
        if owned and name not in ledger:
            self._ledger_do('add', name, 'removal')
        return owned

    def _owned(self, name: str, ledger) -> bool:
        """Is the (hidden) image ours: marked, or in our ledger?"""
        try:
            with self._open(name, read_only=True) as vol:
                owned = naming.owned(name, dict(vol.metadata_list()),
                                     vol.id(), ledger)
        except rbd_utils.rbd.ImageNotFound:
            # an interrupted removal's name (ledgered), or nothing at all:
            # a name that is not even listed is gone, nothing to prove
            owned = name in ledger or name not in self.names()
        return owned

    def _remover(self):
        """A store on a connection bounded by [fastclone] remove_timeout."""
        return BaseStore(cluster.bounded_driver(
            self.driver, CONF.fastclone.remove_timeout), self.pool)

    def break_writers(self, name: str) -> list:
        """Fence the clients holding a temp image's lock; their addresses.

        Only for a dead population's temp image, under its population
        lock: its writer (``qemu-img`` or ``rbd import`` of a host that
        died) holds the image's exclusive lock, and its watch would keep
        the image busy until the OSD drops it (30 s).  librbd's
        ``break_lock`` blocklists the holder (``rbd_blocklist_on_break_lock``,
        on by default) before breaking its lock: the OSDs drop its watch,
        and a writer still running can write no more.
        """
        if naming.kind_of(name) != 'tmp':
            raise ValueError('%s is not a temp image' % name)
        if not self._owned(name, self.ledger()):
            report_foreign(self.pool, name)   # its writers are not ours
            return []
        fenced = []
        try:
            with self._open(name) as vol:
                found = vol.list_lockers() or {}
                for client, cookie, addr in found.get('lockers', []):
                    try:
                        vol.break_lock(client, cookie)
                    except rbd_utils.rbd.Error as e:   # no cap, or gone
                        LOG.warning('could not fence %(client)s (%(addr)s) '
                                    'writing %(name)s: %(err)s (%(fix)s)',
                                    {'client': client, 'addr': addr,
                                     'name': name, 'err': e,
                                     'fix': liveness.CAP_FIX})
                        continue
                    LOG.info('fenced %(client)s (%(addr)s), the writer of '
                             '%(name)s', {'client': client, 'addr': addr,
                                          'name': name})
                    fenced.append(addr)
        except rbd_utils.rbd.ImageNotFound:
            pass
        return fenced

    def _remove_once(self, name: str) -> bool:
        if not self._remover()._remove_bounded(name):
            return False
        self._ledger_do('drop', name)
        return True

    def _remove_bounded(self, name: str) -> bool:
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


def _used_since(base: naming.Base, used: float) -> naming.Base:
    """base, last used when it says or at `used`, whichever is later."""
    if used <= base.last_used:
        return base
    return dataclasses.replace(base, last_used=used)


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
