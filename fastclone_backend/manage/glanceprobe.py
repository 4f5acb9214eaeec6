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

from fastclone_backend import doctor
from fastclone_backend import glancerecord
from fastclone_backend import imagepath
from fastclone_backend import location
from fastclone_backend.manage import cephprobe

CONF = nova.conf.CONF


def glance_endpoint() -> str:
    return (CONF.glance.endpoint_override or
            ', '.join(CONF.glance.api_servers or ()) or '(the catalog)')


def active_images(context) -> list:
    from nova.virt.libvirt import imagebackend
    images = imagebackend.IMAGE_API.get_all(context)
    return [i for i in images if i.get('status') == 'active']


def glance_checks(context, client_ok: bool) -> list:
    try:
        listed = active_images(context)
    except Exception as e:
        return [doctor.check_glance(glance_endpoint(), cephprobe._err(e), 0)]
    found = [doctor.check_glance(glance_endpoint(), None, len(listed))]
    if not client_ok:
        return found
    records = []
    for image in listed:
        try:
            records.append(glancerecord.show(context, image['id']))
        except Exception:
            continue   # deleted meanwhile
    found.append(_locations(context, records))
    found.append(scan(context, records))
    return found


def _locations(context, records):
    raw = [r for r in records if r.get('disk_format') == 'raw']
    rbd_sample = next((r['id'] for r in raw if any(
        u.startswith(location.SCHEME)
        for u in location.candidate_urls(r))), None)
    any_shown = any(location.candidate_urls(r) for r in raw)
    api_sample = None
    if not rbd_sample and raw and CONF.fastclone.use_location_api:
        disk = imagepath.probe_disk()
        if disk._location_api_urls(context, raw[0]['id']):
            api_sample = raw[0]['id']
    return doctor.check_locations(len(raw), rbd_sample, any_shown,
                                  api_sample,
                                  CONF.fastclone.use_location_api)


def scan(context, records):
    disk = imagepath.probe_disk()
    paths = [imagepath.find(context, r, disk) for r in records]
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
