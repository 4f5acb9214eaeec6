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

"""Glance's HTTP API as we call it: every request bounded.

Nova's Glance calls wait as long as ``[glance] timeout`` says, for ever
by default: a Glance that accepts the connection and never answers holds a
spawn for ever.  Every request of fastclone-backend goes through
:func:`get`, on Nova's own glanceclient (endpoints, service token, session)
with ``[fastclone] glance_timeout`` as the connect and read timeout of the
request, and a timeout becomes a :class:`GlanceTimeout` naming the image
and the stage.  Connection failures are retried as Nova's own client does
(``[glance] num_retries``); a timeout is not: its bound is the answer.

:func:`show` is ``IMAGE_API.get(..., include_locations=True)`` in one
request (Nova's makes a glanceclient per call, and each fetches Glance's
image schema first): the same dict, through Nova's own translation, with
the schema fetched once per process and endpoint and refreshed every
:data:`SCHEMA_TTL` seconds.  :func:`listed` asks for many images at once:
the v2 image list filtered by id, each record translated the same way
(without locations: a list answer has none unless Glance shows multiple
locations).
"""

import socket
import threading
import time
from urllib import parse

import glanceclient.exc
from oslo_log import log as logging

import nova.conf
from nova import exception
from nova.image import glance
from nova.virt.libvirt import imagebackend as nova_imagebackend

from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

SCHEMA_TTL = 3600
RETRIED = (glanceclient.exc.HTTPServiceUnavailable,
           glanceclient.exc.InvalidEndpoint,
           glanceclient.exc.CommunicationError, IOError)
TIMEOUT_WORDS = ('timed out', 'Timeout')

_SCHEMAS: dict = {}
_LOCK = threading.Lock()


def seconds() -> int:
    """[fastclone] glance_timeout (0: none)."""
    fc_conf.register_opts(CONF)
    return CONF.fastclone.glance_timeout


def timed_out(error: BaseException) -> bool:
    """Did a socket wait run out, anywhere in the chain of causes?

    glanceclient turns a connect or read timeout into InvalidEndpoint or
    CommunicationError, and requests turns a read timeout in a streamed
    body into a ConnectionError: the cause says it.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (socket.timeout, TimeoutError)) or \
                type(error).__name__ in ('ReadTimeout', 'ConnectTimeout',
                                         'ReadTimeoutError',
                                         'ConnectTimeoutError', 'Timeout'):
            return True
        if any(w in str(error) for w in TIMEOUT_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return False


def timeout_error(image_id: str, doing: str, error: BaseException):
    return fc_exception.GlanceTimeout(
        image=image_id, timeout=seconds(), doing=doing,
        cause='%s: %s' % (type(error).__name__, error))


def _client(context, wrapper):
    """The glanceclient Nova's wrapper would use for the next call."""
    return wrapper.client or wrapper._create_onetime_client(context, 2)


def get(context, wrapper, path: str, image_id: str, doing: str):
    """(response, body) of GET path on Glance, bounded.

    :param wrapper: Nova's GlanceClientWrapper (``service._client``).
    :raises: GlanceTimeout; glanceclient's errors otherwise.
    """
    bound = seconds()
    kwargs = {'timeout': bound} if bound else {}
    attempts = 1 + max(0, CONF.glance.num_retries)
    for attempt in range(1, attempts + 1):
        client = _client(context, wrapper)
        try:
            return client.http_client.get(path, **kwargs)
        except Exception as e:
            if bound and timed_out(e):
                raise timeout_error(image_id, doing, e) from e
            if not isinstance(e, RETRIED) or attempt == attempts:
                raise
            LOG.warning('Glance %(server)s: %(err)s while %(doing)s; '
                        'retrying', {'server': wrapper.api_server,
                                     'err': e, 'doing': doing})
            time.sleep(1)


def chunks(body, image_id: str, doing: str):
    """Iterate a streamed body; a read that timed out is a GlanceTimeout."""
    try:
        yield from body
    except Exception as e:
        if seconds() and timed_out(e):
            raise timeout_error(image_id, doing, e) from e
        raise


def service(context, image_href):
    """(Nova's GlanceImageServiceV2 for the image, the image id)."""
    return nova_imagebackend.IMAGE_API._get_session_and_image_id(
        context, image_href)


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


