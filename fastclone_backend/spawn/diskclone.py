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

"""One instance disk made as a clone of an RBD snapshot (thin I/O layer).

The snapshot is chosen elsewhere (:mod:`.diskmaker`); here it is cloned
into the disk's name, over what an earlier clone of that disk left, and
the clone grown to its size.  A clone that times out or cannot be grown
is removed again, when Ceph answers.
"""

import time

from oslo_log import log as logging
from oslo_utils import excutils

from nova.storage import rbd_utils

from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import location

LOG = logging.getLogger(__name__)


class DiskClone:
    """The disk ``name`` in the driver's pool, made as a clone."""

    def __init__(self, driver, name: str):
        self.driver = driver
        self.name = name

    def clone_from(self, loc: location.RbdLocation, image_id) -> None:
        """Clone loc into the disk; a timed-out clone is removed again."""
        start = time.monotonic()
        doing = 'cloning %s to %s/%s' % (loc.spec, self.driver.pool,
                                         self.name)
        try:
            with naming.timed('clone'), cluster.answering(
                    image_id, doing, self.driver.op_timeout):
                self._clone_over_partial(loc, image_id)
        except fc_exception.CephTimeout:
            with excutils.save_and_reraise_exception():
                self._remove_partial()
        naming.STATS['clones'] += 1
        LOG.debug('image %(image)s: cloned %(src)s to %(pool)s/%(dst)s in '
                  '%(ms).1f ms', {'image': image_id, 'src': loc.spec,
                                  'pool': self.driver.pool,
                                  'dst': self.name,
                                  'ms': (time.monotonic() - start) * 1000})

    def _clone_over_partial(self, loc: location.RbdLocation,
                            image_id) -> None:
        """Clone; what an earlier clone of this disk left is removed first.

        Nova asked ``exists()`` before the clone, so a disk name that is
        taken all the same, by an image that does not open, is what a clone
        that timed out leaves (here or on the host the build was
        rescheduled from): its ``rbd_id`` object, maybe its header and
        directory entry.  librbd's remove takes those away (it may answer
        ImageNotFound while it does); then the clone runs once more.
        """
        try:
            self.driver.clone({'url': loc.url}, self.name)
        except rbd_utils.rbd.ImageExists:
            if self.driver.exists(self.name):
                raise
            LOG.warning('image %(image)s: %(pool)s/%(name)s is taken by the '
                        'remains of an earlier clone that did not finish; '
                        'removing them and cloning again',
                        {'image': image_id, 'pool': self.driver.pool,
                         'name': self.name})
            self.driver.remove_image(self.name)
            self.driver.clone({'url': loc.url}, self.name)

    def _remove_partial(self) -> None:
        """Remove what a failed clone may have made, if Ceph answers.

        Nova's cleanup of the failed build removes it otherwise (its disks
        start with the instance uuid).
        """
        try:
            self.driver.remove_image(self.name)
        except Exception as e:
            LOG.warning('could not remove %(name)s after the failed clone '
                        '(%(err)s); Nova\'s cleanup of the failed build '
                        'removes it', {'name': self.name, 'err': e})

    def grow(self, size: int, current: int) -> int:
        """Resize the new clone up to size; remove it if that fails.

        :returns: the clone's size in bytes (it is never shrunk).
        """
        if not size or size <= current:
            return current
        try:
            with naming.timed('resize'):
                self.driver.resize(self.name, size)
            return size
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.error('removing %(name)s: resize to %(size)d failed',
                          {'name': self.name, 'size': size})
                self.driver.remove_image(self.name)
