"""One source of truth: the devstack plugin, the lab's Glance and the
functional tests' nova.conf all take fastrbd's settings from
fastclone_backend.deploysettings.

Each writer is run for real (the plugin's bash under devstack stubs, the
lab's own write_glance_conf, novadisk.write_nova_conf); what it wrote is
compared with deploysettings.render() for its facts, and the renderings
are compared with one another.
"""

import configparser
import os
import re
import subprocess

from fastclone_backend import deploysettings as ds
from fastclone_lab import novadisk
from tests.unit import devstack_harness as harness

LAB = os.path.join(harness.REPO, 'tools', 'lab')

# devstack-plugin-ceph's defaults (devstack/lib/cephadm: CEPH_CONF_FILE,
# CINDER_CEPH_USER, GLANCE_CEPH_USER, GLANCE_CEPH_POOL, NOVA_CEPH_POOL),
# single-store Glance (config_glance: [glance_store])
DEVSTACK_FACTS = {'ceph_conf': '/etc/ceph/ceph.conf', 'nova_user': 'cinder',
                  'glance_user': 'glance', 'images_pool': 'images',
                  'vms_pool': 'vms', 'rbd_store_section': 'glance_store'}


def _lab_text():
    with open(LAB) as f:
        return f.read()


def _lab_env():
    """What tools/lab env tells the tests (FASTCLONE_* = value)."""
    return dict(re.findall(r'^export (FASTCLONE_\w+)=(\S+)$', _lab_text(),
                           re.M))


def _plugin_writes(tmp_path, env=None):
    rc, calls, err = harness.phase(tmp_path, 'stack', 'post-config', env)
    assert rc == 0, err
    nova_file = str(tmp_path / 'nova-cpu-fastclone.conf')
    return (harness.inisets(calls, nova_file),
            harness.inisets(calls, '/etc/glance/glance-api.conf'))


