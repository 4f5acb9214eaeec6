"""glancerecord.show: Nova's image dict in one bounded Glance request."""

from unittest import mock
import uuid

import fixtures
import glanceclient.exc
import nova.conf
from nova import context as nova_context
from nova import exception
import requests

from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend import glanceapi
from fastclone_backend.spawn import glancerecord
from tests.unit import base

IMAGE_ID = '7d1f3c2a-9b8e-4f6d-a5c4-3b2a19087f6e'
OTHER_ID = '8e2a4d3b-0c9f-4a7e-b6d5-4c3b2a1f0e9d'
SCHEMA = {'name': 'image', 'additionalProperties': {'type': 'string'},
          'properties': {name: {'type': 'string'} for name in (
              'id', 'name', 'status', 'disk_format', 'container_format',
              'visibility', 'size', 'checksum', 'os_hash_value',
              'locations', 'direct_url', 'self', 'schema', 'file')}}
BODY = {'id': IMAGE_ID, 'name': 'cirros', 'status': 'active',
        'disk_format': 'raw', 'container_format': 'bare',
        'visibility': 'public', 'size': 1024, 'checksum': 'c',
        'self': '/v2/images/' + IMAGE_ID, 'schema': '/v2/schemas/image',
        'file': '/v2/images/%s/file' % IMAGE_ID, 'hw_disk_bus': 'scsi',
        'direct_url': 'rbd://f/images/%s/snap' % IMAGE_ID,
        'locations': [{'url': 'rbd://f/images/%s/snap' % IMAGE_ID,
                       'metadata': {}}]}


class ShowTestCase(base.TestCase):
    def setUp(self):
        super().setUp()
        fc_conf.register_opts(nova.conf.CONF)
        glanceapi._SCHEMAS.clear()
        self.addCleanup(glanceapi._SCHEMAS.clear)
        self.http = mock.Mock(name='http_client')
        self.http.get.side_effect = self._get
        self.wrapper = mock.Mock(api_server='http://glance', client=None)
        self.wrapper._create_onetime_client.return_value = mock.Mock(
            http_client=self.http)
        service = mock.Mock(_client=self.wrapper)
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.imagebackend.IMAGE_API'
            '._get_session_and_image_id', return_value=(service, IMAGE_ID)))
        self.ctx = nova_context.RequestContext('u', 'p', auth_token='t')
        self.error = None
        self.sleep = self.useFixture(fixtures.MockPatch(
            'fastclone_backend.glanceapi.time.sleep')).mock

    def _get(self, path, **kwargs):
        self.assertEqual({'timeout': 60}, kwargs)   # the default bound
        if path == '/v2/schemas/image':
            return mock.Mock(), SCHEMA
        if self.error:
            raise self.error
        self.assertEqual('/v2/images/%s' % IMAGE_ID, path)
        return mock.Mock(), dict(BODY)

    def test_same_dict_as_novas_get_with_locations(self):
        image = glancerecord.show(self.ctx, IMAGE_ID)
        self.assertEqual(IMAGE_ID, image['id'])
        self.assertEqual('raw', image['disk_format'])
        self.assertEqual({'hw_disk_bus': 'scsi'}, image['properties'])
        self.assertTrue(image['is_public'])
        # Nova appends direct_url to the locations it returns
        self.assertEqual([BODY['locations'][0],
                          {'url': BODY['direct_url'], 'metadata': {}}],
                         image['locations'])

    def test_schema_fetched_once_per_endpoint(self):
        glancerecord.show(self.ctx, IMAGE_ID)
        glancerecord.show(self.ctx, IMAGE_ID)
        paths = [c.args[0] for c in self.http.get.call_args_list]
        self.assertEqual(['/v2/images/' + IMAGE_ID, '/v2/schemas/image',
                          '/v2/images/' + IMAGE_ID], paths)

    def test_not_found_is_novas(self):
        self.error = glanceclient.exc.HTTPNotFound()
        self.assertRaises(exception.ImageNotFound, glancerecord.show,
                          self.ctx, IMAGE_ID)

    def _timed_out(self):
        # what glanceclient makes of keystoneauth's ConnectTimeout, itself
        # made of requests' ReadTimeout
        try:
            try:
                raise requests.exceptions.ReadTimeout('Read timed out.')
            except requests.exceptions.ReadTimeout:
                raise glanceclient.exc.InvalidEndpoint(
                    'Error communicating with http://glance/v2/images/x')
        except glanceclient.exc.InvalidEndpoint as e:
            return e

    def test_timeout_names_image_and_stage_and_is_not_retried(self):
        self.error = self._timed_out()
        exc = self.assertRaises(fc_exception.GlanceTimeout,
                                glancerecord.show, self.ctx, IMAGE_ID)
        self.assertTrue(str(exc).startswith(
            'Image %s: Glance did not answer within 60 s ([fastclone] '
            'glance_timeout) while reading the image record for a spawn: '
            % IMAGE_ID), str(exc))
        self.assertEqual(1, self.http.get.call_count)

    def test_connection_failure_is_retried_as_nova_does(self):
        self.flags(num_retries=2, group='glance')
        errors = [glanceclient.exc.CommunicationError('refused')] * 2

        def flaky(path, **kwargs):
            if errors and path != '/v2/schemas/image':
                raise errors.pop()
            return self._get(path, **kwargs)
        self.http.get.side_effect = flaky
        self.assertEqual(IMAGE_ID, glancerecord.show(self.ctx,
                                                     IMAGE_ID)['id'])
        self.assertEqual(2, self.sleep.call_count)

    def test_no_bound_when_set_to_zero(self):
        self.flags(glance_timeout=0, group='fastclone')
        self.http.get.side_effect = lambda path, **kw: (
            (mock.Mock(), SCHEMA) if 'schemas' in path else
            (mock.Mock(), dict(BODY, kwargs=str(kw))))
        image = glancerecord.show(self.ctx, IMAGE_ID)
        self.assertEqual('{}', image['properties']['kwargs'])

    def test_read_timeout_in_a_streamed_body(self):
        def body():
            yield b'x'
            try:
                raise TimeoutError('timed out')
            except TimeoutError:
                raise requests.exceptions.ConnectionError(
                    'HTTPConnectionPool: Read timed out.')
        got = []
        exc = self.assertRaises(
            fc_exception.GlanceTimeout, lambda: got.extend(
                glanceapi.chunks(body(), IMAGE_ID, 'downloading it')))
        self.assertEqual([b'x'], got)
        self.assertIn('while downloading it', str(exc))


