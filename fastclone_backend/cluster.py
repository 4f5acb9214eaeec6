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

"""One long-lived, thread-safe Ceph cluster connection per process.

Nova's ``RBDDriver`` connects to the cluster afresh for every call
(about 6 ms plus monitor round trips each; four of them per stock clone).
:class:`SharedRBDDriver` is that same driver, with its two connection hooks
pointed at one :class:`ClusterHandle` per (ceph.conf, user): every
``RBDDriver`` method keeps working unchanged, only without the reconnects.
:func:`rbd_driver` makes it through ``rbd_utils.RBDDriver`` as that name
reads at call time, the seam Nova's tests and wrappers substitute.
"""

import atexit
import contextlib
import copy
import errno
import json
import os
import threading

from oslo_log import log as logging

from nova.storage import rbd_utils

from fastclone_backend import exception as fc_exception
from fastclone_backend import wake

LOG = logging.getLogger(__name__)


class ClusterHandle:
    """A connected ``rados.Rados``, reconnected when it stops working.

    ``rados`` is looked up in ``nova.storage.rbd_utils`` at call time, so
    the mocks of Nova-style unit tests apply here too.
    """

    def __init__(self, conffile: str, rados_id: str, timeout: int,
                 op_timeout: int = 0):
        self.conffile = conffile
        self.rados_id = rados_id
        self.timeout = timeout
        self.op_timeout = op_timeout
        self._lock = threading.Lock()
        self._client = None
        # clients in use (open ioctxs, using() blocks), and the replaced
        # ones still in use: shut down by their last user (see reset)
        self._users: dict = {}
        self._retired: list = []

    def _connect(self):
        client = rbd_utils.rados.Rados(rados_id=self.rados_id,
                                       conffile=self.conffile)
        for name, value in connection_conf(self.timeout,
                                           self.op_timeout).items():
            client.conf_set(name, value)
        try:
            client.connect(timeout=self.timeout)
        except rbd_utils.rados.Error:
            client.shutdown()
            raise
        LOG.debug('connected to ceph as %(user)s (conf %(conf)s)',
                  {'user': self.rados_id, 'conf': self.conffile})
        return client

    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def reset(self, broken=None) -> None:
        """Drop the connection (only if it is still ``broken``).

        The next caller gets a new connection.  The old one is shut down
        only once nobody uses it any more: ``rados_shutdown`` frees the
        client under every ioctx and watch still open on it, and the next
        call through one of them crashes the process (a segfault, a failed
        ``ceph_assert(initialized)`` in the Objecter, or a C++ exception
        thrown from freed memory).  Until its last user is done, a replaced
        client's calls fail (it was blocklisted, or it is broken) or work.
        """
        with self._lock:
            if self._client is None or (broken is not None and
                                        self._client is not broken):
                return
            client, self._client = self._client, None
            if self._users.get(client):
                self._retired.append(client)
                LOG.debug('ceph connection as %(user)s replaced; shut down '
                          'when its %(n)d users are done',
                          {'user': self.rados_id, 'n': self._users[client]})
                return
        client.shutdown()

    def _use(self):
        """The connected client, counted as used until :meth:`_done`."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            client = self._client
            self._users[client] = self._users.get(client, 0) + 1
            return client

    def _done(self, client) -> None:
        with self._lock:
            left = self._users.get(client, 0) - 1
            if left > 0:
                self._users[client] = left
                return
            self._users.pop(client, None)
            if client not in self._retired:
                return
            self._retired.remove(client)
        client.shutdown()   # replaced, and its last user is done

    @contextlib.contextmanager
    def using(self):
        """The connected client, never shut down while the block runs."""
        client = self._use()
        try:
            yield client
        finally:
            self._done(client)

    def open_ioctx(self, pool: str):
        """(client, ioctx); the client is in use until :meth:`close_ioctx`."""
        client = self._use()
        try:
            return client, client.open_ioctx(pool)
        except rbd_utils.rados.ObjectNotFound:
            self._done(client)
            raise  # no such pool: the connection is fine
        except rbd_utils.rados.Error as e:
            LOG.warning('ceph connection as %(user)s failed (%(err)s); '
                        'reconnecting', {'user': self.rados_id, 'err': e})
            self.reset(broken=client)
            self._done(client)
        client = self._use()
        try:
            return client, client.open_ioctx(pool)
        except Exception:
            self._done(client)
            raise

    def close_ioctx(self, client, ioctx) -> None:
        """Close an ioctx of :meth:`open_ioctx`; its client is free then."""
        try:
            ioctx.close()
        finally:
            self._done(client)

    def clone_format(self) -> int:
        """1 or 2: what a clone made now by this connection would be."""
        with self.using() as client:
            return self._clone_format(client)

    @staticmethod
    def _clone_format(client) -> int:
        cmd = json.dumps({'prefix': 'osd get-require-min-compat-client',
                          'format': 'json'})
        ret, out, err = client.mon_command(cmd, b'')
        if ret:
            raise rbd_utils.rados.Error('osd get-require-min-compat-client: '
                                        '%s' % err)
        return clone_format_for(client.conf_get('rbd_default_clone_format'),
                                out.decode().strip())


# Ceph releases in order; clone v2 needs every client to be mimic or newer.
RELEASES = ('argonaut', 'bobtail', 'cuttlefish', 'dumpling', 'emperor',
            'firefly', 'giant', 'hammer', 'infernalis', 'jewel', 'kraken',
            'luminous', 'mimic')


def clone_format_for(setting: str, min_compat_client: str) -> int:
    """The clone format librbd uses, as its 'auto' decides it."""
    if setting in ('1', '2'):
        return int(setting)
    if min_compat_client in RELEASES[:RELEASES.index('mimic')]:
        return 1
    return 2


def timed_out(error: BaseException) -> bool:
    """Did librados or librbd give up waiting for the cluster?"""
    timeouts = tuple(cls for cls in (getattr(rbd_utils.rados, 'TimedOut', 0),
                                     getattr(rbd_utils.rbd, 'Timeout', 0))
                     if isinstance(cls, type))   # not when mocked
    return (isinstance(error, timeouts) or
            getattr(error, 'errno', None) == errno.ETIMEDOUT)


@contextlib.contextmanager
def answering(image_id: str, doing: str, timeout: int,
              option: str = '[fastclone] rados_op_timeout'):
    """Turn a librados/librbd timeout into a CephTimeout naming the image."""
    try:
        yield
    except fc_exception.FastcloneException:
        raise
    except Exception as e:
        if not timed_out(e):
            raise
        raise fc_exception.CephTimeout(
            image=image_id, timeout=timeout, doing=doing, option=option,
            cause='%s: %s' % (type(e).__name__, e)) from e


def connection_conf(connect_timeout: int, op_timeout: int) -> dict:
    """librados settings of our connection.

    ``Rados.connect(timeout=...)``, which Nova's ``rbd_connect_timeout``
    goes to, is ignored by librados: ``client_mount_timeout`` is what
    bounds connecting to the monitors.
    """
    conf = op_timeout_conf(op_timeout)
    if connect_timeout:
        conf['client_mount_timeout'] = str(connect_timeout)
    return conf


def op_timeout_conf(seconds: int) -> dict:
    """The librados settings that bound each operation (none for 0)."""
    if not seconds:
        return {}
    return {'rados_osd_op_timeout': str(seconds),
            'rados_mon_op_timeout': str(seconds)}


_HANDLES: dict = {}
_HANDLES_LOCK = threading.Lock()
_exit_hooked = False   # shutdown_at_exit registered (a forked child too)


def handle_for(conffile: str, rados_id: str, timeout: int,
               op_timeout: int = 0, role: str = '') -> ClusterHandle:
    """The process's handle for this cluster, user and role (fork-safe)."""
    key = (os.getpid(), conffile, rados_id, op_timeout, role)
    with _HANDLES_LOCK:
        _hook_exit_once()
        handle = _HANDLES.get(key)
        if handle is None:
            handle = _HANDLES[key] = ClusterHandle(conffile, rados_id,
                                                   timeout, op_timeout)
        return handle


