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

"""Names and fingerprints of the cluster-wide cache of converted images.

An image that cannot be cloned where Glance keeps it (qcow2, another
store, an untrusted location) is fetched, checked and converted **once**
into ``<cache pool>/fastclone-base-<image id>@snap``; every instance disk,
on every host, is then a clone of that snapshot.

* ``fastclone-tmp-<image id>-<token>``: a population in progress (or a
  crashed one's leftover), renamed to the base name once complete.
* ``fastclone-retired-<image id>-<token>``: a base hidden from lookups
  (image deleted or changed, unused, over the limits), removed by the
  lifecycle pass once it has no clones.
* ``fastclone-lock-<image id>``: the RADOS object holding the population
  lock; ``fastclone-lifecycle``: the lifecycle pass's lock and records;
  ``fastclone-owned``: the ledger of hidden images we are making or
  removing (see :func:`owned`); ``fastclone-bases``: the base index, what
  the lifecycle pass needs of each ready base without opening it (see
  :mod:`fastclone_backend.cache.baseindex`).
* Names never start with an instance uuid, so Nova's instance-disk cleanup
  (``name.startswith(instance.uuid)``) can never match them.

A name proves nothing: anyone may create ``fastclone-base-<anything>``.
What we create carries a **mark** in its RBD image metadata
(:func:`mark`): our name, the Glance image id, and the image's own RBD id,
so that a copy or a clone (librbd copies the parent's metadata into a
clone) does not carry a valid mark.  An image is ours (:func:`owned`) when
its mark is valid, or when its name is in our ledger (a hidden image
between its creation and its mark, or whose removal was interrupted after
its header went).  Bases made by releases before the mark are adopted once
(:func:`adoptable`): our fingerprint naming the same image, stamped by our
publish, and our snapshot.
"""

import collections
import contextlib
import dataclasses
import threading
import time

BASE_PREFIX = 'fastclone-base-'
TMP_PREFIX = 'fastclone-tmp-'
RETIRED_PREFIX = 'fastclone-retired-'
LOCK_PREFIX = 'fastclone-lock-'
LIFECYCLE_OBJECT = 'fastclone-lifecycle'
LEDGER_OBJECT = 'fastclone-owned'
# each ready base's size, fingerprint and mark, and its last use
INDEX_OBJECT = 'fastclone-bases'
# what each Glance snapshot cloned in place holds, by pool/image@snap id
VERDICTS_OBJECT = 'fastclone-verdicts'
LOCK_NAME = 'populate'   # the population lock on a lock object
SNAP = 'snap'
META = 'fastclone.'
MISSING = '-'
UUID_LEN = 36
PREFIXES = {'base': BASE_PREFIX, 'tmp': TMP_PREFIX,
            'retired': RETIRED_PREFIX}
OWNER_KEY = META + 'owner'
OWNER = 'fastclone-backend'
IMAGE_KEY = META + 'image'
RBD_ID_KEY = META + 'rbd_id'

# what this process did; read by tests and benchmarks
STATS = collections.Counter()
# seconds spent in each step of making disks (this process), for the
# benchmark's breakdown
SECONDS = collections.Counter()


_STAGES = threading.local()   # the current population's stage times


@contextlib.contextmanager
def timed(step: str):
    start = time.monotonic()
    try:
        yield
    finally:
        spent = time.monotonic() - start
        SECONDS[step] += spent
        stages = getattr(_STAGES, 'current', None)
        if stages is not None:
            stages[step] = stages.get(step, 0.0) + spent


@contextlib.contextmanager
def stages():
    """Collect this thread's timed() steps in a dict while inside.

    One population's download, inspect, convert, publish, ...
    """
    outer = getattr(_STAGES, 'current', None)
    _STAGES.current = found = {}
    try:
        yield found
    finally:
        _STAGES.current = outer


def describe_stages(found: dict) -> str:
    return ', '.join('%s %.2f s' % item for item in found.items())


def base_name(image_id: str) -> str:
    return BASE_PREFIX + image_id


