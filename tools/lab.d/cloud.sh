# The lab's cloud tier (tools/lab up --cloud), sourced by tools/lab: Nova's
# services as processes on 127.0.0.1 on top of the lab's Ceph and Glance.
#
#   MariaDB, RabbitMQ (Debian), Keystone, Placement, Neutron's API, nova-api
#   (uwsgi), nova-conductor, nova-scheduler, and three computes: fast1 and
#   fast2 run nova-compute-fastrbd ([libvirt] images_type = fastrbd), stock1
#   runs stock nova-compute (images_type = rbd).  Each compute has its own
#   libvirtd (tools/lab.d/libvirt-host).  Servers boot with 'networks: none'
#   (compute API microversion >= 2.37, `--nic none`): no network agent, no
#   port.  Neutron's API still has to answer: Nova 34 asks it for every
#   server shown (security groups of its ports) and deleted (its ports).
#   Optional: stockq (--with-qcow2), stock33 or stock31 (--mixed [NN]:
#   Nova NN's nova-compute from its own venv).  Every compute can reach
#   every other's libvirtd for live migration ([libvirt]
#   live_migration_uri).
#
# All state under $LAB/cloud, all daemons started and stopped by recorded PID.
#
# Ports: FASTCLONE_LAB_CLOUD_PORT (default 19400) is the base; the tier uses
# base+0 .. base+19:
#   +0 Keystone  +1 Placement  +2 nova-api  +3 MariaDB
#   +4 RabbitMQ AMQP  +5 RabbitMQ distribution  +6 the tier's own epmd
#   +7 Neutron API
#   +10..+19 rabbitmqctl's distribution ports
# shellcheck shell=bash

CLOUD=$LAB/cloud
CVENV=$LAB/venv-cloud
# the tier's services import much Python before they answer: under a
# loaded machine (guests under TCG, a CI run) 60 s was seen to be too short
CLOUD_UP_TIMEOUT=180
CLOUD_PORT=${FASTCLONE_LAB_CLOUD_PORT:-19400}
KS_PORT=$CLOUD_PORT
PL_PORT=$((CLOUD_PORT + 1))
NOVA_PORT=$((CLOUD_PORT + 2))
DB_PORT=$((CLOUD_PORT + 3))
AMQP_PORT=$((CLOUD_PORT + 4))
DIST_PORT=$((CLOUD_PORT + 5))
EPMD_PORT=$((CLOUD_PORT + 6))
NT_PORT=$((CLOUD_PORT + 7))
DB=$CLOUD/mariadb
RQ=$CLOUD/rabbitmq
RQ_NODE=fastclone$CLOUD_PORT@localhost
KS=$CLOUD/keystone
PL=$CLOUD/placement
NT=$CLOUD/neutron
NOVA=$CLOUD/nova
LV=$CLOUD/libvirt
# the lab's passwords: a loopback-only test cloud
PW=lab
DB_USER=fastclone
DB_URL=mysql+pymysql://$DB_USER:$PW@127.0.0.1:$DB_PORT
REGION=RegionOne
# NAME:BINARY of each compute (FASTCLONE_LAB_CLOUD_COMPUTES overrides)
COMPUTES=${FASTCLONE_LAB_CLOUD_COMPUTES:-"fast1:nova-compute-fastrbd fast2:nova-compute-fastrbd stock1:nova-compute"}
# the optional 4th compute: stock nova-compute with images_type = qcow2
# (local disks under its own instances path), for the boot benchmark.
# FASTCLONE_LAB_CLOUD_QCOW2=1 or 'tools/lab up --cloud --with-qcow2' adds it;
# $CLOUD/with-qcow2 remembers it until 'tools/lab down' stopped it.
QCOW2_COMPUTE=stockq:nova-compute
QCOW2_HOSTS=stockq
add_compute() {  # add_compute <name:binary>: one more compute, once
    case " $COMPUTES " in *" $1 "*) return 0 ;; esac
    COMPUTES="$COMPUTES $1"
}
with_qcow2_compute() { add_compute "$QCOW2_COMPUTE"; }
if [ "${FASTCLONE_LAB_CLOUD_QCOW2:-0}" = 1 ] || [ -f "$LAB/cloud/with-qcow2" ]; then
    with_qcow2_compute
fi
# the optional mixed-release compute: stockNN, stock nova-compute
# (images_type = rbd) of Nova NN (33 by default, or 31) from its own venv
# ($MVENV), under this tier's Nova 34 control services: a fleet of two
# releases sharing the pools, for evacuate and live migration between
# fastrbd on 34 and stock rbd on NN.
# 'tools/lab up --cloud --mixed [NN]' or FASTCLONE_LAB_CLOUD_MIXED=1 adds it
# (FASTCLONE_LAB_CLOUD_MIXED_RELEASE=NN picks the release where --mixed
# names none); $CLOUD/mixed remembers it, and its release, until 'tools/lab
# down' stopped it.
MIXED_RELEASES="31 33"
MIXED_DEFAULT_RELEASE=33
# Nova 34 refuses computes older than Gazpacho (33,
# OLDEST_SUPPORTED_SERVICE_VERSION): below it, see mixed_ffu_workaround
NOVA34_OLDEST_COMPUTE=33
mixed_recorded() {  # the release $CLOUD/mixed names (33 for an empty one)
    [ -f "$CLOUD/mixed" ] || return 1
    local r
    r=$(cat "$CLOUD/mixed")
    echo "${r:-$MIXED_DEFAULT_RELEASE}"
}
set_mixed_release() {  # set_mixed_release <NN>: stockNN from venv-novaNN
    case " $MIXED_RELEASES " in
        *" $1 "*) ;;
        *) die "--mixed $1: the mixed tier runs Nova $(echo "$MIXED_RELEASES" | sed 's/ / or /g')" ;;
    esac
    MIXED_RELEASE=$1
    MVENV=$LAB/venv-nova$MIXED_RELEASE
    MIXED_COMPUTE=stock$MIXED_RELEASE:nova-compute
    MIXED_HOSTS=stock$MIXED_RELEASE
}
set_mixed_release "$(mixed_recorded || echo "${FASTCLONE_LAB_CLOUD_MIXED_RELEASE:-$MIXED_DEFAULT_RELEASE}")"
with_mixed_compute() {  # with_mixed_compute [NN]
    local want=${1:-${FASTCLONE_LAB_CLOUD_MIXED_RELEASE:-$MIXED_DEFAULT_RELEASE}} had
    if had=$(mixed_recorded) && [ "$had" != "$want" ]; then
        die "the cloud tier runs stock$had (Nova $had): tools/lab down --cloud first"
    fi
    set_mixed_release "$want"
    add_compute "$MIXED_COMPUTE"
}
if [ "${FASTCLONE_LAB_CLOUD_MIXED:-0}" = 1 ] || [ -f "$CLOUD/mixed" ]; then
    with_mixed_compute "$(mixed_recorded || true)"
