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

"""The RBD trash of a pool: what is in it, and purging one entry.

glance_store moves a deleted image that still has clones to the trash of
its pool; nothing purges it once its last clone is gone.  The lifecycle
pass decides (:func:`fastclone_backend.lifecycle.policy.plan_trash`) and calls
:func:`purge`, which re-checks the children itself.
"""

import calendar

from oslo_log import log as logging

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import exception as fc_exception
from fastclone_backend.lifecycle import advice
from fastclone_backend.lifecycle import policy
from fastclone_backend import novacompat

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)


def _open(ioctx, image_id, read_only=True):
    return novacompat.tpool_wrap(rbd_utils.rbd.Image(
        ioctx, image_id=image_id, read_only=read_only))


def _timestamp(value) -> float:
    return calendar.timegm(value.utctimetuple()) if value else 0.0


def entries(driver, pool: str, ledger=(), cloned=()) -> list:
    """A policy.TrashEntry for each image in the pool's trash.

    :param ledger: the names in our ledger (naming.owned).
    :param cloned: (pool, image) of the Glance locations we cloned from.
    """
    found = []
    with rbd_utils.RADOSClient(driver, pool) as client:
        for item in rbd_utils.RbdProxy().trash_list(client.ioctx):
            seen = _read(client.ioctx, item['id'])
            if seen is None:
                continue  # purged meanwhile
            children, meta = seen
            found.append(policy.TrashEntry(
                pool=pool, id=item['id'], name=item['name'],
                deferred_until=_timestamp(item.get('deferment_end_time')),
                children=children,
                owned=naming.owned(item['name'], meta, item['id'], ledger),
                cloned=(pool, item['name']) in cloned))
    return found


def _read(ioctx, image_id):
    """(clones, metadata) of a trash entry, None if it is gone."""
    try:
        img = _open(ioctx, image_id)
    except rbd_utils.rbd.ImageNotFound:
        return None
    try:
        children = tuple(basestore.spec(c) for s in list(img.list_snaps())
                         for c in basestore.children_of(img, s))
        return children, dict(img.metadata_list())
    finally:
        img.close()


def _purge(ioctx, image_id: str) -> bool:
    """Remove a trash entry's snapshots, then the entry; False if kept."""
    img = _open(ioctx, image_id, read_only=False)
    try:
        if not basestore.remove_snaps(img):
            return False
    finally:
        img.close()
    rbd_utils.RbdProxy().trash_remove(ioctx, image_id)
    return True


def purge(driver, entry: policy.TrashEntry) -> bool:
    """Remove a trash entry and its snapshots unless it has clones.

    False when it stays: clones, a client still has it open, the Ceph
    user may not write there (advised once), or Ceph did not answer within
    ``[fastclone] remove_timeout`` (a full pool).
    """
    bounded = cluster.bounded_driver(driver, CONF.fastclone.remove_timeout)
    try:
        with cluster.answering(entry.name, 'purging %s/%s (%s) from the '
                               'trash' % (entry.pool, entry.name, entry.id),
                               CONF.fastclone.remove_timeout,
                               '[fastclone] remove_timeout'), \
                rbd_utils.RADOSClient(bounded, entry.pool) as client:
            if not _purge(client.ioctx, entry.id):
                return False
    except fc_exception.CephTimeout as e:
        LOG.warning('lifecycle pass: %(err)s; kept until a later pass',
                    {'err': e})
        return False
    except rbd_utils.rbd.ImageNotFound:
        return True
    except rbd_utils.rbd.PermissionError as e:
        warn_once(driver, entry.pool, e)
        return False
    except (rbd_utils.rbd.ImageHasSnapshots, rbd_utils.rbd.ImageBusy) as e:
        LOG.info('kept trash entry %(pool)s/%(name)s (%(id)s) for now: '
                 '%(err)s', {'pool': entry.pool, 'name': entry.name,
                             'id': entry.id, 'err': e})
        return False
    LOG.info('purged %(pool)s/%(name)s (%(id)s) from the trash',
             {'pool': entry.pool, 'name': entry.name, 'id': entry.id})
    return True


def warn_once(driver, pool: str, err) -> None:
    advice.warn_once(
        ('trash', pool),
        "cannot purge the RBD trash of pool %(pool)s (%(err)s): images "
        "deleted in Glance stay there.  Give the Ceph user write access: "
        "ceph auth caps client.%(user)s ... osd 'profile rbd "
        "pool=%(pool)s', or run 'rbd trash purge' there on a schedule",
        {'pool': pool, 'err': err, 'user': driver.rbd_user})