def _hook_exit_once() -> None:
    """Register :func:`shutdown_at_exit`, once per process (under lock)."""
    global _exit_hooked
    if not _exit_hooked:
        atexit.register(shutdown_at_exit)
        _exit_hooked = True


def reset_all() -> None:
    """Shut down every handle of this process (tests, shutdown).

    Handles a forked child inherited from its parent are only forgotten:
    their clients' threads are the parent's, a shutdown in the child
    would wait for threads that do not exist there.
    """
    pid = os.getpid()
    with _HANDLES_LOCK:
        mine = [handle for key, handle in _HANDLES.items() if key[0] == pid]
        _HANDLES.clear()
    for handle in mine:
        handle.reset()


def shutdown_at_exit() -> None:
    """atexit: this process's connections, shut down before it exits.

    A connected ``rados.Rados`` is never shut down by the binding (it has
    no finalizer): left connected, its threads still run while the exiting
    process destroys librados's static objects (its options' defaults
    among them, read through ``boost::get``), the likely cause of a host's
    ``terminate called after throwing an instance of
    'boost::wrapexcept<boost::bad_get>'`` at exit.  Runs after the threading
    module joined the non-daemon threads; a client still in use (an open
    ioctx, a daemon thread's call) is left to its last user, as by
    :meth:`ClusterHandle.reset`: shutting it down under them would crash.
    The watches still up are ended first (:func:`wake.unwatch_all`), so
    that none is left on a client shut down.  Idempotent, and it never
    fails the exit.
    """
    try:
        wake.unwatch_all()
        reset_all()
    except Exception as e:
        LOG.warning('ceph connections not shut down at exit: %(err)s',
                    {'err': e})


