# shellcheck shell=bash
# Pool mode (--spread): a host's share failing over, and coming back.
# Sourced by lab/bench.sh, which sets the globals these functions use.

# --- 8: pool mode (--spread) -------------------------------------------------------

POOL_HOSTS=5
POOL_VIPS=64

# pool_vips_of HOST: the pool's VIPs on HOST's eth0, one a line.
pool_vips_of() {
	ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null |
		grep -oE "inet $SCALE_NET\.[0-9]+/32" | sed -e 's/^inet //' -e 's#/32##' || true
}

# pool_balanced HOST...: every pool VIP held once, each of HOSTS holding
# floor(M/N) or ceil(M/N).
pool_balanced() {
	local h n total=0 lo hi all
	lo=$((POOL_VIPS / $#)) hi=$(((POOL_VIPS + $# - 1) / $#))
	all="$(for h in "$@"; do pool_vips_of "$h"; done)"
	[[ "$(sort -u <<<"$all" | grep -c .)" == "$POOL_VIPS" ]] || return 1
	for h in "$@"; do
		n="$(pool_vips_of "$h" | grep -c .)" || true
		((n >= lo && n <= hi)) || return 1
		total=$((total + n))
	done
	((total == POOL_VIPS))
}

# pool_clients TAG SECS VIP...: one udpecho client per VIP (every 10 ms) in
# the background; sets POOL_PIDS, the summaries in $OUT/tmp/TAG-VIP.json.
pool_clients() {
	local tag="$1" secs="$2" v
	shift 2
	POOL_PIDS=()
	for v in "$@"; do
		ip netns exec "$(ns c)" "$UDPECHO" client -target "$v:$PORT" -every 10ms -duration "${secs}s" -json \
			>"$OUT/tmp/$tag-$v.json" 2>/dev/null </dev/null &
		POOL_PIDS+=($!)
	done
}

# pool_worst_gap TAG DIR VIP...: the worst outage at the move of each
# client's VIP: the gap before its first change away from h1 (DIR from) or
# its last change to h1 (DIR to); "inf" when a client saw no such change.
pool_worst_gap() {
	local tag="$1" dir="$2" v g worst=0
	shift 2
	for v in "$@"; do
		g="$(grep -oE "\"$dir\":\"h1\"[^}]*\"gap_ms\":[0-9]+" "$OUT/tmp/$tag-$v.json" |
			{ if [[ "$dir" == from ]]; then head -n 1; else tail -n 1; fi; } | grep -oE '[0-9]+$')" || true
		[[ "$g" =~ ^[0-9]+$ ]] || {
			echo inf
			return
		}
		((g <= worst)) || worst=$g
	done
	echo "$worst"
}

# pool_run TAG: POOL_HOSTS hosts with --spread over POOL_VIPS VIPs; one
# client per VIP of h1; cut h1's link (a death), then bring it back. Sets
# PR_FAIL (the worst client outage at the death: until the last of h1's VIPs
# answers again) and PR_MOVE (the worst outage as h1 takes its share back
# after the hold-down: a planned move), "inf" when it did not happen. The
# outage of a move is the gap between a client's last answer from the old
# holder and its first from the new one (udpecho's gap_ms of that change).
pool_run() {
	local tag="$1" i h v
	local -a hosts=() mine=()
	PR_FAIL=inf PR_MOVE=inf
	lab_new p "$POOL_HOSTS"
	ip -n "$(ns c)" route add "$SCALE_NET.0/24" dev eth0
	for ((i = 1; i <= POOL_HOSTS; i++)); do
		hosts+=("h$i")
		lab start "h$i" -- -i eth0 --spread "${EXTRA[@]}" "$SCALE_NET.1-$SCALE_NET.$POOL_VIPS" >/dev/null
	done
	if ! wait_until 30 pool_balanced "${hosts[@]}"; then
		raw "$tag: the pool did not balance within 30 s"
		lab_done "$tag"
		return
	fi
	mapfile -t mine < <(pool_vips_of h1)
	for h in "${hosts[@]}"; do
		for v in "${mine[@]}"; do
			ip netns exec "$(ns "$h")" "$UDPECHO" serve -listen "$v:$PORT" -name "$h" >/dev/null 2>&1 &
		done
	done
	sleep 1
	pool_clients "$tag-fail" 8 "${mine[@]}"
	sleep "$(printf '2.%03d' $((RANDOM % 1000)))"
	lab cut h1 >/dev/null
	wait_until 10 pool_balanced "${hosts[@]:1}" || true
	for i in "${POOL_PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
	PR_FAIL="$(pool_worst_gap "$tag-fail" from "${mine[@]}")"
	# Back: h1 holds nothing during its hold-down, then takes its share.
	pool_clients "$tag-move" 14 "${mine[@]}"
	sleep 1
	lab heal h1 >/dev/null
	wait_until 12 holds_all h1 "${mine[@]}" || true
	for i in "${POOL_PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
	PR_MOVE="$(pool_worst_gap "$tag-move" to "${mine[@]}")"
	pool_balanced "${hosts[@]}" || PR_MOVE=inf
	raw "$tag: h1 held ${#mine[@]} VIPs; share failover (worst client gap) $PR_FAIL ms; planned move back (worst gap) $PR_MOVE ms"
	lab_done "$tag"
}

measure_pool() {
	local r
	local -a fail=() move=()
	say "pool: $RUNS runs ($POOL_HOSTS hosts x $POOL_VIPS VIPs with --spread; cut one host, then bring it back)"
	for ((r = 1; r <= RUNS; r++)); do
		pool_run "pool-r$r"
		fail+=("$PR_FAIL") move+=("$PR_MOVE")
		say "  pool run $r: share failover $PR_FAIL ms, planned move $PR_MOVE ms"
	done
	row_ms "Pool ($POOL_HOSTS x $POOL_VIPS VIPs, --spread): a host dies, until the last of its VIPs answers again (worst client outage)" \
		"$(median "${fail[@]}")" 733 "${fail[*]}" "$(count_of inf "${fail[@]}")"
	row_ms "Pool: the host comes back, its share moves to it after the hold-down (worst client outage at the move, make before break)" \
		"$(median "${move[@]}")" 100 "${move[*]}" "$(count_of inf "${move[@]}")"
}

measure_size() {
	local bytes met="**no**"
	bytes="$(stat -c %s "$BIN")"
	((bytes > 11000000)) || met=yes
	row "Static binary size (CGO_ENABLED=0, -trimpath, -s -w)" \
		"$(awk -v b="$bytes" 'BEGIN { printf "%.2f MB", b / 1e6 }') ($bytes bytes)" "–" "≤ 11 MB" "$met"
	raw "binary: $BIN $bytes bytes${BIN_NOTE:+ ($BIN_NOTE)}"
}
