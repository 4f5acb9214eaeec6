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

"""Is a lock's holder alive?  The way librbd tells for its exclusive lock.

The holder keeps a RADOS watch on an object of its own,
``<lock object>.<cookie token>``, named in the lock object's
``fastclone.holder`` xattr with its client id, address and cookie.
librados answers a notify on a live client's watch in milliseconds; when
the client died (kill -9, power loss), its watch lingers on the OSD until
the watch times out (``osd_client_watch_timeout``, 30 s), and a notify on
it fails with ETIMEDOUT once the OSD waited ``[fastclone]
cache_holder_timeout``.  A waiter that gets that answer from the OSD
itself, in about that time, takes the lock over as librbd takes a dead
client's exclusive lock: it fences the holder's client first (``osd
blocklist add``, which the ``profile rbd`` monitor cap allows), then breaks
its lock (``cls_lock`` ``break_lock``).

Why a short notify rather than waiting for the watch to time out: the
watch timeout (30 s) is what made a takeover after a kill -9 take half a
minute, and shortening it per watch would make every live holder's watch
fragile.  Why fencing makes the short verdict safe: a holder that was not
dead but stalled longer than the timeout (a stopped or swapping process)
finds, when it runs again, that every operation of its lock client fails
(blocklisted): it cannot renew, watch or publish after the takeover, and
loses its population (:attr:`lease.Lease.fenced`).  The client fenced is
the process's lock connection only (``cluster.SharedRBDDriver.
lock_handle``), never the one its clones go through; it is reconnected.

One watch object per holder, so that a watch left by an earlier dead holder
never makes a live one look dead.  A notify that fails otherwise (a client
op timeout while an OSD is stalled, no answer at all) proves nothing: the
lease then runs its course.
"""

import errno
import json
import struct
import time

from oslo_log import log as logging

from fastclone_backend import wake

LOG = logging.getLogger(__name__)

HOLDER_XATTR = 'fastclone.holder'
NOTIFY_SECONDS = 3.0
ENTITY_TYPE_CLIENT = 8   # CEPH_ENTITY_TYPE_CLIENT
BLOCKLIST_SECONDS = 0    # the cluster's osd_blocklist_default_expire (1 h)
CAP_FIX = ('the Ceph user needs a monitor cap that allows "osd blocklist" '
           '(mon \'profile rbd\', or mon \'allow command "osd blocklist"\'); '
           'fastclone-manage doctor checks it')


def watch_object(lock_obj: str, cookie: str) -> str:
    return '%s.%s' % (lock_obj, cookie.rsplit(':', 1)[-1])


def holder_record(gid: int, cookie: str, watch_obj: str,
                  addr: str = '') -> bytes:
    return json.dumps({'gid': gid, 'cookie': cookie, 'watch': watch_obj,
                       'addr': addr}).encode()


def parse_holder(raw: bytes):
    """The holder record as a dict, or None if it is not one."""
    try:
        got = json.loads(raw)
        return got if {'gid', 'cookie', 'watch'} <= set(got) else None
    except (ValueError, TypeError):
        return None


def break_op(name: str, gid: int, cookie: str) -> bytes:
    """cls_lock_break_op, encoded as Ceph does (ENCODE_START(1, 1))."""
    def string(value: str) -> bytes:
        data = value.encode()
        return struct.pack('<I', len(data)) + data
    body = (string(name) + struct.pack('<Bq', ENTITY_TYPE_CLIENT, gid) +
            string(cookie))
    return struct.pack('<BBI', 1, 1, len(body)) + body


def dead_by_notify(elapsed: float, timed_out: bool,
                   wait: float = NOTIFY_SECONDS) -> bool:
    """Did the OSD itself say the watcher never answered?

    Only an ETIMEDOUT that came after about the notify's own timeout: one
    that came later is the client's operation timeout (the OSD did not
    answer either), one that came sooner is not the OSD's verdict.
    """
    return timed_out and 0.9 * wait <= elapsed <= wait + 1.5


