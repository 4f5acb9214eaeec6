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

"""Populating a cached base: lock, fetch, inspect, convert or import,
publish.

One host per image does it, under a RADOS lease on
``fastclone-lock-<image id>``; every other spawn, on any host, waits for
the base and clones it.  The image is written as
``fastclone-tmp-<id>-<token>``, stamped with the Glance image's
fingerprint, snapshotted, then renamed to its base name
(:meth:`BaseStore.publish`): no reader ever sees a partial base.

The tmp image is ours from before its first instant: its name goes into
our ledger before ``qemu-img`` writes into the image we create (``convert
-n``) or ``rbd import`` creates its own; publish marks it before the
rename that makes it a base (see :mod:`fastclone_backend.cache.basestore`).
"""

import contextlib
import errno
import os
import time
import uuid

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

import nova.conf
from nova import exception as nova_exception
from nova.storage import rbd_utils
from nova.virt.libvirt import imagebackend as nova_imagebackend

from fastclone_backend.cache import basestore
from fastclone_backend.cache import degrade
from fastclone_backend.cache import fetch
from fastclone_backend.cache import naming
from fastclone_backend.cache import poolspace
from fastclone_backend.cache import progress
from fastclone_backend.cache import workdir
from fastclone_backend import cluster
from fastclone_backend import exception as fc_exception
from fastclone_backend import glanceapi
from fastclone_backend import inspect
from fastclone_backend import lease
from fastclone_backend import wake

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

REMOVE_WAIT = 45  # a killed client's watch times out after 30 s


