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

"""Where a root disk is cloned from: the first Glance location we trust.

Glance's image record gives the candidate locations (and, when it shows
none, Glance's location API may); each is checked by the trust policy
(:mod:`.location`), its snapshot's facts are learnt once
(:mod:`.snapfacts`), and its content must be what Glance declares
(:mod:`fastclone_backend.inspect`).
No source means the cached base (the cache flow) or Nova's download path:
that choice is the caller's, :func:`.diskmaker.choose`.
"""

from oslo_log import log as logging

import nova.conf
from nova.storage import rbd_utils

from fastclone_backend.cache import naming
from fastclone_backend import cluster
from fastclone_backend import exception as fc_exception
from fastclone_backend import glanceapi
from fastclone_backend import inspect
from fastclone_backend.spawn import location
from fastclone_backend.spawn import snapfacts

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)


def check_image(image_meta, loc, facts, limit: int) -> None:
    """Refuse the image if the snapshot is not what Glance says."""
    image_id = image_meta.get('id')
    inspect.check_clone_content(image_id, loc.spec,
                                image_meta.get('disk_format'),
                                facts.detected, facts.detail)
    if limit and facts.size > limit:
        raise fc_exception.ImageRejected(
            image=image_id, reason="virtual size %d bytes exceeds the "
            "flavor's root disk of %d bytes" % (facts.size, limit))


def refusal(reasons: dict) -> str:
    if not reasons:
        return ('Glance shows no location for it (set '
                'show_image_direct_url in glance-api.conf or give Nova '
                'the location API)')
    return 'no location can be cloned: ' + '; '.join(
        '%s: %s' % (location.short(url), why)
        for url, why in reasons.items())


class Sources:
    """The trusted clone sources of images, on one cluster connection."""

    def __init__(self, driver):
        self.driver = driver

    def find(self, context, image_meta, limit: int):
        """((location, Facts) or None, {url: why refused})."""
        source, reasons = self.select(
            image_meta, location.candidate_urls(image_meta), limit)
        if (source is None and CONF.fastclone.use_location_api and
                image_meta.get('disk_format') == 'raw'):
            asked = self.location_api_urls(context, image_meta['id'])
            extra = [u for u in asked if u not in reasons]
            source, more = self.select(image_meta, extra, limit)
            reasons.update(more)
        return source, reasons

    def policy(self) -> location.Policy:
        return location.Policy(
            local_fsid=self.driver.get_fsid(),
            allowed_pools=tuple(CONF.fastclone.clone_allowed_pools),
            require_image_id_match=CONF.fastclone.clone_require_image_id_match)

    def select(self, image_meta, urls, limit: int = 0):
        """((location, Facts) or None, {url: reason refused}).

        :raises: ImageRejected when the snapshot to clone holds something
            else than the declared format, or is larger than limit.
        """
        reasons = {}
        if not urls:
            return None, reasons
        policy = self.policy()
        image_id = image_meta.get('id')
        for url in urls:
            try:
                loc = location.check(url, image_id,
                                     image_meta.get('disk_format'), policy)
                facts = self.snapshot_facts(loc)
            except fc_exception.LocationRejected as e:
                LOG.debug('image %(image)s: location refused: %(why)s',
                          {'image': image_id, 'why': e})
                reasons[url] = e.reason
                continue
            check_image(image_meta, loc, facts, limit)
            LOG.debug('image %(image)s: cloning from %(spec)s',
                      {'image': image_id, 'spec': loc.spec})
            return (loc, facts), reasons
        return None, reasons

    def snapshot_facts(self, loc: location.RbdLocation) -> snapfacts.Facts:
        """The snapshot's facts, once it is known to be clonable.

        It must exist, and be protected where the cluster makes clone v1.
        """
        def refuse(reason):
            return fc_exception.LocationRejected(url=location.short(loc.url),
                                                 reason=reason)
        pool = CONF.fastclone.cache_pool or self.driver.pool
        try:
            with naming.timed('snapshot facts'):
                facts = snapfacts.SnapFacts(self.driver, pool).get(loc)
            if (not facts.protected and
                    self.driver.handle.clone_format() == 1):
                raise refuse('snapshot %s is not protected and this cluster '
                             'makes clone v1 (require_min_compat_client is '
                             'below mimic)' % loc.spec)
        except rbd_utils.rbd.ImageNotFound:
            raise refuse('snapshot %s does not exist' % loc.spec)
        except (rbd_utils.rbd.Error, rbd_utils.rados.Error) as e:
            if cluster.timed_out(e):
                raise   # the cluster, not the location
            raise refuse('cannot open %s: %s' % (loc.spec, e))
        return facts

    def location_api_urls(self, context, image_id) -> list:
        """URLs from Glance's v2.17 location API, [] when it is refused."""
        try:
            found = glanceapi.locations(context, image_id)
            return [loc['url'] for loc in found if loc.get('url')]
        except fc_exception.GlanceTimeout:
            raise   # Glance hangs: the spawn cannot go on either
        except Exception as e:  # the API is optional; any failure skips it
            LOG.debug('image %(image)s: Glance location API not used: '
                      '%(err)s', {'image': image_id, 'err': e})
            return []
