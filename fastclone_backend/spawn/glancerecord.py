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

"""An image record from Glance in one bounded HTTP request.

Nova's ``IMAGE_API.get(context, id, include_locations=True)`` makes a new
glanceclient per call, and each one fetches Glance's image schema before
the image: two requests per spawn, each unbounded.  :func:`show` returns
the same dict in one request (the schema is fetched once per process and
endpoint), bounded by ``[fastclone] glance_timeout``: see
:mod:`fastclone_backend.glanceapi`.
"""

from fastclone_backend import glanceapi


def show(context, image_href: str) -> dict:
    """What ``IMAGE_API.get(..., include_locations=True)`` returns.

    :raises: GlanceTimeout naming the image when Glance does not answer.
    """
    return glanceapi.show(context, image_href,
                          'reading the image record for a spawn')