def _schema(context, wrapper, image_id, doing) -> dict:
    key = getattr(wrapper, 'api_server', None)  # set by the call before
    with _LOCK:
        found = _SCHEMAS.get(key)
    if found is not None and time.monotonic() - found[0] < SCHEMA_TTL:
        return found[1]
    _resp, raw = get(context, wrapper, '/v2/schemas/image', image_id,
                     doing + ' (its schema)')
    with _LOCK:
        _SCHEMAS[key] = (time.monotonic(), raw)
    return raw


def show(context, image_href: str,
         doing: str = 'reading the image record') -> dict:
    """What ``IMAGE_API.get(..., include_locations=True)`` returns."""
    session, image_id = service(context, image_href)
    wrapper = session._client
    try:
        _resp, body = get(context, wrapper, '/v2/images/%s' % image_id,
                          image_id, doing)
        record = _Record(body, _schema(context, wrapper, image_id, doing))
    except fc_exception.GlanceTimeout:
        raise
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


def _list_path(image_ids, hidden: bool) -> str:
    """The v2 list of exactly these images (one page if Glance allows).

    ``limit`` is one more than the ids asked: Glance adds a ``next`` link
    when a page is full, so a full page means its ``api_limit_max`` cut
    the answer.  ``visibility=all`` includes community images, which a
    list leaves out by default even for an admin; hidden images
    (``os_hidden``) are listed only when asked for, and then only them.
    """
    query = [('limit', len(image_ids) + 1), ('visibility', 'all')]
    if hidden:
        query.append(('os_hidden', 'true'))
    query.append(('id', 'in:' + ','.join(image_ids)))
    return '/v2/images?' + parse.urlencode(query, safe=':,')


def listed(context, image_ids, doing: str, hidden: bool = False) -> list:
    """Nova's image dicts of those of image_ids that Glance lists.

    One request per page of the answer (one, unless Glance's
    ``api_limit_max`` is below the number of ids), each bounded as
    :func:`get` does.  Images the context may not see are left out, as
    :func:`show` reports them not found.

    :param hidden: list the hidden images (``os_hidden``) among them
        instead; a plain list never shows them.
    :raises: GlanceTimeout; Nova's translation of Glance's errors.
    """
    first = image_ids[0]
    session, _first = service(context, first)
    wrapper = session._client
    path = _list_path(image_ids, hidden)
    found = []
    for _page in range(len(image_ids) + 1):   # each page has one at least
        try:
            _resp, body = get(context, wrapper, path, first, doing)
            schema = _schema(context, wrapper, first, doing)
        except fc_exception.GlanceTimeout:
            raise
        except Exception:
            glance._reraise_translated_exception()
        found += _translated(context, body.get('images') or [], schema)
        path = body.get('next')
        if not path or not body.get('images'):
            return found
    raise exception.ImageBadRequest(
        image_id=first, response='Glance kept paging past %d pages for %d '
        'images' % (len(image_ids) + 1, len(image_ids)))


def _translated(context, records, schema) -> list:
    """Nova's image dicts of v2 list records the context may see."""
    found = []
    for raw in records:
        record = _Record(raw, schema)
        record.pop('self', None)
        if glance._is_image_available(context, record):
            found.append(glance._translate_from_glance(record))
    return found


def locations(context, image_id: str) -> list:
    """Glance's v2.17 location API: [{'url': ..., 'metadata': ...}]."""
    session, image_id = service(context, image_id)
    _resp, body = get(context, session._client,
                      '/v2/images/%s/locations' % image_id, image_id,
                      'asking the location API')
    return list(body or [])


def download(context, image_id: str, data) -> None:
    """Nova's IMAGE_API.download(data=...), every read bounded.

    Nova's signature verification (``[glance]
    verify_glance_signatures``) applies as in Nova's own download; the
    caller checks the hash of what it received.
    """
    session, image_id = service(context, image_id)
    verifier = session._get_verifier(context, image_id, None)
    doing = 'downloading it'
    try:
        resp, body = get(context, session._client,
                         '/v2/images/%s/file' % image_id, image_id, doing)
    except fc_exception.GlanceTimeout:
        raise
    except Exception:
        glance._reraise_translated_image_exception(image_id)
    if resp.status_code == 204 or body is None:
        raise exception.ImageUnacceptable(
            image_id=image_id, reason='Image has no associated data')
    session._verify_and_write(context, image_id, verifier,
                              chunks(body, image_id, doing), data, None)
