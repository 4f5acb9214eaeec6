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
the process and, for the content, cluster-wide (the omap of
``fastclone-verdicts`` in the cache pool, keyed by pool, image and
snapshot id, which Ceph never reuses), so no later clone on any host reads
the image again.

What the process remembers is keyed by snapshot id too: before each use,
two small RADOS reads (no image open) confirm that the location's name
still maps to the same RBD image and that the image still has that
snapshot id under that name.  A snapshot deleted and re-created under the
same name, an image replaced under the same name, or a snapshot renamed
is learnt (and inspected) again.

The content is what oslo.utils' format inspector makes of the head of the
snapshot (at most :data:`HEAD_LIMIT` bytes, read until it has decided).
"""

import dataclasses
import struct
import threading

from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector

from nova.storage import rbd_utils

from fastclone_backend.cache import verdicts

LOG = logging.getLogger(__name__)

HEAD_LIMIT = 4 << 20
CHUNK = 256 << 10  # what the inspectors need to decide, in one read


@dataclasses.dataclass(frozen=True)
class Facts:
    """A snapshot's immutable facts."""

    snap_id: int
    size: int
    protected: bool
    detected: str     # the format its bytes are, as the inspector names it
    detail: str = ''  # why the inspector's safety checks fail, if they do
    image_id: str = ''  # the RBD id of the image (never reused)


def _rbd_string(raw: bytes) -> str:
    """A string as Ceph encodes it: le32 length, then the bytes."""
    if len(raw) < 4:
        return ''
    (length,) = struct.unpack_from('<I', raw)
    return raw[4:4 + length].decode(errors='replace')


def still_true(ioctx, loc, facts: Facts) -> bool:
    """Does loc still name the snapshot these facts were learnt of?

    ``rbd_id.<name>`` holds the image's RBD id; its header holds one omap
    key per snapshot id, whose value encodes the snapshot's name.
    """
    if not facts.image_id:
        return False
    try:
        if _rbd_string(ioctx.read('rbd_id.' + loc.image, 256)) != \
                facts.image_id:
            return False
        with rbd_utils.rados.ReadOpCtx() as op:
            found, _ret = ioctx.get_omap_vals_by_keys(
                op, ('snapshot_%016x' % facts.snap_id,))
            ioctx.operate_read_op(op, 'rbd_header.' + facts.image_id)
            values = [v for _k, v in found]
    except rbd_utils.rados.ObjectNotFound:
        return False
    name = loc.snapshot.encode()
    return bool(values) and struct.pack('<I', len(name)) + name in values[0]


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
        self.verdicts = verdicts.Verdicts(driver, verdict_pool)

    def get(self, loc) -> Facts:
        """The facts of loc's snapshot; raises rbd.ImageNotFound.

        Spawns of one image at once wait for the first to learn them.
        """
        with _MEMO_LOCK:
            facts = _MEMO.get(loc.spec)
            learning = _LEARNING.setdefault(loc.spec, threading.Lock())
        if facts is not None and self._still_true(loc, facts):
            return facts
        with learning:
            with _MEMO_LOCK:
                known = _MEMO.get(loc.spec)
            if known is None or known is facts:   # none, or stale
                if known is not None:
                    LOG.info('%(spec)s: no longer snapshot id %(id)d of '
                             'RBD image %(image)s: learning it again',
                             {'spec': loc.spec, 'id': known.snap_id,
                              'image': known.image_id})
                known = self._learn(loc)
                with _MEMO_LOCK:
                    _MEMO[loc.spec] = known
        return known

    def _still_true(self, loc, facts) -> bool:
        with rbd_utils.RADOSClient(self.driver, loc.pool) as client:
            return still_true(client.ioctx, loc, facts)

    def _learn(self, loc) -> Facts:
        with rbd_utils.RBDVolumeProxy(self.driver, loc.image, pool=loc.pool,
                                      snapshot=loc.snapshot,
                                      read_only=True) as vol:
            size = vol.size()
            protected = vol.is_protected_snap(loc.snapshot)
            snap_id = vol.snap_get_id(loc.snapshot)
            image_id = vol.id()
            key = verdicts.key(loc.pool, loc.image, snap_id)
            known = self.verdicts.get(key)
            if known is None:
                known = detect(vol, size)
                self.verdicts.put(key, *known)
                LOG.info('%(spec)s: content inspected: %(format)s',
                         {'spec': loc.spec, 'format': known[0]})
        return Facts(snap_id=snap_id, size=size, protected=protected,
                     detected=known[0], detail=known[1], image_id=image_id)