def _lab_glance_conf(tmp_path, ceph_conf):
    """Run tools/lab's own write_glance_conf into tmp_path."""
    body = re.search(r'^write_glance_conf\(\) \{\n.*?^\}\n', _lab_text(),
                     re.M | re.S).group(0)
    env = dict(os.environ, GL=str(tmp_path), REPO=harness.REPO,
               FILES=os.path.join(harness.REPO, 'tools', 'lab.d'),
               CONF=ceph_conf, GLANCE_PORT='19292', GLANCE_AUTH='fakeauth')
    proc = subprocess.run(['bash', '-c', 'set -euo pipefail\n%s\n'
                           'write_glance_conf' % body], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read(os.path.join(tmp_path, 'etc', 'glance-api.conf'))
    return parser


def _setting_in(parser, section, option):
    if section == 'DEFAULT':
        return parser.defaults().get(option)
    return parser.get(section, option, fallback=None)


def test_plugin_writes_exactly_the_source(tmp_path):
    nova, glance = _plugin_writes(tmp_path)
    assert nova == ds.render(ds.NOVA_COMPUTE, DEVSTACK_FACTS)
    assert glance == ds.render(ds.GLANCE_API, DEVSTACK_FACTS)


def test_plugin_facts_follow_devstack_plugin_ceph(tmp_path):
    env = {'CEPH_CONF_FILE': '/etc/ceph-a/ceph.conf',
           'CINDER_CEPH_USER': 'nova2', 'GLANCE_CEPH_USER': 'glance2',
           'GLANCE_CEPH_POOL': 'gimages', 'NOVA_CEPH_POOL': 'nvms',
           'GLANCE_ENABLE_MULTIPLE_STORES': 'True'}
    facts = {'ceph_conf': '/etc/ceph-a/ceph.conf', 'nova_user': 'nova2',
             'glance_user': 'glance2', 'images_pool': 'gimages',
             'vms_pool': 'nvms', 'rbd_store_section': 'robust_rbd'}
    nova, glance = _plugin_writes(tmp_path, env)
    assert nova == ds.render(ds.NOVA_COMPUTE, facts)
    assert glance == ds.render(ds.GLANCE_API, facts)


def test_lab_glance_has_the_source_settings(tmp_path):
    env = _lab_env()
    facts = {'ceph_conf': '/lab/ceph/ceph.conf',
             'glance_user': env['FASTCLONE_GLANCE_RBD_USER'],
             'images_pool': env['FASTCLONE_IMAGES_POOL'],
             'rbd_store_section': env['FASTCLONE_GLANCE_RBD_STORE']}
    parser = _lab_glance_conf(tmp_path, facts['ceph_conf'])
    for section, option, value in ds.render(ds.GLANCE_API, facts):
        assert _setting_in(parser, section, option) == value, (section,
                                                               option)


def test_lab_writes_none_of_them_itself():
    """tools/lab's heredoc sets none of the source's options.

    They come only through ``deploysettings.py apply``.
    """
    body = re.search(r'^write_glance_conf\(\) \{\n.*?^\}\n', _lab_text(),
                     re.M | re.S).group(0)
    assert 'deploysettings.py" apply glance-api' in body
    for s in ds.SETTINGS:
        if s.target == ds.GLANCE_API:
            assert not re.search(r'^%s\s*=' % s.option, body, re.M), s.option


def _functional_nova_conf(tmp_path, **kw):
    env = _lab_env()
    settings = novadisk.Settings(
        ceph_conf='/lab/ceph/ceph.conf',
        rbd_user=env['FASTCLONE_NOVA_RBD_USER'],
        pool=env['FASTCLONE_VMS_POOL'], glance_url='http://127.0.0.1:1',
        glance_token='t', workdir=str(tmp_path),
        images_pool=env['FASTCLONE_IMAGES_POOL'], **kw)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(novadisk.write_nova_conf(settings))
    facts = {'ceph_conf': settings.ceph_conf, 'nova_user': settings.rbd_user,
             'vms_pool': settings.pool, 'images_pool': settings.images_pool}
    return parser, facts


def test_functional_nova_conf_has_the_source_settings(tmp_path):
    parser, facts = _functional_nova_conf(tmp_path)
    for section, option, value in ds.render(ds.NOVA_COMPUTE, facts):
        assert parser.get(section, option) == value, (section, option)


def test_functional_nova_conf_keeps_the_benchmarks_stock_backends(tmp_path):
    parser, facts = _functional_nova_conf(tmp_path, images_type='rbd')
    assert parser.get('libvirt', 'images_type') == 'rbd'
    assert parser.get('libvirt', 'images_rbd_pool') == facts['vms_pool']


def test_novadisk_template_sets_none_of_them_itself():
    for s in ds.SETTINGS:
        if s.target == ds.NOVA_COMPUTE:
            assert not re.search(r'^%s\s*=' % s.option, novadisk.NOVA_CONF,
                                 re.M), s.option


def test_plugin_and_lab_render_the_same_settings(tmp_path):
    """What the plugin wrote and what the lab's files hold agree.

    The same (section, option) pairs, the same constant values, and on
    both sides Glance's pool is a pool Nova may clone from.
    """
    nova, glance = _plugin_writes(tmp_path)
    lab_nova, _ = _functional_nova_conf(tmp_path / 'lab')
    lab_glance = _lab_glance_conf(tmp_path / 'glance', '/lab/ceph/ceph.conf')
    lab_store = _lab_env()['FASTCLONE_GLANCE_RBD_STORE']
    for section, option, value in nova:
        assert lab_nova.has_option(section, option), (section, option)
        if value in ('fastrbd',):
            assert lab_nova.get(section, option) == value
    for section, option, value in glance:
        lab_section = lab_store if section == 'glance_store' else section
        lab_value = _setting_in(lab_glance, lab_section, option)
        assert lab_value is not None, (section, option)
        if value == 'True':
            assert lab_value == value
    assert dict(((s, o), v) for s, o, v in nova)[
        'fastclone', 'clone_allowed_pools'] == dict(
        ((s, o), v) for s, o, v in glance)['glance_store', 'rbd_store_pool']
    assert lab_nova.get('fastclone', 'clone_allowed_pools') == \
        lab_glance.get(lab_store, 'rbd_store_pool')
