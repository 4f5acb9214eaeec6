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

"""The doctor's Glance probes and the scan of every image (thin I/O)."""

import nova.conf

from fastclone_backend.manage import doctor
from fastclone_backend.manage import facts as facts_mod
from fastclone_backend.spawn import glancerecord
from fastclone_backend.spawn import imagepath
from fastclone_backend.spawn import location

CONF = nova.conf.CONF


def glance_endpoint() -> str:
    return (CONF.glance.endpoint_override or
            ', '.join(CONF.glance.api_servers or ()) or '(the catalog)')


def active_images(context) -> list:
    from nova.virt.libvirt import imagebackend
    images = imagebackend.IMAGE_API.get_all(context)
    return [i for i in images if i.get('status') == 'active']


def records(context, listed) -> list:
    """The full record of each listed image (but those deleted since)."""
    found = []
    for image in listed:
        try:
            found.append(glancerecord.show(context, image['id']))
        except Exception:
            continue   # deleted meanwhile
    return found


# ---------------------------------------------------------------- probes
def reachable(facts):
    error = facts.images_error()
    if error is not None:
        return doctor.check_glance(glance_endpoint(), facts_mod.err(error), 0)
    return doctor.check_glance(glance_endpoint(), None, len(facts.images()))


def service_user(facts):
    """List one image with the context the lifecycle pass uses."""
    su = CONF.service_user
    configured = bool(su.auth_type)
    who = ('[service_user] (auth_type %s)' % su.auth_type
           if configured else 'a context without a token (no '
           '[service_user])')
    error = None
    try:
        from fastclone_backend.lifecycle import glancestate
        context = glancestate.service_context(None)
        if context.user_id and configured:
            who = '[service_user] user %s' % context.user_id
        from nova.virt.libvirt import imagebackend
        imagebackend.IMAGE_API.get_all(context, limit=1)
    except Exception as e:
        error = facts_mod.err(e)
    return doctor.check_service_user(configured, su.send_service_user_token,
                                     who, error)


def _stores(context) -> list:
    """Glance's stores with details, or their ids alone if refused."""
    from nova.image import glance as nova_glance
    endpoint = next(iter(nova_glance.get_api_servers(context)))
    client = nova_glance._glanceclient_from_endpoint(context, endpoint, 2)
    try:
        return list(client.images.get_stores_info_detail()['stores'])
    except Exception:
        return [{'id': s['id']} for s in
                client.images.get_stores_info()['stores']]


def stores(facts):
    facts.images()   # Glance answers at all
    try:
        fsid = facts.client().get_fsid()
    except facts_mod.Unavailable:
        fsid = ''
    return doctor.check_glance_stores(
        _stores(facts.context), list(CONF.fastclone.clone_allowed_pools),
        fsid, CONF.libvirt.images_rbd_glance_store_name or '')


def locations(facts):
    facts.client()
    raw = [r for r in facts.records() if r.get('disk_format') == 'raw']
    rbd_sample = next((r['id'] for r in raw if any(
        u.startswith(location.SCHEME)
        for u in location.candidate_urls(r))), None)
    any_shown = any(location.candidate_urls(r) for r in raw)
    api_sample = None
    if not rbd_sample and raw and CONF.fastclone.use_location_api:
        disk = imagepath.probe()
        if disk.location_api_urls(facts.context, raw[0]['id']):
            api_sample = raw[0]['id']
    return doctor.check_locations(len(raw), rbd_sample, any_shown,
                                  api_sample,
                                  CONF.fastclone.use_location_api)


def images(facts):
    paths = facts.paths()
    refusals = [(p.image_id, cat, why) for p in paths
                for _url, cat, why in p.refusals]
    return doctor.check_images(paths, refusals)


def image_checks(context, image_id) -> list:
    """doctor --image: the path of one image, as verdicts."""
    path = imagepath.find(context, glancerecord.show(context, image_id))
    return path_verdicts(path)


def path_verdicts(path) -> list:
    status = {'direct': doctor.PASS, 'cache': doctor.WARN,
              'stock': doctor.WARN, 'refused': doctor.FAIL}[path.kind]
    fix = ''
    if path.kind in ('cache', 'stock'):
        fix = ' | '.join(sorted({doctor.FIXES[c]
                                 for _u, c, _w in path.refusals}))
    elif path.kind == 'refused':
        fix = doctor.FIXES['refused']
    found = [doctor.Verdict('image %s' % path.image_id, status,
                            '%s: %s' % (path.kind, path.why), fix)]
    for url, cat, why in path.refusals:
        if url:
            found.append(doctor.Verdict(
                'location %s' % location.short(url),
                doctor.PASS if path.kind == 'direct' else doctor.WARN,
                '%s: %s' % (cat, why), doctor.FIXES[cat]))
    return found
