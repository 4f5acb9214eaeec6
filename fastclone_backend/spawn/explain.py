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

"""The path one image's root disks take, and why.  Pure, no I/O.

The spawn path itself (``sources.Sources.find``) says which location it
would clone, why each other one was refused, or why the image is refused;
:func:`decide` turns that into a :class:`Path` an operator reads:

* ``direct``: a clone of the Glance image's own RBD snapshot;
* ``cache``: a clone of the cached base (populated once, cluster-wide);
* ``refused``: no disk is made (the data is not what Glance declares,
  or it is too big);
* ``stock``: ``[fastclone] cache_enabled = False``: Nova downloads it
  into ``_base`` and imports a full copy per disk.
"""

import dataclasses

from fastclone_backend import exception
from fastclone_backend.spawn import location


@dataclasses.dataclass(frozen=True)
class Path:
    image_id: str
    kind: str                 # direct, cache, refused, stock
    why: str                  # one sentence
    source: str = ''          # pool/image@snap cloned (direct, cache)
    refusals: tuple = ()      # (url, category, reason) per location


def category(url, image_meta: dict, policy: location.Policy) -> str:
    """Why a location cannot be cloned, as a short category."""
    try:
        loc = location.parse(url)
    except exception.LocationRejected:
        return 'not rbd'
    if loc.fsid != policy.local_fsid.lower():
        return 'other cluster'
    if loc.pool not in policy.allowed_pools:
        return 'pool'
    if policy.require_image_id_match and loc.image != image_meta.get('id'):
        return 'image id'
    if image_meta.get('disk_format') != 'raw':
        return 'format'
    return 'snapshot'   # passed the policy: the cluster refused it


def decide(image_meta: dict, source, reasons: dict, rejected,
           cache_enabled: bool, policy: location.Policy,
           base_spec: str = '') -> Path:
    """The Path, from what the spawn path found.

    :param source: spec of the snapshot the spawn would clone, or None.
    :param reasons: {url: why refused} of the other locations.
    :param rejected: why the image itself is refused, or None.
    :param base_spec: spec of the image's cached base snapshot.
    """
    image_id = image_meta.get('id')
    refusals = tuple((url, category(url, image_meta, policy), why)
                     for url, why in reasons.items())
    if rejected:
        return Path(image_id, 'refused', rejected, refusals=refusals)
    if source:
        return Path(image_id, 'direct', 'clones %s in place' % source,
                    source=source, refusals=refusals)
    if refusals:
        why = 'no location can be cloned (%s)' % ', '.join(
            sorted({c for _u, c, _w in refusals}))
    else:
        why = 'Glance shows no location for it'
        refusals = (('', 'no location', why),)
    if not cache_enabled:
        return Path(image_id, 'stock', why + '; [fastclone] cache_enabled '
                    '= False: Nova downloads it on every host',
                    refusals=refusals)
    return Path(image_id, 'cache', why + ': cloned from the cached base '
                '(converted once)', source=base_spec, refusals=refusals)