fi
mixed_wanted() { case " $COMPUTES " in *" $MIXED_COMPUTE "*) return 0 ;; esac; return 1; }
# the venv a compute's nova-compute runs from
compute_venv() {  # compute_venv <name>
    case " $MIXED_HOSTS " in *" $1 "*) echo "$MVENV" ;; *) echo "$CVENV" ;; esac
}
# every compute reaches the others' libvirtd for live migration through
# their sockets: Nova puts the destination's host name (= its lab host)
# into live_migration_uri.  Not live_migration_inbound_addr: Nova would
# put that address there instead of the host name.  QEMU's stream goes to
# the destination's name, 127.0.0.1 in every host's /etc/hosts
# (libvirt-host's LIBVIRT_HOST_PEERS).
live_migration_uri() {
    echo "qemu+unix:///system?socket=$LV/%s/run/libvirt-sock"
}

# a fleet of two releases: every Nova service caps the compute RPC API at
# the oldest compute's version (Nova's rolling-upgrade setting; the cap is
# computed once per process, so adding stockNN restarts Nova's services)
mixed_upgrade_levels() {
    mixed_wanted || return 0
    printf '[upgrade_levels]\ncompute = auto\n'
}
# Outside Nova's support window, for the test of the pair only: every Nova 34
# service (API, conductor, scheduler, and the Nova 34 computes: each checks
# at its start, nova.utils.raise_if_old_compute) refuses to start while a
# compute older than Nova 34's oldest supported one (Gazpacho, 33) is
# registered.  [workarounds] disable_compute_service_check_for_ffu turns
# that refusal into a warning; Nova meant it for fast-forward upgrades (new
# control services up before the old computes are upgraded), not for a
# fleet that keeps running an older release.  Not on the older compute.
# Also while such a compute is only registered: its service record outlives
# 'tools/lab down' (and counts in Nova's minimum, up or down) until it is
# deleted (openstack compute service delete).
mixed_needs_ffu() {
    { mixed_wanted && [ "$MIXED_RELEASE" -lt "$NOVA34_OLDEST_COMPUTE" ]; } || too_old_registered
}
too_old_hosts() {  # the stockNN hosts below Nova 34's oldest supported compute
    local r
    for r in $MIXED_RELEASES; do
        [ "$r" -ge "$NOVA34_OLDEST_COMPUTE" ] || echo "stock$r"
    done
}
too_old_registered() {  # one of them has a service record (no DB yet: no)
    local hosts
    hosts=$(too_old_hosts | sed "s/.*/'&'/" | paste -sd, -)
    [ -n "$hosts" ] || return 1
    [ "$(service_sql "SELECT COUNT(*) FROM services WHERE \`binary\` = 'nova-compute'
        AND deleted = 0 AND host IN ($hosts)" 2>/dev/null || echo 0)" != 0 ]
}
mixed_ffu_workaround() {
    mixed_needs_ffu || return 0
    echo "[workarounds]"
    echo "# a compute older than Nova 34 supports (< $NOVA34_OLDEST_COMPUTE): outside Nova's support window;"
    echo "# the lab's test of such a pair only"
    echo "disable_compute_service_check_for_ffu = True"
}
restart_nova_for_mixed() {
    local name pf mark
    mixed_wanted && [ ! -f "$CLOUD/mixed" ] && [ -f "$CLOUD/up" ] || return 0
    log "adding $MIXED_HOSTS: Nova's services restart with [upgrade_levels] compute = auto$(
        mixed_needs_ffu && echo " and [workarounds] disable_compute_service_check_for_ffu")"
    while read -r name pf mark; do
        case $name in nova-*) stop_pid "$name" "$pf" "$mark" & ;; esac
    done < <(cloud_daemons)
    wait
}

# the libvirt secret of client.nova, the same on every compute
RBD_SECRET_UUID=5e0c1ab5-f457-4c1b-9a5e-1ab0c0ffee19

cloud_url() { echo "http://127.0.0.1:$1"; }
keystone_url() { echo "$(cloud_url "$KS_PORT")/v3"; }

# daemon table of the tier: name pidfile mark (stopped in this order)
cloud_daemons() {
    local c
    for c in $COMPUTES; do
        echo "nova-compute.${c%%:*} $NOVA/run/compute-${c%%:*}.pid $NOVA/etc/compute-${c%%:*}.conf"
    done
    echo "nova-scheduler $NOVA/run/scheduler.pid $NOVA/etc/nova.conf"
    echo "nova-conductor $NOVA/run/conductor.pid $NOVA/etc/nova.conf"
    echo "nova-api $NOVA/run/nova-api-uwsgi.pid $NOVA/etc/nova-api-uwsgi.ini"
    echo "neutron $NT/run/uwsgi.pid $NT/etc/uwsgi.ini"
    echo "placement $PL/run/uwsgi.pid $PL/etc/uwsgi.ini"
    echo "keystone $KS/run/uwsgi.pid $KS/etc/uwsgi.ini"
    echo "rabbitmq $RQ/rabbitmq.pid -epmd_port $EPMD_PORT"
    echo "epmd $RQ/epmd.pid -port $EPMD_PORT"
    echo "mariadb $DB/mariadbd.pid $DB/data"
}

port_free() {  # port_free <port> <what>
    if ss -Hltn "sport = :$1" | grep -q .; then
        die "port $1 ($2) is already in use; set FASTCLONE_LAB_CLOUD_PORT (base of 20 ports)"
    fi
}

# ---------------------------------------------------------------- venv
# make_venv <venv> <log> <what> <pip-install arguments>...: a fresh venv with
# them, this checkout editable (the computes run its fastclone_backend:
# nova-compute-fastrbd), Debian's rados/rbd and libvirt bindings
make_venv() {
    local venv=$1 logf=$2 what=$3
    shift 3
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$REPO/tools/pip-install" "$venv" -q "$@" \
        >"$logf" 2>&1 || { tail_log "$logf"; die "pip install of $what failed"; }
    "$REPO/tools/pip-install" "$venv" -q --no-deps -e "$REPO" \
        >>"$logf" 2>&1 || { tail_log "$logf"; die "pip install -e $REPO failed"; }
    "$REPO/tools/link-pyceph" "$venv"
    link_pylibvirt "$venv"
}

ensure_cloud_venv() {
    local stamp=$CVENV/.fastclone-requirements want pins=$REPO/constraints/nova34.txt upper
    upper=$REPO/constraints/$(sed -n 's/^-c //p' "$pins")
    want=$(cat "$FILES/cloud-requirements.txt" "$REPO/requirements.txt" "$pins" "$upper" | sha256sum)
    if [ -x "$CVENV/bin/nova-compute-fastrbd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    log "installing Keystone, Placement, Nova into $CVENV (once)"
    make_venv "$CVENV" "$LAB/pip-cloud.log" "the cloud tier" -r "$FILES/cloud-requirements.txt"
    echo "$want" > "$stamp"
    log "cloud venv ready"
}

# the mixed compute's venv: Nova $MIXED_RELEASE pinned by its constraints,
# this checkout editable (nova-compute-fastrbd too, for a fastrbd host of
# that release), Debian's rados/rbd and libvirt bindings
ensure_mixed_venv() {
    local stamp=$MVENV/.fastclone-requirements want pins=$REPO/constraints/nova$MIXED_RELEASE.txt upper
    upper=$REPO/constraints/$(sed -n 's/^-c //p' "$pins")
    want=$(cat "$REPO/requirements.txt" "$pins" "$upper" | sha256sum)
    if [ -x "$MVENV/bin/nova-compute" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    log "installing Nova $MIXED_RELEASE into $MVENV (once)"
    make_venv "$MVENV" "$LAB/pip-mixed.log" "Nova $MIXED_RELEASE" -r "$pins" -r "$REPO/requirements.txt"
    echo "$want" > "$stamp"
    log "Nova $MIXED_RELEASE venv ready"
}

# Nova's libvirt driver imports libvirt: Debian's binding (python3-libvirt),
# built for the installed libvirt, is linked in as tools/link-pyceph does
# rados and rbd (PyPI's libvirt-python is an sdist needing a compiler)
link_pylibvirt() {  # link_pylibvirt <venv>
    local venv=$1 dir=$1/pylibvirt f site
    mkdir -p "$dir"
    for f in libvirt.py libvirt_qemu.py libvirt_lxc.py libvirtaio.py \
            libvirtmod.cpython-311-x86_64-linux-gnu.so libvirtmod_qemu.cpython-311-x86_64-linux-gnu.so \
            libvirtmod_lxc.cpython-311-x86_64-linux-gnu.so; do
        [ -f "/usr/lib/python3/dist-packages/$f" ] ||
            die "/usr/lib/python3/dist-packages/$f missing: apt-get install python3-libvirt"
        ln -sf "/usr/lib/python3/dist-packages/$f" "$dir/"
    done
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$dir" > "$site/fastclone-pylibvirt.pth"
    "$venv/bin/python" -c 'import libvirt' || die "import libvirt failed in $venv"
}

# ---------------------------------------------------------------- MariaDB
mariadb_() { mariadb --no-defaults -S "$DB/mysqld.sock" -u root "$@"; }

up_mariadb() {
    if pid_of "$DB/mariadbd.pid" "$DB/data" >/dev/null; then return 0; fi
    port_free "$DB_PORT" MariaDB
    mkdir -p "$DB"
    if [ ! -d "$DB/data/mysql" ]; then
        rm -rf "$DB/data"
        mariadb-install-db --no-defaults --user=root --datadir="$DB/data" \
            --auth-root-authentication-method=socket >"$DB/install-db.log" 2>&1 ||
            { tail_log "$DB/install-db.log"; die "mariadb-install-db failed"; }
    fi
    (exec setsid mariadbd --no-defaults --user=root --datadir="$DB/data" \
        --socket="$DB/mysqld.sock" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --pid-file="$DB/mariadbd.pid" --log-error="$DB/mariadbd.log" --skip-name-resolve \
        --max-connections=500 --innodb-buffer-pool-size=128M) </dev/null >/dev/null 2>&1 &
    wait_for "$CLOUD_UP_TIMEOUT" mariadb "mariadb --no-defaults -S $DB/mysqld.sock -u root -e 'select 1'" \
        "$DB/mariadbd.log"
    local d sql="CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$PW';"
    for d in keystone placement neutron nova_api nova_cell0 nova_cell1; do
        sql="$sql CREATE DATABASE IF NOT EXISTS $d CHARACTER SET utf8mb4;"
    done
    mariadb_ -e "$sql GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1';" ||
        die "creating the cloud's databases failed"
    log "mariadb up on 127.0.0.1:$DB_PORT"
}

# ---------------------------------------------------------------- RabbitMQ
# Debian's rabbitmq-server runs as user rabbitmq: its directories are that
# user's.  The tier runs its own epmd on its own port, stopped by its PID.
rabbit_env() {
    echo "HOME=/var/lib/rabbitmq ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1" \
        "RABBITMQ_NODENAME=$RQ_NODE RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
        "RABBITMQ_NODE_PORT=$AMQP_PORT RABBITMQ_DIST_PORT=$DIST_PORT" \
        "RABBITMQ_CTL_DIST_PORT_MIN=$((CLOUD_PORT + 10)) RABBITMQ_CTL_DIST_PORT_MAX=$((CLOUD_PORT + 19))" \
        "RABBITMQ_MNESIA_BASE=$RQ/mnesia RABBITMQ_LOG_BASE=$RQ/log" \
        "RABBITMQ_CONFIG_FILE=$RQ/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$RQ/enabled_plugins" \
        "RABBITMQ_CONF_ENV_FILE=$RQ/rabbitmq-env.conf"
}

# the Erlang VM (beam.smp) is the PID recorded: its command line names the
# tier's epmd port (RabbitMQ 3.10 writes no pid file of its own here)
record_beam_pid() {  # record_beam_pid <pid of the rabbitmq-server script>
    local beam
    for _ in $(seq 1 100); do
        beam=$(pgrep -P "$1" beam.smp || true)
        [ -n "$beam" ] && { echo "$beam" > "$RQ/rabbitmq.pid"; return 0; }
        sleep 0.1
    done
    tail_log "$RQ/log/startup.log"
    die "rabbitmq-server started no Erlang VM"
}

up_rabbitmq() {
    local script
    if pid_of "$RQ/rabbitmq.pid" "-epmd_port $EPMD_PORT" >/dev/null; then return 0; fi
    port_free "$AMQP_PORT" "RabbitMQ AMQP"
    port_free "$DIST_PORT" "RabbitMQ distribution"
    mkdir -p "$RQ/mnesia" "$RQ/log"
    [ -f "$RQ/rabbitmq.conf" ] || echo "loopback_users.guest = true" > "$RQ/rabbitmq.conf"
    [ -f "$RQ/enabled_plugins" ] || echo "[]." > "$RQ/enabled_plugins"
    : > "$RQ/rabbitmq-env.conf"
    chown -R rabbitmq:rabbitmq "$RQ"
    if ! pid_of "$RQ/epmd.pid" "-port $EPMD_PORT" >/dev/null; then
        port_free "$EPMD_PORT" epmd
        (exec setsid epmd -address 127.0.0.1 -port "$EPMD_PORT") </dev/null >"$RQ/log/epmd.log" 2>&1 &
        echo $! > "$RQ/epmd.pid"
    fi
    # listening before the VM starts, or erl starts an 'epmd -daemon' of its own
    wait_for 10 epmd "ss -Hltn 'sport = :$EPMD_PORT' | grep -q ." "$RQ/log/epmd.log"
    pid_of "$RQ/epmd.pid" "-port $EPMD_PORT" >/dev/null || die "another epmd holds port $EPMD_PORT"
    (exec setsid env $(rabbit_env) setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
        /usr/lib/rabbitmq/bin/rabbitmq-server) </dev/null >"$RQ/log/startup.log" 2>&1 &
    script=$!
    record_beam_pid "$script"
    wait_for 120 rabbitmq "ss -Hltn 'sport = :$AMQP_PORT' | grep -q ." \
        "$RQ/log/startup.log" "$RQ/log/$RQ_NODE.log"
    log "rabbitmq up on 127.0.0.1:$AMQP_PORT (node $RQ_NODE)"
}

# SIGTERM makes the Erlang VM shut RabbitMQ down cleanly (init:stop)
stop_rabbitmq() { stop_pid rabbitmq "$RQ/rabbitmq.pid" "-epmd_port $EPMD_PORT"; }

# ---------------------------------------------------------------- uwsgi apps
write_uwsgi_ini() {  # write_uwsgi_ini <ini> <port> <module> <pidfile> <log>
    local ini=$1 port=$2 module=$3 pidfile=$4 logf=$5
    {
        echo "[uwsgi]"
        echo "http-socket = 127.0.0.1:$port"
        echo "module = $module"
        echo "master = true"
        echo "processes = 1"
        echo "threads = 4"
        echo "enable-threads = true"
        echo "lazy-apps = true"
        echo "http-auto-chunked = true"
        echo "buffer-size = 65535"
        echo "add-header = Connection: close"
        echo "die-on-term = true"
        echo "exit-on-reload = true"
        echo "need-app = true"
        echo "pidfile = $pidfile"
        echo "logto = $logf"
    } > "$ini"
}

# pyuwsgi's Python reads os.environ before the ini's 'env =' lines apply: an
# app's config location is set in the environment it is started with
start_uwsgi() {  # start_uwsgi <name> <ini> <pidfile> <port> <health url> <VAR=value> <log>...
    local name=$1 ini=$2 pidfile=$3 port=$4 url=$5 envvar=$6; shift 6
    if pid_of "$pidfile" "$ini" >/dev/null; then return 0; fi
    port_free "$port" "$name"
    (exec env "$envvar" setsid "$CVENV/bin/uwsgi" --ini "$ini") </dev/null >/dev/null 2>&1 &
    wait_for "$CLOUD_UP_TIMEOUT" "$name" "curl -s -o /dev/null $url" "$@"
    log "$name up at $(cloud_url "$port")"
}

# ---------------------------------------------------------------- Keystone
write_keystone_conf() {
    mkdir -p "$KS"/etc "$KS"/log "$KS"/run "$KS"/fernet-keys "$KS"/credential-keys
    cat > "$KS/etc/keystone.conf" <<EOF
[DEFAULT]
log_file = $KS/log/keystone.log

[database]
connection = $DB_URL/keystone

[token]
provider = fernet
# a day: 'tools/lab env' hands out a token the functional tests reuse
expiration = 86400

[fernet_tokens]
key_repository = $KS/fernet-keys

[credential]
key_repository = $KS/credential-keys
EOF
    write_uwsgi_ini "$KS/etc/uwsgi.ini" "$KS_PORT" keystone.wsgi.api:application \
        "$KS/run/uwsgi.pid" "$KS/log/uwsgi.log"
}

keystone_manage() { "$CVENV/bin/keystone-manage" --config-file "$KS/etc/keystone.conf" "$@"; }

bootstrap_keystone() {
    [ -f "$KS/bootstrapped" ] && return 0
    keystone_manage db_sync >"$KS/log/db_sync.log" 2>&1 ||
        { tail_log "$KS/log/db_sync.log"; die "keystone-manage db_sync failed"; }
    keystone_manage fernet_setup --keystone-user root --keystone-group root >>"$KS/log/db_sync.log" 2>&1 ||
        die "keystone-manage fernet_setup failed"
    keystone_manage credential_setup --keystone-user root --keystone-group root >>"$KS/log/db_sync.log" 2>&1 ||
        die "keystone-manage credential_setup failed"
    keystone_manage bootstrap --bootstrap-password "$PW" --bootstrap-username admin \
        --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-service-name keystone --bootstrap-region-id "$REGION" \
        --bootstrap-admin-url "$(keystone_url)" --bootstrap-public-url "$(keystone_url)" \
        --bootstrap-internal-url "$(keystone_url)" >>"$KS/log/db_sync.log" 2>&1 ||
        { tail_log "$KS/log/db_sync.log"; die "keystone-manage bootstrap failed"; }
    touch "$KS/bootstrapped"
}

up_keystone() {
    write_keystone_conf
    bootstrap_keystone
    start_uwsgi keystone "$KS/etc/uwsgi.ini" "$KS/run/uwsgi.pid" "$KS_PORT" "$(keystone_url)" \
        "OS_KEYSTONE_CONFIG_FILES=$KS/etc/keystone.conf" \
        "$KS/log/uwsgi.log" "$KS/log/keystone.log"
}

# users, services, endpoints (idempotent; lab-only Python)
register_services() {
    "$CVENV/bin/python" "$FILES/cloud_register.py" --auth-url "$(keystone_url)" --password "$PW" \
        --region "$REGION" \
        --service "placement:placement:$(cloud_url "$PL_PORT")" \
        --service "nova:compute:$(cloud_url "$NOVA_PORT")/v2.1" \
        --service "neutron:network:$(cloud_url "$NT_PORT")" \
        --service "glance:image:$(glance_url)" \
        >"$KS/log/register.log" 2>&1 || { tail_log "$KS/log/register.log"; die "registering services in Keystone failed"; }
}

# ---------------------------------------------------------------- Placement
keystone_authtoken() {  # keystone_authtoken <user>: the [keystone_authtoken] body
    cat <<EOF
www_authenticate_uri = $(keystone_url)
auth_url = $(keystone_url)
auth_type = password
username = $1
password = $PW
user_domain_name = Default
project_name = service
project_domain_name = Default
region_name = $REGION
service_token_roles_required = True
EOF
}

up_placement() {
    mkdir -p "$PL"/etc "$PL"/log "$PL"/run
    cat > "$PL/etc/placement.conf" <<EOF
[DEFAULT]
log_file = $PL/log/placement.log

[api]
auth_strategy = keystone

[placement_database]
connection = $DB_URL/placement

[keystone_authtoken]
$(keystone_authtoken placement)
EOF
    write_uwsgi_ini "$PL/etc/uwsgi.ini" "$PL_PORT" placement.wsgi.api:application \
        "$PL/run/uwsgi.pid" "$PL/log/uwsgi.log"
    if [ ! -f "$PL/synced" ]; then
        "$CVENV/bin/placement-manage" --config-file "$PL/etc/placement.conf" db sync >"$PL/log/db_sync.log" 2>&1 ||
            { tail_log "$PL/log/db_sync.log"; die "placement-manage db sync failed"; }
        touch "$PL/synced"
    fi
    start_uwsgi placement "$PL/etc/uwsgi.ini" "$PL/run/uwsgi.pid" "$PL_PORT" "$(cloud_url "$PL_PORT")/" \
        "OS_PLACEMENT_CONFIG_DIR=$PL/etc" \
        "$PL/log/uwsgi.log" "$PL/log/placement.log"
}

# ---------------------------------------------------------------- Neutron
# The API only (ML2, no mechanism driver, no agent, no RPC server): what Nova
# asks of it for servers without ports.
up_neutron() {
    mkdir -p "$NT"/etc "$NT"/log "$NT"/run "$NT"/state "$NT"/lock
    cp "$CVENV/etc/neutron/api-paste.ini" "$NT/etc/api-paste.ini"
    cat > "$NT/etc/neutron.conf" <<EOF
[DEFAULT]
log_file = $NT/log/neutron.log
state_path = $NT/state
core_plugin = ml2
# Neutron 29 lists ports with the port forwarding plugin's relationship
# loaded (Port.port_forwardings): without that plugin every GET /ports fails
service_plugins = router,port_forwarding
auth_strategy = keystone
api_paste_config = $NT/etc/api-paste.ini
transport_url = rabbit://guest:guest@127.0.0.1:$AMQP_PORT/
notify_nova_on_port_status_changes = False
notify_nova_on_port_data_changes = False

[database]
connection = $DB_URL/neutron

[keystone_authtoken]
$(keystone_authtoken neutron)

[oslo_concurrency]
lock_path = $NT/lock

[ml2]
type_drivers = local,flat
tenant_network_types = local
mechanism_drivers =
extension_drivers = port_security
EOF
    write_uwsgi_ini "$NT/etc/uwsgi.ini" "$NT_PORT" neutron.wsgi.api:application \
        "$NT/run/uwsgi.pid" "$NT/log/uwsgi.log"
    if [ ! -f "$NT/synced" ]; then
        "$CVENV/bin/neutron-db-manage" --config-file "$NT/etc/neutron.conf" upgrade heads \
            >"$NT/log/db_sync.log" 2>&1 || { tail_log "$NT/log/db_sync.log"; die "neutron-db-manage upgrade failed"; }
        touch "$NT/synced"
    fi
    start_uwsgi neutron "$NT/etc/uwsgi.ini" "$NT/run/uwsgi.pid" "$NT_PORT" "$(cloud_url "$NT_PORT")/" \
        "OS_NEUTRON_CONFIG_FILES=$NT/etc/neutron.conf" "$NT/log/uwsgi.log" "$NT/log/neutron.log"
    # Neutron 29 (seen with SQLAlchemy 2.0.52 and 2.1.9): GET /ports names
    # Port.port_forwardings, a backref that exists only once the ORM mappers
    # are configured, which the first query does; until then every port
    # listing (Nova's server show) fails with AttributeError.  A network
    # listing runs such a query.
    curl -sf -o /dev/null -H "X-Auth-Token: $(cloud_token)" "$(cloud_url "$NT_PORT")/v2.0/networks" ||
        { tail_log "$NT/log/neutron.log"; die "neutron did not list networks"; }
}

# ---------------------------------------------------------------- libvirt
# One libvirtd (+ virtlogd) per compute, each in its own mount and UTS
# namespace (tools/lab.d/libvirt-host): a compute sees only its own domains,
# and libvirt reports its own hostname (the compute node's name).
libvirt_host() { LIBVIRT_HOST_PEERS="$(compute_names | tr '\n' ' ')" "$FILES/libvirt-host" "$@"; }

up_libvirt() {  # up_libvirt <compute>: its libvirtd, with client.nova's ceph secret
    local name=$1
    libvirt_host up "$name" "$LV" >>"$LV/libvirt-host.log" 2>&1 ||
        { tail_log "$LV/libvirt-host.log"; die "libvirt-host up $name failed"; }
    ceph_ auth get-key client.nova > "$LV/client.nova.key" || die "ceph auth get-key client.nova failed"
    libvirt_host secret "$name" "$LV" "$RBD_SECRET_UUID" "$LV/client.nova.key" >>"$LV/libvirt-host.log" 2>&1 ||
        { tail_log "$LV/libvirt-host.log"; die "libvirt-host secret $name failed"; }
}

# ---------------------------------------------------------------- Nova
nova_auth_sections() {  # [placement], [service_user], [glance] of every Nova service
    cat <<EOF
[placement]
auth_type = password
auth_url = $(keystone_url)
username = placement
password = $PW
user_domain_name = Default
project_name = service
project_domain_name = Default
region_name = $REGION

[service_user]
send_service_user_token = True
auth_type = password
auth_url = $(keystone_url)
username = nova
password = $PW
user_domain_name = Default
project_name = service
project_domain_name = Default

[glance]
region_name = $REGION

[DEFAULT]
# a lab's service stops within tools/lab's 30 s (Nova's default: 180 s)
graceful_shutdown_timeout = 20
manager_shutdown_timeout = 10

[neutron]
auth_type = password
auth_url = $(keystone_url)
username = neutron
password = $PW
user_domain_name = Default
project_name = service
project_domain_name = Default
region_name = $REGION

$(mixed_upgrade_levels)
[vnc]
enabled = False

[spice]
enabled = False
EOF
}

write_nova_conf() {
    mkdir -p "$NOVA"/etc "$NOVA"/log "$NOVA"/run "$NOVA"/state "$NOVA"/lock
    cp "$CVENV/etc/nova/api-paste.ini" "$NOVA/etc/api-paste.ini"
    cat > "$NOVA/etc/nova.conf" <<EOF
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:$AMQP_PORT/
state_path = $NOVA/state
my_ip = 127.0.0.1

[api]
auth_strategy = keystone

[wsgi]
api_paste_config = $NOVA/etc/api-paste.ini

[api_database]
connection = $DB_URL/nova_api

[database]
connection = $DB_URL/nova_cell1

[keystone_authtoken]
$(keystone_authtoken nova)

[oslo_concurrency]
lock_path = $NOVA/lock

[conductor]
workers = 1

[scheduler]
workers = 1

$(nova_auth_sections)

$(mixed_ffu_workaround)
EOF
    write_uwsgi_ini "$NOVA/etc/nova-api-uwsgi.ini" "$NOVA_PORT" nova.wsgi.osapi_compute:application \
        "$NOVA/run/nova-api-uwsgi.pid" "$NOVA/log/nova-api.log"
}

nova_manage() { "$CVENV/bin/nova-manage" --config-file "$NOVA/etc/nova.conf" "$@"; }

# devstack's order (lib/nova): API DB, cell0, the cell DBs, cell1
bootstrap_nova_db() {
    [ -f "$NOVA/bootstrapped" ] && return 0
    local logf=$NOVA/log/bootstrap.log
    {
        nova_manage api_db sync &&
        nova_manage cell_v2 map_cell0 --database_connection "$DB_URL/nova_cell0" &&
        nova_manage db sync &&
        { nova_manage cell_v2 list_cells | grep -q ' cell1 ' ||
            nova_manage cell_v2 create_cell --name cell1 --verbose; }
    } >"$logf" 2>&1 || { tail_log "$logf"; die "the Nova database bootstrap failed"; }
    touch "$NOVA/bootstrapped"
}

start_nova_service() {  # start_nova_service <name> <pidfile> <conf> <log> <binary> [venv]
    local name=$1 pidfile=$2 conf=$3 logf=$4 bin=$5 venv=${6:-$CVENV}
    if pid_of "$pidfile" "$conf" >/dev/null; then return 0; fi
    (exec setsid "$venv/bin/$bin" --config-file "$conf" --log-file "$logf") </dev/null \
        >>"$logf.stderr" 2>&1 &
    echo $! > "$pidfile"
    log "$name started (pid $(cat "$pidfile"))"
}

write_compute_conf() {  # write_compute_conf <name> <binary>
    local name=$1 bin=$2 dir=$NOVA/compute-$1 conf=$NOVA/etc/compute-$1.conf venv
    venv=$(compute_venv "$1")
    mkdir -p "$dir"/state "$dir"/instances "$dir"/lock
    cat > "$conf" <<EOF
[DEFAULT]
host = $name
compute_driver = libvirt.LibvirtDriver
transport_url = rabbit://guest:guest@127.0.0.1:$AMQP_PORT/
state_path = $dir/state
instances_path = $dir/instances
my_ip = 127.0.0.1
# the boot benchmark starts 20 (or --max: about 70) 1-vCPU guests of 1 GB
# disk per backend on one compute: Nova's default ratios (4.0 of the
# machine's 2 cores: 8 vCPUs; 1.0 of the lab's 64 GiB OSD for the rbd
# hosts) turn the 9th, or the 65th, away with "No valid host was found"
cpu_allocation_ratio = 64.0
disk_allocation_ratio = 4.0

[libvirt]
virt_type = qemu
connection_uri = $(libvirt_host uri "$name" "$LV")
images_type = $(compute_images_type "$name")
images_rbd_pool = vms
images_rbd_ceph_conf = $CONF
rbd_user = nova
rbd_secret_uuid = $RBD_SECRET_UUID
live_migration_uri = $(live_migration_uri)

[oslo_concurrency]
lock_path = $dir/lock

# as root without rootwrap: the privsep daemons are started directly (the
# default, 'sudo nova-rootwrap /etc/nova/rootwrap.conf', is a deployment's)
[nova_sys_admin]
helper_command = $venv/bin/privsep-helper --config-file $conf

[privsep_osbrick]
helper_command = $venv/bin/privsep-helper --config-file $conf

$(nova_auth_sections)

$(compute_workarounds "$name")
EOF
    if [ "$bin" = nova-compute-fastrbd ]; then
        # what fastrbd needs, from the source the devstack plugin uses
        "${PYTHON:-python3}" "$REPO/fastclone_backend/deploysettings.py" apply nova-compute "$conf" \
            --set vms_pool=vms --set images_pool=images --set nova_user=nova --set ceph_conf="$CONF"
    fi
}

compute_workarounds() {  # compute_workarounds <name>: the Nova 34 computes'
    [ "$(compute_venv "$1")" = "$CVENV" ] || return 0
    mixed_ffu_workaround
}

compute_images_type() {  # compute_images_type <name>: rbd, or qcow2 for stockq
    case " $QCOW2_HOSTS " in *" $1 "*) echo qcow2 ;; *) echo rbd ;; esac
}

compute_names() { local c; for c in $COMPUTES; do echo "${c%%:*}"; done; }

# Nova refuses to register a compute older than every other one
# (ServiceTooOld: "This service is older (v72) than the minimum (v74)
# version of the rest of the deployment"): in a real fleet the older host
# was there before the others were upgraded.  The lab's stand-in: the
# first time stockNN starts, the others' service records are forced down
# (left out of Nova's minimum) until stockNN's record exists, and
# nova-conductor (which checks, and caches the minimum) starts after that.
service_sql() {  # service_sql <SQL on nova_cell1.services>
    mariadb_ -N -B nova_cell1 -e "$1"
}

mixed_registered() {
    [ "$(service_sql "SELECT COUNT(*) FROM services WHERE host = '$MIXED_HOSTS'
        AND \`binary\` = 'nova-compute' AND deleted = 0")" != 0 ]
}

MIXED_LEFT_OUT=$CLOUD/mixed-left-out

leave_out_newer_computes() {  # before nova-conductor starts
    local others
    mixed_wanted && ! mixed_registered || return 0
    [ -f "$MIXED_LEFT_OUT" ] || {
        others=$(service_sql "SELECT id FROM services WHERE \`binary\` = 'nova-compute'
            AND deleted = 0 AND forced_down = 0" | tr '\n' ',' | sed 's/,$//')
        echo "$others" > "$MIXED_LEFT_OUT"
    }
    others=$(cat "$MIXED_LEFT_OUT")
    [ -z "$others" ] || service_sql "UPDATE services SET forced_down = 1 WHERE id IN ($others)"
    stop_pid nova-conductor "$NOVA/run/conductor.pid" "$NOVA/etc/nova.conf"
}

take_back_newer_computes() {
    local others
    [ -f "$MIXED_LEFT_OUT" ] || return 0
    others=$(cat "$MIXED_LEFT_OUT")
    [ -z "$others" ] || service_sql "UPDATE services SET forced_down = 0 WHERE id IN ($others)"
    rm -f "$MIXED_LEFT_OUT"
}

register_mixed_first() {  # start stockNN while the newer computes are left out
    local c name bin deadline
    mixed_wanted && ! mixed_registered || return 0
    c=$MIXED_COMPUTE name=${c%%:*} bin=${c#*:}
    up_libvirt "$name"
    write_compute_conf "$name" "$bin"
    start_nova_service "nova-compute.$name" "$NOVA/run/compute-$name.pid" \
        "$NOVA/etc/compute-$name.conf" "$NOVA/log/compute-$name.log" "$bin" "$MVENV"
    deadline=$(( $(date +%s) + CLOUD_UP_TIMEOUT ))
    until mixed_registered; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            take_back_newer_computes
            tail_log "$NOVA/log/compute-$name.log"
            die "$name registered no service within ${CLOUD_UP_TIMEOUT}s"
        fi
        sleep 1
    done
    take_back_newer_computes
    log "$name registered (Nova $MIXED_RELEASE)"
}

up_computes() {
    local c name bin
    mkdir -p "$LV"
    register_mixed_first
    for c in $COMPUTES; do
        name=${c%%:*} bin=${c#*:}
        up_libvirt "$name"
        write_compute_conf "$name" "$bin"
        start_nova_service "nova-compute.$name" "$NOVA/run/compute-$name.pid" \
            "$NOVA/etc/compute-$name.conf" "$NOVA/log/compute-$name.log" "$bin" \
            "$(compute_venv "$name")"
    done
}

all_hosts_mapped() {
    local hosts name
    hosts=$(nova_manage cell_v2 list_hosts 2>/dev/null) || return 1
    for name in $(compute_names); do
        grep -qw "$name" <<<"$hosts" || return 1
    done
}

discover_hosts() {
    local deadline=$(( $(date +%s) + 120 )) n logs=()
    for n in $(compute_names); do logs+=("$NOVA/log/compute-$n.log"); done
    until all_hosts_mapped; do
        nova_manage cell_v2 discover_hosts --verbose >>"$NOVA/log/discover_hosts.log" 2>&1 || true
        all_hosts_mapped && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            tail_log "$NOVA/log/discover_hosts.log" "${logs[@]}"
            die "the computes were not all mapped to cell1 within 120s"
        fi
        sleep 1
    done
    log "computes mapped to cell1: $(compute_names | tr '\n' ' ')"
}

# a newer stockNN beside a registered older one: not the pair it names
warn_too_old_registered() {
    mixed_wanted && [ "$MIXED_RELEASE" -ge "$NOVA34_OLDEST_COMPUTE" ] && too_old_registered || return 0
    log "warning: $(too_old_hosts | paste -sd' ' -) still registered (Nova's minimum compute stays theirs):" \
        "openstack compute service delete it for the ($MIXED_RELEASE, 34) pair alone"
}

up_nova() {
    warn_too_old_registered
    write_nova_conf
    bootstrap_nova_db
    start_uwsgi nova-api "$NOVA/etc/nova-api-uwsgi.ini" "$NOVA/run/nova-api-uwsgi.pid" "$NOVA_PORT" \
        "$(cloud_url "$NOVA_PORT")/" "OS_NOVA_CONFIG_DIR=$NOVA/etc" "$NOVA/log/nova-api.log"
    leave_out_newer_computes
    start_nova_service nova-conductor "$NOVA/run/conductor.pid" "$NOVA/etc/nova.conf" \
        "$NOVA/log/conductor.log" nova-conductor
    start_nova_service nova-scheduler "$NOVA/run/scheduler.pid" "$NOVA/etc/nova.conf" \
        "$NOVA/log/scheduler.log" nova-scheduler
    up_computes
    discover_hosts
}

# ---------------------------------------------------------------- commands
# before Glance starts: what Glance's Keystone auth needs
cloud_up_before_glance() {
    command -v mariadbd >/dev/null && command -v rabbitmq-server >/dev/null &&
        command -v libvirtd >/dev/null ||
        die "mariadb-server, rabbitmq-server or libvirt-daemon-system missing: run tools/install-deps"
    mkdir -p "$CLOUD"
    case " $COMPUTES " in *" $QCOW2_COMPUTE "*) touch "$CLOUD/with-qcow2" ;; esac
    restart_nova_for_mixed
    if mixed_wanted; then echo "$MIXED_RELEASE" > "$CLOUD/mixed"; fi
    ensure_cloud_venv
    if mixed_wanted; then ensure_mixed_venv; fi
    up_mariadb
    up_rabbitmq
    up_keystone
    register_services
}

cloud_up_after_glance() {
    up_placement
    up_neutron
    up_nova
    "$CVENV/bin/python" "$FILES/cloud_register.py" --auth-url "$(keystone_url)" --password "$PW" \
        --region "$REGION" --flavor "lab.tiny:128:1:1" >>"$KS/log/register.log" 2>&1 ||
        { tail_log "$KS/log/register.log"; die "creating the lab's flavor failed"; }
    touch "$CLOUD/up"
    log "cloud tier up: keystone $(keystone_url), nova $(cloud_url "$NOVA_PORT")/v2.1"
}

cloud_down() {
    local name pf mark c
    [ -d "$CLOUD" ] || return 0
    rm -f "$CLOUD/up"
    # the OpenStack services at once (each takes seconds to stop), then
    # what they use: RabbitMQ, epmd, MariaDB
    while read -r name pf mark; do
        case $name in
            rabbitmq|epmd|mariadb) ;;
            *) stop_pid "$name" "$pf" "$mark" & ;;
        esac
    done < <(cloud_daemons)
    wait
    stop_rabbitmq
    while read -r name pf mark; do
        case $name in
            epmd|mariadb) stop_pid "$name" "$pf" "$mark" ;;
        esac
    done < <(cloud_daemons)
    for c in $(compute_names); do
        [ -d "$LV/$c" ] || continue
        libvirt_host down "$c" "$LV" >>"$LV/libvirt-host.log" 2>&1 ||
            log "warning: libvirt-host down $c failed"
    done
    rm -f "$CLOUD/with-qcow2" "$CLOUD/mixed"
    return 0
}

cloud_status() {
    local name pf mark pid rc=0 c
    while read -r name pf mark; do
        if pid=$(pid_of "$pf" "$mark"); then echo "$name up (pid $pid)"; else echo "$name down"; rc=1; fi
    done < <(cloud_daemons)
    for c in $(compute_names); do
        if libvirt_host status "$c" "$LV" >/dev/null 2>&1; then
            echo "libvirt.$c up"
        else
            echo "libvirt.$c down"; rc=1
        fi
    done
    return $rc
}

cloud_token() {  # a project-scoped admin token (valid a day)
    local body
    body='{"auth": {"identity": {"methods": ["password"], "password": {"user":
        {"name": "admin", "password": "'$PW'", "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}'
    curl -sf -o /dev/null -D - -H 'Content-Type: application/json' -d "$body" \
        "$(keystone_url)/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}

cloud_env() {
    cat <<EOF
export FASTCLONE_LAB_CLOUD=1
export FASTCLONE_LAB_CLOUD_VENV=$CVENV
export FASTCLONE_LAB_CLOUD_LOGS=$NOVA/log
export FASTCLONE_LAB_CLOUD_FLAVOR=lab.tiny
export FASTCLONE_LAB_CLOUD_MIXED=$(mixed_wanted && echo 1 || echo 0)
export FASTCLONE_LAB_CLOUD_MIXED_RELEASE=$MIXED_RELEASE
export OS_AUTH_URL=$(keystone_url)
export OS_AUTH_TYPE=password
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$PW
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$REGION
export OS_COMPUTE_API_VERSION=2.95
EOF
}
