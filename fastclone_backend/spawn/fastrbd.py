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

"""``FastRbd``: Nova's ``Rbd`` image backend with a strict, fast clone path.

Everything but ``clone`` is Nova's own ``Rbd`` (disk naming, libvirt XML,
snapshots, cleanup), so a ``FastRbd`` host and a stock ``rbd`` host see the
same disks.  ``clone`` goes through :meth:`FastRbd.direct_fetch`, which
clones only from Glance locations the policy in
:mod:`fastclone_backend.spawn.location` trusts, on the process's shared cluster
connection (:mod:`fastclone_backend.cluster`).

This is the adapter to Nova only: the choice of the source and the clone
are :mod:`.diskmaker`'s, :mod:`.cachedbase`'s and :mod:`.diskclone`'s.
"""

from oslo_log import log as logging
from oslo_utils import units

import nova.conf
from nova import exception
from nova.storage import rbd_utils
from nova.virt.libvirt import imagebackend

from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend.spawn import cachedbase
from fastclone_backend.spawn import diskclone
from fastclone_backend.spawn import diskmaker
from fastclone_backend.spawn import glancerecord
from fastclone_backend.spawn import location
from fastclone_backend.spawn import sources

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)


def is_nova_clone(fetch_func) -> bool:
    """Is this LibvirtDriver's clone_fallback_to_fetch (root/rescue disks)?"""
    return getattr(fetch_func, '__name__', None) == 'clone_fallback_to_fetch'


def flavor_root_bytes(instance) -> int:
    """The instance flavor's root disk in bytes, 0 when unknown."""
    if instance is None or not instance.obj_attr_is_set('flavor'):
        return 0
    return (instance.flavor.root_gb or 0) * units.Gi


def instance_image(instance) -> str:
    """The instance's Glance image, for messages ('unknown' when unset)."""
    if instance is None or not instance.obj_attr_is_set('image_ref'):
        return 'unknown'
    return instance.image_ref or 'unknown'


