#!/usr/bin/env bash
# outage.sh - measure the outage a client sees when the VIP moves.
#
#   lab/outage.sh [-n RUNS] [-s cut|term] [-- FLOATIP_FLAGS...]
#
# Each run builds a fresh 2-host lab, starts floatip on h1 (priority 200)
# and h2 (default priority) with FLOATIP_FLAGS, lets a client in its own
# namespace send a UDP request to the VIP every 10 ms, and then either cuts
# h1's link (-s cut, the default: the holder dies) or sends h1 SIGTERM
# (-s term: a graceful handover). The outage is the longest gap between two
# answered requests, as the client saw it. Prints every run and the median.
# Needs root. Example:  lab/outage.sh -n 5 -- --interval 20ms
set -euo pipefail

runs=5
scenario="cut"
while getopts "n:s:h" opt; do
	case "$opt" in
	n) runs="$OPTARG" ;;
	s) scenario="$OPTARG" ;;
	*)
		sed -n '2,13p' "$0" >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 1 && "$runs" -le 100 ]] || {
	echo "outage.sh: -n takes 1..100" >&2
	exit 2
}
[[ "$scenario" == cut || "$scenario" == term ]] || {
	echo "outage.sh: -s takes cut or term" >&2
	exit 2
}
[[ $EUID -eq 0 ]] || {
	echo "outage.sh: needs root (network namespaces)" >&2
	exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export FLOATIP_LAB="fipout-$$"
lab() { bash "$here/lab.sh" "$@"; }
bin="$(mktemp -d)"
trap 'lab down >/dev/null 2>&1 || true; rm -rf "$bin"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

lab deps >/dev/null
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin/floatip" . && go build -o "$bin/udpecho" ./lab/udpecho)
export FLOATIP_BIN="$bin/floatip"
vip=192.0.2.50
state="${TMPDIR:-/tmp}/$FLOATIP_LAB.lab"

# wait_until SECONDS CMD...: run CMD every 20 ms until it succeeds (bounded).
wait_until() {
	local limit=$(($1 * 50)) i=0
	shift
	until "$@" >/dev/null 2>&1; do
		((++i < limit)) || return 1
		sleep 0.02
	done
}
holds() { ip -n "$FLOATIP_LAB-$1" -4 addr show dev eth0 | grep -qF " $vip/32"; }

gaps=()
for ((r = 1; r <= runs; r++)); do
	lab up 2 >/dev/null
	for h in h1 h2; do
		ip netns exec "$FLOATIP_LAB-$h" "$bin/udpecho" serve -listen "$vip:7007" -name "$h" >/dev/null 2>&1 &
	done
	lab start h1 -- -i eth0 --priority 200 "$@" "$vip" >/dev/null
	wait_until 10 holds h1 || {
		echo "run $r: h1 never took the VIP" >&2
		exit 1
	}
	lab start h2 -- -i eth0 "$@" "$vip" >/dev/null
	wait_until 10 grep -q "VIP is held" "$state/h2.log" || {
		echo "run $r: h2 never saw the holder" >&2
		exit 1
	}
	ip netns exec "$FLOATIP_LAB-c" "$bin/udpecho" client -target "$vip:7007" -every 10ms -duration 5s -json >"$bin/summary.json" &
	client=$!
	# A random moment, so the cut is not phase-locked to the probes.
	sleep "$(printf '2.%03d' $((RANDOM % 1000)))"
	if [[ "$scenario" == cut ]]; then
		lab cut h1
	else
		lab stop h1 TERM >/dev/null
	fi
	wait "$client"
	holds h2 || {
		echo "run $r: h2 does not hold the VIP at the end" >&2
		exit 1
	}
	gap="$(grep -oE '"longest_gap_ms":[0-9.]+' "$bin/summary.json" | cut -d: -f2)"
	last="$(grep -oE '"last_responder":"[^"]*"' "$bin/summary.json" | cut -d'"' -f4)"
	echo "run $r: longest gap ${gap} ms, last answer from ${last}"
	gaps+=("$gap")
	lab down >/dev/null
done
median="$(printf '%s\n' "${gaps[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')"
echo "scenario=$scenario flags='$*' runs=$runs median_outage_ms=$median min=$(printf '%s\n' "${gaps[@]}" | sort -g | head -1) max=$(printf '%s\n' "${gaps[@]}" | sort -g | tail -1)"
