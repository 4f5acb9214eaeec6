"""glancestate.states: Glance asked in pages, its silence read carefully."""

from unittest import mock

import fixtures
import nova.conf
from nova import exception

from fastclone_backend import conf as fc_conf
from fastclone_backend import exception as fc_exception
from fastclone_backend import glanceapi
from fastclone_backend.lifecycle import glancestate
from fastclone_backend.lifecycle import policy
from tests.unit import base


def _ids(count, tag=0):
    return ['%08x-0000-4000-8000-%012x' % (tag, i) for i in range(count)]


class Glance:
    """Glance's images by id, and the requests made of it."""

    def __init__(self, images=(), hidden=(), failing=(), failing_get=()):
        self.images = {i: {'id': i, 'status': 'active'} for i in images}
        self.hidden = {i: {'id': i, 'status': 'active', 'os_hidden': True}
                       for i in hidden}
        self.failing = set(failing)   # ids whose page or GET fails
        self.failing_get = set(failing_get) | self.failing
        self.listed = []              # (ids, hidden) of each list request
        self.doing = []               # what each says it does
        self.shown = []

    def listed_(self, context, image_ids, doing, hidden=False):
        self.listed.append((list(image_ids), hidden))
        self.doing.append(doing)
        if self.failing & set(image_ids):
            raise fc_exception.GlanceTimeout(image=image_ids[0], timeout=60,
                                             doing=doing, cause='x')
        source = self.hidden if hidden else self.images
        return [dict(source[i]) for i in image_ids if i in source]

    def show(self, context, image_id, doing):
        self.shown.append(image_id)
        if image_id in self.failing_get:
            raise fc_exception.GlanceTimeout(image=image_id, timeout=60,
                                             doing=doing, cause='x')
        found = self.images.get(image_id) or self.hidden.get(image_id)
        if found is None:
            raise exception.ImageNotFound(image_id=image_id)
        return dict(found)


class StatesTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        fc_conf.register_opts(nova.conf.CONF)
        self.glance = Glance()
        self.useFixture(fixtures.MockPatchObject(
            glanceapi, 'listed', autospec=True,
            side_effect=lambda *a, **kw: self.glance.listed_(*a, **kw)))
        self.useFixture(fixtures.MockPatchObject(
            glanceapi, 'show', autospec=True,
            side_effect=lambda *a: self.glance.show(*a)))
        self.warning = self.useFixture(fixtures.MockPatchObject(
            glancestate.LOG, 'warning', autospec=True)).mock

    def _states(self, ids, confirm=()):
        return glancestate.states(mock.sentinel.ctx, ids, confirm=confirm)

    def test_pages_of_the_configured_size(self):
        ids = _ids(400)
        self.glance = Glance(images=ids)
        found = self._states(ids)
        self.assertEqual(sorted(ids), sorted(found))
        self.assertEqual([150, 150, 100],
                         [len(page) for page, _h in self.glance.listed])
        self.assertEqual(sorted(ids), [i for page, _h in self.glance.listed
                                       for i in page])
        self.assertEqual([], self.glance.shown)
        self.warning.assert_not_called()

    def test_page_size_option(self):
        self.flags(glance_ids_per_request=7, group='fastclone')
        ids = _ids(20)
        self.glance = Glance(images=ids)
        self._states(ids)
        self.assertEqual([7, 7, 6],
                         [len(page) for page, _h in self.glance.listed])

    def test_absent_from_a_complete_answer_is_deleted(self):
        live, gone = _ids(5), _ids(3, tag=1)
        self.glance = Glance(images=live)
        found = self._states(live + gone)
        self.assertEqual(dict.fromkeys(gone, policy.DELETED),
                         {i: m for i, m in found.items() if i in gone})
        self.assertEqual({i: 'active' for i in live},
                         {i: found[i]['status'] for i in live})
        # the absent asked again as hidden images, in pages too
        self.assertEqual([(sorted(gone), True)], self.glance.listed[1:])
        self.assertEqual([], self.glance.shown)

    def test_hidden_image_is_not_deleted(self):
        live, hidden = _ids(2), _ids(2, tag=1)
        self.glance = Glance(images=live, hidden=hidden)
        found = self._states(live + hidden)
        self.assertEqual(sorted(live + hidden), sorted(found))
        self.assertTrue(all(found[i]['os_hidden'] for i in hidden))

    def test_failed_page_decides_nothing_for_its_ids(self):
        self.flags(glance_ids_per_request=3, group='fastclone')
        ids = _ids(9)
        self.glance = Glance(images=ids[:2], failing=[ids[4]])
        found = self._states(ids)
        # page 2 (ids 3-5) failed: undecided; the others answered
        self.assertEqual(ids[:3] + ids[6:], sorted(found))
        self.assertEqual(dict.fromkeys([ids[2]] + ids[6:], policy.DELETED),
                         {i: m for i, m in found.items()
                          if m is policy.DELETED})
        self.assertEqual(1, self.warning.call_count)
        (_msg, args), _ = self.warning.call_args
        self.assertEqual((3, 9), (args['n'], args['total']))

    def test_failed_hidden_page_decides_nothing(self):
        live, gone = _ids(2), _ids(2, tag=1)
        self.glance = Glance(images=live)
        real = self.glance.listed_

        def hidden_fails(context, image_ids, doing, hidden=False):
            if hidden:
                raise fc_exception.GlanceTimeout(image=image_ids[0],
                                                 timeout=60, doing=doing,
                                                 cause='x')
            return real(context, image_ids, doing, hidden)
        self.glance.listed_ = hidden_fails
        self.assertEqual(sorted(live), sorted(self._states(live + gone)))
        self.assertEqual(1, self.warning.call_count)

    def test_answer_with_ids_not_asked_for_decides_nothing(self):
        # a Glance that ignores the id filter answers with other images:
        # what it leaves out proves nothing
        asked = _ids(3)
        self.glance = Glance(images=_ids(2, tag=9))
        real = self.glance.listed_

        def unfiltered(context, image_ids, doing, hidden=False):
            real(context, image_ids, doing, hidden)
            return list(self.glance.images.values())
        self.glance.listed_ = unfiltered
        self.assertEqual({}, self._states(asked))
        self.assertEqual(1, self.warning.call_count)
        self.assertIn('does not filter by id',
                      str(self.warning.call_args[0][1]['err']))

    def test_trash_ids_left_out_are_confirmed_one_by_one(self):
        live, gone = _ids(3), _ids(2, tag=1)
        hidden, failing = _ids(1, tag=2), _ids(1, tag=3)
        self.glance = Glance(images=live, hidden=hidden,
                             failing_get=failing)
        trash = gone + hidden + failing + [live[0]]
        found = self._states(live + trash, confirm=trash)
        self.assertEqual(dict.fromkeys(gone, policy.DELETED),
                         {i: m for i, m in found.items()
                          if m is policy.DELETED})
        self.assertIn(hidden[0], found)   # GET sees hidden images
        self.assertNotIn(failing[0], found)
        # only the ones the list left out, and none asked as hidden
        self.assertEqual(sorted(gone + hidden + failing),
                         sorted(self.glance.shown))
        self.assertEqual([False], [h for _p, h in self.glance.listed])
        self.assertEqual(1, self.warning.call_count)

    def test_names_that_are_no_image_id_are_not_asked(self):
        found = self._states(['notaglanceid', _ids(1)[0],
                              'fastclone-base-x'], confirm=['notaglanceid'])
        self.assertEqual({_ids(1)[0]: policy.DELETED}, found)
        self.assertEqual([(_ids(1), False), (_ids(1), True)],
                         self.glance.listed)
        self.assertEqual([], self.glance.shown)

    def test_nothing_to_ask_asks_nothing(self):
        self.assertEqual({}, self._states([]))
        self.assertEqual([], self.glance.listed)

    def test_a_list_request_says_how_many_it_asks_about(self):
        self.flags(glance_ids_per_request=3, group='fastclone')
        self._states(_ids(4))
        self.assertEqual([
            'listing it and 2 other images for the lifecycle pass',
            'listing it for the lifecycle pass'], self.glance.doing[:2])

    def test_warning_leaves_out_the_ids_of_the_url(self):
        ids = _ids(3)
        url = 'http://glance/v2/images?limit=4&id=in:' + ','.join(ids)
        error = RuntimeError('Error communicating with %s Request to %s '
                             'timed out' % (url, url.replace(':', '%3A')))
        self.assertEqual(
            'Error communicating with http://glance/v2/images?limit=4&'
            'id=in:... Request to http%3A//glance/v2/images?limit=4&'
            'id=in%3A... timed out', glancestate.brief(error))

    def test_a_timeout_decides_nothing(self):
        self.glance = Glance(failing=_ids(1))
        self.assertEqual({}, self._states(_ids(1)))
        self.assertEqual({}, self._states(_ids(1), confirm=_ids(1)))