class Populator:
    """Makes sure an image's cached base exists, populating it if needed."""

    def __init__(self, driver):
        self.driver = driver
        self.store = basestore.BaseStore(driver)
        self.held = None   # the population lease, while populating

    def _lease_lost(self) -> bool:
        return self.held is not None and self.held.lost

    def _still_held(self, step: str) -> None:
        if self._lease_lost():
            raise lease.LeaseLost(self.held, step)

    def ensure(self, context, image_meta: dict, max_virtual_size: int):
        """Return (rbd:// URL of the base snapshot, its size, hit?).

        A spawn that finds another host populating the image waits for it,
        woken by the notify of the lock's release (:mod:`wake`), checking
        every ``cache_poll_interval`` that the holder is alive (and taking
        the population over from a dead one) and in case the notify is
        lost.

        :raises: ImageRejected for a bad image, CacheError when waiting for
            another populator timed out.
        """
        image_id = image_meta['id']
        deadline = time.monotonic() + CONF.fastclone.cache_wait_timeout
        ready = self._ready(image_meta)
        if ready is not None:
            return ready
        with self._lock_connection() as (client, ioctx), \
                wake.Waiting(ioctx, naming.lock_object(image_id)) as waiting:
            while True:
                size = self._populate_if_free(context, image_meta,
                                              max_virtual_size, client, ioctx)
                if size is not None:
                    return self.store.url(image_id), size, False
                if time.monotonic() > deadline:
                    raise fc_exception.CacheError(
                        image=image_id, reason='gave up after %ds waiting '
                        'for another host to populate it'
                        % CONF.fastclone.cache_wait_timeout)
                waiting.wait(CONF.fastclone.cache_poll_interval)
                ready = self._ready(image_meta)
                if ready is not None:
                    return ready

    def _ready(self, image_meta: dict):
        """(URL, size, True) of the image's current base, or None."""
        ready = self.store.lookup(image_meta)
        if ready is None:
            return None
        self.store.touch(image_meta['id'], ready[1])
        return self.store.url(image_meta['id']), ready[0], True

    @contextlib.contextmanager
    def _lock_connection(self):
        """(rados.Rados, ioctx on the cache pool) of the lock connection."""
        handle = self.driver.lock_handle
        client, ioctx = handle.open_ioctx(self.store.pool)
        try:
            yield client, ioctx
        finally:
            # a client reset meanwhile (fenced) is shut down only now
            handle.close_ioctx(client, ioctx)

    def _populate_if_free(self, context, image_meta, max_virtual_size,
                          client, ioctx):
        """The base's size once populated here; None if another holds it."""
        image_id = image_meta['id']
        with lease.hold(ioctx, naming.lock_object(image_id),
                        CONF.fastclone.cache_lock_lease, rbd_utils.rados,
                        name=naming.LOCK_NAME, client=client,
                        holder_timeout=CONF.fastclone.cache_holder_timeout
                        ) as held:
            if held is None:
                return None
            try:
                return self._populate_locked(context, image_meta,
                                             max_virtual_size, held)
            except lease.LeaseLost as e:
                self._lease_lost_error(e, image_id, client)
                LOG.warning('image %(image)s: population stopped: its '
                            'lock ran out; waiting for the host that '
                            'took it over', {'image': image_id})
                return None

    def _lease_lost_error(self, e: lease.LeaseLost, image_id: str,
                          client) -> None:
        """Raise what a lost lease means, unless another host took over."""
        if e.lease.fenced:
            # another host found us dead and blocklisted our lock client
            self.driver.lock_handle.reset(broken=client)
            raise fc_exception.CacheError(
                image=image_id, reason='another host took the population '
                'over and fenced this one (its lock connection was '
                'blocklisted: it did not answer within [fastclone] '
                'cache_holder_timeout); reconnected for the next spawn') \
                from e
        if e.lease.unanswered:
            raise fc_exception.CephTimeout(
                image=image_id, timeout=e.lease.seconds,
                option='[fastclone] cache_lock_lease',
                doing='renewing the population lock during ' + e.step,
                cause=str(e)) from e

    def _populate_locked(self, context, image_meta, max_virtual_size,
                         held) -> int:
        image_id = image_meta['id']
        ready = self.store.lookup(image_meta)  # populated while we waited?
        if ready is not None:
            return ready[0]
        self._clear_leftovers(image_meta)
        token = uuid.uuid4().hex[:8]
        tmp = naming.tmp_name(image_id, token)
        LOG.info('image %(image)s: cache miss, populating %(pool)s/%(name)s',
                 {'image': image_id, 'pool': self.store.pool,
                  'name': naming.base_name(image_id)})
        self.held = held
        start = time.monotonic()
        try:
            with naming.stages() as stages:
                self._fill(context, image_meta, max_virtual_size, tmp,
                           token)
                held.confirm('publish')
                with naming.timed('publish'), stage(image_id, 'publish'):
                    size = self.store.publish(tmp, image_meta)
        except Exception as e:
            with excutils.save_and_reraise_exception():
                self._discard(tmp, killed=isinstance(
                    e, fc_exception.ToolTimeout))
        naming.STATS['populations'] += 1
        LOG.info('image %(image)s: cached as %(pool)s/%(name)s@%(snap)s: '
                 '%(bytes)d bytes downloaded, %(size)d bytes virtual, in '
                 '%(s).2f s (%(stages)s)',
                 {'image': image_id, 'pool': self.store.pool,
                  'name': naming.base_name(image_id), 'snap': naming.SNAP,
                  'bytes': image_meta.get('size') or 0, 'size': size,
                  's': time.monotonic() - start,
                  'stages': naming.describe_stages(stages)})
        return size

    def _discard(self, tmp: str, killed: bool = False) -> None:
        """Remove a failed population's image, or leave it to the pass.

        :param killed: we killed its writer (a tool past its timeout): its
            lock is broken and its client fenced first, or its watch would
            keep the image busy for 30 s.
        """
        try:
            if killed:
                self.store.break_writers(tmp)
            if self.store.remove(tmp, wait=REMOVE_WAIT):
                return
            why = 'a client still has it open'
        except Exception as e:   # Ceph does not answer, most likely
            why = '%s: %s' % (type(e).__name__, e)
        LOG.warning('%(pool)s/%(name)s not removed yet (%(why)s); the '
                    'lifecycle pass removes it', {'pool': self.store.pool,
                                                  'name': tmp, 'why': why})

    def _clear_leftovers(self, image_meta: dict) -> None:
        """Under the lock: clear the way for a new base.

        A crashed populator's temp image is removed, its writer fenced
        first (or left to the lifecycle pass while a dead client still has
        it open, if fencing was refused); a base that
        is stale or has no snapshot is retired, never removed here: it may
        have clones (a snapshot in the trash namespace has).
        """
        image_id = image_meta['id']
        for name in self.store.names(naming.tmp_prefix(image_id)):
            LOG.warning('image %(image)s: removing %(name)s left by a '
                        'crashed populator', {'image': image_id,
                                              'name': name})
            # its writer (a dead host's qemu-img) keeps a watch on it for
            # 30 s: fenced and its lock broken, the removal is at once
            self.store.break_writers(name)
            self.store.remove(name)
        base = naming.base_name(image_id)
        if self.store.metadata(base) is None:
            return
        found = self.store.metadata(base, naming.SNAP)
        why = ('it has no snapshot' if found is None
               else naming.stale_reason(found[1], image_meta))
        if why:   # else it became current meanwhile: never retire that
            self.store.retire(base, why)

    def _fill(self, context, image_meta, max_virtual_size, tmp, token):
        """Download, inspect and write the image into RBD image tmp."""
        image_id = image_meta['id']
        root = workdir.path(CONF)
        fetch.check_room(root, (image_meta.get('size') or 0) + 64 * units.Mi,
                         image_id)
        with workdir.claim(root, image_id, token) as files:
            download = files.file('download')
            with naming.timed('download'):
                self._download(context, image_meta, download)
            self._still_held('inspect')
            with naming.timed('inspect'), stage(image_id, 'inspect'):
                found = inspect.inspect_image(
                    download, image_id, image_meta.get('disk_format'),
                    max_virtual_size=max_virtual_size or None,
                    vmdk_allowed_types=CONF.compute.vmdk_allowed_types)
            with stage(image_id, 'import' if found.qemu_format == 'raw'
                       else 'convert'):
                self._check_pool(image_id, found.virtual_size)
            self._still_held('import' if found.qemu_format == 'raw'
                             else 'convert')
            if found.qemu_format == 'raw':
                with naming.timed('import'):
                    self._import(download, tmp, image_id)
            else:
                with naming.timed('convert'):
                    self._convert(download, found, tmp, image_id, files)

    def _pool_full(self) -> bool:
        try:
            return poolspace.lacks_room(self._quota(), 1) is not None
        except Exception:   # the monitor does not answer either
            return False

    def _quota(self) -> poolspace.Quota:
        with rbd_utils.RADOSClient(self.driver, self.store.pool) as client:
            return poolspace.quota(client.cluster, self.store.pool)

    def _check_pool(self, image_id: str, needed: int) -> None:
        """Refuse to start writing a base that the pool's quota stops."""
        why = poolspace.lacks_room(self._quota(), needed)
        if why:
            raise fc_exception.CacheUnavailable(
                image=image_id, kind=degrade.POOL_FULL, reason=why,
                fix=poolspace.fix(self.store.pool))

    def _download(self, context, image_meta, path):
        image_id = image_meta['id']
        naming.STATS['downloads'] += 1
        interval = CONF.fastclone.progress_interval
        if CONF.glance.enable_rbd_download:
            nova_imagebackend.IMAGE_API.download(context, image_id,
                                                 dest_path=path)
            fetch.verify_file(path, image_meta, interval)
            return
        # hashed as the bytes stream to the file: one pass
        with open(path, 'wb') as f:
            writer = fetch.VerifyingWriter(f, image_meta, interval)
            try:
                glanceapi.download(context, image_id, writer)
            except Exception as e:
                if isinstance(e, (nova_exception.NovaException,
                                  fc_exception.GlanceTimeout)):
                    raise   # Nova's own (not found, ...), or Glance hangs
                if _no_space(e):
                    raise fetch.workdir_full(
                        image_id, os.path.dirname(path),
                        'it filled up after %d MiB of the download'
                        % (writer.written >> 20)) from e
                raise fc_exception.DownloadInterrupted(
                    image=image_id, done=writer.written / units.Mi,
                    expected=(image_meta.get('size') or 0) / units.Mi,
                    cause='%s: %s' % (type(e).__name__, e)) from e
        with stage(image_id, 'verify'):
            writer.verify()

    def _limits(self, cmd):
        return fetch.prlimit(cmd, CONF.fastclone.convert_address_space_mib *
                             units.Mi, CONF.fastclone.convert_cpu_seconds)

    def _rbd_target(self, name: str) -> str:
        target = 'rbd:%s/%s' % (self.store.pool, name)
        if self.driver.rbd_user:
            target += ':id=' + self.driver.rbd_user
        if self.driver.ceph_conf:
            target += ':conf=' + self.driver.ceph_conf
        for item in cluster.op_timeout_conf(self.driver.op_timeout).items():
            target += ':%s=%s' % item   # qemu's rbd driver passes them on
        return target

    def _import(self, path, name, image_id):
        """Write a raw file into RBD image name.

        Under ``rados_op_timeout``, through ``qemu-img``: ``rbd import``
        with an operation timeout reports success over the objects whose
        writes timed out (Ceph 16.2.15).
        """
        naming.STATS['imports'] += 1
        prog = progress.Progress(image_id, 'import', os.path.getsize(path),
                                 CONF.fastclone.progress_interval)
        if self.driver.op_timeout and CONF.fastclone.convert_direct_to_rbd:
            self._into_rbd(['qemu-img', 'convert', '-p', '-f', 'raw', '-O',
                            'raw'], path, name, image_id,
                           os.path.getsize(path), prog)
            return
        self.store.expect(name, image_id)
        self._run(['rbd', 'import', '--image-format=2', '--pool',
                   self.store.pool, path, name] + self.driver.ceph_args(),
                  prog, timeout=CONF.fastclone.import_timeout,
                  option='[fastclone] import_timeout')

    def _into_rbd(self, convert, path, name, image_id, size, prog):
        """qemu-img convert into an image we create (ledgered) first."""
        with stage(image_id, prog.step):
            self.store.create(name, size, image_id)
        self._run(convert + ['-n', '--target-is-zero', '-W', '-m', '16',
                             path, self._rbd_target(name)], prog)

    def _convert(self, path, found, name, image_id, files):
        naming.STATS['conversions'] += 1
        prog = progress.Progress(image_id, 'convert', found.virtual_size,
                                 CONF.fastclone.progress_interval)
        convert = ['qemu-img', 'convert', '-p', '-f', found.qemu_format,
                   '-O', 'raw']
        if CONF.fastclone.convert_direct_to_rbd:
            self._into_rbd(convert, path, name, image_id, found.virtual_size,
                           prog)
            return
        raw = files.file('raw')
        fetch.check_room(files.workdir, found.virtual_size, image_id)
        try:
            self._run(convert + ['-t', 'none', path, raw], prog)
            self._import(raw, name, image_id)
        finally:
            workdir.unlink(raw)

    def _run(self, cmd, prog, timeout=0, option=''):
        try:
            if not fetch.run_with_progress(self._limits(cmd), prog,
                                           stop=self._lease_lost,
                                           timeout=timeout):
                raise lease.LeaseLost(self.held, prog.step)
        except processutils.ProcessExecutionError as e:
            raise self._tool_failed(prog, e.exit_code, e.stdout or '')
        except fetch.TimedOut as e:
            raise fc_exception.ToolTimeout(
                image=prog.image_id, tool=cmd[0] + ' ' + cmd[1],
                timeout=timeout, option=option,
                doing='writing %s into pool %s' % (prog.step,
                                                   self.store.pool),
                done=prog.done >> 20, total=prog.total >> 20) from e

    def _tool_failed(self, prog, exit_code, output: str) -> Exception:
        """The error for a failed qemu-img convert or rbd import."""
        image_id, step = prog.image_id, prog.step
        kind = fetch.failure_kind(exit_code, output)
        tail = output[-500:]
        if kind == 'limits':
            return fc_exception.ImageRejected(
                image=image_id, reason='%s exceeded its limits (exit %s: '
                'address space %d MiB, CPU %d s; [fastclone] '
                'convert_address_space_mib, convert_cpu_seconds): %s' % (
                    step, exit_code, CONF.fastclone.convert_address_space_mib,
                    CONF.fastclone.convert_cpu_seconds, tail))
        if kind == 'timeout' and self._pool_full():
            kind = 'quota'   # Ceph pauses writes to a full pool
        if kind == 'timeout':
            return fc_exception.CephTimeout(
                image=image_id, timeout=self.driver.op_timeout,
                doing='writing %s into pool %s (%d of %d MiB done)' % (
                    step, self.store.pool, prog.done >> 20,
                    prog.total >> 20), cause=tail)
        if kind == 'quota':
            return fc_exception.CacheUnavailable(
                image=image_id, kind=degrade.POOL_FULL,
                reason='%s failed: %s' % (step, tail),
                fix=poolspace.fix(self.store.pool))
        return fc_exception.ImageRejected(
            image=image_id, reason='%s failed (exit %s) after %d of %d MiB: '
            '%s' % (step, exit_code, prog.done >> 20, prog.total >> 20,
                    tail))


def _no_space(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def stage(image_id: str, name: str):
    """Say which image and step an unexpected Ceph or OS error stopped.

    fastclone's and Nova's own errors pass unchanged: they say it already.
    """
    try:
        with cluster.answering(image_id, name,
                               CONF.fastclone.rados_op_timeout):
            yield
    except (fc_exception.FastcloneException, nova_exception.NovaException,
            lease.LeaseLost):
        raise
    except Exception as e:
        raise fc_exception.PopulationFailed(
            image=image_id, stage=name,
            cause='%s: %s' % (type(e).__name__, e)) from e
