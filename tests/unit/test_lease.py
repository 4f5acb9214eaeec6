"""The RADOS lease: exclusion, renewal, loss, and hold()."""

import threading
from unittest import mock

import pytest

from fastclone_backend import lease as fc_lease
from tests.unit import fakes

OBJ = 'fastclone-lock-f0e1d2c3-b4a5-4697-8899-aabbccddeeff'


class _Ioctx:
    """A RADOS lock table good enough to test the lease protocol."""

    def __init__(self):
        self.holder = None
        self.calls = []
        self.notified = []
        self.renewed = threading.Event()

    def notify(self, obj, msg, timeout_ms):
        self.notified.append((obj, self.holder))

    def lock_exclusive(self, obj, name, cookie, desc, duration, flags=0):
        self.calls.append((obj, name, cookie, desc, duration, flags))
        if flags == fc_lease.LOCK_FLAG_RENEW:
            self.renewed.set()
            return
        if self.holder not in (None, cookie):
            raise fakes.RadosObjectBusy('busy')
        self.holder = cookie

    def unlock(self, obj, name, cookie):
        if self.holder != cookie:
            raise fakes.RadosError('not locked')
        self.holder = None


def _rados():
    return mock.Mock(Error=fakes.RadosError, ObjectBusy=fakes.RadosObjectBusy,
                     ObjectNotFound=fakes.RadosObjectNotFound)


def test_lease_excludes_others_and_renews():
    ioctx = _Ioctx()
    first = fc_lease.Lease(ioctx, OBJ, 3, _rados(), name='populate')
    second = fc_lease.Lease(ioctx, OBJ, 3, _rados(), name='populate')
    assert first.acquire()
    assert not second.acquire()
    assert ioctx.renewed.wait(5)  # heartbeat every second here
    first.release()
    assert second.acquire()
    second.release()
    assert ioctx.holder is None
    assert (OBJ, 'populate', first.cookie,
            'fastclone-backend cache population', 3,
            fc_lease.LOCK_FLAG_RENEW) in ioctx.calls


def test_name_and_description_are_passed_to_rados():
    ioctx = _Ioctx()
    lease = fc_lease.Lease(ioctx, 'fastclone-lifecycle', 30, _rados(),
                           name='lifecycle', desc='the pass')
    assert lease.acquire()
    lease.release()
    assert ioctx.calls[0] == ('fastclone-lifecycle', 'lifecycle',
                              lease.cookie, 'the pass', 30, 0)
    assert ioctx.holder is None


def test_refused_renewal_marks_the_lease_lost():
    ioctx = _Ioctx()
    lease = fc_lease.Lease(ioctx, OBJ, 3, _rados(), name='populate')
    assert lease.acquire()
    ioctx.lock_exclusive = mock.Mock(
        side_effect=fakes.RadosObjectBusy('taken'))
    for _ in range(50):
        if lease.lost:
            break
        threading.Event().wait(0.1)
    assert lease.lost
    ioctx.holder = 'another-host'   # expired, then taken by someone else
    with mock.patch.object(fc_lease.LOG, 'warning', autospec=True) as warning:
        lease.release()             # only warns: the lock is not ours
    assert warning.call_count == 1
    assert ioctx.holder == 'another-host'


def _held_by_hand(ioctx, clock):
    """A held 10 s lease whose renewals the test makes itself."""
    lease = fc_lease.Lease(ioctx, OBJ, 10, _rados(), name='populate',
                           clock=clock)
    assert lease.acquire()
    lease._stop.set()
    return lease


def test_a_timed_out_renewal_is_retried_until_the_lease_runs_out():
    ioctx = _Ioctx()
    clock = fakes.Clock()
    lease = _held_by_hand(ioctx, clock)
    ioctx.lock_exclusive = mock.Mock(
        side_effect=fakes.RadosTimedOut('timed out'))
    clock.now += 9
    assert lease.renew() and not lease.lost   # the lock still lasts 1 s
    clock.now += 1
    assert not lease.renew() and lease.lost
    with pytest.raises(fc_lease.LeaseLost):
        lease.confirm()
    ioctx.lock_exclusive.side_effect = None
    lease.release()


def test_a_successful_renewal_restarts_the_count():
    ioctx = _Ioctx()
    clock = fakes.Clock()
    lease = _held_by_hand(ioctx, clock)
    clock.now += 9
    lease.confirm()                      # renewed at 109
    ioctx.lock_exclusive = mock.Mock(
        side_effect=fakes.RadosTimedOut('timed out'))
    clock.now += 9                       # 118: 9 s since that renewal
    assert lease.renew() and not lease.lost
    lease.release()


def test_confirm_raises_when_the_lock_was_taken():
    ioctx = _Ioctx()
    lease = fc_lease.Lease(ioctx, OBJ, 10, _rados(), name='populate')
    assert lease.acquire()
    lease._stop.set()
    ioctx.lock_exclusive = mock.Mock(
        side_effect=fakes.RadosObjectNotFound('expired'))
    with pytest.raises(fc_lease.LeaseLost):
        lease.confirm()
    assert lease.lost


# ------------------------------------------------------------- hold
def test_hold_yields_none_when_another_holds_it():
    ioctx = _Ioctx()
    ioctx.holder = 'another-host'
    with fc_lease.hold(ioctx, OBJ, 3, _rados(), name='populate') as held:
        assert held is None
    assert ioctx.holder == 'another-host'   # never unlocked: not ours
    assert [c[-1] for c in ioctx.calls] == [0]  # no renewal started


def test_hold_releases_on_exit():
    ioctx = _Ioctx()
    with fc_lease.hold(ioctx, OBJ, 3, _rados(), name='lifecycle') as held:
        assert isinstance(held, fc_lease.Lease)
        assert ioctx.holder == held.cookie
        assert held.name == 'lifecycle'
    assert ioctx.holder is None
    assert held._thread is not None and not held._thread.is_alive()


def test_hold_releases_when_the_body_raises():
    ioctx = _Ioctx()
    with pytest.raises(ValueError):
        with fc_lease.hold(ioctx, OBJ, 3, _rados(), name='populate') as held:
            assert ioctx.holder == held.cookie
            raise ValueError('population failed')
    assert ioctx.holder is None


def test_release_wakes_the_waiters_once_the_lock_is_free():
    ioctx = _Ioctx()
    with fc_lease.hold(ioctx, OBJ, 3, _rados(), name='populate'):
        pass
    assert ioctx.notified == [(OBJ, None)]   # notified after the unlock


def test_a_failed_population_wakes_the_waiters_too():
    ioctx = _Ioctx()
    with pytest.raises(ValueError):
        with fc_lease.hold(ioctx, OBJ, 3, _rados(), name='populate'):
            raise ValueError('population failed')
    assert ioctx.notified == [(OBJ, None)]


def test_a_fenced_holder_loses_the_lease_at_once():
    ioctx = _Ioctx()
    clock = fakes.Clock()
    lease = _held_by_hand(ioctx, clock)
    ioctx.lock_exclusive = mock.Mock(
        side_effect=fakes.RadosBlocklisted('blocklisted'))
    assert not lease.renew()
    assert lease.lost and lease.fenced and not lease.unanswered
    ioctx.unlock = mock.Mock(side_effect=fakes.RadosBlocklisted('b'))
    lease.release()
    assert ioctx.notified == []   # a fenced client can notify no more
