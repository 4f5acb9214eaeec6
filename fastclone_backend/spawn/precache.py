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

"""Nova's image precache API (2.81) on a fastrbd host: warm Ceph, not _base.

Stock ``LibvirtDriver.cache_image`` downloads the image into the host's
``_base`` even when the host runs rbd, where no disk is ever made from it.
On a fastrbd host (installed by :mod:`fastclone_backend.hook`):

* an image that clones in place needs nothing: ``False`` (Nova reports
  ``existing``);
* an image that goes through the converted-image cache gets its cached
  base, populated once cluster-wide (:meth:`Populator.ensure`): ``True``
  when this call populated it (``cached``), ``False`` when it was there;
* an image that would be refused raises Nova's ``ImageUnacceptable``
  (Nova reports ``error`` and logs it);
* with ``[fastclone] cache_enabled = False`` such an image is made by
  Nova's download on each spawn, into ``_base``: Nova's own
  ``cache_image`` runs, exactly as stock.
"""

from oslo_log import log as logging

import nova.conf
from nova import exception

from fastclone_backend.cache import naming
from fastclone_backend.cache import populate
from fastclone_backend.cache import statsstore
from fastclone_backend import cluster
from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend.spawn import glancerecord
from fastclone_backend.spawn import imagepath

LOG = logging.getLogger(__name__)

STOCK = object()   # returned when Nova's own cache_image must run


def warm(context, image_id: str):
    """True: populated now; False: nothing to do; STOCK: Nova's turn.

    :raises: nova.exception.ImageUnacceptable for a refused image.
    """
    fc_conf.register_opts(nova.conf.CONF)
    image_meta = glancerecord.show(context, image_id)
    path = imagepath.find(context, image_meta)
    if path.kind == 'refused':
        raise exception.ImageUnacceptable(image_id=image_id,
                                          reason=path.why)
    if path.kind == 'stock':
        return STOCK
    if path.kind == 'direct':
        LOG.info('precache of image %(image)s: nothing to do, it %(why)s',
                 {'image': image_id, 'why': path.why})
        return False
    driver = cluster.rbd_driver()
    try:
        _url, size, hit = populate.Populator(driver).ensure(
            context, image_meta, 0)
    except (fc_exception.ImageRejected, fc_exception.CacheError) as e:
        raise exception.ImageUnacceptable(image_id=image_id,
                                          reason=e.without_image())
    naming.STATS['precaches'] += 1
    statsstore.flush_quietly(driver)
    LOG.info('precache of image %(image)s: cached base %(spec)s %(what)s '
             '(%(size)d bytes)', {'image': image_id, 'spec': path.source,
                                  'what': 'was ready' if hit else
                                  'populated', 'size': size})
    return not hit