class ListedTestCase(base.TestCase):
    """glanceapi.listed: many images in one bounded list request."""

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(nova.conf.CONF)
        glanceapi._SCHEMAS.clear()
        self.addCleanup(glanceapi._SCHEMAS.clear)
        self.pages = []       # what Glance answers, page after page
        self.paths = []
        self.http = mock.Mock(name='http_client')
        self.http.get.side_effect = self._get
        wrapper = mock.Mock(api_server='http://glance', client=None)
        wrapper._create_onetime_client.return_value = mock.Mock(
            http_client=self.http)
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.imagebackend.IMAGE_API'
            '._get_session_and_image_id',
            side_effect=lambda ctx, href: (mock.Mock(_client=wrapper),
                                           href)))
        self.ctx = nova_context.RequestContext('u', 'p', auth_token='t')

    def _get(self, path, **kwargs):
        self.assertEqual({'timeout': 60}, kwargs)   # bounded, as show
        if path == '/v2/schemas/image':
            return mock.Mock(), SCHEMA
        self.paths.append(path)
        return mock.Mock(), self.pages.pop(0)

    def _body(self, image_id):
        return dict(BODY, id=image_id, self='/v2/images/' + image_id)

    def test_one_request_for_all_the_ids(self):
        ids = [IMAGE_ID, OTHER_ID, '0' * 36]
        self.pages = [{'images': [self._body(IMAGE_ID),
                                  self._body(OTHER_ID)]}]
        found = glanceapi.listed(self.ctx, ids, 'listing them')
        self.assertEqual(['/v2/images?limit=4&visibility=all&id=in:%s'
                          % ','.join(ids)], self.paths)
        self.assertEqual([IMAGE_ID, OTHER_ID], [i['id'] for i in found])
        # Nova's dict, as show's, without the locations
        self.assertEqual({'hw_disk_bus': 'scsi'}, found[0]['properties'])
        self.assertEqual((1024, 'c', 'active'), (
            found[0]['size'], found[0]['checksum'], found[0]['status']))
        self.assertNotIn('locations', found[0])
        self.assertNotIn('direct_url', found[0])

    def test_hidden_images_asked_for_apart(self):
        self.pages = [{'images': []}]
        self.assertEqual([], glanceapi.listed(self.ctx, [IMAGE_ID], 'x',
                                              hidden=True))
        self.assertEqual(['/v2/images?limit=2&visibility=all&os_hidden=true'
                          '&id=in:' + IMAGE_ID], self.paths)

    def test_pages_cut_by_glance_are_followed(self):
        # api_limit_max below the ids asked: Glance gives a next link
        later = '/v2/images?limit=3&marker=%s&id=in%%3A...' % IMAGE_ID
        self.pages = [{'images': [self._body(IMAGE_ID)], 'next': later},
                      {'images': [self._body(OTHER_ID)]}]
        found = glanceapi.listed(self.ctx, [IMAGE_ID, OTHER_ID], 'x')
        self.assertEqual([IMAGE_ID, OTHER_ID], [i['id'] for i in found])
        self.assertEqual(later, self.paths[1])

    def test_endless_paging_is_refused(self):
        self.pages = [{'images': [self._body(IMAGE_ID)],
                       'next': '/v2/images?marker=x'}] * 3
        self.assertRaises(exception.ImageBadRequest, glanceapi.listed,
                          self.ctx, [IMAGE_ID, OTHER_ID], 'x')
        self.assertEqual(3, len(self.paths))

    def test_longest_page_stays_under_7_kb(self):
        # front ends refuse request lines over 8 KB
        ids = [str(uuid.uuid4()) for _ in range(
            nova.conf.CONF.fastclone.glance_ids_per_request)]
        for hidden in (False, True):
            self.assertLess(len(glanceapi._list_path(ids, hidden)), 7000)

    def test_timeout_names_the_listing(self):
        self.http.get.side_effect = fc_exception.GlanceTimeout(
            image=IMAGE_ID, timeout=60, doing='listing', cause='x')
        self.assertRaises(fc_exception.GlanceTimeout, glanceapi.listed,
                          self.ctx, [IMAGE_ID], 'listing')

    def test_glance_error_is_novas(self):
        self.http.get.side_effect = glanceclient.exc.HTTPBadRequest(
            'Invalid visibility value: all')
        self.assertRaises(exception.Invalid, glanceapi.listed, self.ctx,
                          [IMAGE_ID], 'x')
