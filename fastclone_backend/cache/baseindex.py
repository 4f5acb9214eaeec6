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

"""The base index: what the lifecycle pass needs of each ready base.

``fastclone-bases`` in the cache pool holds, in its omap, for each ready
base (``fastclone-base-<image id>``):

* ``base/<name>``: its size and the ``fastclone.*`` metadata it was
  published with (fingerprint, mark), as JSON;
* ``used/<name>``: when it was last used, written alone by each use (one
  blind write, no read).

Publish writes both keys, a use the second (a spawn from the base, or a
lifecycle pass that found it with clones), a retirement drops both (the
index holds ready bases only: retired and tmp images are few and always
opened).  The lifecycle pass reads the whole omap (one operation per 1024
keys) instead of opening every base (some 17 operations each), and opens
only the bases its plan may act on.

The index is a hint, never a proof: a base it names is opened, its mark
checked and its clones listed before anything is done to it.  A ready base
it lacks (made before the index existed, or while a write to it failed) is
surveyed the old way and indexed by the pass; an entry whose image is gone
is dropped by the pass.
"""

import json

from fastclone_backend.cache import naming
from fastclone_backend.cache import omap

ENTRY = 'base/'
USED = 'used/'


def _float(value) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def entry(base: naming.Base) -> bytes:
    """The base/<name> value of a ready base: what the pass reads."""
    stored = {k: v for k, v in base.stored.items()
              if k.startswith(naming.META) and
              k != naming.META + 'last_used'}
    return json.dumps({'size': base.size, 'has_snap': base.has_snap,
                       'stored': stored}, sort_keys=True).encode()


def parse(name: str, value: bytes, used: float = 0.0) -> naming.Base:
    """The naming.Base an index entry describes (not opened)."""
    found = json.loads(value)
    stored = found.get('stored') or {}
    return naming.Base(
        name=name, size=int(found.get('size') or 0), last_used=used,
        children=(), has_snap=bool(found.get('has_snap')), locked=False,
        stored=stored, owned=naming.marked(
            name, stored, stored.get(naming.RBD_ID_KEY)),
        surveyed=False)


class BaseIndex:
    """The base index omap, through one ioctx on the cache pool."""

    def __init__(self, ioctx):
        self.ioctx = ioctx

    def read(self):
        """({name: base/ value}, {name: last use}) of the whole index."""
        entries, used = {}, {}
        for key, value in omap.items(self.ioctx,
                                     naming.INDEX_OBJECT).items():
            if key.startswith(ENTRY):
                entries[key[len(ENTRY):]] = value
            elif key.startswith(USED):
                used[key[len(USED):]] = _float(value.decode())
        return entries, used

    def put(self, bases) -> None:
        """Index ready bases: their entry and their last use."""
        values = {}
        for base in bases:
            values[ENTRY + base.name] = entry(base)
            values[USED + base.name] = ('%d' % base.last_used).encode()
        omap.put(self.ioctx, naming.INDEX_OBJECT, values)

    def use(self, name: str, stamp: str) -> None:
        """Record a use of a base (its used/ key alone)."""
        self.uses([name], stamp)

    def uses(self, names, stamp: str) -> None:
        """Record one use of several bases (their used/ keys alone)."""
        omap.put(self.ioctx, naming.INDEX_OBJECT,
                 {USED + name: stamp.encode() for name in names})

    def drop(self, names) -> None:
        """Forget bases: both keys of each."""
        omap.drop(self.ioctx, naming.INDEX_OBJECT,
                  [prefix + name for name in names
                   for prefix in (ENTRY, USED)])
