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

"""The cluster-wide cache of converted images, in Ceph.

An image that cannot be cloned where Glance keeps it (qcow2, another
store, an untrusted location) is fetched, checked and converted **once**
into ``<cache pool>/fastclone-base-<image id>@snap``; every instance disk,
on every host, is then a clone of that snapshot.

* Population is guarded by a RADOS lock on ``fastclone-lock-<image id>``
  with a lease (renewed while working), so a crashed holder blocks others
  for one lease at most; the others wait, bounded, and then clone.
* A base is written under ``fastclone-tmp-<image id>-<token>``, snapshotted,
  stamped with the Glance image's fingerprint, then renamed: no reader ever
  sees a partial base.  Leftovers of a crashed populator are removed by the
  next lock holder.
* Names never start with an instance uuid, so Nova's instance-disk cleanup
  (``name.startswith(instance.uuid)``) can never match them.
"""

import collections
import dataclasses
import os
import socket
import threading
import uuid

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

BASE_PREFIX = 'fastclone-base-'
TMP_PREFIX = 'fastclone-tmp-'
STALE_PREFIX = 'fastclone-stale-'
LOCK_PREFIX = 'fastclone-lock-'
LOCK_NAME = 'populate'
SNAP = 'snap'
META = 'fastclone.'
LOCK_FLAG_RENEW = 1

# what this process did; read by tests and benchmarks
STATS = collections.Counter()


def base_name(image_id: str) -> str:
    return BASE_PREFIX + image_id


def tmp_prefix(image_id: str) -> str:
    return '%s%s-' % (TMP_PREFIX, image_id)


def tmp_name(image_id: str, token: str) -> str:
    return tmp_prefix(image_id) + token


def stale_name(image_id: str, token: str) -> str:
    return '%s%s-%s' % (STALE_PREFIX, image_id, token)


def lock_object(image_id: str) -> str:
    return LOCK_PREFIX + image_id


def is_cache_name(name: str) -> bool:
    return name.startswith((BASE_PREFIX, TMP_PREFIX, STALE_PREFIX))


def fingerprint(image_meta: dict) -> dict:
    """What identifies the image's data, as RBD image metadata."""
    keys = ('id', 'os_hash_algo', 'os_hash_value', 'checksum', 'size',
            'updated_at')
    return {META + key: str(image_meta.get(key) or '') for key in keys}


def stale_reason(stored: dict, image_meta: dict):
    """Why a base no longer matches the Glance image, or None."""
    want = fingerprint(image_meta)
    for key in ('id', 'os_hash_value', 'checksum', 'size'):
        if stored.get(META + key, '') != want[META + key]:
            return '%s is %r in the base, %r in Glance' % (
                key, stored.get(META + key), want[META + key])
    return None


@dataclasses.dataclass(frozen=True)
class BaseInfo:
    name: str
    size: int
    last_used: float
    has_children: bool

    @property
    def stale(self) -> bool:
        return self.name.startswith(STALE_PREFIX)


def eviction_victims(bases, max_bytes: int, max_count: int,
                     keep: str) -> list:
    """Names to remove: stale ones, then least recently used over limits.

    Never a base with clones, never ``keep`` (the one just populated).
    """
    total = sum(b.size for b in bases)
    count = len(bases)
    victims = []
    removable = [b for b in bases if not b.has_children and b.name != keep]
    for base in sorted(removable, key=lambda b: (not b.stale, b.last_used)):
        over = ((max_bytes and total > max_bytes) or
                (max_count and count > max_count))
        if not (base.stale or over):
            break
        victims.append(base.name)
        total -= base.size
        count -= 1
    return victims


class Lease:
    """An exclusive RADOS lock that expires unless renewed.

    While held, a daemon thread renews it every third of its duration.
    """

    def __init__(self, ioctx, obj: str, seconds: int, rados_mod):
        self.ioctx = ioctx
        self.obj = obj
        self.seconds = seconds
        self.rados = rados_mod
        self.cookie = '%s:%d:%s' % (socket.gethostname(), os.getpid(),
                                    uuid.uuid4().hex[:8])
        self.lost = False
        self._stop = threading.Event()
        self._thread = None

    def _lock(self, flags=0):
        self.ioctx.lock_exclusive(self.obj, LOCK_NAME, self.cookie,
                                  desc='fastclone-backend cache population',
                                  duration=self.seconds, flags=flags)

    def acquire(self) -> bool:
        try:
            self._lock()
        except self.rados.ObjectBusy:
            return False
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()
        return True

    def _heartbeat(self):
        while not self._stop.wait(self.seconds / 3.0):
            try:
                self._lock(flags=LOCK_FLAG_RENEW)
            except self.rados.Error as e:
                LOG.error('lost cache lock %(obj)s: %(err)s',
                          {'obj': self.obj, 'err': e})
                self.lost = True
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        try:
            self.ioctx.unlock(self.obj, LOCK_NAME, self.cookie)
        except self.rados.Error as e:  # expired and taken: not ours
            LOG.warning('cache lock %(obj)s was not ours any more: %(err)s',
                        {'obj': self.obj, 'err': e})
