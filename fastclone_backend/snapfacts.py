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

"""What is known about a Glance image's RBD snapshot, learnt once.

A snapshot never changes: its size, whether it is protected, and what its
bytes are stay true for as long as it exists.  :class:`Facts` holds them;
:class:`SnapFacts` learns them on the first clone and remembers them, in
the process (a dict, by location) and, for the content, cluster-wide (the
omap of ``fastclone-verdicts`` in the cache pool, keyed by pool, image and
snapshot id, which Ceph never reuses), so no later clone on any host reads
the image again.

The content is what oslo.utils' format inspector makes of the head of the
snapshot (at most :data:`HEAD_LIMIT` bytes, read until it has decided).
"""

import dataclasses
import threading

from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector

from nova.storage import rbd_utils

from fastclone_backend import cache

LOG = logging.getLogger(__name__)

HEAD_LIMIT = 4 << 20
CHUNK = 256 << 10  # what the inspectors need to decide, in one read
SEP = '\n'


@dataclasses.dataclass(frozen=True)
class Facts:
    """A snapshot's immutable facts."""

    snap_id: int
    size: int
    protected: bool
    detected: str     # the format its bytes are, as the inspector names it
    detail: str = ''  # why the inspector's safety checks fail, if they do


class _Head:
    """A file-like reader of the first HEAD_LIMIT bytes of an open image."""

    def __init__(self, vol, size: int):
        self.vol = vol
        self.end = min(size, HEAD_LIMIT)
        self.offset = 0

    def read(self, length: int) -> bytes:
        length = min(length, self.end - self.offset)
        if length <= 0:
            return b''
        data = self.vol.read(self.offset, length)
        self.offset += len(data)
        return data


def _safety(inspector) -> str:
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as e:
        return ', '.join('%s: %s' % item for item in e.failures.items())
    except format_inspector.ImageFormatError as e:
        return str(e)
    return ''


def detect(vol, size: int) -> tuple[str, str]:
    """(format, safety failures) of the head of an open image."""
    wrapper = format_inspector.InspectWrapper(_Head(vol, size))
    try:
        while not wrapper.format and wrapper.read(CHUNK):
            pass
        wrapper.close()   # end of what we read: undecided ones do not match
        inspector = wrapper.format
    except format_inspector.ImageFormatError as e:
        return 'ambiguous', str(e)
    return str(inspector), _safety(inspector)


class Verdicts:
    """The content of each snapshot, in the cache pool's verdict omap."""

    def __init__(self, driver, pool: str):
        self.driver = driver
        self.pool = pool

    def get(self, key: str):
        """(format, detail) stored for key, or None."""
        with rbd_utils.RADOSClient(self.driver, self.pool) as client, \
                rbd_utils.rados.ReadOpCtx() as op:
            found, _ret = client.ioctx.get_omap_vals_by_keys(op, (key,))
            try:
                client.ioctx.operate_read_op(op, cache.VERDICTS_OBJECT)
            except rbd_utils.rados.ObjectNotFound:
                return None
            values = dict(found)
        if key not in values:
            return None
        detected, _sep, detail = values[key].decode().partition(SEP)
        return detected, detail

    def put(self, key: str, detected: str, detail: str) -> None:
        with rbd_utils.RADOSClient(self.driver, self.pool) as client, \
                rbd_utils.rados.WriteOpCtx() as op:
            client.ioctx.set_omap(op, (key,),
                                  ((detected + SEP + detail).encode(),))
            client.ioctx.operate_write_op(op, cache.VERDICTS_OBJECT)


_MEMO: dict = {}
_MEMO_LOCK = threading.Lock()
_LEARNING: dict = {}   # spec -> lock: one thread learns, the others wait


def forget(spec: str) -> None:
    """Drop what this process knows of a snapshot (it went away)."""
    with _MEMO_LOCK:
        _MEMO.pop(spec, None)


def forget_all() -> None:
    with _MEMO_LOCK:
        _MEMO.clear()
        _LEARNING.clear()


class SnapFacts:
    """Learns and remembers the facts of Glance RBD snapshots."""

    def __init__(self, driver, verdict_pool: str):
        self.driver = driver
        self.verdicts = Verdicts(driver, verdict_pool)

    def get(self, loc) -> Facts:
        """The facts of loc's snapshot; raises rbd.ImageNotFound.

        Spawns of one image at once wait for the first to learn them.
        """
        with _MEMO_LOCK:
            facts = _MEMO.get(loc.spec)
            learning = _LEARNING.setdefault(loc.spec, threading.Lock())
        if facts is not None:
            return facts
        with learning:
            with _MEMO_LOCK:
                facts = _MEMO.get(loc.spec)
            if facts is None:
                facts = self._learn(loc)
                with _MEMO_LOCK:
                    _MEMO[loc.spec] = facts
        return facts

    def _learn(self, loc) -> Facts:
        with rbd_utils.RBDVolumeProxy(self.driver, loc.image, pool=loc.pool,
                                      snapshot=loc.snapshot,
                                      read_only=True) as vol:
            size = vol.size()
            protected = vol.is_protected_snap(loc.snapshot)
            snap_id = vol.snap_get_id(loc.snapshot)
            key = '%s/%s@%d' % (loc.pool, loc.image, snap_id)
            known = self.verdicts.get(key)
            if known is None:
                known = detect(vol, size)
                self.verdicts.put(key, *known)
                LOG.info('%(spec)s: content inspected: %(format)s',
                         {'spec': loc.spec, 'format': known[0]})
        return Facts(snap_id=snap_id, size=size, protected=protected,
                     detected=known[0], detail=known[1])
