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

"""Where one disk is cloned from, and the clone.

The image record from Glance (:mod:`.glancerecord`), the trusted location
found in it (:mod:`.sources`), then :func:`choose` (pure) says which way
the disk is made:

* ``direct``: a clone of that location (:mod:`.diskclone`);
* ``copy to store``: Nova copies the image into its RBD Glance store
  (``[libvirt] images_rbd_glance_store_name``), then the record is read
  again, once;
* ``stock``: ``[fastclone] cache_enabled = False``: only Nova's download
  path can make it (:class:`.cachedbase.NotClonable`);
* ``cache``: a clone of the image's cached base (:mod:`.cachedbase`).
"""

from oslo_log import log as logging

import nova.conf
from nova import exception
from nova.storage import rbd_utils

from fastclone_backend.cache import naming
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import cachedbase
from fastclone_backend.spawn import glancerecord
from fastclone_backend.spawn import snapfacts
from fastclone_backend.spawn import sources

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

DIRECT = 'direct'
COPY_TO_STORE = 'copy to store'
STOCK = 'stock'
CACHE = 'cache'


def choose(found: bool, glance_store_name, copy_to_store: bool,
           cache_enabled: bool) -> str:
    """Which way the disk is made, from what the location lookup found.

    :param found: a Glance location of the image can be cloned.
    :param glance_store_name: ``[libvirt] images_rbd_glance_store_name``.
    :param copy_to_store: Nova's copy to that store is still to be tried.
    :param cache_enabled: ``[fastclone] cache_enabled``.
    """
    if found:
        return DIRECT
    if glance_store_name and copy_to_store:
        return COPY_TO_STORE
    if not cache_enabled:
        return STOCK
    return CACHE


class DiskMaker:
    """Make one disk from an image, on one cluster connection.

    :param finder: the :class:`.sources.Sources` of the disk's driver.
    :param disk: the :class:`.diskclone.DiskClone` to make.
    :param copy_to_store: Nova's ``Rbd.copy_to_store(context, image_meta)``.
    """

    def __init__(self, finder, disk, copy_to_store):
        self.finder = finder
        self.disk = disk
        self.copy_to_store = copy_to_store

    def make(self, context, image_href, target: int, limit: int,
             copy_to_store=True, retry=True) -> int:
        """Clone the disk from the image's snapshot, or its cached base.

        :param target: grow the clone to this many bytes (0: leave it).
        :param limit: refuse an image whose virtual size is larger (0: no
            limit).
        :returns: the size of the clone made.
        :raises: ImageUnacceptable for a refused image, NotClonable when
            no location can be cloned and the cache is off.
        """
        with naming.timed('glance'):
            image_meta = glancerecord.show(context, image_href)
        image_id = image_meta.get('id') or image_href
        try:
            source, reasons = self.finder.find(context, image_meta, limit)
        except fc_exception.ImageRejected as e:
            naming.STATS['refusals'] += 1
            raise exception.ImageUnacceptable(image_id=image_id,
                                              reason=e.reason)
        way = choose(source is not None,
                     CONF.libvirt.images_rbd_glance_store_name,
                     copy_to_store, CONF.fastclone.cache_enabled)
        if way == COPY_TO_STORE:
            self.copy_to_store(context, image_meta)
            return self.make(context, image_href, target, limit,
                             copy_to_store=False)
        if way == STOCK:
            raise cachedbase.NotClonable(
                image_id, '[fastclone] cache_enabled = False, and ' +
                sources.refusal(reasons))
        if way == CACHE:
            LOG.debug('image %(image)s: not clonable in place: %(why)s',
                      {'image': image_id, 'why': sources.refusal(reasons)})
            return cachedbase.CachedBase(self.disk.driver).clone_into(
                self.disk, context, image_meta, target, limit)
        loc, facts = source
        try:
            self.disk.clone_from(loc, image_id)
        except rbd_utils.rbd.ImageNotFound:
            snapfacts.forget(loc.spec)   # it went away: learn it again
            if not retry:
                raise
            LOG.info('image %(image)s: %(spec)s vanished before the clone; '
                     'looking at the image again',
                     {'image': image_id, 'spec': loc.spec})
            return self.make(context, image_href, target, limit,
                             copy_to_store, retry=False)
        return self.disk.grow(target, facts.size)
