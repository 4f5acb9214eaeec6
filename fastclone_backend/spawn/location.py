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

"""Glance RBD locations: parsing and the trust policy.  Pure, no I/O.

A location is ``rbd://<fsid>/<pool>/<image>/<snapshot>`` with URL-quoted
parts.  Every function here takes plain values and either returns or raises
:class:`LocationRejected` with the reason, so each rule is testable alone.
"""

import dataclasses
import urllib.parse
import uuid

from fastclone_backend import exception

SCHEME = 'rbd://'
PART_NAMES = ('fsid', 'pool', 'image', 'snapshot')
MAX_PART_BYTES = 255
MAX_URL_IN_MESSAGE = 200


@dataclasses.dataclass(frozen=True)
class RbdLocation:
    url: str
    fsid: str
    pool: str
    image: str
    snapshot: str

    @property
    def spec(self) -> str:
        return '%s/%s@%s' % (self.pool, self.image, self.snapshot)


def short(url) -> str:
    """The URL as it may appear in a message: bounded and printable."""
    text = repr(url) if not isinstance(url, str) else url
    text = ''.join(c if c.isprintable() else '?' for c in text)
    if len(text) > MAX_URL_IN_MESSAGE:
        text = text[:MAX_URL_IN_MESSAGE] + '...'
    return text


def _reject(url, reason):
    return exception.LocationRejected(url=short(url), reason=reason)


def _unquote(url, name, piece):
    try:
        return urllib.parse.unquote(piece, errors='strict')
    except UnicodeDecodeError:
        raise _reject(url, '%s is not valid UTF-8 once URL-decoded' % name)


def _check_part(url, name, value):
    if not value:
        raise _reject(url, '%s is empty' % name)
    if '/' in value:
        raise _reject(url, "%s contains '/' once URL-decoded" % name)
    if name != 'snapshot' and '@' in value:
        raise _reject(url, "%s contains '@'" % name)
    if not value.isprintable():
        raise _reject(url, '%s contains control characters' % name)
    if len(value.encode()) > MAX_PART_BYTES:
        raise _reject(url, '%s is longer than %d bytes'
                      % (name, MAX_PART_BYTES))


def _canonical_fsid(url, fsid):
    try:
        return str(uuid.UUID(fsid))
    except ValueError:
        raise _reject(url, 'fsid %r is not a UUID' % fsid)


def parse(url) -> RbdLocation:
    """Split an RBD location into its four parts, or raise LocationRejected."""
    if not isinstance(url, str):
        raise _reject(url, 'location URL is not a string')
    if not url.startswith(SCHEME):
        raise _reject(url, 'scheme is not rbd://')
    rest = url[len(SCHEME):]
    if '?' in rest or '#' in rest:
        raise _reject(url, 'query or fragment is not allowed')
    pieces = rest.split('/')
    if len(pieces) != len(PART_NAMES):
        raise _reject(url, 'expected 4 parts fsid/pool/image/snapshot, '
                           'got %d' % len(pieces))
    parts = {}
    for name, piece in zip(PART_NAMES, pieces):
        parts[name] = _unquote(url, name, piece)
        _check_part(url, name, parts[name])
    parts['fsid'] = _canonical_fsid(url, parts['fsid'])
    return RbdLocation(url=url, **parts)


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a location must satisfy to be cloned (from ``[fastclone]``)."""
    local_fsid: str
    allowed_pools: tuple
    require_image_id_match: bool = True


def check(url, image_id: str, disk_format, policy: Policy) -> RbdLocation:
    """Return the parsed location if policy trusts it, else raise.

    The snapshot's existence is not checked here: that needs the cluster.
    """
    loc = parse(url)
    if disk_format != 'raw':
        raise _reject(url, 'disk_format is %s, only raw images can be '
                           'cloned' % disk_format)
    if loc.fsid != policy.local_fsid.lower():
        raise _reject(url, 'fsid %s is not the local cluster (%s)'
                      % (loc.fsid, policy.local_fsid))
    if loc.pool not in policy.allowed_pools:
        raise _reject(url, 'pool %s is not in [fastclone] '
                           'clone_allowed_pools (%s)'
                      % (loc.pool, ', '.join(policy.allowed_pools)))
    if policy.require_image_id_match and loc.image != image_id:
        raise _reject(url, 'RBD image name %s is not the Glance image id %s'
                      % (loc.image, image_id))
    return loc


def pool_in_cluster(image_meta: dict, fsid: str):
    """The pool of the image's first location in the cluster fsid, or None."""
    for url in candidate_urls(image_meta):
        try:
            loc = parse(url)
        except exception.LocationRejected:
            continue
        if loc.fsid == fsid:
            return loc.pool
    return None


def candidate_urls(image_meta: dict, extra=()) -> list:
    """The image's location URLs, direct_url first, without duplicates.

    Nova's ``show(include_locations=True)`` appends ``direct_url`` to
    ``locations`` again, so duplicates are normal.
    """
    urls = [image_meta.get('direct_url')]
    urls += [loc.get('url') if isinstance(loc, dict) else loc
             for loc in image_meta.get('locations') or ()]
    urls += list(extra)
    seen = []
    for url in urls:
        if url is not None and url not in seen:
            seen.append(url)
    return seen
