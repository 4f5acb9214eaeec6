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

"""Small I/O helpers the commands share."""

import calendar
import time

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming

CONF = nova.conf.CONF


def driver():
    from fastclone_backend import cluster
    return cluster.rbd_driver()


def iso(ts: float) -> str:
    if not ts:
        return ''
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts))


def created(drv, pool: str, name: str) -> float:
    """An RBD image's creation time, 0 if it is gone."""
    try:
        with rbd_utils.RBDVolumeProxy(drv, name, pool=pool,
                                      read_only=True) as vol:
            return float(calendar.timegm(
                vol.create_timestamp().utctimetuple()))
    except rbd_utils.rbd.ImageNotFound:
        return 0.0


def state(base) -> str:
    """ready, partial, retired or populating, for a naming.Base."""
    if base.kind == 'base':
        return 'ready' if base.has_snap else 'partial'
    if base.kind == 'tmp':
        return 'populating' if base.locked else 'partial'
    return 'retired'


def base_state(drv, image_meta) -> str:
    store = basestore.BaseStore(drv)
    name = naming.base_name(image_meta['id'])
    found = store.metadata(name, naming.SNAP)
    if found is None:
        return '%s/%s: missing (populated at the first spawn)' % (
            store.pool, name)
    stale = naming.stale_reason(found[1], image_meta)
    return '%s/%s: %s' % (store.pool, name,
                          'stale: %s' % stale if stale else 'ready')


def resolve_spec(drv, target: str) -> str:
    """pool/image for a spec, an instance uuid or a Glance image id."""
    if '/' in target:
        return target
    pool = CONF.libvirt.images_rbd_pool
    candidates = [(pool, '%s_disk' % target),
                  (basestore.BaseStore(drv).pool, naming.base_name(target))]
    candidates += [(p, target) for p in CONF.fastclone.clone_allowed_pools]
    candidates.append((pool, target))
    for cpool, name in candidates:
        try:
            with rbd_utils.RBDVolumeProxy(drv, name, pool=cpool,
                                          read_only=True):
                return '%s/%s' % (cpool, name)
        except (rbd_utils.rbd.ImageNotFound, rbd_utils.rados.ObjectNotFound):
            continue
    raise SystemExit('no RBD image found for %s (tried %s)' % (
        target, ', '.join('%s/%s' % c for c in candidates)))
