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

"""A RADOS lock with a lease: held while its holder lives, renewed by it.

A waiter that finds the holder's client dead (:mod:`liveness`) fences
that client (blocklists it) and takes the lock over at once, without
waiting for the lease to run out.  Whoever releases the lock notifies its
object, waking the waiters (:mod:`wake`).

The population of a cached base and the cluster-wide lifecycle pass each
run under one, so that exactly one process on any host does that work; a
holder that dies stops renewing and its lease runs out.
"""

import contextlib
import os
import socket
import threading
import time
import uuid

from oslo_log import log as logging

from fastclone_backend import liveness
from fastclone_backend import wake

LOG = logging.getLogger(__name__)

LOCK_FLAG_RENEW = 1


class Lease:
    """An exclusive RADOS lock that expires unless renewed.

    While held, a daemon thread renews it every third of its duration.  A
    renewal the cluster refuses (the lock expired, or another took it)
    loses the lease at once; one that fails otherwise (a timeout) is tried
    again until the lease would have run out.  Whoever does the work under
    it checks :attr:`lost` between steps, and :meth:`confirm` before
    publishing the result.
    """

    def __init__(self, ioctx, obj: str, seconds: int, rados_mod,
                 name: str, desc: str = 'fastclone-backend cache population',
                 clock=time.monotonic, client=None,
                 holder_timeout: float = liveness.NOTIFY_SECONDS):
        self.ioctx = ioctx
        self.obj = obj
        self.seconds = seconds
        self.rados = rados_mod
        self.name = name
        self.desc = desc
        self.clock = clock
        self.cookie = '%s:%d:%s' % (socket.gethostname(), os.getpid(),
                                    uuid.uuid4().hex[:8])
        self.lost = False
        self.unanswered = False   # lost because the cluster did not answer
        self.fenced = False   # lost because another host blocklisted us
        self.renewed_at = None
        self._stop = threading.Event()
        self._thread = None
        # client: the rados.Rados the lock is taken with; a holder with one
        # keeps a liveness watch, a waiter with one fences and breaks the
        # lock of a holder found dead
        self.client = client
        self.holder_timeout = holder_timeout
        self._beacon = None

    def _lock(self, flags=0):
        self.ioctx.lock_exclusive(self.obj, self.name, self.cookie,
                                  desc=self.desc,
                                  duration=self.seconds, flags=flags)

    def acquire(self) -> bool:
        try:
            self._lock()
        except self.rados.ObjectBusy:
            if not (self.client and liveness.take_over_if_dead(
                    self.ioctx, self.obj, self.name, self.rados,
                    client=self.client, wait=self.holder_timeout)):
                return False
            try:
                self._lock()
            except self.rados.ObjectBusy:   # another waiter was faster
                return False
        self.renewed_at = self.clock()
        if self.client:
            self._beacon = liveness.Beacon(
                self.ioctx, self.obj, self.cookie,
                self.client.get_instance_id(), self.client.get_addrs())
            self._beacon.start()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()
        return True

    def renew(self) -> bool:
        """Renew once; False (and lost) once the lease cannot be kept."""
        start = self.clock()
        try:
            self._lock(flags=LOCK_FLAG_RENEW)
        except self.rados.Error as e:
            self.fenced = liveness.fenced(e)
            refused = self.fenced or isinstance(e, (self.rados.ObjectBusy,
                                                    self.rados.ObjectNotFound))
            if refused or start - self.renewed_at >= self.seconds:
                LOG.error('lost lock %(obj)s: %(err)s',
                          {'obj': self.obj, 'err': e})
                self.unanswered = not refused
                self.lost = True
                return False
            LOG.warning('could not renew lock %(obj)s (%(err)s); trying '
                        'again', {'obj': self.obj, 'err': e})
            return True
        self.renewed_at = start
        return True

    def confirm(self, step: str = 'the work') -> None:
        """Renew now; raise LeaseLost unless the lease is still ours."""
        if self.lost or not self.renew() or self.lost:
            raise LeaseLost(self, step)

    def _heartbeat(self):
        while not self._stop.wait(self.seconds / 3.0):
            if not self.renew():
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        try:
            self.ioctx.unlock(self.obj, self.name, self.cookie)
        except self.rados.Error as e:  # expired and taken: not ours
            LOG.warning('lock %(obj)s was not ours any more: %(err)s',
                        {'obj': self.obj, 'err': e})
        if not self.fenced:
            wake.notify(self.ioctx, self.obj)   # published, or gave up
        if self._beacon is not None:
            self._beacon.stop()


class LeaseLost(Exception):
    """The lease ran out or was taken: the work under it must stop."""

    def __init__(self, lease: Lease, step: str):
        super().__init__('lost the lock %s during %s' % (lease.obj, step))
        self.lease = lease
        self.step = step


@contextlib.contextmanager
def hold(ioctx, obj: str, seconds: int, rados_mod, **kwargs):
    """Yield a held :class:`Lease`, or None when another holds it."""
    lease = Lease(ioctx, obj, seconds, rados_mod, **kwargs)
    if not lease.acquire():
        yield None
        return
    try:
        yield lease
    finally:
        lease.release()
