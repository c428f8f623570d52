#!/usr/bin/env bash
# lab.sh - the floatip network-namespace lab: N hosts and a client on one LAN.
#
# Every namespace is named "$FLOATIP_LAB-<x>" (default prefix "floatiplab"):
#   $P-br   bridge br0 (STP off, forward_delay 0); one port per host: h1..hN, c
#   $P-hI   host I: eth0, MAC 02:00:00:00:00:<I in 2 hex digits>, 192.0.2.(10+I)/24,
#           net.ipv4.ip_nonlocal_bind=1
#   $P-c    client: eth0, MAC 02:00:00:00:00:64, 192.0.2.100/24
# The demo's floating IP is 192.0.2.50. IPv6 is disabled in every lab namespace
# so that the LAN carries only ARP and IPv4. The lab creates nothing in the root
# namespace: each veth pair is created inside the bridge namespace with its
# peer directly inside the host's namespace.
#
# State (pid files, logs, binaries): ${TMPDIR:-/tmp}/$FLOATIP_LAB.lab
# Run "lab.sh" with no arguments for the list of subcommands.
set -euo pipefail

P="${FLOATIP_LAB:-floatiplab}"
if [[ ! "$P" =~ ^[a-z0-9-]{1,20}$ ]]; then
	echo "lab.sh: FLOATIP_LAB='$P' must match ^[a-z0-9-]{1,20}\$" >&2
	exit 2
fi
STATE="${TMPDIR:-/tmp}/$P.lab"
BR="$P-br"
CLIENT="$P-c"
VIP="192.0.2.50"
ECHO_PORT=7007
MAX_HOSTS=60
NFT_TABLE="lab"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
	cat >&2 <<EOF
usage: lab.sh COMMAND [ARGS]    (lab prefix: FLOATIP_LAB=$P, state: $STATE)
  up N                      create the bridge, the client and hosts h1..hN (N <= $MAX_HOSTS)
  plug I                    create host I (or add eth0 to an existing empty $P-hI)
  unplug I                  delete host I's veth, keeping its namespace
  ipv6 HOST...              turn IPv6 on for HOST's eth0 (c, h1, ...): 2001:db8::100/64 for c,
                            2001:db8::(10+I)/64 for hI; no DAD, no router solicitations
  cut HOST | heal HOST      set HOST's bridge port (h1, c, ...) down / up: HOST sees NO-CARRIER
  loss HOST PCT             drop PCT% (0-100) of frames both ways on HOST's port; 0 removes it
  isolate HOST | unisolate HOST   drop everything both ways, carrier stays up / undo
  exec NS CMD...            run CMD in $P-NS (NS: br, c, h1, ...)
  start HOST -- ARGS...     start floatip (\$FLOATIP_BIN or $STATE/floatip) in HOST, in the background
  stop HOST [SIGNAL]        signal that daemon (default TERM) and wait for it to exit (5 s at most)
  show                      print the lab: namespaces, addresses, ports, loss rules, daemons
  down                      kill the lab's processes, delete its namespaces and state (idempotent)
  deps                      check for (and on Debian as root, install) ip, nft, ping, tcpdump, arping, ndisc6; check go
  demo                      live failover demo on a 2-host lab (about 30 s), torn down at the end
  test [GO-TEST-FLAGS...]   deps, then "go test -count=1 FLAGS ./..." from the repo root (lab tests
                            need root; with CI set they fail rather than skip), then check that no
                            test lab (fipt-*) was left behind
EOF
}

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

now_ms() { # wall clock in milliseconds, for bounded waits
	local t="${EPOCHREALTIME//[!0-9]/}" # microseconds, whatever the locale's decimal mark
	echo "$((t / 1000))"
}

say() {
	if [[ -t 1 ]]; then
		printf '\n\033[1m==> %s\033[0m\n' "$*"
	else
		printf '\n==> %s\n' "$*"
	fi
}

# --- names and validation ---------------------------------------------------

