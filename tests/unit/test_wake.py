"""Waking the waiters on a lock: the doorbell, the watch, the notify."""

import errno
import gc
import select
import subprocess
import sys
import textwrap
import threading
import time
from unittest import mock
import weakref

from fastclone_backend import wake
from tests.unit import fakes

OBJ = 'fastclone-lock-f0e1d2c3-b4a5-4697-8899-aabbccddeeff'


def _ring_later(bell, delay):
    timer = threading.Timer(delay, bell.ring, args=(1, 2, 3, b'released'))
    timer.start()
    return timer


def test_a_ring_from_another_thread_wakes_the_waiter_at_once():
    bell = wake.Doorbell()
    try:
        _ring_later(bell, 0.05)
        start = time.monotonic()
        assert bell.wait(30)
        assert time.monotonic() - start < 1
    finally:
        bell.close()


def test_without_a_ring_the_wait_times_out():
    bell = wake.Doorbell()
    try:
        start = time.monotonic()
        assert not bell.wait(0.1)
        assert 0.09 <= time.monotonic() - start < 1
    finally:
        bell.close()


def test_rings_are_drained_by_one_wait():
    bell = wake.Doorbell()
    try:
        for _ in range(200):
            bell.ring()
        assert bell.wait(0)
        assert not bell.wait(0)
    finally:
        bell.close()


def test_a_ring_after_close_is_harmless():
    bell = wake.Doorbell()
    bell.close()
    bell.ring()   # a late librados callback


def test_without_poll_the_green_select_is_used(monkeypatch):
    # eventlet's monkey patching removes select.poll (gone already if
    # another test of this process patched it)
    monkeypatch.delattr(select, 'poll', raising=False)
    bell = wake.Doorbell()
    try:
        _ring_later(bell, 0.05)
        assert bell.wait(30)
        assert not bell.wait(0.05)
    finally:
        bell.close()


def test_waiting_watches_first_then_is_woken_by_a_notify():
    ioctx = mock.Mock()
    with wake.Waiting(ioctx, OBJ) as waiting:
        start = time.monotonic()
        assert waiting.wait(30)   # started the watch: look again at once
        assert time.monotonic() - start < 1
        obj, callback, error_callback = ioctx.watch.call_args[0]
        assert obj == OBJ
        threading.Timer(0.05, callback, args=(1, 2, 3, b'released')).start()
        assert waiting.wait(30)
        assert time.monotonic() - start < 1
        error_callback(-107)   # the watch broke: look again too
        assert waiting.wait(30)
        assert not waiting.wait(0.05)   # then the poll
    ioctx.watch.return_value.close.assert_called_once_with()


def test_without_a_watch_waiting_polls():
    ioctx = mock.Mock()
    ioctx.watch.side_effect = fakes.RadosObjectNotFound('no lock object')
    with wake.Waiting(ioctx, OBJ) as waiting:
        assert waiting.wait(30)
        start = time.monotonic()
        assert not waiting.wait(0.1)
        assert time.monotonic() - start >= 0.09


def test_a_failed_unwatch_is_never_repeated():
    ioctx = mock.Mock()
    watch = ioctx.watch.return_value
    watch.close.side_effect = fakes.RadosTimedOut('timed out')
    with wake.Waiting(ioctx, OBJ) as waiting:
        waiting.wait(0)
    assert wake._ABANDONED[-1] is watch


def test_a_watch_still_up_is_ended_at_exit():
    ioctx = mock.Mock()
    watch = ioctx.watch.return_value
    with wake.Waiting(ioctx, OBJ) as waiting:
        waiting.wait(0)
        assert waiting in wake._WATCHING
        wake.unwatch_all()   # the exit, while a thread still waits
        watch.close.assert_called_once_with()
        assert waiting not in wake._WATCHING
        assert not waiting.wait(0.01)   # polling on
        wake.unwatch_all()
    watch.close.assert_called_once_with()   # never again


def test_a_closed_waiting_is_not_unwatched_at_exit():
    ioctx = mock.Mock()
    with wake.Waiting(ioctx, OBJ) as waiting:
        waiting.wait(0)
    assert waiting not in wake._WATCHING
    wake.unwatch_all()
    ioctx.watch.return_value.close.assert_called_once_with()