# Nova's own class, as imported (rbd_utils.RBDDriver may be replaced later)
NOVA_RBD_DRIVER = rbd_utils.RBDDriver


class SharedConnection:
    """Mixin for an ``RBDDriver`` class: its connection is the shared one.

    Its two connection hooks go to the process's :class:`ClusterHandle`
    for the driver's (ceph.conf, user); every other method is the class's
    own.  Every operation on it is bounded by ``[fastclone]
    rados_op_timeout``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import nova.conf

        from fastclone_backend import conf as fc_conf
        fc_conf.register_opts(nova.conf.CONF)
        self.op_timeout = nova.conf.CONF.fastclone.rados_op_timeout

    @property
    def handle(self) -> ClusterHandle:
        return handle_for(self.ceph_conf, self.rbd_user,
                          self.rbd_connect_timeout, self.op_timeout)

    @property
    def lock_handle(self) -> ClusterHandle:
        """The process's connection for population locks, apart.

        A host that takes over a dead holder's lock blocklists the holder's
        client (:mod:`fastclone_backend.liveness`): a holder found dead
        wrongly (stalled) loses its locks then, not every clone it makes.
        """
        return handle_for(self.ceph_conf, self.rbd_user,
                          self.rbd_connect_timeout, self.op_timeout,
                          role='locks')

    def _connect_to_rados(self, pool=None):
        return self.handle.open_ioctx(str(pool or self.pool))

    def _disconnect_from_rados(self, client, ioctx):
        # the client stays connected for the next call
        self.handle.close_ioctx(client, ioctx)


class SharedRBDDriver(SharedConnection, NOVA_RBD_DRIVER):
    """Nova's RBDDriver on the process's shared cluster connection."""


_SHARED_CLASSES = {NOVA_RBD_DRIVER: SharedRBDDriver}
_SHARED_CLASSES_LOCK = threading.Lock()


def shared_class(cls: type) -> type:
    """cls (an ``RBDDriver`` class) on the shared connection."""
    with _SHARED_CLASSES_LOCK:
        shared = _SHARED_CLASSES.get(cls)
        if shared is None:
            shared = _SHARED_CLASSES[cls] = type(
                'Shared' + cls.__name__, (SharedConnection, cls),
                {'__module__': __name__})
        return shared


def rbd_driver(*args, **kwargs):
    """The RBD driver, made through Nova's seam ``rbd_utils.RBDDriver``.

    ``rbd_utils.RBDDriver`` is looked up now, so whatever replaces it (a
    unit test's ``mock.patch``, a wrapper class) is what the caller gets,
    as Nova's own ``Rbd`` would:

    * Nova's class: a :class:`SharedRBDDriver`;
    * another ``RBDDriver`` class (a subclass wrapping Nova's): an instance
      of it with :class:`SharedConnection` mixed in, its methods its own;
    * anything else (a mock): its instance, untouched.

    A patch of ``RBDDriver._connect_to_rados`` or ``_disconnect_from_rados``
    does not reach a shared driver: those two are what it replaces.
    """
    cls = rbd_utils.RBDDriver
    if isinstance(cls, type) and issubclass(cls, NOVA_RBD_DRIVER):
        return shared_class(cls)(*args, **kwargs)
    return cls(*args, **kwargs)


def bounded_driver(driver, seconds: int):
    """driver, on a connection whose every operation fails after seconds.

    For steps with a bound of their own (a removal that a full pool
    blocks): the same cluster and user, a second connection.  The driver
    itself when it is bounded tighter already, or seconds is 0.
    """
    if not seconds or not isinstance(driver, SharedConnection):
        return driver
    if driver.op_timeout and driver.op_timeout <= seconds:
        return driver
    bounded = copy.copy(driver)
    bounded.op_timeout = seconds
    return bounded
