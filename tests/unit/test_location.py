"""The location trust policy, table-driven: each hostile or malformed
location is refused with the reason an operator reads in the error."""

import pytest

from fastclone_backend import exception
from fastclone_backend.spawn import location

FSID = '5eca15c8-e424-4fc8-9470-1d586b91059d'
OTHER_FSID = '0bd3a7a4-5dc6-4c9e-8a3b-7f3f8e0a1c22'
IMAGE_ID = 'f0e1d2c3-b4a5-4697-8899-aabbccddeeff'
POLICY = location.Policy(local_fsid=FSID, allowed_pools=('images',))
GOOD = 'rbd://%s/images/%s/snap' % (FSID, IMAGE_ID)

# (case, url, disk_format, policy, expected reason fragment)
REFUSED = [
    ('http scheme', 'http://%s/images/%s/snap' % (FSID, IMAGE_ID), 'raw',
     POLICY, 'scheme is not rbd://'),
    ('file scheme', 'file:///var/lib/glance/images/%s' % IMAGE_ID, 'raw',
     POLICY, 'scheme is not rbd://'),
    ('upper-case scheme', 'RBD://%s/images/%s/snap' % (FSID, IMAGE_ID),
     'raw', POLICY, 'scheme is not rbd://'),
    ('not a string', None, 'raw', POLICY, 'location URL is not a string'),
    ('3 parts', 'rbd://%s/images/%s' % (FSID, IMAGE_ID), 'raw', POLICY,
     'expected 4 parts fsid/pool/image/snapshot, got 3'),
    ('5 parts', 'rbd://%s/images/%s/snap/extra' % (FSID, IMAGE_ID), 'raw',
     POLICY, 'expected 4 parts fsid/pool/image/snapshot, got 5'),
    ('trailing slash', GOOD + '/', 'raw', POLICY,
     'expected 4 parts fsid/pool/image/snapshot, got 5'),
    ('empty pool', 'rbd://%s//%s/snap' % (FSID, IMAGE_ID), 'raw', POLICY,
     'pool is empty'),
    ('empty snapshot', 'rbd://%s/images/%s/' % (FSID, IMAGE_ID), 'raw',
     POLICY, 'snapshot is empty'),
    ('empty fsid', 'rbd:///images/%s/snap' % IMAGE_ID, 'raw', POLICY,
     'fsid is empty'),
    ('quoted slash in image', 'rbd://%s/images/..%%2Fvms%%2F%s/snap'
     % (FSID, IMAGE_ID), 'raw', POLICY,
     "image contains '/' once URL-decoded"),
    ('quoted slash in pool', 'rbd://%s/images%%2fvms/%s/snap'
     % (FSID, IMAGE_ID), 'raw', POLICY, "pool contains '/' once URL-decoded"),
    ('at sign in image', 'rbd://%s/images/%s@other/snap' % (FSID, IMAGE_ID),
     'raw', POLICY, "image contains '@'"),
    ('control character', 'rbd://%s/images/%s%%0A/snap' % (FSID, IMAGE_ID),
     'raw', POLICY, 'image contains control characters'),
    ('bad utf-8', 'rbd://%s/images/%%ff%%fe/snap' % FSID, 'raw', POLICY,
     'image is not valid UTF-8 once URL-decoded'),
    ('query string', GOOD + '?conf=/etc/evil.conf', 'raw', POLICY,
     'query or fragment is not allowed'),
    ('fragment', GOOD + '#x', 'raw', POLICY,
     'query or fragment is not allowed'),
    ('fsid not a uuid', 'rbd://not-a-uuid/images/%s/snap' % IMAGE_ID, 'raw',
     POLICY, "fsid 'not-a-uuid' is not a UUID"),
    ('over-long name', 'rbd://%s/images/%s/snap' % (FSID, 'a' * 300), 'raw',
     POLICY, 'image is longer than 255 bytes'),
    ('other cluster', 'rbd://%s/images/%s/snap' % (OTHER_FSID, IMAGE_ID),
     'raw', POLICY, 'fsid %s is not the local cluster (%s)'
     % (OTHER_FSID, FSID)),
    ('pool outside allowlist', 'rbd://%s/vms/%s/snap' % (FSID, IMAGE_ID),
     'raw', POLICY,
     'pool vms is not in [fastclone] clone_allowed_pools (images)'),
    ('name is not the image id', 'rbd://%s/images/another-tenants-disk/snap'
     % FSID, 'raw', POLICY, 'RBD image name another-tenants-disk is not the '
     'Glance image id %s' % IMAGE_ID),
    ('qcow2 image', GOOD, 'qcow2', POLICY,
     'disk_format is qcow2, only raw images can be cloned'),
    ('iso image', GOOD, 'iso', POLICY,
     'disk_format is iso, only raw images can be cloned'),
    ('no disk_format', GOOD, None, POLICY,
     'disk_format is None, only raw images can be cloned'),
]


@pytest.mark.parametrize('case,url,disk_format,policy,reason', REFUSED,
                         ids=[row[0] for row in REFUSED])
def test_refused(case, url, disk_format, policy, reason):
    with pytest.raises(exception.LocationRejected) as err:
        location.check(url, IMAGE_ID, disk_format, policy)
    assert err.value.reason == reason
    assert str(err.value).endswith(': ' + reason)


def test_trusted_location_is_parsed():
    loc = location.check(GOOD, IMAGE_ID, 'raw', POLICY)
    assert (loc.fsid, loc.pool, loc.image, loc.snapshot) == (
        FSID, 'images', IMAGE_ID, 'snap')
    assert loc.spec == 'images/%s@snap' % IMAGE_ID


def test_quoted_parts_are_decoded():
    url = 'rbd://%s/my%%20pool/%s/snap%%201' % (FSID.upper(), IMAGE_ID)
    policy = location.Policy(local_fsid=FSID, allowed_pools=('my pool',))
    loc = location.check(url, IMAGE_ID, 'raw', policy)
    assert (loc.fsid, loc.pool, loc.snapshot) == (FSID, 'my pool', 'snap 1')


def test_name_mismatch_allowed_when_policy_says_so():
    url = 'rbd://%s/images/golden-ubuntu/snap' % FSID
    policy = location.Policy(local_fsid=FSID, allowed_pools=('images',),
                             require_image_id_match=False)
    assert location.check(url, IMAGE_ID, 'raw', policy).image == \
        'golden-ubuntu'


def test_message_url_is_bounded_and_printable():
    url = 'rbd://' + '\n' * 5 + 'x' * 500
    text = location.short(url)
    assert '\n' not in text
    assert len(text) == location.MAX_URL_IN_MESSAGE + 3


def test_candidate_urls_direct_url_first_without_duplicates():
    meta = {'direct_url': GOOD,
            'locations': [{'url': 'file:///x', 'metadata': {}},
                          {'url': GOOD, 'metadata': {}}, {'url': None}]}
    assert location.candidate_urls(meta, ['rbd://y', GOOD]) == [
        GOOD, 'file:///x', 'rbd://y']


def test_candidate_urls_empty():
    assert location.candidate_urls({'locations': []}) == []
