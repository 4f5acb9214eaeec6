"""glancerecord.show: Nova's image dict in one Glance request."""

from unittest import mock

import fixtures
import glanceclient.exc
from nova import context as nova_context
from nova import exception

from fastclone_backend import glancerecord
from tests.unit import base

IMAGE_ID = '7d1f3c2a-9b8e-4f6d-a5c4-3b2a19087f6e'
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
        glancerecord._SCHEMAS.clear()
        self.addCleanup(glancerecord._SCHEMAS.clear)
        self.client = mock.Mock(api_server='http://glance')
        self.client.call.side_effect = self._call
        service = mock.Mock(_client=self.client)
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.imagebackend.IMAGE_API'
            '._get_session_and_image_id', return_value=(service, IMAGE_ID)))
        self.ctx = nova_context.RequestContext('u', 'p', auth_token='t')
        self.error = None

    def _call(self, context, version, method, controller=None, args=()):
        if controller == 'schemas':
            return mock.Mock(raw=mock.Mock(return_value=SCHEMA))
        if self.error:
            raise self.error
        self.assertEqual(('http_client', 'get'), (controller, method))
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
        controllers = [c.kwargs.get('controller')
                       for c in self.client.call.call_args_list]
        self.assertEqual(['http_client', 'schemas', 'http_client'],
                         controllers)

    def test_not_found_is_novas(self):
        self.error = glanceclient.exc.HTTPNotFound()
        self.assertRaises(exception.ImageNotFound, glancerecord.show,
                          self.ctx, IMAGE_ID)
