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

import concurrent.futures

from oslo_log import log as logging

from nova import context as nova_context
from nova import exception
from nova.virt.libvirt import imagebackend

from fastclone_backend import policy

LOG = logging.getLogger(__name__)

GLANCE_THREADS = 8


def service_context(context):
    """A context Glance accepts, for a periodic task."""
    if context is not None and context.auth_token:
        return context
    try:
        return nova_context.get_nova_service_user_context()
    except exception.InvalidConfiguration:
        return context or nova_context.get_admin_context()


def _ask(context, image_id):
    """(image_id, metadata or DELETED, or the exception raised)."""
    try:
        return image_id, imagebackend.IMAGE_API.get(context, image_id)
    except exception.ImageNotFound:
        return image_id, policy.DELETED
    except Exception as e:
        return image_id, e


def states(context, image_ids) -> dict:
    """{image id: metadata, or policy.DELETED}; unanswered ids left out.

    Only a 404 counts as deleted: any other failure decides nothing.  Up
    to GLANCE_THREADS requests are in flight at once.
    """
    ids = sorted(set(image_ids))
    with concurrent.futures.ThreadPoolExecutor(GLANCE_THREADS) as pool:
        answers = list(pool.map(lambda i: _ask(context, i), ids))
    found = {i: a for i, a in answers if not isinstance(a, Exception)}
    failed = [a for _i, a in answers if isinstance(a, Exception)]
    if failed:
        LOG.warning('Glance did not answer for %(n)d of %(total)d images '
                    '(last error: %(err)s); their bases and trash entries '
                    'are kept until it does', {'n': len(failed),
                                               'total': len(ids),
                                               'err': failed[-1]})
    return found
