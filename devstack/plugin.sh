#!/bin/bash
# plugin.sh - DevStack plugin for fastclone-backend: every instance root disk
# a Ceph RBD copy-on-write clone ([libvirt] images_type = fastrbd).
#
#   enable_plugin devstack-plugin-ceph \
#       https://opendev.org/openstack/devstack-plugin-ceph
#   enable_plugin fastclone-backend <this repository>

source $FASTCLONE_PLUGIN_DIR/lib/fastclone-backend

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    echo_summary "Installing fastclone-backend"
    install_fastclone
elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    # after devstack-plugin-ceph's post-config (plugin_requires)
    if is_service_enabled g-api; then
        echo_summary "Configuring Glance for fastclone-backend"
        configure_fastclone_glance
    fi
    if is_service_enabled n-cpu; then
        echo_summary "Configuring nova-compute for fastclone-backend"
        configure_fastclone_nova
    fi
elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
    if is_service_enabled n-cpu; then
        verify_fastclone_compute
    fi
fi

if [[ "$1" == "unstack" ]]; then
    unstack_fastclone
fi

if [[ "$1" == "clean" ]]; then
    cleanup_fastclone
fi
