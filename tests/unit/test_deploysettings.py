"""deploysettings: the one list of nova.conf / glance-api.conf settings."""

import configparser
import io
import os
import subprocess
import sys

import pytest

from fastclone_backend import deploysettings as ds

FACTS = {'ceph_conf': '/etc/ceph/ceph.conf', 'nova_user': 'nova',
         'glance_user': 'glance', 'images_pool': 'images',
         'vms_pool': 'vms', 'rbd_store_section': 'ceph'}
SCRIPT = ds.__file__


def test_nova_compute_settings():
    assert ds.render(ds.NOVA_COMPUTE, FACTS) == [
        ('libvirt', 'images_type', 'fastrbd'),
        ('libvirt', 'images_rbd_pool', 'vms'),
        ('libvirt', 'images_rbd_ceph_conf', '/etc/ceph/ceph.conf'),
        ('libvirt', 'rbd_user', 'nova'),
        ('fastclone', 'clone_allowed_pools', 'images')]


def test_glance_api_settings():
    assert ds.render(ds.GLANCE_API, FACTS) == [
        ('DEFAULT', 'show_image_direct_url', 'True'),
        ('ceph', 'rbd_store_pool', 'images'),
        ('ceph', 'rbd_store_user', 'glance'),
        ('ceph', 'rbd_store_ceph_conf', '/etc/ceph/ceph.conf')]


def test_glance_store_pool_is_a_pool_nova_may_clone_from():
    """The contract the list exists for: one fact feeds both sides."""
    facts = dict(FACTS, images_pool='glance-images')
    nova = {(s, o): v for s, o, v in ds.render(ds.NOVA_COMPUTE, facts)}
    glance = {(s, o): v for s, o, v in ds.render(ds.GLANCE_API, facts)}
    assert nova['fastclone', 'clone_allowed_pools'] == \
        glance['ceph', 'rbd_store_pool'] == 'glance-images'
    assert nova['libvirt', 'images_rbd_ceph_conf'] == \
        glance['ceph', 'rbd_store_ceph_conf']


def test_facts_needed():
    assert ds.facts_needed(ds.NOVA_COMPUTE) == {
        'ceph_conf', 'nova_user', 'images_pool', 'vms_pool'}
    assert ds.facts_needed(ds.GLANCE_API) == {
        'ceph_conf', 'glance_user', 'images_pool', 'rbd_store_section'}


@pytest.mark.parametrize('facts, message', [
    ({'vms_pool': 'vms'}, 'nova-compute settings need ceph_conf, '
     'images_pool, nova_user'),
    (dict(FACTS, vms_pool=''), "fact vms_pool=''"),
    (dict(FACTS, vms_pool='a\nb'), 'a tab or newline'),
])
def test_bad_facts_are_refused(facts, message):
    with pytest.raises(ValueError, match=message):
        ds.render(ds.NOVA_COMPUTE, facts)


def test_bad_section_and_target_are_refused():
    with pytest.raises(ValueError, match='has a bracket'):
        ds.render(ds.GLANCE_API, dict(FACTS, rbd_store_section='a]b'))
    with pytest.raises(ValueError, match='unknown target'):
        ds.render('cinder', FACTS)


def test_ini_text_parses_back():
    rendered = ds.render(ds.NOVA_COMPUTE, FACTS)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(ds.ini_text(rendered))
    assert [(s, o, parser[s][o]) for s, o, _ in rendered] == rendered
    assert parser.sections() == ['libvirt', 'fastclone']


INI = """[DEFAULT]
debug = False
# show_image_direct_url = False

[ceph]
rbd_store_chunk_size = 8
rbd_store_pool=old

[fs]
filesystem_store_datadir = /x
"""


def test_apply_edits_in_place(tmp_path):
    path = tmp_path / 'glance-api.conf'
    path.write_text(INI)
    ds.apply(str(path), ds.render(ds.GLANCE_API, FACTS))
    assert path.read_text() == """[DEFAULT]
debug = False
# show_image_direct_url = False
show_image_direct_url = True

[ceph]
rbd_store_chunk_size = 8
rbd_store_pool = images
rbd_store_user = glance
rbd_store_ceph_conf = /etc/ceph/ceph.conf

[fs]
filesystem_store_datadir = /x
"""
    before = path.read_text()
    ds.apply(str(path), ds.render(ds.GLANCE_API, FACTS))
    assert path.read_text() == before  # idempotent


def test_set_option_adds_a_missing_section():
    assert ds.set_option(['[a]\n', 'x = 1'], 'b', 'y', '2') == [
        '[a]\n', 'x = 1\n', '[b]\n', 'y = 2\n']
    assert ds.set_option([], 'b', 'y', '2') == ['[b]\n', 'y = 2\n']


def _cli(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args),
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=''))


def _sets(facts):
    return [arg for k, v in sorted(facts.items())
            for arg in ('--set', '%s=%s' % (k, v))]


def test_cli_lines_run_as_a_plain_script():
    """tools/lab runs the file with python3, outside any virtualenv."""
    proc = _cli('lines', 'nova-compute', *_sets(FACTS))
    assert proc.returncode == 0, proc.stderr
    assert [tuple(line.split('\t')) for line in
            proc.stdout.splitlines()] == ds.render(ds.NOVA_COMPUTE, FACTS)


def test_cli_refuses_missing_facts_with_rc_2():
    proc = _cli('lines', 'glance-api', '--set', 'images_pool=images')
    assert proc.returncode == 2
    assert 'glance-api settings need ceph_conf, glance_user, ' \
        'rbd_store_section' in proc.stderr
    assert proc.stdout == ''


def test_cli_ini_apply_and_facts(tmp_path):
    out = io.StringIO()
    assert ds.main(['ini', 'glance-api'] + _sets(FACTS), out=out) == 0
    assert out.getvalue() == ds.ini_text(ds.render(ds.GLANCE_API, FACTS))
    path = tmp_path / 'g.conf'
    path.write_text('[DEFAULT]\n')
    assert ds.main(['apply', 'glance-api', str(path)] + _sets(FACTS)) == 0
    assert 'show_image_direct_url = True' in path.read_text()
    out = io.StringIO()
    assert ds.main(['facts', 'nova-compute'], out=out) == 0
    assert out.getvalue().split() == sorted(ds.facts_needed(
        ds.NOVA_COMPUTE))