def test_a_failed_unwatch_at_exit_is_abandoned_and_the_exit_goes_on():
    ioctx = mock.Mock()
    watch = ioctx.watch.return_value
    watch.close.side_effect = fakes.RadosTimedOut('timed out')
    waiting = wake.Waiting(ioctx, OBJ)
    waiting.wait(0)
    wake.unwatch_all()
    assert wake._ABANDONED[-1] is watch
    waiting.close()
    watch.close.assert_called_once_with()


def test_two_threads_unwatch_once():
    ioctx = mock.Mock()
    watch = ioctx.watch.return_value
    watch.close.side_effect = lambda: time.sleep(0.05)
    with wake.Waiting(ioctx, OBJ) as waiting:
        waiting.wait(0)
        threads = [threading.Thread(target=waiting.unwatch)
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        wake.unwatch_all()
        for thread in threads:
            thread.join()
    watch.close.assert_called_once_with()


def test_without_a_watch_nothing_is_kept_for_the_exit():
    ioctx = mock.Mock()
    ioctx.watch.side_effect = fakes.RadosObjectNotFound('no lock object')
    with wake.Waiting(ioctx, OBJ) as waiting:
        waiting.wait(0)
        assert waiting not in wake._WATCHING


@mock.patch.object(wake.atexit, 'register', autospec=True)
def test_the_first_watch_registers_the_exit_hook_once(register):
    with mock.patch.object(wake, '_exit_hooked', False):
        for _ in range(2):
            with wake.Waiting(mock.Mock(), OBJ) as waiting:
                waiting.wait(0)
    register.assert_called_once_with(wake.unwatch_all)


class _Watch:
    """Stands for a rados.Watch: what matters is whether it is collected."""


def test_an_abandoned_watch_is_never_collected():
    # its __dealloc__ would unwatch a second time: freed memory, an abort
    watch = _Watch()
    gone = weakref.ref(watch)
    wake.abandon(watch)
    wake._ABANDONED.remove(watch)   # even when no list keeps it
    del watch
    gc.collect()
    assert gone() is not None


def test_notify_is_bounded_and_quiet():
    ioctx = mock.Mock()
    wake.notify(ioctx, OBJ)
    ioctx.notify.assert_called_once_with(OBJ, wake.MESSAGE,
                                         wake.NOTIFY_TIMEOUT_MS)
    assert wake.NOTIFY_TIMEOUT_MS <= 1000
    # a dead waiter's watch: the notify times out; never raised
    ioctx.notify.side_effect = fakes.RadosTimedOut('timed out')
    wake.notify(ioctx, OBJ)
    ioctx.notify.side_effect = fakes.RadosError('down')
    wake.notify(ioctx, OBJ)


GREEN = textwrap.dedent('''
    import eventlet
    eventlet.monkey_patch()
    import select
    import time
    from eventlet import patcher
    from fastclone_backend import wake
    assert not hasattr(select, 'poll')
    native = patcher.original('threading')
    bell = wake.Doorbell()
    ticks = []

    def tick():
        while True:
            ticks.append(time.monotonic())
            eventlet.sleep(0.01)
    eventlet.spawn(tick)
    # a librados callback: a native thread, not a greenthread
    native.Timer(0.3, bell.ring).start()
    start = time.monotonic()
    assert bell.wait(30)
    took = time.monotonic() - start
    assert 0.25 < took < 2, took
    assert len(ticks) > 10, len(ticks)   # the hub ran meanwhile
    print('ok')
''')


def test_under_eventlet_a_native_thread_wakes_a_greenthread():
    out = subprocess.run([sys.executable, '-c', GREEN], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('ok')


def test_notify_errors_it_expects_are_not_logged():
    ioctx = mock.Mock()
    error = fakes.RadosError('no object')
    error.errno = errno.ENOENT
    ioctx.notify.side_effect = error
    with mock.patch.object(wake.LOG, 'info') as info:
        wake.notify(ioctx, OBJ)
    info.assert_not_called()
