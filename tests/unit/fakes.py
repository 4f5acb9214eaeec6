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


def _reset_handles():
    from fastclone_backend.cache import basestore
    from fastclone_backend import cluster
    from fastclone_backend.spawn import snapfacts
    cluster._HANDLES.clear()
    basestore._KNOWN.clear()   # what the process remembers
    snapfacts.forget_all()


__all__ = ['CephModules', 'Clock', 'rbd_utils']
