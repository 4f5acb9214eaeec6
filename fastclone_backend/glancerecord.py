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

"""An image record from Glance in one HTTP request.

Nova's ``IMAGE_API.get(context, id, include_locations=True)`` makes a new
glanceclient per call, and each one fetches Glance's image schema before
the image: two requests per spawn.  :func:`show` returns the same dict
through Nova's own client wrapper (endpoints, retries, token) and Nova's
own translation, with the schema fetched once per process and endpoint
and refreshed every :data:`SCHEMA_TTL` seconds.
"""

import threading
import time

from nova import exception
from nova.image import glance
from nova.virt.libvirt import imagebackend as nova_imagebackend

SCHEMA_TTL = 3600

_SCHEMAS: dict = {}
_LOCK = threading.Lock()


class _Record(dict):
    """A v2 image body, read by Nova's translation as a glanceclient model."""

    def __init__(self, body: dict, schema: dict):
        super().__init__(body)
        self.schema = schema

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)


def _schema(client, context) -> dict:
    key = getattr(client, 'api_server', None)  # set by the call before
    with _LOCK:
        found = _SCHEMAS.get(key)
    if found is not None and time.monotonic() - found[0] < SCHEMA_TTL:
        return found[1]
    raw = client.call(context, 2, 'get', controller='schemas',
                      args=('image',)).raw()
    with _LOCK:
        _SCHEMAS[key] = (time.monotonic(), raw)
    return raw


def show(context, image_href: str) -> dict:
    """What ``IMAGE_API.get(..., include_locations=True)`` returns."""
    service, image_id = nova_imagebackend.IMAGE_API._get_session_and_image_id(
        context, image_href)
    client = service._client
    try:
        _resp, body = client.call(context, 2, 'get',
                                  controller='http_client',
                                  args=('/v2/images/%s' % image_id,))
        record = _Record(body, _schema(client, context))
    except Exception:
        glance._reraise_translated_image_exception(image_id)
    record.pop('self', None)
    if not glance._is_image_available(context, record):
        raise exception.ImageNotFound(image_id=image_id)
    image = glance._translate_from_glance(record, include_locations=True)
    locations = image.get('locations') or []
    if image.get('direct_url'):
        locations.append({'url': image['direct_url'], 'metadata': {}})
    image['locations'] = locations
    return image