class Beacon:
    """The holder's side: a watch that answers for it while it lives.

    The watch is made on an ioctx of its own (a dup of the lock's).  When
    its unwatch fails (the cluster did not answer), librados has dropped
    the watch all the same, and a second unwatch of it aborts the process:
    the watch is then never collected (:func:`wake.abandon`), and the
    watch object is left to the next holder (:meth:`_drop_previous`).
    """

    def __init__(self, ioctx, lock_obj: str, cookie: str, gid: int,
                 addr: str = ''):
        self.ioctx = ioctx
        self.lock_obj = lock_obj
        self.obj = watch_object(lock_obj, cookie)
        self.cookie = cookie
        self.gid = gid
        self.addr = addr
        self._io = None
        self._watch = None

    def start(self) -> None:
        """Watch our object; name it in the lock object (best effort)."""
        try:
            self._io = self.ioctx.dup()
            self._drop_previous()
            self._io.write_full(self.obj, b'')
            self._watch = self._io.watch(self.obj, _answer)
            self._io.set_xattr(self.lock_obj, HOLDER_XATTR, holder_record(
                self.gid, self.cookie, self.obj, self.addr))
        except Exception as e:   # only fast takeover is lost
            LOG.warning('no liveness watch on %(obj)s (%(err)s): a takeover '
                        'after a crash waits for the lease',
                        {'obj': self.obj, 'err': e})

    def _drop_previous(self) -> None:
        """The watch object of an earlier holder whose lock ran out."""
        try:
            previous = parse_holder(self._io.get_xattr(self.lock_obj,
                                                       HOLDER_XATTR))
        except Exception:   # no lock object yet, or no record
            return
        if previous and previous['watch'] != self.obj:
            remove_quietly(self._io, previous['watch'])

    def stop(self) -> None:
        if self._io is None:
            return
        if self._watch is not None and not _unwatch(self._watch):
            wake.abandon(self._watch)   # never unwatched again
        else:
            remove_quietly(self._io, self.obj)
        self._io.close()


def _unwatch(watch) -> bool:
    try:
        watch.close()
        return True
    except Exception as e:   # the cluster did not answer
        LOG.warning('unwatch failed (%(err)s): the liveness watch object is '
                    'left to the next holder', {'err': e})
        return False


def _answer(*args) -> None:
    """A notify on our watch: returning acknowledges it (we are alive)."""


def remove_quietly(ioctx, obj: str) -> None:
    try:
        ioctx.remove_object(obj)
    except Exception as e:   # gone already, or the cluster is away
        LOG.debug('removing %(obj)s: %(err)s', {'obj': obj, 'err': e})


def fenced(error: BaseException) -> bool:
    """Was this operation refused because our client is blocklisted?"""
    return getattr(error, 'errno', None) == errno.ESHUTDOWN   # EBLOCKLISTED


def dead_holder(ioctx, lock_obj: str, rados_mod, clock=time.monotonic,
                wait: float = NOTIFY_SECONDS):
    """The holder record of the lock, if its client is dead; else None."""
    try:
        holder = parse_holder(ioctx.get_xattr(lock_obj, HOLDER_XATTR))
    except rados_mod.Error:
        return None
    if holder is None:
        return None
    start = clock()
    try:
        ioctx.notify(holder['watch'], 'alive?', int(wait * 1000))
        return None
    except rados_mod.Error as e:
        timed_out = getattr(e, 'errno', None) == errno.ETIMEDOUT
        return holder if dead_by_notify(clock() - start, timed_out,
                                        wait) else None


def fence(client, addr: str, what: str) -> bool:
    """Blocklist a dead client's address; False (and why) if refused.

    Once the call returns, this client has the OSD map that blocklists it:
    the OSDs refuse its operations and drop its watches.
    """
    if not addr:
        return False
    try:
        client.blocklist_add(addr, BLOCKLIST_SECONDS)
    except Exception as e:   # no cap, or the monitors do not answer
        LOG.warning('could not blocklist %(what)s (%(addr)s): %(err)s; '
                    'taking over without fencing it (%(fix)s)',
                    {'what': what, 'addr': addr, 'err': e, 'fix': CAP_FIX})
        return False
    LOG.info('blocklisted %(what)s (%(addr)s)', {'what': what,
                                                 'addr': addr})
    return True


def _is_us(client, holder: dict) -> bool:
    """Is the holder this very client?  Then its process lives: ours.

    Its notify may go unanswered only because this process is slow (a
    loaded host); fencing it would blocklist our own lock connection.
    """
    if client is None:
        return False
    try:
        return holder.get('gid') == client.get_instance_id()
    except Exception:   # a client that cannot say: decide by the notify
        return False


def take_over_if_dead(ioctx, lock_obj: str, name: str, rados_mod,
                      clock=time.monotonic, client=None,
                      wait: float = NOTIFY_SECONDS) -> bool:
    """Fence and break the lock if its holder's client is dead.

    True if broken.  client: the rados.Rados to blocklist with (none: no
    fencing).
    """
    holder = dead_holder(ioctx, lock_obj, rados_mod, clock, wait)
    if holder is None or _is_us(client, holder):
        return False
    if client is not None:
        fence(client, holder.get('addr'), 'the dead holder of %s, '
              'client.%d' % (lock_obj, holder['gid']))
    try:
        ioctx.execute(lock_obj, 'lock', 'break_lock',
                      break_op(name, holder['gid'], holder['cookie']))
    except rados_mod.Error as e:   # released or expired meanwhile
        LOG.debug('breaking %(obj)s: %(err)s', {'obj': lock_obj, 'err': e})
        return False
    LOG.warning('took over lock %(obj)s from %(cookie)s: its client '
                '(client.%(gid)d) no longer answers', {
                    'obj': lock_obj, 'cookie': holder['cookie'],
                    'gid': holder['gid']})
    remove_quietly(ioctx, holder['watch'])
    return True
