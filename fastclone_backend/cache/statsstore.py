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

"""This process's counters, kept in RADOS so they add up cluster-wide.

``naming.STATS`` (counts) and ``naming.SECONDS`` (seconds per step) belong to
one process.  :func:`flush` writes them, whole, under one key per process
(``<host>:<pid>``) of the omap of ``fastclone-stats`` in the cache pool:
from the periodic pass and after each population, never per clone.
:func:`aggregate` sums every key it finds, whatever the keys are.
"""

import collections
import json
import os
import socket
import time

from oslo_log import log as logging

from nova.storage import rbd_utils

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming

LOG = logging.getLogger(__name__)

STATS_OBJECT = 'fastclone-stats'


def key() -> str:
    return '%s:%d' % (socket.gethostname(), os.getpid())


def record(stats, seconds, now: float) -> dict:
    return {'at': now, 'stats': dict(stats), 'seconds': dict(seconds)}


def aggregate(records: dict) -> dict:
    """{'processes', 'stats', 'seconds', 'last'}: sums over all records."""
    stats = collections.Counter()
    seconds = collections.Counter()
    last = 0.0
    for rec in records.values():
        stats.update({k: v for k, v in rec.get('stats', {}).items()
                      if isinstance(v, (int, float))})
        seconds.update({k: v for k, v in rec.get('seconds', {}).items()
                        if isinstance(v, (int, float))})
        last = max(last, rec.get('at', 0.0))
    return {'processes': len(records), 'stats': dict(stats),
            'seconds': dict(seconds), 'last': last}


def flush(driver) -> None:
    """Write this process's counters (one omap key, one RADOS write)."""
    value = json.dumps(record(naming.STATS, naming.SECONDS, time.time()))
    with basestore.BaseStore(driver).ioctx() as ioctx, \
            rbd_utils.rados.WriteOpCtx() as op:
        ioctx.set_omap(op, (key(),), (value.encode(),))
        ioctx.operate_write_op(op, STATS_OBJECT)


def flush_quietly(driver) -> None:
    """:func:`flush`, never failing the caller (best effort)."""
    if not naming.STATS and not naming.SECONDS:
        return
    try:
        flush(driver)
    except Exception as e:
        LOG.debug('could not record the counters: %(err)s', {'err': e})


def read(driver) -> dict:
    """{process key: record} of every process that flushed."""
    with basestore.BaseStore(driver).ioctx() as ioctx, \
            rbd_utils.rados.ReadOpCtx() as op:
        items, _ret = ioctx.get_omap_vals(op, '', '', -1)
        try:
            ioctx.operate_read_op(op, STATS_OBJECT)
        except rbd_utils.rados.ObjectNotFound:
            return {}
        return {k: json.loads(v) for k, v in items}