class FastRbd(imagebackend.Rbd):
    """Instance disks as copy-on-write clones of trusted Glance RBD images."""

    def __init__(
        self, instance=None, disk_name=None, path=None, disk_info_mapping=None
    ):
        super().__init__(instance=instance, disk_name=disk_name, path=path,
                         disk_info_mapping=disk_info_mapping)
        fc_conf.register_opts(CONF)
        self.driver = cluster.rbd_driver()
        self.sources = sources.Sources(self.driver)
        self.instance = instance
        # set by direct_fetch: the size of the clone it made, so Nova's
        # exists()/get_disk_size() calls right after need no round trip
        self._made_size = None
        # why only Nova's download path can make this disk, once known
        self._stock_reason = None

    def exists(self):
        """Does the disk exist?  A Ceph timeout names the image and disk.

        Nova asks this first of a spawn (``_create_and_inject_local_root``),
        before any ``cache()`` or ``clone()``: a stalled cluster surfaces
        here, as a :class:`CephTimeout` instead of librbd's bare timeout.
        """
        return self._exists(instance_image(self.instance),
                            'checking for disk')

    def get_disk_size(self, name):
        if self._made_size is not None:
            return self._made_size
        return super().get_disk_size(name)

    def resize_image(self, size):
        self._made_size = None
        super().resize_image(size)

    def cache(self, fetch_func, filename, size=None, *args, **kwargs):
        """Make a disk from an image before any host-wide lock.

        Nova's ``Image.cache()`` runs the fetch under a file lock named
        after the image, which serializes every spawn of that image on the
        host.  A root or rescue disk (Nova's ``clone_fallback_to_fetch``
        with a context and an image id) is cloned here instead, without
        it; Nova's own path, lock and all, remains for everything else:
        other disks, a disk that already exists, and an image that only
        Nova's download can make (``[fastclone] cache_enabled = False``).
        A refusal of the image itself ends here: Nova never downloads it
        again into ``_base``.
        """
        context, image_id = kwargs.get('context'), kwargs.get('image_id')
        if (not is_nova_clone(fetch_func) or context is None or
                image_id is None or self._exists(image_id)):
            return super().cache(fetch_func, filename, size, *args, **kwargs)
        try:
            with self._answering(image_id):
                self._make(context, image_id, size or 0, size or 0)
        except cachedbase.NotClonable as e:
            LOG.info('image %(image)s: left to Nova\'s download path: '
                     '%(why)s', {'image': image_id, 'why': e.reason})
            self._stock_reason = e.reason
        except rbd_utils.rbd.ImageExists:
            LOG.info('%(name)s appeared meanwhile; Nova takes it from here',
                     {'name': self.rbd_name})
        else:
            return
        return super().cache(fetch_func, filename, size, *args, **kwargs)

    def _make(self, context, image_href, target: int, limit: int,
              copy_to_store=True) -> None:
        """Make the disk (:meth:`.diskmaker.DiskMaker.make`), keep its size."""
        maker = diskmaker.DiskMaker(
            self.sources, diskclone.DiskClone(self.driver, self.rbd_name),
            self.copy_to_store)
        self._made_size = maker.make(context, image_href, target, limit,
                                     copy_to_store)

    def _answering(self, image_id, doing='making disk'):
        return cluster.answering(image_id, '%s %s/%s' % (
            doing, self.driver.pool, self.rbd_name), self.driver.op_timeout)

    def _exists(self, image_id, doing='making disk') -> bool:
        """exists(), a timeout naming image_id (the image being made)."""
        if self._made_size is not None:
            return True
        with self._answering(image_id, doing):
            return super().exists()

    def clone(self, context, image_id_or_uri, copy_to_store=True):
        if self._stock_reason is not None:   # known already: no Glance call
            raise exception.ImageUnacceptable(image_id=image_id_or_uri,
                                              reason=self._stock_reason)
        return self.direct_fetch(context, image_id_or_uri,
                                 copy_to_store=copy_to_store)

    def direct_fetch(self, context, image_href, size=None,
                     copy_to_store=True):
        """Make this disk a clone of the image's trusted RBD snapshot.

        :param size: grow the clone to this many bytes; default: the
            instance flavor's root disk.  A clone is never shrunk.
        :raises: nova.exception.ImageUnacceptable naming every location
            and why it was refused.
        """
        limit = flavor_root_bytes(self.instance)
        target = size if size is not None else limit
        try:
            with self._answering(image_href):
                self._make(context, image_href, target, limit, copy_to_store)
        except cachedbase.NotClonable as e:
            raise exception.ImageUnacceptable(image_id=e.image_id,
                                              reason=e.reason)

    def _get_parent_pool(self, context, base_image_id, fsid):
        """Where Nova's direct snapshot goes: Glance's pool, not the cache's.

        Nova puts the snapshot in the pool of the disk's parent.  A disk
        cloned from a cached base has its parent in the instances pool,
        which Glance's store does not own (Glance refuses the location):
        its snapshot goes to the pool of the image's own location in this
        cluster, as Nova asks Glance for a disk with no parent.  With no
        such location, ImageUnacceptable makes Nova upload it instead.
        """
        try:
            parent_pool, parent, _snap = self.driver.parent_info(
                self.rbd_name)
        except exception.ImageUnacceptable:   # a flat disk: Nova asks Glance
            return super()._get_parent_pool(context, base_image_id, fsid)
        if naming.kind_of(parent) != 'base':
            return parent_pool   # Nova's choice, without reading it again
        pool = location.pool_in_cluster(
            glancerecord.show(context, base_image_id), fsid)
        if pool is None:
            raise exception.ImageUnacceptable(
                image_id=base_image_id, reason='the disk is a clone of a '
                'cached base and the image has no RBD location in this '
                'cluster for its snapshot')
        return pool
