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

Nova 31 and 32 have no service-user context
(``nova.context.get_nova_service_user_context`` comes with Nova 33): there
the context is used as it is, with one WARNING; a Glance behind Keystone
then refuses the token-less questions and every base and trash entry is
kept (:func:`states` decides nothing without an answer).
"""

import concurrent.futures

from oslo_log import log as logging
from oslo_utils import uuidutils

from nova import context as nova_context
from nova import exception

from fastclone_backend import glanceapi
from fastclone_backend.lifecycle import policy
from fastclone_backend import releases

LOG = logging.getLogger(__name__)

GLANCE_THREADS = 8


def service_context(context):
    """A context Glance accepts, for a periodic task."""
    if context is not None and context.auth_token:
        return context
    as_service_user = getattr(nova_context, 'get_nova_service_user_context',
                              None)
    if as_service_user is None:
        releases.lacking(
            'service-user context (nova.context.'
            'get_nova_service_user_context)', 33,
            'the lifecycle pass and fastclone-manage ask Glance with the '
            "periodic task's own context, which a Glance behind Keystone "
            'refuses: bases and trash entries of deleted images are kept')
        return context or nova_context.get_admin_context()
    try:
        return as_service_user()
    except exception.InvalidConfiguration:
        return context or nova_context.get_admin_context()


def _ask(context, image_id):
    """(image_id, metadata or DELETED, or the exception raised)."""
    try:
        return image_id, glanceapi.show(
            context, image_id, 'checking for the lifecycle pass whether it '
            'still exists')
    except exception.ImageNotFound:
        return image_id, policy.DELETED
    except Exception as e:
        return image_id, e


def states(context, image_ids) -> dict:
    """{image id: metadata, or policy.DELETED}; unanswered ids left out.

    Only a 404 for a well-formed image id (a UUID) counts as deleted:
    Glance answers 404 for any name, and a name that cannot be an image id
    is never asked about.  Any other failure decides nothing.  Up to
    GLANCE_THREADS requests are in flight at once.
    """
    ids = sorted(i for i in set(image_ids) if uuidutils.is_uuid_like(i))
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