def tmp_prefix(image_id: str) -> str:
    return '%s%s-' % (TMP_PREFIX, image_id)


def tmp_name(image_id: str, token: str) -> str:
    return tmp_prefix(image_id) + token


def retired_name(image_id: str, token: str) -> str:
    return '%s%s-%s' % (RETIRED_PREFIX, image_id, token)


def lock_object(image_id: str) -> str:
    return LOCK_PREFIX + image_id


def is_cache_name(name: str) -> bool:
    return kind_of(name) is not None


def kind_of(name: str):
    """'base', 'tmp' or 'retired' for one of our image names, else None."""
    for kind, prefix in PREFIXES.items():
        if name.startswith(prefix):
            return kind
    return None


def image_id_of(name: str):
    """The Glance image id in one of our image names, else None."""
    kind = kind_of(name)
    if kind is None:
        return None
    return name[len(PREFIXES[kind]):][:UUID_LEN]


def mark(image_id: str, rbd_id: str) -> dict:
    """The metadata that makes RBD image rbd_id ours, for image_id."""
    return {OWNER_KEY: OWNER, IMAGE_KEY: image_id, RBD_ID_KEY: rbd_id}


def marked(name: str, meta: dict, rbd_id: str) -> bool:
    """Does the image carry our valid mark for its own name and RBD id?"""
    return (kind_of(name) is not None and meta.get(OWNER_KEY) == OWNER and
            meta.get(IMAGE_KEY) == image_id_of(name) and
            meta.get(RBD_ID_KEY) == rbd_id)


def adoptable(name: str, meta: dict, has_snap: bool) -> bool:
    """A base or retired base made before the mark existed?

    Our publish stamped it with the fingerprint of the image its name
    names and with who populated it; a base also has our snapshot.  A tmp
    image never had a fingerprint: never adopted.
    """
    kind = kind_of(name)
    if kind not in ('base', 'retired') or OWNER_KEY in meta:
        return False
    return (meta.get(META + 'id') == image_id_of(name) and
            bool(meta.get(META + 'populated_by')) and
            (has_snap or kind == 'retired'))


def owned(name: str, meta: dict, rbd_id: str, ledger=()) -> bool:
    """Ours: a valid mark, or a hidden name in our ledger."""
    return marked(name, meta, rbd_id) or (
        kind_of(name) in ('tmp', 'retired') and name in ledger)


def fingerprint(image_meta: dict) -> dict:
    """What identifies the image's data, as RBD image metadata.

    A field Glance does not have is stored as ``-``, never empty: the
    Pacific bindings' ``metadata_list()`` drops empty values and pairs the
    remaining values with the wrong keys.
    """
    keys = ('id', 'os_hash_algo', 'os_hash_value', 'checksum', 'size',
            'updated_at')
    return {META + key: str(image_meta.get(key) or MISSING) for key in keys}


def stale_reason(stored: dict, image_meta: dict):
    """Why a base no longer matches the Glance image, or None."""
    want = fingerprint(image_meta)
    for key in ('id', 'os_hash_value', 'checksum', 'size'):
        if stored.get(META + key, '') != want[META + key]:
            return '%s is %r in the base, %r in Glance' % (
                key, stored.get(META + key), want[META + key])
    return None


@dataclasses.dataclass(frozen=True)
class Base:
    """One of our images in the cache pool."""
    name: str
    size: int = 0
    last_used: float = 0.0
    children: tuple = ()     # specs of the clones of its snapshots
    has_snap: bool = True    # its user snapshot exists
    locked: bool = False     # its image's population lock is held
    stored: dict = dataclasses.field(default_factory=dict)  # fingerprint
    owned: bool = True       # proven ours (naming.owned), else left alone
    # opened: children, snapshot and mark read from the image itself.
    # False: read from the base index (children unknown, ownership as
    # indexed): never retired or removed before it is opened.
    surveyed: bool = True

    @property
    def kind(self) -> str:
        return kind_of(self.name)

    @property
    def image_id(self) -> str:
        return image_id_of(self.name)
