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

Glance is asked in pages: the v2 image list filtered by id (``id=in:...``,
``[fastclone] glance_ids_per_request`` ids a request), so that a pass over
10,000 bases costs some 70 requests, not 10,000.  A well-formed id that a
complete answer leaves out is deleted (the list of an admin shows every
image of every project; hidden ones are asked for in a second list, of the
left-out ids only).  An RBD trash entry is purged for good: a left-out
trash entry's id is confirmed by a GET of its own (404: deleted).
"""

import concurrent.futures
import re

from oslo_log import log as logging
from oslo_utils import uuidutils

import nova.conf
from nova import context as nova_context
from nova import exception

from fastclone_backend import conf as fc_conf
from fastclone_backend import glanceapi
from fastclone_backend.lifecycle import policy
from fastclone_backend import releases

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

GLANCE_THREADS = 8
IDS_IN_URL = re.compile(r'(id=in(?::|%3A))[0-9a-fA-F,%-]+')
ASKING = 'checking for the lifecycle pass whether it still exists'


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
        return image_id, glanceapi.show(context, image_id, ASKING)
    except exception.ImageNotFound:
        return image_id, policy.DELETED
    except Exception as e:
        return image_id, e


def page_size() -> int:
    """[fastclone] glance_ids_per_request."""
    fc_conf.register_opts(CONF)
    return CONF.fastclone.glance_ids_per_request


def pages(ids: list, size: int) -> list:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def listing(page: list) -> str:
    """What a list request does, for an error naming its first image."""
    if len(page) == 1:
        return 'listing it for the lifecycle pass'
    return 'listing it and %d other images for the lifecycle pass' % (
        len(page) - 1)


def _list_page(context, page: list, hidden: bool):
    """(page, {id: metadata} of those Glance lists, or the exception)."""
    try:
        found = glanceapi.listed(context, page, listing(page),
                                 hidden=hidden)
    except Exception as e:
        return page, e
    answered = {meta['id']: meta for meta in found}
    stray = sorted(set(answered) - set(page))
    if stray:   # a Glance that ignores the filter: its silence is no proof
        return page, ValueError(
            'Glance listed %d images not asked for (%s, ...): its list does '
            'not filter by id' % (len(stray), stray[0]))
    return page, answered


def _parallel(fn, items) -> list:
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(GLANCE_THREADS) as pool:
        return list(pool.map(fn, items))


def _listing(context, ids: list, hidden: bool = False):
    """({id: metadata} listed, [ids left out], [(count, error)] failed)."""
    found, absent, failed = {}, [], []
    for page, answer in _parallel(
            lambda p: _list_page(context, p, hidden),
            pages(ids, page_size())):
        if isinstance(answer, Exception):
            failed.append((len(page), answer))
            continue
        found.update(answer)
        absent += [i for i in page if i not in answer]
    return found, absent, failed


def _confirmed(context, ids: list):
    """({id: metadata or DELETED}, [(1, error)]): one GET per id."""
    found, failed = {}, []
    for image_id, answer in _parallel(lambda i: _ask(context, i), ids):
        if isinstance(answer, Exception):
            failed.append((1, answer))
        else:
            found[image_id] = answer
    return found, failed


def states(context, image_ids, confirm=()) -> dict:
    """{image id: metadata, or policy.DELETED}; unanswered ids left out.

    Only a well-formed image id (a UUID) is asked about, and can be
    deleted: Glance answers 404 for any name.  An id left out of a
    complete list answer, and of the list of hidden images, is deleted;
    one of ``confirm`` (trash entries: their purge cannot be undone) is
    deleted only once its own GET answers 404.  A page or a GET that fails
    decides nothing for its ids.  Up to GLANCE_THREADS requests are in
    flight at once.

    :param confirm: ids to confirm one by one when the list leaves them
        out.
    """
    ids = sorted(i for i in set(image_ids) if uuidutils.is_uuid_like(i))
    found, absent, failed = _listing(context, ids)
    confirm = set(confirm)
    hidden, gone, hidden_failed = _listing(
        context, [i for i in absent if i not in confirm], hidden=True)
    asked, asked_failed = _confirmed(
        context, [i for i in absent if i in confirm])
    found.update(hidden)
    found.update(dict.fromkeys(gone, policy.DELETED))
    found.update(asked)
    failed += hidden_failed + asked_failed
    if failed:
        LOG.warning('Glance did not answer for %(n)d of %(total)d images '
                    '(last error: %(err)s); their bases and trash entries '
                    'are kept until it does',
                    {'n': sum(n for n, _e in failed), 'total': len(ids),
                     'err': brief(failed[-1][1])})
    return found


def brief(error) -> str:
    """An error's text without the ids of its list request's URL.

    A connection error names the URL, twice: 150 ids make 11 KB of log.
    """
    return IDS_IN_URL.sub(r'\1...', str(error))
