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

"""What a spawn does when the cache path cannot work here, on purpose.

The cache path fails for a reason of the host or the cluster, not of the
image (:class:`~fastclone_backend.exception.CacheUnavailable`): this module
decides whether Nova's own download path is the better outcome for that
spawn.  Pure functions over plain numbers; the backend does the I/O, logs
the WARNING and counts the outcome.

* ``workdir_full``: the download does not fit in ``[fastclone] work_dir``.
  Nova's path downloads into ``_base`` and converts there, then imports a
  full copy: the instance boots, at stock Nova's cost.  Taken only when
  ``_base`` has room for the download and the raw image; otherwise Nova's
  path would fail too, after a download, so the spawn fails at once (Nova
  reschedules the build: another host may have room).
* ``pool_full``: the cache pool is at its quota (or the cluster is full).
  Nova's path imports a full copy into the instances pool: taken only when
  that is another pool, with room.  When both are one pool, the full copy
  could not be written either, and the spawn fails with the fix.

Ceph that does not answer (``[fastclone] rados_op_timeout``) and a
``qemu-img`` stopped by its limits are not decided here: Nova's path would
meet the same cluster, and would run ``qemu-img convert`` without limits.
"""

import dataclasses

WORKDIR_FULL = 'workdir_full'
POOL_FULL = 'pool_full'


@dataclasses.dataclass(frozen=True)
class Room:
    """What the fallback would need and have."""

    needed: int              # bytes Nova's path writes locally
    base_free: int           # bytes free where Nova's _base is
    same_pool: bool          # the cache pool is the instances pool
    instances_pool_full: bool = False


def fall_back(kind: str, room: Room) -> bool:
    """Should this spawn go through Nova's own download path?"""
    if kind == WORKDIR_FULL:
        return room.base_free >= room.needed
    if kind == POOL_FULL:
        return not room.same_pool and not room.instances_pool_full
    return False


def stock_needs(size: int, virtual_size: int) -> int:
    """Bytes Nova's path keeps in _base: the download, then the raw file."""
    return (size or 0) + max(virtual_size or 0, size or 0)


def outcome(kind: str, fallback: bool) -> str:
    """The counter a decision adds to (``cache stats``)."""
    return '%s_%s' % ('fallback' if fallback else 'failed', kind)
