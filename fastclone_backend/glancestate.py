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

"""What Glance says of the images our bases and trash entries belong to.

Nova's periodic tasks run with an admin context that carries no token.
Glance is then asked as Nova's service user (``[service_user]``, as Nova
itself does for vTPM secrets), which must see every image (it has the
admin role in a standard deployment); without ``[service_user]`` the
context is used as it is (a Glance without Keystone).
"""

from oslo_log import log as logging

from nova import context as nova_context
from nova import exception
from nova.virt.libvirt import imagebackend

from fastclone_backend import policy

LOG = logging.getLogger(__name__)


def service_context(context):
    """A context Glance accepts, for a periodic task."""
    if context is not None and context.auth_token:
        return context
    try:
        return nova_context.get_nova_service_user_context()
    except exception.InvalidConfiguration:
        return context or nova_context.get_admin_context()


def states(context, image_ids) -> dict:
    """{image id: metadata, or policy.DELETED}; unanswered ids left out.

    Only a 404 counts as deleted: any other failure decides nothing.
    """
    found = {}
    failures = 0
    for image_id in sorted(set(image_ids)):
        try:
            found[image_id] = imagebackend.IMAGE_API.get(context, image_id)
        except exception.ImageNotFound:
            found[image_id] = policy.DELETED
        except Exception as e:
            failures += 1
            last = e
    if failures:
        LOG.warning('Glance did not answer for %(n)d of %(total)d images '
                    '(last error: %(err)s); their bases and trash entries '
                    'are kept until it does', {'n': failures,
                                               'total': len(set(image_ids)),
                                               'err': last})
    return found
