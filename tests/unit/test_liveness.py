"""A lock holder's liveness watch, the notify that tests it, the break."""

import json
import struct
from unittest import mock

import pytest

from fastclone_backend import lease as fc_lease
from fastclone_backend import liveness
from fastclone_backend import wake
from tests.unit import fakes

OBJ = 'fastclone-lock-f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
COOKIE = 'host-a:4242:0badcafe'
WATCH = OBJ + '.0badcafe'
ADDR = '10.0.0.7:0/3021081020'


def _rados():
    return mock.Mock(Error=fakes.RadosError, ObjectBusy=fakes.RadosObjectBusy,
                     ObjectNotFound=fakes.RadosObjectNotFound)


def test_break_op_is_cls_lock_break_op():
    op = liveness.break_op('populate', 14554, 'cookieA')
    body = (struct.pack('<I', 8) + b'populate' + b'\x08' +
            struct.pack('<q', 14554) + struct.pack('<I', 7) + b'cookieA')
    assert op == b'\x01\x01' + struct.pack('<I', len(body)) + body


def test_watch_object_and_record():
    assert liveness.watch_object(OBJ, COOKIE) == WATCH
    record = liveness.holder_record(7, COOKIE, WATCH, ADDR)
    assert liveness.parse_holder(record) == {'gid': 7, 'cookie': COOKIE,
                                             'watch': WATCH, 'addr': ADDR}
    assert liveness.parse_holder(b'not json') is None
    assert liveness.parse_holder(b'{"gid": 7}') is None


@pytest.mark.parametrize('elapsed,timed_out,dead', [
    (3.0, True, True),      # the OSD waited for the watcher: it is dead
    (4.4, True, True),
    (5.0, True, False),     # the client's op timeout: the OSD is away
    (0.1, True, False),
    (3.0, False, False),    # another error
])
def test_dead_only_on_the_osds_own_verdict(elapsed, timed_out, dead):
    assert liveness.dead_by_notify(elapsed, timed_out) is dead


def _ioctx(notify_seconds, clock, error=None):
    ioctx = mock.Mock()
    ioctx.get_xattr.return_value = liveness.holder_record(7, COOKIE, WATCH,
                                                          ADDR)

    def notify(obj, msg, timeout_ms):
        clock.now += notify_seconds
        if error is not None:
            raise error
    ioctx.notify.side_effect = notify
    return ioctx


def _timed_out():
    return fakes.RadosTimedOut('timed out')


def test_a_live_holder_answers_and_keeps_its_lock():
    clock = fakes.Clock()
    ioctx = _ioctx(0.005, clock)
    assert not liveness.take_over_if_dead(ioctx, OBJ, 'populate', _rados(),
                                          clock=clock)
    ioctx.notify.assert_called_once_with(WATCH, 'alive?', 3000)
    ioctx.execute.assert_not_called()


def test_a_dead_holder_loses_its_lock():
    clock = fakes.Clock()
    ioctx = _ioctx(3.0, clock, _timed_out())
    assert liveness.take_over_if_dead(ioctx, OBJ, 'populate', _rados(),
                                      clock=clock)
    ioctx.execute.assert_called_once_with(
        OBJ, 'lock', 'break_lock', liveness.break_op('populate', 7, COOKIE))
    ioctx.remove_object.assert_called_once_with(WATCH)


def test_a_dead_holder_is_fenced_before_its_lock_is_broken():
    clock = fakes.Clock()
    ioctx = _ioctx(2.0, clock, _timed_out())
    client = mock.Mock()
    order = mock.Mock()
    order.attach_mock(client.blocklist_add, 'blocklist_add')
    order.attach_mock(ioctx.execute, 'execute')
    assert liveness.take_over_if_dead(ioctx, OBJ, 'populate', _rados(),
                                      clock=clock, client=client, wait=2.0)
    ioctx.notify.assert_called_once_with(WATCH, 'alive?', 2000)
    assert [c[0] for c in order.mock_calls] == ['blocklist_add', 'execute']
    client.blocklist_add.assert_called_once_with(ADDR,
                                                 liveness.BLOCKLIST_SECONDS)


def test_our_own_slow_client_is_never_fenced():
    # the holder is this very client (gid 7): its notify went unanswered
    # only because this process is slow; blocklisting it would fence us
    clock = fakes.Clock()
    ioctx = _ioctx(2.0, clock, _timed_out())
    client = mock.Mock()
    client.get_instance_id.return_value = 7
    assert not liveness.take_over_if_dead(ioctx, OBJ, 'populate', _rados(),
                                          clock=clock, client=client,
                                          wait=2.0)
    client.blocklist_add.assert_not_called()
    ioctx.execute.assert_not_called()


def test_a_refused_fence_still_takes_over():
    # no "osd blocklist" cap: as before fencing, the lock is broken anyway
    clock = fakes.Clock()
    ioctx = _ioctx(3.0, clock, _timed_out())
    client = mock.Mock()
    client.blocklist_add.side_effect = fakes.RadosError('EACCES')
    assert liveness.take_over_if_dead(ioctx, OBJ, 'populate', _rados(),
                                      clock=clock, client=client)
    ioctx.execute.assert_called_once_with(
        OBJ, 'lock', 'break_lock', liveness.break_op('populate', 7, COOKIE))