# our_namespaces prints this lab's namespaces, the bridge first. Only exact
# lab names match, so the lab "floatiplab" never sees "floatiplab-x-h1".
our_namespaces() {
	local list
	list="$(ip netns list 2>/dev/null | awk '{print $1}')" || true
	grep -xE -- "${P}-br" <<<"$list" || true
	grep -xE -- "${P}-(c|h[0-9]+)" <<<"$list" || true
}

ns_exists() {
	[[ -e "/run/netns/$1" ]] || ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF -- "$1"
}

host_index() { # validates I and prints it without leading zeros
	local i="$1"
	[[ "$i" =~ ^[0-9]{1,2}$ ]] || die "host index '$i' must be a number 1..$MAX_HOSTS"
	i=$((10#$i))
	((i >= 1 && i <= MAX_HOSTS)) || die "host index $i out of range 1..$MAX_HOSTS"
	echo "$i"
}

host_mac() { printf '02:00:00:00:00:%02x' "$1"; }
host_ip() { echo "192.0.2.$((10 + $1))"; }

short_ns() { # validates a short namespace name (br, c, hI)
	[[ "$1" =~ ^(br|c|h[1-9][0-9]?)$ ]] || die "unknown namespace '$1' (use br, c, h1, h2, ...)"
	echo "$P-$1"
}

port_of() { # HOST (h1, c) -> bridge port name, which must exist
	local host="$1"
	[[ "$host" =~ ^(c|h[1-9][0-9]?)$ ]] || die "unknown host '$host' (use c, h1, h2, ...)"
	ns_exists "$BR" || die "lab '$P' does not exist (run: lab.sh up N)"
	ip -n "$BR" link show dev "$host" >/dev/null 2>&1 || die "no bridge port '$host' in $BR (not plugged?)"
	echo "$host"
}

need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "'$t' not found (run: lab.sh deps)"
	done
	[[ $EUID -eq 0 ]] || die "must run as root (network namespaces)"
}

# --- namespace plumbing -----------------------------------------------------

# nsysctl NS path/under/proc/sys VALUE; ipv6 keys are skipped when IPv6 is absent.
nsysctl() {
	local ns="$1" key="$2" val="$3"
	if [[ "$key" == net/ipv6/* ]]; then
		ip netns exec "$ns" sh -c "[ ! -e /proc/sys/$key ] || echo $val >/proc/sys/$key"
	else
		ip netns exec "$ns" sh -c "echo $val >/proc/sys/$key"
	fi
}

setup_ns() { # create (if absent) and prepare a namespace: lo up, no IPv6
	local ns="$1"
	ns_exists "$ns" || ip netns add "$ns"
	nsysctl "$ns" net/ipv6/conf/all/disable_ipv6 1
	nsysctl "$ns" net/ipv6/conf/default/disable_ipv6 1
	ip -n "$ns" link set lo up
}

make_bridge() {
	setup_ns "$BR"
	ip -n "$BR" link add br0 type bridge stp_state 0 forward_delay 0
	ip -n "$BR" link set br0 up
}

# add_port SHORT MAC CIDR: veth "SHORT" on br0 <-> eth0 in $P-SHORT.
add_port() {
	local short="$1" mac="$2" cidr="$3" ns="$P-$1"
	if ip -n "$ns" link show dev eth0 >/dev/null 2>&1; then
		die "$ns already has eth0 (already plugged)"
	fi
	if ip -n "$BR" link show dev "$short" >/dev/null 2>&1; then
		die "bridge port '$short' already exists in $BR"
	fi
	ip -n "$BR" link add "$short" type veth peer name eth0 netns "$ns"
	nsysctl "$ns" net/ipv6/conf/eth0/disable_ipv6 1
	nsysctl "$BR" net/ipv6/conf/"$short"/disable_ipv6 1
	ip -n "$ns" link set dev eth0 address "$mac"
	ip -n "$ns" addr add "$cidr" dev eth0
	ip -n "$BR" link set dev "$short" master br0
	ip -n "$BR" link set dev "$short" up
	ip -n "$ns" link set dev eth0 up
}

plug_host() {
	local i="$1" ns="$P-h$1"
	setup_ns "$ns"
	nsysctl "$ns" net/ipv4/ip_nonlocal_bind 1
	add_port "h$i" "$(host_mac "$i")" "$(host_ip "$i")/24"
}

plug_client() {
	setup_ns "$CLIENT"
	add_port c 02:00:00:00:00:64 192.0.2.100/24
}

# --- loss and isolation (nftables in the bridge namespace) -------------------
#
# Per port PORT, up to four base chains in table "$NFT_TABLE":
#   loss_in_PORT / iso_in_PORT    netdev ingress on PORT: frames from the host
#   loss_out_PORT / iso_out_PORT  netdev egress on PORT: frames towards the host
#                                 (bridge-family forward chain with oifname PORT
#                                 when the kernel has no netdev egress hook)

nft_br() { ip netns exec "$BR" nft "$@"; }

egress_supported() {
	[[ -z "${FLOATIP_LAB_NO_EGRESS:-}" ]] || return 1
	nft_br -f - >/dev/null 2>&1 <<-EOF
		add table netdev labprobe
		add chain netdev labprobe e { type filter hook egress device "br0" priority 0; policy accept; }
		delete table netdev labprobe
	EOF
}

del_chain() { # family chain; silently absent
	if nft_br list chain "$1" "$NFT_TABLE" "$2" >/dev/null 2>&1; then
		nft_br delete chain "$1" "$NFT_TABLE" "$2"
	fi
}

clear_drops() { # kind(loss|iso) port
	local fam
	for fam in netdev bridge; do
		del_chain "$fam" "${1}_in_$2"
		del_chain "$fam" "${1}_out_$2"
	done
}

set_drops() { # kind(loss|iso) port pct(1..100)
	local kind="$1" port="$2" pct="$3" verdict
	if ((pct >= 100)); then
		verdict="counter drop"
	else
		verdict="numgen random mod 100 < $pct counter drop"
	fi
	clear_drops "$kind" "$port"
	if egress_supported; then
		nft_br -f - <<-EOF
			add table netdev $NFT_TABLE
			add chain netdev $NFT_TABLE ${kind}_in_$port { type filter hook ingress device "$port" priority 0; policy accept; }
			add rule netdev $NFT_TABLE ${kind}_in_$port $verdict
			add chain netdev $NFT_TABLE ${kind}_out_$port { type filter hook egress device "$port" priority 0; policy accept; }
			add rule netdev $NFT_TABLE ${kind}_out_$port $verdict
		EOF
	else
		nft_br -f - <<-EOF
			add table netdev $NFT_TABLE
			add chain netdev $NFT_TABLE ${kind}_in_$port { type filter hook ingress device "$port" priority 0; policy accept; }
			add rule netdev $NFT_TABLE ${kind}_in_$port $verdict
			add table bridge $NFT_TABLE
			add chain bridge $NFT_TABLE ${kind}_out_$port { type filter hook forward priority 0; policy accept; }
			add rule bridge $NFT_TABLE ${kind}_out_$port oifname "$port" $verdict
		EOF
	fi
}

# --- processes --------------------------------------------------------------

pid_alive() { # running (not a zombie)
	local stat
	[[ "$1" =~ ^[0-9]+$ ]] || return 1
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }"
	[[ "${stat:0:1}" != Z ]]
}

pid_in_lab() { # the process lives in one of this lab's namespaces
	local ns
	pid_alive "$1" || return 1
	ns="$(ip netns identify "$1" 2>/dev/null)" || return 1
	[[ "$ns" =~ ^${P}-(br|c|h[0-9]+)$ ]]
}

wait_gone() { # seconds pid...; true when all are gone
	local secs="$1" pid left deadline
	shift
	deadline=$(($(now_ms) + secs * 1000))
	while :; do
		left=0
		for pid in "$@"; do
			if pid_alive "$pid"; then left=1; fi
		done
		((left)) || return 0
		(($(now_ms) < deadline)) || return 1
		sleep 0.05
	done
}

# start_bg NAME NS BIN ARGS...: NAME.log and NAME.pid in $STATE; prints the pid.
start_bg() {
	local name="$1" ns="$2" bin="$3" pid want deadline
	shift 3
	[[ -x "$bin" ]] || die "$bin is not an executable"
	ns_exists "$ns" || die "namespace $ns does not exist"
	if [[ -f "$STATE/$name.pid" ]] && pid_in_lab "$(cat "$STATE/$name.pid")"; then
		die "$name is already running (pid $(cat "$STATE/$name.pid"))"
	fi
	mkdir -p "$STATE"
	# "ip netns exec" execs the command (no fork), so $! becomes its pid.
	ip netns exec "$ns" "$bin" "$@" </dev/null >>"$STATE/$name.log" 2>&1 &
	pid=$!
	want="$(readlink -f "$bin")"
	deadline=$(($(now_ms) + 5000))
	until [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == "$want"* ]]; do
		pid_alive "$pid" || die "$name ($bin) exited at once; log: $STATE/$name.log"
		(($(now_ms) < deadline)) || die "pid $pid did not become $bin within 5 s"
		sleep 0.01
	done
	echo "$pid" >"$STATE/$name.pid"
	echo "$pid"
}

stop_bg() { # name [signal]
	local name="$1" sig="${2:-TERM}" pid
	[[ "$name" =~ ^[a-z0-9-]+$ ]] || die "bad name '$name'"
	if [[ ! -f "$STATE/$name.pid" ]]; then
		echo "lab.sh: $name: no pid file, not running" >&2
		return 0
	fi
	pid="$(cat "$STATE/$name.pid")"
	if ! pid_in_lab "$pid"; then
		echo "lab.sh: $name (pid $pid) is not running" >&2
		rm -f "$STATE/$name.pid"
		return 0
	fi
	kill -s "$sig" "$pid"
	if ! wait_gone 5 "$pid"; then
		die "$name (pid $pid) still running 5 s after SIG$sig"
	fi
	rm -f "$STATE/$name.pid"
}

# --- subcommands ------------------------------------------------------------

cmd_up() {
	local n="${1:-}" i prev_trap
	if [[ ! "$n" =~ ^[0-9]{1,2}$ ]] || ((10#$n < 1 || 10#$n > MAX_HOSTS)); then
		die "usage: lab.sh up N (1..$MAX_HOSTS)"
	fi
	n=$((10#$n))
	need_tools ip nft
	if [[ -n "$(our_namespaces)" ]]; then
		die "lab '$P' already exists: $(our_namespaces | tr '\n' ' ')(run: FLOATIP_LAB=$P lab.sh down)"
	fi
	if ((n >= 40)); then
		echo "lab.sh: warning: host 40 has address 192.0.2.50, the demo's VIP: pick another VIP" >&2
	fi
	# From here on a failure removes whatever was created (the demo's own
	# EXIT trap, if any, is put back afterwards).
	prev_trap="$(trap -p EXIT)"
	trap 'rc=$?; if ((rc != 0)); then echo "lab.sh: up failed, removing the partial lab" >&2; cmd_down; fi' EXIT
	mkdir -p "$STATE"
	make_bridge
	plug_client
	for ((i = 1; i <= n; i++)); do
		plug_host "$i"
	done
	if [[ -n "$prev_trap" ]]; then eval "$prev_trap"; else trap - EXIT; fi
	echo "lab '$P' up: client 192.0.2.100, hosts $(host_ip 1)..$(host_ip "$n"), VIP $VIP"
}

cmd_plug() {
	local i
	i="$(host_index "${1:-}")"
	need_tools ip
	ns_exists "$BR" || die "lab '$P' does not exist (run: lab.sh up N)"
	plug_host "$i"
}

cmd_unplug() {
	local i port
	i="$(host_index "${1:-}")"
	port="$(port_of "h$i")"
	clear_drops loss "$port"
	clear_drops iso "$port"
	ip -n "$BR" link del dev "$port"
}

cmd_loss() {
	local port pct="${2:-}"
	port="$(port_of "${1:-}")"
	if [[ ! "$pct" =~ ^[0-9]{1,3}$ ]] || ((10#$pct > 100)); then
		die "usage: lab.sh loss HOST PCT (0..100)"
	fi
	pct=$((10#$pct))
	need_tools nft
	if ((pct == 0)); then
		clear_drops loss "$port"
	else
		set_drops loss "$port" "$pct"
	fi
}

cmd_exec() {
	local ns
	ns="$(short_ns "${1:-}")"
	shift
	(($# > 0)) || die "usage: lab.sh exec NS CMD..."
	ns_exists "$ns" || die "namespace $ns does not exist"
	exec ip netns exec "$ns" "$@"
}

cmd_start() {
	local host="${1:-}" ns bin
	ns="$(short_ns "$host")"
	shift || true
	[[ "${1:-}" == "--" ]] || die "usage: lab.sh start HOST -- FLOATIP-ARGS..."
	shift
	bin="${FLOATIP_BIN:-$STATE/floatip}"
	start_bg "$host" "$ns" "$bin" "$@" >/dev/null
	echo "started $bin in $ns: pid $(cat "$STATE/$host.pid"), log $STATE/$host.log"
}

cmd_stop() {
	short_ns "${1:-}" >/dev/null
	stop_bg "$1" "${2:-TERM}"
}

cmd_down() {
	local f pid ns
	local -a pids=() nss=()
	mapfile -t nss < <(our_namespaces)
	# 1. processes from our pid files, but only if they still live in our namespaces
	if [[ -d "$STATE" ]]; then
		for f in "$STATE"/*.pid; do
			[[ -f "$f" ]] || continue
			pid="$(cat "$f" 2>/dev/null || true)"
			if pid_in_lab "$pid"; then pids+=("$pid"); fi
		done
	fi
	# 2. anything else running inside our namespaces
	for ns in "${nss[@]}"; do
		while read -r pid; do
			if [[ "$pid" =~ ^[0-9]+$ ]]; then pids+=("$pid"); fi
		done < <(ip netns pids "$ns" 2>/dev/null || true)
	done
	if ((${#pids[@]} > 0)); then
		kill -s TERM "${pids[@]}" 2>/dev/null || true
		if ! wait_gone 3 "${pids[@]}"; then
			for pid in "${pids[@]}"; do
				if pid_alive "$pid"; then kill -s KILL "$pid" 2>/dev/null || true; fi
			done
			wait_gone 2 "${pids[@]}" || echo "lab.sh: warning: some lab processes survived SIGKILL" >&2
		fi
	fi
	# 3. namespaces (the bridge first: that deletes every veth pair) and state
	for ns in "${nss[@]}"; do
		ip netns del "$ns" 2>/dev/null || echo "lab.sh: warning: could not delete $ns" >&2
	done
	rm -rf -- "$STATE"
}

cmd_show() {
	local ns
	ns_exists "$BR" || die "lab '$P' does not exist"
	echo "lab '$P' (state $STATE)"
	local f pid
	while read -r ns; do
		[[ "$ns" == "$BR" ]] && continue
		printf '%-24s ' "$ns"
		ip -n "$ns" -br -4 addr show dev eth0 2>/dev/null | tr -s ' ' || echo "(no eth0)"
	done < <(our_namespaces)
	echo "bridge ports:"
	ip -n "$BR" -br link show master br0 | sed 's/^/  /'
	if nft_br list table netdev "$NFT_TABLE" >/dev/null 2>&1 || nft_br list table bridge "$NFT_TABLE" >/dev/null 2>&1; then
		echo "drop rules:"
		nft_br list ruleset | sed 's/^/  /'
	fi
	if [[ -d "$STATE" ]]; then
		for f in "$STATE"/*.pid; do
			[[ -f "$f" ]] || continue
			pid="$(cat "$f")"
			if pid_in_lab "$pid"; then
				echo "running: $(basename "$f" .pid) pid $pid"
			fi
		done
	fi
}

# find_go, need_go and install_packages.
# shellcheck source=lab/tools.sh
source "$REPO/lab/tools.sh"

cmd_deps() {
	local -a pkgs=()
	command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
	command -v nft >/dev/null 2>&1 || pkgs+=(nftables)
	command -v ping >/dev/null 2>&1 || pkgs+=(iputils-ping)
	# The tests compare floatip's frames with iputils arping's, captured by tcpdump.
	command -v tcpdump >/dev/null 2>&1 || pkgs+=(tcpdump)
	arping -V 2>&1 | grep -q iputils || pkgs+=(iputils-arping)
	# The IPv6 tests check floatip's answers against ndisc6's.
	command -v ndisc6 >/dev/null 2>&1 || pkgs+=(ndisc6)
	if ((${#pkgs[@]} > 0)); then
		install_packages lab.sh "${pkgs[@]}"
		local t
		for t in ip nft ping tcpdump arping ndisc6; do
			command -v "$t" >/dev/null 2>&1 || die "'$t' still not found after installing ${pkgs[*]}"
		done
	fi
	need_go
	echo "deps ok: $(command -v ip) $(command -v nft) $(command -v ping) $(command -v tcpdump) $(command -v arping) $(command -v ndisc6) $(command -v go)"
}

# test_labs_left prints namespaces of Go test labs (fipt-PID-N-*) whose test
# process is gone.
test_labs_left() {
	local ns pid
	while read -r ns; do
		if [[ "$ns" =~ ^fipt-([0-9]+)-[0-9]+-(br|c|h[0-9]+)$ ]]; then
			pid="${BASH_REMATCH[1]}"
			if ! kill -0 "$pid" 2>/dev/null; then echo "$ns"; fi
		fi
	done < <(ip netns list 2>/dev/null | awk '{print $1}')
}

cmd_test() {
	local rc=0 left
	cmd_deps
	cd "$REPO"
	go test -count=1 "$@" ./... || rc=$?
	if [[ $EUID -eq 0 ]]; then
		left="$(test_labs_left)"
		if [[ -n "$left" ]]; then
			echo "lab.sh: test labs left behind: $(tr '\n' ' ' <<<"$left")" >&2
			local p
			while read -r p; do
				FLOATIP_LAB="$p" bash "$REPO/lab/lab.sh" down || true
			done < <(sed -E 's/-(br|c|h[0-9]+)$//' <<<"$left" | sort -u)
			((rc != 0)) || rc=1
		fi
	fi
	return "$rc"
}

# --- demo (lab/demo.sh) -----------------------------------------------------

# shellcheck source=lab/demo.sh
source "$REPO/lab/demo.sh"

main() {
	local cmd="${1:-}"
	shift || true
	case "$cmd" in
	up) cmd_up "$@" ;;
	plug) cmd_plug "$@" ;;
	unplug) cmd_unplug "$@" ;;
	ipv6) cmd_ipv6 "$@" ;;
	cut) cmd_cut_heal "${1:-}" down ;;
	heal) cmd_cut_heal "${1:-}" up ;;
	loss) cmd_loss "$@" ;;
	isolate) cmd_isolate "${1:-}" on ;;
	unisolate) cmd_isolate "${1:-}" off ;;
	exec) cmd_exec "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	show) cmd_show ;;
	down) cmd_down ;;
	deps) cmd_deps ;;
	demo) cmd_demo ;;
	test) cmd_test "$@" ;;
	-h | --help | help)
		usage
		exit 0
		;;
	*)
		usage
		exit 2
		;;
	esac
}

main "$@"
