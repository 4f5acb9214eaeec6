"""librados/librbd stand-ins, the way Nova's test_rbd_utils builds them:
mocks for the modules, real exception classes so ``except`` clauses work."""

from unittest import mock

import fixtures

from nova.storage import rbd_utils


class RadosError(Exception):
    pass


class RadosObjectNotFound(RadosError):
    pass


class RadosObjectBusy(RadosError):
    pass


class RadosTimedOut(RadosError):
    errno = 110


class RadosBlocklisted(RadosError):
    """What librados raises once the client is blocklisted (EBLOCKLISTED)."""
    errno = 108


class RbdError(Exception):
    pass


class RbdTimeout(RbdError):
    errno = 110


class RbdImageNotFound(RbdError):
    pass


class RbdImageExists(RbdError):
    pass


class RbdPermissionError(RbdError):
    pass


class RbdImageBusy(RbdError):
    pass


class RbdImageHasSnapshots(RbdError):
    pass


class Clock:
    """A monotonic clock the test moves by hand (clock.now += seconds)."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class CephModules(fixtures.Fixture):
    """Replace rbd_utils.rados/rbd for the duration of a test."""

    def _setUp(self):
        self.rados = mock.Mock(name='rados')
        self.rados.Error = RadosError
        self.rados.ObjectNotFound = RadosObjectNotFound
        self.rados.ObjectBusy = RadosObjectBusy
        self.rados.TimedOut = RadosTimedOut
        self.rados.ReadOpCtx = mock.MagicMock(name='ReadOpCtx')
        self.rados.WriteOpCtx = mock.MagicMock(name='WriteOpCtx')
        # an empty omap wherever one is read
        ioctx = self.rados.Rados.return_value.open_ioctx.return_value
        ioctx.get_omap_vals_by_keys.return_value = ([], 0)
        self.rbd = mock.Mock(name='rbd')
        self.rbd.Error = RbdError
        self.rbd.ImageNotFound = RbdImageNotFound
        self.rbd.ImageExists = RbdImageExists
        self.rbd.PermissionError = RbdPermissionError
        self.rbd.ImageBusy = RbdImageBusy
        self.rbd.ImageHasSnapshots = RbdImageHasSnapshots
        self.rbd.Timeout = RbdTimeout
        self.useFixture(fixtures.MonkeyPatch(
            'nova.storage.rbd_utils.rados', self.rados))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.storage.rbd_utils.rbd', self.rbd))
        self.addCleanup(_reset_handles)


class OmapIoctx:
    """An ioctx whose objects hold an omap, read and written through ops.

    Reads answer at most ``cap`` entries, as an OSD does
    (``osd_max_omap_entries_per_request``); ``reads`` and ``writes`` count
    the operations.  Use with CephModules (its ReadOpCtx/WriteOpCtx).
    """

    def __init__(self, cap: int = 1024):
        self.objects = {}   # name: {key: value bytes}
        self.cap = cap
        self.reads = 0
        self.writes = 0
        self._read = None
        self._write = []

    def get_omap_vals(self, op, after, prefix, count):
        found = []   # filled by operate_read_op, as librados does
        self._read = (after, prefix, count, found)
        return found, 0

    def operate_read_op(self, op, obj):
        self.reads += 1
        if obj not in self.objects:
            raise RadosObjectNotFound(obj)
        after, prefix, count, found = self._read
        keys = sorted(k for k in self.objects[obj]
                      if k > after and k.startswith(prefix))
        found.extend((k, self.objects[obj][k])
                     for k in keys[:min(count, self.cap)])

    def set_omap(self, op, keys, values):
        self._write.append(('set', dict(zip(keys, values))))

    def remove_omap_keys(self, op, keys):
        self._write.append(('remove', keys))

    def operate_write_op(self, op, obj):
        self.writes += 1
        pending, self._write = self._write, []
        if obj not in self.objects and all(k == 'remove'
                                           for k, _ in pending):
            raise RadosObjectNotFound(obj)
        omap = self.objects.setdefault(obj, {})
        for kind, what in pending:
            if kind == 'set':
                omap.update(what)
            else:
                for key in what:
                    omap.pop(key, None)


def _reset_handles():
    from fastclone_backend.cache import basestore
    from fastclone_backend import cluster
    from fastclone_backend.spawn import snapfacts
    cluster._HANDLES.clear()
    basestore._KNOWN.clear()   # what the process remembers
    snapfacts.forget_all()


__all__ = ['CephModules', 'Clock', 'rbd_utils']
