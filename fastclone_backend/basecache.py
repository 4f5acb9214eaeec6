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

"""BaseCache: find, populate, invalidate and evict cached base images.

The naming, locking and eviction rules are in :mod:`fastclone_backend.cache`;
this module does the I/O: Glance download, inspection, ``qemu-img
convert`` / ``rbd import`` into RBD, snapshot, rename.
"""

import contextlib
import os
import socket
import time
import uuid

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

import nova.conf
from nova.storage import rbd_utils
from nova.virt.libvirt import imagebackend as nova_imagebackend

from fastclone_backend import cache
from fastclone_backend import exception as fc_exception
from fastclone_backend import fetch
from fastclone_backend import inspect
from fastclone_backend import progress

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

REMOVE_RETRY_SECONDS = 45  # a dead client's watch times out after 30 s


class BaseCache:
    """The cached bases of one pool, seen through one SharedRBDDriver."""

    def __init__(self, driver):
        self.driver = driver
        self.pool = CONF.fastclone.cache_pool or driver.pool

    # ------------------------------------------------------------ public
    def ensure(self, context, image_meta: dict, max_virtual_size: int):
        """Return (rbd:// URL of the base snapshot, its size, hit?).

        :raises: ImageRejected for a bad image, CacheError when waiting for
            another populator timed out.
        """
        image_id = image_meta['id']
        deadline = time.monotonic() + CONF.fastclone.cache_wait_timeout
        while True:
            ready = self._ready(image_meta)
            if ready is not None:
                self._touch(image_id, ready[1])
                return self._url(image_id), ready[0], True
            with self._lease(image_id) as lease:
                if lease is not None:
                    size = self._populate_locked(context, image_meta,
                                                 max_virtual_size, lease)
                    return self._url(image_id), size, False
            if time.monotonic() > deadline:
                raise fc_exception.CacheError(
                    image=image_id, reason='gave up after %ds waiting for '
                    'another host to populate it'
                    % CONF.fastclone.cache_wait_timeout)
            time.sleep(CONF.fastclone.cache_poll_interval)

    def remove_base(self, image_id: str) -> bool:
        """Remove an image's cached base unless it still has clones."""
        info = self._base_info(cache.base_name(image_id))
        if info is None or info.has_children:
            return False
        self._destroy(info.name)
        with self._ioctx() as ioctx:
            try:
                ioctx.remove_object(cache.lock_object(image_id))
            except rbd_utils.rados.ObjectNotFound:
                pass
        return True

    # ------------------------------------------------------------ state
    def _url(self, image_id: str) -> str:
        return 'rbd://%s/%s/%s/%s' % (self.driver.get_fsid(), self.pool,
                                      cache.base_name(image_id), cache.SNAP)

    @contextlib.contextmanager
    def _ioctx(self):
        client, ioctx = self.driver._connect_to_rados(self.pool)
        try:
            yield ioctx
        finally:
            self.driver._disconnect_from_rados(client, ioctx)

    def _metadata(self, name: str, snapshot=None):
        """(size, metadata dict) of an image, or None if it is missing."""
        try:
            with rbd_utils.RBDVolumeProxy(self.driver, name, pool=self.pool,
                                          snapshot=snapshot,
                                          read_only=True) as vol:
                return vol.size(), dict(vol.metadata_list())
        except rbd_utils.rbd.ImageNotFound:
            return None

    def _ready(self, image_meta: dict):
        """(size, metadata) of the usable base, or None.

        None: missing, stale or partial (no snapshot).
        """
        found = self._metadata(cache.base_name(image_meta['id']), cache.SNAP)
        if found is None or cache.stale_reason(found[1], image_meta):
            return None
        return found

    def _touch(self, image_id: str, meta: dict) -> None:
        """Record the use, at most once per minute, best effort."""
        name = cache.base_name(image_id)
        try:
            if time.time() - float(meta.get(cache.META + 'last_used',
                                            0)) < 60:
                return
            with rbd_utils.RBDVolumeProxy(self.driver, name,
                                          pool=self.pool) as vol:
                vol.metadata_set(cache.META + 'last_used',
                                 '%.0f' % time.time())
        except (rbd_utils.rbd.Error, rbd_utils.rados.Error, ValueError) as e:
            LOG.debug('could not record use of %(name)s: %(err)s',
                      {'name': name, 'err': e})

    @contextlib.contextmanager
    def _lease(self, image_id: str):
        """A held Lease, or None if another process holds it."""
        with self._ioctx() as ioctx:
            lease = cache.Lease(ioctx, cache.lock_object(image_id),
                                CONF.fastclone.cache_lock_lease,
                                rbd_utils.rados)
            if not lease.acquire():
                yield None
                return
            try:
                yield lease
            finally:
                lease.release()

    # ------------------------------------------------------------ populate
    def _populate_locked(self, context, image_meta, max_virtual_size,
                         lease) -> int:
        image_id = image_meta['id']
        ready = self._ready(image_meta)  # populated while we waited?
        if ready is not None:
            return ready[0]
        self._clear_leftovers(image_meta)
        token = uuid.uuid4().hex[:8]
        tmp = cache.tmp_name(image_id, token)
        LOG.info('image %(image)s: cache miss, populating %(pool)s/%(name)s',
                 {'image': image_id, 'pool': self.pool,
                  'name': cache.base_name(image_id)})
        try:
            self._fill(context, image_meta, max_virtual_size, tmp, token)
            size = self._finish(image_meta, tmp, lease)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._destroy(tmp)
        self.evict(keep=cache.base_name(image_id))
        return size

    def _clear_leftovers(self, image_meta: dict) -> None:
        """Under the lock: remove what a crashed or older population left.

        A crashed populator's temp image is removed, a stale base renamed
        out of the way (its clones keep it), a partial one removed.
        """
        image_id = image_meta['id']
        for name in self._list(cache.tmp_prefix(image_id)):
            LOG.warning('image %(image)s: removing %(name)s left by a '
                        'crashed populator', {'image': image_id,
                                              'name': name})
            self._destroy(name)
        base = cache.base_name(image_id)
        if self._metadata(base) is None:
            return
        found = self._metadata(base, cache.SNAP)
        if found is None:
            LOG.warning('image %(image)s: removing partial base %(name)s',
                        {'image': image_id, 'name': base})
            self._destroy(base)
            return
        LOG.warning('image %(image)s: retiring base %(name)s: %(why)s',
                    {'image': image_id, 'name': base,
                     'why': cache.stale_reason(found[1], image_meta)})
        self._rename(base, cache.stale_name(image_id, uuid.uuid4().hex[:8]))

    def _workdir(self) -> str:
        path = CONF.fastclone.work_dir or os.path.join(CONF.instances_path,
                                                       'fastclone')
        os.makedirs(path, exist_ok=True)
        return path

    def _fill(self, context, image_meta, max_virtual_size, tmp, token):
        """Download, inspect and write the image into RBD image tmp."""
        image_id = image_meta['id']
        workdir = self._workdir()
        download = os.path.join(workdir,
                                '%s.%s.download' % (image_id, token))
        fetch.check_room(workdir,
                         (image_meta.get('size') or 0) + 64 * units.Mi,
                         image_id)
        try:
            self._download(context, image_meta, download)
            found = inspect.inspect_image(
                download, image_id, image_meta.get('disk_format'),
                max_virtual_size=max_virtual_size or None,
                vmdk_allowed_types=CONF.compute.vmdk_allowed_types)
            if found.qemu_format == 'raw':
                self._import(download, tmp, image_id)
            else:
                self._convert(download, found, tmp, image_id, workdir, token)
        finally:
            _unlink(download)

    def _download(self, context, image_meta, path):
        image_id = image_meta['id']
        cache.STATS['downloads'] += 1
        interval = CONF.fastclone.progress_interval
        api = nova_imagebackend.IMAGE_API
        if CONF.glance.enable_rbd_download:
            api.download(context, image_id, dest_path=path)
            fetch.verify_file(path, image_meta, interval)
            return
        with open(path, 'wb') as f:
            writer = fetch.VerifyingWriter(f, image_meta, interval)
            api.download(context, image_id, data=writer)
        writer.verify()

    def _limits(self, cmd):
        return fetch.prlimit(cmd, CONF.fastclone.convert_address_space_mib *
                             units.Mi, CONF.fastclone.convert_cpu_seconds)

    def _rbd_target(self, name: str) -> str:
        target = 'rbd:%s/%s' % (self.pool, name)
        if self.driver.rbd_user:
            target += ':id=' + self.driver.rbd_user
        if self.driver.ceph_conf:
            target += ':conf=' + self.driver.ceph_conf
        return target

    def _import(self, path, name, image_id):
        cache.STATS['imports'] += 1
        cmd = (['rbd', 'import', '--image-format=2', '--pool', self.pool,
                path, name] + self.driver.ceph_args())
        self._run(cmd, progress.Progress(
            image_id, 'import', os.path.getsize(path),
            CONF.fastclone.progress_interval))

    def _convert(self, path, found, name, image_id, workdir, token):
        cache.STATS['conversions'] += 1
        prog = progress.Progress(image_id, 'convert', found.virtual_size,
                                 CONF.fastclone.progress_interval)
        convert = ['qemu-img', 'convert', '-p', '-f', found.qemu_format,
                   '-O', 'raw']
        if CONF.fastclone.convert_direct_to_rbd:
            self._run(convert + ['-W', '-m', '16', path,
                                 self._rbd_target(name)], prog)
            return
        raw = os.path.join(workdir, '%s.%s.raw' % (image_id, token))
        fetch.check_room(workdir, found.virtual_size, image_id)
        try:
            self._run(convert + ['-t', 'none', path, raw], prog)
            self._import(raw, name, image_id)
        finally:
            _unlink(raw)

    def _run(self, cmd, prog):
        try:
            fetch.run_with_progress(self._limits(cmd), prog)
        except processutils.ProcessExecutionError as e:
            raise fc_exception.ImageRejected(
                image=prog.image_id, reason='%s failed (exit %s): %s' % (
                    prog.step, e.exit_code, (e.stdout or '')[-500:]))

    def _finish(self, image_meta, tmp, lease) -> int:
        """Snapshot and stamp tmp, then rename it to the base name."""
        image_id = image_meta['id']
        protect = self.driver.handle.clone_format() == 1
        with rbd_utils.RBDVolumeProxy(self.driver, tmp,
                                      pool=self.pool) as vol:
            for key, value in cache.fingerprint(image_meta).items():
                vol.metadata_set(key, value)
            vol.metadata_set(cache.META + 'last_used', '%.0f' % time.time())
            vol.metadata_set(cache.META + 'populated_by', '%s:%d' % (
                socket.gethostname(), os.getpid()))
            vol.create_snap(cache.SNAP)
            if protect:
                vol.protect_snap(cache.SNAP)
            size = vol.size()
        if lease.lost:
            raise fc_exception.CacheError(
                image=image_id, reason='lost the population lock')
        self._rename(tmp, cache.base_name(image_id))
        LOG.info('image %(image)s: cached as %(pool)s/%(name)s@%(snap)s',
                 {'image': image_id, 'pool': self.pool,
                  'name': cache.base_name(image_id), 'snap': cache.SNAP})
        return size

    # ------------------------------------------------------------ rbd ops
    def _list(self, prefix: str) -> list:
        with self._ioctx() as ioctx:
            names = rbd_utils.RbdProxy().list(ioctx)
        return [n for n in names if n.startswith(prefix)]

    def _rename(self, src: str, dst: str) -> None:
        with self._ioctx() as ioctx:
            rbd_utils.RbdProxy().rename(ioctx, src, dst)

    def _destroy(self, name: str) -> None:
        """Remove an image and its snapshots, waiting out a dead client."""
        deadline = time.monotonic() + REMOVE_RETRY_SECONDS
        while True:
            try:
                self._remove_snaps(name)
                with self._ioctx() as ioctx:
                    rbd_utils.RbdProxy().remove(ioctx, name)
                return
            except rbd_utils.rbd.ImageNotFound:
                return
            except (rbd_utils.rbd.ImageBusy,
                    rbd_utils.rbd.ImageHasSnapshots) as e:
                if time.monotonic() > deadline:
                    LOG.error('could not remove %(name)s: %(err)s',
                              {'name': name, 'err': e})
                    raise
                time.sleep(1)

    def _remove_snaps(self, name: str) -> None:
        with rbd_utils.RBDVolumeProxy(self.driver, name,
                                      pool=self.pool) as vol:
            for snap in list(vol.list_snaps()):
                if vol.is_protected_snap(snap['name']):
                    vol.unprotect_snap(snap['name'])
                vol.remove_snap(snap['name'])

    # ------------------------------------------------------------ eviction
    def _base_info(self, name: str):
        try:
            with rbd_utils.RBDVolumeProxy(self.driver, name, pool=self.pool,
                                          snapshot=cache.SNAP,
                                          read_only=True) as vol:
                meta = dict(vol.metadata_list())
                children = list(vol.list_children())
                return cache.BaseInfo(
                    name=name, size=vol.size(), has_children=bool(children),
                    last_used=float(meta.get(cache.META + 'last_used', 0)))
        except rbd_utils.rbd.ImageNotFound:
            return None

    def bases(self) -> list:
        names = (self._list(cache.BASE_PREFIX) +
                 self._list(cache.STALE_PREFIX))
        return [b for b in map(self._base_info, names) if b is not None]

    def evict(self, keep: str) -> list:
        """Remove stale bases and the least recently used over the limits."""
        victims = cache.eviction_victims(
            self.bases(), CONF.fastclone.cache_max_bytes,
            CONF.fastclone.cache_max_count, keep)
        for name in victims:
            LOG.info('evicting cached base %(pool)s/%(name)s',
                     {'pool': self.pool, 'name': name})
            self._destroy(name)
        return victims


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