def test_a_live_holder_is_never_fenced():
    clock = fakes.Clock()
    client = mock.Mock()
    assert not liveness.take_over_if_dead(_ioctx(0.01, clock), OBJ,
                                          'populate', _rados(), clock=clock,
                                          client=client)
    client.blocklist_add.assert_not_called()


def test_fenced_is_eblocklisted():
    assert liveness.fenced(fakes.RadosBlocklisted('blocklisted'))
    assert not liveness.fenced(fakes.RadosObjectBusy('busy'))
    assert not liveness.fenced(fakes.RadosTimedOut('timed out'))


def test_a_stalled_osd_proves_nothing():
    clock = fakes.Clock()
    ioctx = _ioctx(5.0, clock, _timed_out())   # rados_op_timeout = 5
    assert not liveness.take_over_if_dead(ioctx, OBJ, 'populate', _rados(),
                                          clock=clock)
    ioctx.execute.assert_not_called()


def test_no_record_no_takeover():
    ioctx = mock.Mock()
    ioctx.get_xattr.side_effect = fakes.RadosObjectNotFound('no xattr')
    assert not liveness.take_over_if_dead(ioctx, OBJ, 'populate', _rados())
    ioctx.notify.assert_not_called()


def test_beacon_watches_its_own_object_and_drops_an_earlier_one():
    ioctx = mock.Mock()
    io = ioctx.dup.return_value
    io.get_xattr.return_value = liveness.holder_record(
        3, 'host-b:1:deadbeef', OBJ + '.deadbeef')
    beacon = liveness.Beacon(ioctx, OBJ, COOKIE, 7)
    beacon.start()
    io.remove_object.assert_called_once_with(OBJ + '.deadbeef')
    io.write_full.assert_called_once_with(WATCH, b'')
    assert io.watch.call_args[0][0] == WATCH
    name, xattr, record = io.set_xattr.call_args[0]
    assert (name, xattr) == (OBJ, liveness.HOLDER_XATTR)
    assert json.loads(record) == {'gid': 7, 'cookie': COOKIE, 'watch': WATCH,
                                  'addr': ''}
    beacon.stop()
    io.watch.return_value.close.assert_called_once_with()
    io.remove_object.assert_called_with(WATCH)
    io.close.assert_called_once_with()


def test_a_watch_whose_unwatch_failed_is_never_unwatched_again():
    # librados drops it with the failed unwatch; a second one aborts
    ioctx = mock.Mock()
    io = ioctx.dup.return_value
    watch = io.watch.return_value
    watch.close.side_effect = fakes.RadosTimedOut('timed out')
    beacon = liveness.Beacon(ioctx, OBJ, COOKIE, 7)
    beacon.start()
    beacon.stop()
    watch.close.assert_called_once_with()
    io.close.assert_called_once_with()   # its dealloc cannot unwatch now
    assert wake._ABANDONED[-1] is watch
    assert mock.call(WATCH) not in io.remove_object.call_args_list
    liveness.Beacon(ioctx, OBJ, COOKIE.replace('0badcafe', 'feedf00d'),
                    8).start()
    watch.close.assert_called_once_with()


def test_lease_takes_over_from_a_dead_holder():
    ioctx = mock.Mock()
    ioctx.lock_exclusive.side_effect = [fakes.RadosObjectBusy('held'), None,
                                        None, None]
    client = mock.Mock()
    client.get_instance_id.return_value = 7
    client.get_addrs.return_value = ADDR
    with mock.patch.object(liveness, 'take_over_if_dead', autospec=True,
                           return_value=True) as take_over, \
            mock.patch.object(liveness, 'Beacon', autospec=True) as beacon:
        held = fc_lease.Lease(ioctx, OBJ, 10, _rados(), name='populate',
                              client=client, holder_timeout=2.0)
        assert held.acquire()
        held.release()
    take_over.assert_called_once_with(ioctx, OBJ, 'populate', mock.ANY,
                                      client=client, wait=2.0)
    beacon.assert_called_once_with(ioctx, OBJ, held.cookie, 7, ADDR)
    beacon.return_value.start.assert_called_once_with()
    beacon.return_value.stop.assert_called_once_with()


def test_lease_without_a_client_id_only_waits():
    ioctx = mock.Mock()
    ioctx.lock_exclusive.side_effect = fakes.RadosObjectBusy('held')
    with mock.patch.object(liveness, 'take_over_if_dead',
                           autospec=True) as take_over:
        assert not fc_lease.Lease(ioctx, OBJ, 10, _rados(),
                                  name='populate').acquire()
    take_over.assert_not_called()


def test_dead_holder_is_the_record_of_a_holder_that_never_answers():
    clock = fakes.Clock()
    ioctx = _ioctx(3.0, clock, _timed_out())
    assert liveness.dead_holder(ioctx, OBJ, _rados(), clock=clock) == {
        'gid': 7, 'cookie': COOKIE, 'watch': WATCH, 'addr': ADDR}
    ioctx.execute.assert_not_called()   # only take_over_if_dead breaks
    assert liveness.dead_holder(_ioctx(0.01, clock), OBJ, _rados(),
                                clock=clock) is None
