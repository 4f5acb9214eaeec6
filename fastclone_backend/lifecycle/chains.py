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

"""Clone chains: which images have parents, and how deep the chain is.

Read only when a rule needs every clone of the instances pool (a chain
depth limit or an age limit for flatten): one open per image, and one per
distinct ancestor.  Only Nova's instance disks (``<instance uuid>_disk*``,
what Nova's rbd backend names them) are candidates: other images that may
share the pool (volumes, anyone's clones) are not ours to flatten.
"""

import calendar
import re

from nova.storage import rbd_utils

from fastclone_backend.cache import naming
from fastclone_backend.lifecycle import policy

INSTANCE_DISK = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                           r'[0-9a-f]{12}_disk')


def instance_disk(name: str) -> bool:
    """Is name one of Nova's instance disks (``<uuid>_disk...``)?"""
    return INSTANCE_DISK.match(name) is not None


def _parent(driver, spec: str):
    """(parent spec or None, created timestamp); None if it is gone."""
    pool, name = spec.split('/', 1)
    try:
        with rbd_utils.RBDVolumeProxy(driver, name, pool=pool,
                                      read_only=True) as vol:
            created = vol.create_timestamp()
            try:
                parent_pool, parent, _snap = vol.parent_info()
            except rbd_utils.rbd.ImageNotFound:
                return None, created
    except rbd_utils.rbd.ImageNotFound:
        return None
    return '%s/%s' % (parent_pool, parent), created


class Scanner:
    """Chains of one pool, each ancestor read once."""

    def __init__(self, driver):
        self.driver = driver
        self._known = {}  # spec -> (parent spec or None, created) or None

    def _info(self, spec):
        if spec not in self._known:
            self._known[spec] = _parent(self.driver, spec)
        return self._known[spec]

    def depth(self, spec: str) -> int:
        """Ancestors above spec (0: not a clone)."""
        depth = 0
        seen = {spec}
        info = self._info(spec)
        while info is not None and info[0] is not None:
            depth += 1
            if info[0] in seen:
                break  # cannot happen in RBD; never loop
            seen.add(info[0])
            info = self._info(info[0])
        return depth

    def clones(self, pool: str) -> list:
        """A policy.Clone for every image of the pool that has a parent."""
        with rbd_utils.RADOSClient(self.driver, pool) as client:
            names = rbd_utils.RbdProxy().list(client.ioctx)
        found = []
        for name in names:
            if naming.is_cache_name(name) or not instance_disk(name):
                continue  # bases are never clones; others are not ours
            spec = '%s/%s' % (pool, name)
            info = self._info(spec)
            if info is None or info[0] is None:
                continue
            found.append(policy.Clone(
                spec=spec, parent=info[0],
                created=calendar.timegm(info[1].utctimetuple()),
                depth=self.depth(spec)))
        return found
