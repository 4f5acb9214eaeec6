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

"""Waking the spawns that wait on a lock, instead of having them poll.

A spawn waiting for another host's population keeps a RADOS watch on the
population's lock object; whoever releases that lock (after publishing
the base, or after the population failed) notifies it.  The watch's
callback runs on a librados thread and rings a :class:`Doorbell`, a pipe
that the waiter reads with a timeout: the poll interval, which stays the
fallback should the notify be lost (the publisher died between publishing
and notifying, the watch broke, the object was re-created).

The pipe works the same whether nova-compute runs on native threads or on
eventlet: the librados thread writes with ``os.writev`` (a plain system
call: eventlet patches ``os.write``, which may switch greenlets, never
``os.writev``), and the waiter waits with ``select.poll`` on native threads
or with eventlet's green ``select.select`` (eventlet removes
``select.poll``), which yields to the other greenthreads meanwhile.
"""

import atexit
import ctypes
import errno
import os
import select
import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# A notify returns once every watcher acknowledged it, or after this: a
# waiter that died leaves a watch that never answers until the OSD drops
# it (30 s); its notify must not hold up the spawn that publishes.
NOTIFY_TIMEOUT_MS = 500
MESSAGE = 'released'


class Doorbell:
    """A wake-up from any thread, awaited by a native or green thread."""

    def __init__(self):
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def ring(self, *args) -> None:
        fd = self._w
        if fd is None:   # closed: the waiter is gone
            return
        try:
            os.writev(fd, [b'!'])
        except BlockingIOError:
            pass    # the pipe is full of rings already
        except OSError as e:   # closed: the waiter is gone
            LOG.debug('doorbell: %(err)s', {'err': e})

    def wait(self, timeout: float) -> bool:
        """True if rung since the last wait (at once), else after timeout."""
        if not _readable(self._r, timeout):
            return False
        self._drain()
        return True

    def _drain(self) -> None:
        buf = bytearray(64)
        while True:
            try:
                if os.readv(self._r, [buf]) < len(buf):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        fds, self._w = (self._r, self._w), None
        for fd in fds:
            os.close(fd)


def _readable(fd: int, timeout: float) -> bool:
    if hasattr(select, 'poll'):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    # eventlet's green select (it removes select.poll): yields meanwhile
    return bool(select.select([fd], [], [], max(0.0, timeout))[0])


class Waiting:
    """A waiter on a lock object: woken by a notify on it, else polling.

    :meth:`wait` returns at once the first time, having started the watch,
    so that the caller looks again for what it waits for after the watch
    is in place: a notify that came before it is then not missed.
    """

    def __init__(self, ioctx, obj: str):
        self.ioctx = ioctx
        self.obj = obj
        self._bell = None
        self._watch = None
        self._watch_lock = threading.Lock()

    def wait(self, timeout: float) -> bool:
        """True when woken (or just started watching), False on timeout."""
        if self._bell is None:
            self._bell = Doorbell()
            self._watch = self._start()
            if self._watch is not None:
                _watching(self)
            return True
        return self._bell.wait(timeout)

    def _start(self):
        try:
            return self.ioctx.watch(self.obj, self._bell.ring,
                                    self._bell.ring)
        except Exception as e:   # gone, or the cluster is away: poll
            LOG.info('no watch on %(obj)s (%(err)s): polling for it',
                     {'obj': self.obj, 'err': e})
            return None

    def unwatch(self) -> None:
        """End the watch (once, whichever thread comes first); keep polling.

        No callback runs after it: ``rados.Watch.close`` unwatches, then
        waits for the callbacks under way (``rados_watch_flush``).
        """
        with self._watch_lock:
            watch, self._watch = self._watch, None
        with _WATCHING_LOCK:
            _WATCHING.discard(self)
        if watch is None:
            return
        try:
            watch.close()
        except Exception as e:   # the cluster did not answer
            LOG.warning('unwatch of %(obj)s failed: %(err)s',
                        {'obj': self.obj, 'err': e})
            abandon(watch)   # never unwatched again

    def close(self) -> None:
        self.unwatch()
        if self._bell is not None:
            self._bell.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# the Waitings watching now, unwatched at exit (see unwatch_all)
_WATCHING: set = set()
_WATCHING_LOCK = threading.Lock()
_exit_hooked = False


def _watching(waiting: Waiting) -> None:
    global _exit_hooked
    with _WATCHING_LOCK:
        _WATCHING.add(waiting)
        if not _exit_hooked:
            atexit.register(unwatch_all)
            _exit_hooked = True


def unwatch_all() -> None:
    """atexit: end every watch still up (a thread waits on it still).

    A notify that reaches a watch while the interpreter finalizes runs
    its callback on a librados thread that needs the GIL: Python ends that
    thread there (``pthread_exit``), and the unwinding through librados
    aborts the process (``terminate called without an active
    exception``).  After this, the waiters poll; their connection stays
    up for them (:func:`fastclone_backend.cluster.shutdown_at_exit` calls
    this first, then shuts down only the idle connections).  Idempotent.
    """
    with _WATCHING_LOCK:
        waitings = list(_WATCHING)
    for waiting in waitings:
        try:
            waiting.unwatch()
        except Exception as e:   # never fail the exit
            LOG.warning('unwatch of %(obj)s at exit: %(err)s',
                        {'obj': waiting.obj, 'err': e})


# watches whose unwatch failed (see abandon)
_ABANDONED: list = []


def abandon(watch) -> None:
    """Make sure a watch whose unwatch failed is never unwatched again.

    librados frees the watch (its Objecter ``LingerOp``) even when the
    unwatch fails (timed out, or the client was blocklisted), but the
    binding's ``rados.Watch`` keeps its cookie, which is that freed
    pointer, and unwatches it again in its ``__dealloc__`` when it is
    collected: at the latest when the interpreter exits.  That second
    ``rados_unwatch2`` reads freed memory and kills the process: a C++
    exception thrown from librados (``std::length_error``,
    ``std::bad_alloc``, ``std::out_of_range``) and ``std::terminate``, or a
    segfault.  One reference that is never released keeps the watch from
    ever being collected, so its ``__dealloc__`` never runs.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(watch))
    _ABANDONED.append(watch)


def notify(ioctx, obj: str, timeout_ms: int = NOTIFY_TIMEOUT_MS) -> None:
    """Wake the waiters on obj (best effort, never longer than timeout)."""
    try:
        ioctx.notify(obj, MESSAGE, timeout_ms)
    except Exception as e:   # a dead waiter's watch, or no waiter at all
        if getattr(e, 'errno', None) not in (errno.ETIMEDOUT, errno.ENOENT):
            LOG.info('notify on %(obj)s: %(err)s', {'obj': obj, 'err': e})
