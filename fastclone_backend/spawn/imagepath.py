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

"""Ask the spawn path which way an image would go (thin I/O layer).

The same code as a spawn (``sources.Sources.find``: trust policy, location
API, snapshot facts, content check) on a disk that is never made, then
:func:`fastclone_backend.spawn.explain.decide`.
"""

import nova.conf

from fastclone_backend.cache import basestore
from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import explain
from fastclone_backend.spawn import location
from fastclone_backend.spawn import sources

CONF = nova.conf.CONF


def probe() -> sources.Sources:
    """The spawn's source lookups on this process's cluster connection."""
    fc_conf.register_opts(CONF)
    return sources.Sources(cluster.rbd_driver())


def find(context, image_meta: dict, probed=None) -> explain.Path:
    """The explain.Path of image_meta (a Nova image dict with locations)."""
    probed = probed or probe()
    rejected = None
    source, reasons = None, {}
    try:
        found, reasons = probed.find(context, image_meta, 0)
        if found is not None:
            source = found[0].spec
            reasons.update(_others(image_meta, found[0].url, reasons,
                                   probed.policy()))
    except fc_exception.ImageRejected as e:
        rejected = e.reason
    store = basestore.BaseStore(probed.driver)
    base_spec = '%s/%s@%s' % (store.pool, naming.base_name(image_meta['id']),
                              naming.SNAP)
    return explain.decide(image_meta, source, reasons, rejected,
                          CONF.fastclone.cache_enabled, probed.policy(),
                          base_spec=base_spec)


def _others(image_meta, chosen, reasons, policy) -> dict:
    """Why the locations after the one cloned would be refused.

    The spawn stops at the first location it can clone; an operator also
    wants to know about the others (by the trust policy alone).
    """
    found = {}
    for url in location.candidate_urls(image_meta):
        if url == chosen or url in reasons:
            continue
        try:
            location.check(url, image_meta.get('id'),
                           image_meta.get('disk_format'), policy)
        except fc_exception.LocationRejected as e:
            found[url] = e.reason
    return found
