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

"""The lab cloud tier's Keystone records and flavor (tools/lab up --cloud).

TEST ONLY, run by tools/lab in the tier's virtualenv.  Idempotent: each
record is created only when it is missing.  What devstack's lib/keystone,
lib/placement, lib/nova and lib/glance register, in one process:

* a ``service`` project and a ``service`` role;
* per service (``--service USER:TYPE:URL``) a user of that name (password
  ``--password``) with ``admin`` and ``service`` in project ``service``, the
  service record and its public and internal endpoints;
* ``--flavor NAME:RAM_MIB:VCPUS:DISK_GIB``: a public flavor.
"""

import argparse
import logging

import openstack

LOG = logging.getLogger('cloud_register')


def connect(args):
    return openstack.connect(
        auth_url=args.auth_url, username='admin', password=args.password,
        project_name='admin', user_domain_name='Default',
        project_domain_name='Default', region_name=args.region,
        identity_api_version='3')


def ensure(find, create, name, **attrs):
    found = find(name)
    if found is not None:
        return found
    LOG.info('creating %(name)s', {'name': name})
    return create(name=name, **attrs)


def ensure_endpoints(idy, service, region, url):
    have = {ep.interface for ep in idy.endpoints(service_id=service.id)}
    for interface in ('public', 'internal'):
        if interface not in have:
            idy.create_endpoint(service_id=service.id, interface=interface,
                                url=url, region_id=region)


def register_service(conn, args, spec):
    user_name, stype, url = spec.split(':', 2)
    idy = conn.identity
    project = idy.find_project('service', domain_id='default')
    user = idy.find_user(user_name, domain_id='default')
    if user is None:
        user = idy.create_user(name=user_name, password=args.password,
                               domain_id='default',
                               default_project_id=project.id)
    for role_name in ('admin', 'service'):
        role = idy.find_role(role_name)
        idy.assign_project_role_to_user(project, user, role)
    service = ensure(idy.find_service, idy.create_service, user_name,
                     type=stype)
    ensure_endpoints(idy, service, args.region, url)
    print('%s: user %s, %s endpoint %s' % (user_name, user.id, stype, url))


def register_flavor(conn, spec):
    name, ram, vcpus, disk = spec.split(':')
    flavor = conn.compute.find_flavor(name)
    if flavor is None:
        flavor = conn.compute.create_flavor(name=name, ram=int(ram),
                                            vcpus=int(vcpus), disk=int(disk))
    print('flavor %s: %s MiB, %s vCPU, %s GiB' % (
        flavor.name, flavor.ram, flavor.vcpus, flavor.disk))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--auth-url', required=True)
    parser.add_argument('--password', required=True)
    parser.add_argument('--region', required=True)
    parser.add_argument('--service', action='append', default=[])
    parser.add_argument('--flavor', action='append', default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    conn = connect(args)
    idy = conn.identity
    ensure(lambda n: idy.find_project(n, domain_id='default'),
           idy.create_project, 'service', domain_id='default')
    ensure(idy.find_role, idy.create_role, 'service')
    for spec in args.service:
        register_service(conn, args, spec)
    for spec in args.flavor:
        register_flavor(conn, spec)


if __name__ == '__main__':
    main()
