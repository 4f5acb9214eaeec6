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
pass decides (:func:`fastclone_backend.policy.plan_trash`) and calls
:func:`purge`, which re-checks the children itself.
"""

import calendar

from oslo_log import log as logging

from nova.storage import rbd_utils
from nova import utils

from fastclone_backend import advice
from fastclone_backend import basestore
from fastclone_backend import policy

LOG = logging.getLogger(__name__)


def _open(ioctx, image_id, read_only=True):
    return utils.tpool_wrap(rbd_utils.rbd.Image(
        ioctx, image_id=image_id, read_only=read_only))


def _timestamp(value) -> float:
    return calendar.timegm(value.utctimetuple()) if value else 0.0


def entries(driver, pool: str) -> list:
    """A policy.TrashEntry for each image in the pool's trash."""
    found = []
    with rbd_utils.RADOSClient(driver, pool) as client:
        for item in rbd_utils.RbdProxy().trash_list(client.ioctx):
            children = _children(client.ioctx, item['id'])
            if children is None:
                continue  # purged meanwhile
            found.append(policy.TrashEntry(
                pool=pool, id=item['id'], name=item['name'],
                deferred_until=_timestamp(item.get('deferment_end_time')),
                children=children))
    return found


def _children(ioctx, image_id):
    try:
        img = _open(ioctx, image_id)
    except rbd_utils.rbd.ImageNotFound:
        return None
    try:
        return tuple(basestore.spec(c) for s in list(img.list_snaps())
                     for c in basestore.children_of(img, s))
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

    False when it stays: clones, a client still has it open, or the Ceph
    user may not write there (advised once).
    """
    try:
        with rbd_utils.RADOSClient(driver, entry.pool) as client:
            if not _purge(client.ioctx, entry.id):
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
