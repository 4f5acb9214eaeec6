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

"""The omap of one RADOS object, read and written in pages.

An OSD answers one read with at most ``osd_max_omap_entries_per_request``
entries (1024 by default), whatever the reader asks for, and the Python
bindings do not say whether more are left: :func:`items` reads page after
page, each after the last key of the one before, until one comes back
empty.  Writes go in batches of :data:`WRITE_BATCH` keys.
"""

from nova.storage import rbd_utils

PAGE = 1024
WRITE_BATCH = 1000


def _page(ioctx, obj: str, after: str, prefix: str, count: int) -> list:
    """[(key, value)] after key `after`; [] if the object does not exist."""
    with rbd_utils.rados.ReadOpCtx() as op:
        found, _ret = ioctx.get_omap_vals(op, after, prefix, count)
        try:
            ioctx.operate_read_op(op, obj)
        except rbd_utils.rados.ObjectNotFound:
            return []
        return list(found)


def items(ioctx, obj: str, prefix: str = '', page: int = PAGE) -> dict:
    """{key: value bytes} of every key (starting with prefix)."""
    found = {}
    after = ''
    while True:
        batch = _page(ioctx, obj, after, prefix, page)
        if not batch:
            return found
        found.update(batch)
        after = batch[-1][0]


def _batches(keys: list) -> list:
    return [keys[i:i + WRITE_BATCH] for i in range(0, len(keys),
                                                   WRITE_BATCH)]


def put(ioctx, obj: str, values: dict) -> None:
    """Set {key: value bytes}, WRITE_BATCH keys an operation."""
    for keys in _batches(list(values)):
        with rbd_utils.rados.WriteOpCtx() as op:
            ioctx.set_omap(op, tuple(keys), tuple(values[k] for k in keys))
            ioctx.operate_write_op(op, obj)


def drop(ioctx, obj: str, keys) -> None:
    """Remove keys (absent ones, or no object at all, are no error)."""
    for batch in _batches(sorted(keys)):
        with rbd_utils.rados.WriteOpCtx() as op:
            ioctx.remove_omap_keys(op, tuple(batch))
            try:
                ioctx.operate_write_op(op, obj)
            except rbd_utils.rados.ObjectNotFound:
                return
