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

"""A disk cloned from the image's cached base, or Nova's path on purpose.

When no Glance location can be cloned, the disk is a clone of the image's
cluster-wide cached base, populated once by the cache flow
(:meth:`fastclone_backend.cache.populate.Populator.ensure`).  When the
cache cannot work here (:class:`~fastclone_backend.exception.
CacheUnavailable`), :mod:`fastclone_backend.cache.degrade` decides between
Nova's own download path (:class:`NotClonable`) and failing the spawn.
"""

import os

from oslo_log import log as logging

import nova.conf
from nova import exception
from nova.storage import rbd_utils

from fastclone_backend.cache import basestore
from fastclone_backend.cache import degrade
from fastclone_backend.cache import fetch
from fastclone_backend.cache import naming
from fastclone_backend.cache import populate
from fastclone_backend.cache import statsstore
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import diskclone
from fastclone_backend.spawn import location

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# lookups of a cached base that another host may retire meanwhile
CLONE_ATTEMPTS = 5


class NotClonable(Exception):
    """No location can be cloned and the cache is off: Nova's path only."""

    def __init__(self, image_id, reason):
        super().__init__(reason)
        self.image_id = image_id
        self.reason = reason


def nova_base_dir() -> str:
    """Where Nova's own download path keeps images (``_base``)."""
    return os.path.join(CONF.instances_path,
                        CONF.image_cache.subdirectory_name)


def _existing(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


class CachedBase:
    """The cached bases of images, on one cluster connection."""

    def __init__(self, driver):
        self.driver = driver

    def clone_into(self, disk: diskclone.DiskClone, context, image_meta,
                   target: int, limit: int) -> int:
        """Clone the cluster-wide cached base (populating it if needed).

        A base retired or removed by another host between the lookup and
        the clone makes the clone fail with ImageNotFound: the lookup then
        runs again and finds the new base, or populates one.

        :returns: the size of the clone made, grown to target.
        :raises: ImageUnacceptable for a refused image, NotClonable when
            Nova's own download path is to make the disk.
        """
        image_id = image_meta['id']
        for attempt in range(1, CLONE_ATTEMPTS + 1):
            url, base_size = self.lookup(context, image_meta, limit,
                                         disk.name)
            try:
                disk.clone_from(location.parse(url), image_id)
                break
            except rbd_utils.rbd.ImageNotFound:
                basestore.forget(image_id)
                if attempt == CLONE_ATTEMPTS:
                    raise
                LOG.info('image %(image)s: cached base retired before the '
                         'clone; looking it up again', {'image': image_id})
        return disk.grow(target, base_size)

    def lookup(self, context, image_meta, limit: int, disk_name: str):
        """(url, size) of the image's cached base, populated if needed."""
        image_id = image_meta['id']
        try:
            url, base_size, hit = populate.Populator(self.driver).ensure(
                context, image_meta, limit)
        except (fc_exception.ImageRejected, fc_exception.CacheError) as e:
            if isinstance(e, fc_exception.ImageRejected):
                naming.STATS['refusals'] += 1
            raise exception.ImageUnacceptable(image_id=image_id,
                                              reason=e.without_image())
        except fc_exception.CacheUnavailable as e:
            self.degrade(e, image_meta)
        naming.STATS['hits' if hit else 'misses'] += 1
        if not hit:
            statsstore.flush_quietly(self.driver)   # once per population
        LOG.debug('image %(image)s: cache %(what)s for %(disk)s',
                  {'image': image_id, 'what': 'hit' if hit else 'miss',
                   'disk': disk_name})
        return url, base_size

    def degrade(self, error, image_meta) -> None:
        """Nova's download path instead, or the error: decided on purpose.

        :raises: NotClonable to take Nova's path, else the error.
        """
        image_id = image_meta['id']
        pool = CONF.fastclone.cache_pool or self.driver.pool
        room = degrade.Room(
            needed=degrade.stock_needs(image_meta.get('size'),
                                       image_meta.get('virtual_size')),
            base_free=fetch.free_bytes(_existing(nova_base_dir())),
            same_pool=pool == self.driver.pool)
        fallback = degrade.fall_back(error.kind, room)
        naming.STATS[degrade.outcome(error.kind, fallback)] += 1
        statsstore.flush_quietly(self.driver)   # for cache stats, doctor
        if fallback:
            naming.STATS['fallbacks'] += 1
            LOG.warning('%(err)s. This spawn takes Nova\'s own download '
                        'path instead (a full download, conversion and copy '
                        'of the image on this host)', {'err': error})
            raise NotClonable(image_id, error.without_image())
        LOG.warning('%(err)s. Nova\'s own download path would fail too '
                    '(%(need)d MiB needed in %(base)s, %(free)d MiB free): '
                    'this spawn fails', {'err': error,
                                         'need': room.needed >> 20,
                                         'base': nova_base_dir(),
                                         'free': room.base_free >> 20})
        raise error
