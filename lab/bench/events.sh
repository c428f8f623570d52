# shellcheck shell=bash
# Event figures: the outage when the holder dies or hands over, the reload,
# open TCP connections when the VIP moves, the partition heal, the isolated
# holder, false takeovers under loss.
# Sourced by lab/bench.sh, which sets the globals these functions use.

# --- 1 and 2: outage when the holder dies or hands over -----------------------

# outage_run KIND TAG FLAGS...: one run; KIND cut (link cut) or term (SIGTERM).
# Sets RUN_RESULT to the client's longest gap in ms, or "inf" on failure.
outage_run() {
	local kind="$1" tag="$2" json gap last ok=1
	shift 2
	json="$OUT/tmp/$tag.json"
	RUN_RESULT=inf
	if ! pair_up o "$@"; then
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	local live="$OUT/tmp/$tag.live"
	start_client 20s "$json" "$live"
	# A random moment, so the event is not phase-locked to the probes.
	sleep "$(printf '1.%03d' $((500 + RANDOM % 1000)))"
	if [[ "$kind" == cut ]]; then lab cut h1 >/dev/null; else lab stop h1 TERM >/dev/null; fi
	# Until h2 answers (at most 15 s), then 0.5 s more for any flap back.
	wait_until 15 grep -q "responder changed: h1 -> h2" "$live" || true
	sleep 0.5
	stop_client "$CLIENT_PID"
	gap="$(json_field longest_gap_ms "$json")"
	last="$(json_field last_responder "$json")"
	holds h2 "$VIP" || ok=0
	[[ "$last" == h2 ]] || ok=0
	if ((ok)) && [[ "$gap" =~ ^[0-9]+$ ]]; then RUN_RESULT="$gap"; fi
	raw "$tag: longest_gap_ms=$gap last_responder=$last h2_holds=$(holds h2 "$VIP" && echo yes || echo no)" \
		"claims_h2=$(log_count h2 "$CLAIM_RE") summary=$(tr -d '\n' <"$json")"
	lab_done "$tag"
}

# outage_series KEY KIND LABEL TARGET FLAGS...: RUNS runs, one table row.
outage_series() {
	local key="$1" kind="$2" label="$3" target="$4" r
	shift 4
	local -a vals=()
	say "$key: $RUNS runs ($label)"
	for ((r = 1; r <= RUNS; r++)); do
		outage_run "$kind" "$key-r$r" "$@"
		vals+=("$RUN_RESULT")
		say "  $key run $r: $RUN_RESULT ms"
	done
	local med
	med="$(median "${vals[@]}")"
	SERIES_MEDIAN[$key]="$med"
	row_ms "$label" "$med" "$target" "${vals[*]}" "$(count_of inf "${vals[@]}")"
}

measure_outage() {
	outage_series outage-cut cut "Holder death (link cut), defaults" 800
	outage_series outage-cut-20ms cut "Holder death (link cut), --interval 20ms" 100 --interval 20ms
	VIP="$VIP6" outage_series outage-cut-v6 cut "Holder death (link cut), defaults, IPv6 VIP" 800
}

measure_handover() {
	outage_series handover term "Graceful handover (SIGTERM), defaults" 100
	VIP="$VIP6" outage_series handover-v6 term "Graceful handover (SIGTERM), defaults, IPv6 VIP" 100
}

# --- reload: re-executed in place, against a restart ---------------------------

# reload_run KIND TAG: one run on a pair whose daemons run a copy of the
# binary; KIND reload (h1's file replaced by BIN_NEXT, as a package upgrade
# does, then SIGHUP) or restart (SIGTERM, then h1 started again at once).
# Sets RUN_RESULT to the client's longest gap in ms, or "inf" on failure.
reload_run() {
	local kind="$1" tag="$2" json live gap pid ok=1 bin="$OUT/tmp/$2.floatip"
	json="$OUT/tmp/$tag.json" live="$OUT/tmp/$tag.live"
	RUN_RESULT=inf
	cp -- "$BIN" "$bin"
	local shared="$BIN"
	BIN="$bin" # pair_up starts both hosts from the copy
	if ! pair_up o; then
		BIN="$shared"
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	pid="$(daemon_pid h1)"
	start_client 20s "$json" "$live"
	sleep "$(printf '1.%03d' $((500 + RANDOM % 1000)))"
	if [[ "$kind" == reload ]]; then
		cp -- "$BIN_NEXT" "$bin.new" && mv -f -- "$bin.new" "$bin"
		kill -s HUP "$pid"
		wait_until 5 log_has_n h1 'reloaded: taking back' 1 || ok=0
	else
		lab stop h1 TERM >/dev/null
		lab start h1 -- -i eth0 --priority 200 "${EXTRA[@]}" "$VIP" >/dev/null
		wait_until 15 grep -q "responder changed: h1 -> h2" "$live" || ok=0
	fi
	sleep 1
	BIN="$shared"
	stop_client "$CLIENT_PID"
	gap="$(json_field longest_gap_ms "$json")"
	if [[ "$kind" == reload ]]; then
		# Same process, still the holder, and the standby claimed nothing.
		[[ "$(daemon_pid h1)" == "$pid" ]] && kill -0 "$pid" 2>/dev/null || ok=0
		holds h1 "$VIP" || ok=0
		(($(log_count h2 "$CLAIM_RE") == 0)) || ok=0
	fi
	if ((ok)) && [[ "$gap" =~ ^[0-9]+$ ]]; then RUN_RESULT="$gap"; fi
	raw "$tag: longest_gap_ms=$gap ok=$ok claims_h2=$(log_count h2 "$CLAIM_RE") summary=$(tr -d '\n' <"$json")"
	lab_done "$tag"
}

measure_reload() {
	local kind r label target
	for kind in reload restart; do
		local -a vals=()
		if [[ "$kind" == reload ]]; then
			label="Reload of the holder (binary replaced, SIGHUP), defaults" target=30
		else
			label="Restart of the holder (SIGTERM, start again), defaults" target=""
		fi
		say "$kind: $RUNS runs"
		for ((r = 1; r <= RUNS; r++)); do
			reload_run "$kind" "$kind-r$r"
			vals+=("$RUN_RESULT")
			say "  $kind run $r: $RUN_RESULT ms"
		done
		row_ms "$label" "$(median "${vals[@]}")" "$target" "${vals[*]}" "$(count_of inf "${vals[@]}")"
	done
}

# --- 2b: open TCP connections when the VIP moves ---------------------------------

TCP_PORT=7100

# event_field FILE EVENT KEY: a field of the first EVENT line of tcpidle's output.
event_field() {
	local v
	v="$(grep -m 1 "^$2 " "$1" | grep -oE "(^| )$3=[^ ]+" | head -n 1 | cut -d= -f2)" || true
	echo "${v:-?}"
}

# conn_run KIND TAG CLIENT-FLAGS -- FLOATIP-FLAGS...: one run. KIND term
# (SIGTERM on the holder) or cut (its link cut: a holder death). An idle
# client is connected to h1's TCP server on the VIP; then the event.
# Sets CR_ERR (ms from the event to the client's read error, "inf" if the
# read did not fail before the client's own timeout), CR_REQ (ms from the
# event to its first answered request on h2), CR_RST (with
# -send-after-idle: ms from its request on the stale connection to the RST).
conn_run() {
	local kind="$1" tag="$2" out="$OUT/tmp/$2.tcp" h t0 at kind_seen resp
	shift 2
	local -a cflags=()
	while (($# > 0)) && [[ "$1" != -- ]]; do cflags+=("$1") && shift; done
	shift || true
	CR_ERR=inf CR_REQ=inf CR_RST=inf
	if ! pair_up t "$@"; then
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	for h in h1 h2; do
		ip netns exec "$(ns "$h")" "$TCPIDLE" serve -listen "$VIP:$TCP_PORT" -name "$h" >"$OUT/tmp/$tag-$h.srv" 2>&1 &
	done
	for h in h1 h2; do
		if ! wait_until 5 grep -q "serving on" "$OUT/tmp/$tag-$h.srv"; then
			raw "$tag: the TCP server in $h did not start: $(tr '\n' ' ' <"$OUT/tmp/$tag-$h.srv")"
			lab_done "$tag"
			return
		fi
	done
	ip netns exec "$(ns c)" "$TCPIDLE" client -target "$VIP:$TCP_PORT" -idle "${CONN_IDLE}s" -reconnect 15s \
		"${cflags[@]}" >"$out" 2>&1 </dev/null &
	local cpid=$!
	if ! wait_until 5 grep -q '^connected responder=h1' "$out"; then
		raw "$tag: the client did not connect to h1: $(tr '\n' ' ' <"$out")"
		stop_client "$cpid"
		lab_done "$tag"
		return
	fi
	# A random moment, so the event is not phase-locked to the probes.
	sleep "$(printf '0.%03d' $((500 + RANDOM % 500)))"
	tick
	t0=$NOW
	if [[ "$kind" == cut ]]; then lab cut h1 >/dev/null; else kill -s TERM "$(daemon_pid h1)"; fi
	wait_until $((CONN_IDLE + 20)) grep -qE '^(reconnected|reconnect_failed) ' "$out" || true
	stop_client "$cpid"
	kind_seen="$(event_field "$out" read_ended kind)"
	at="$(event_field "$out" read_ended at_ms)"
	if [[ "$kind_seen" == reset && "$at" =~ ^[0-9]+$ ]]; then CR_ERR=$((at - t0)); fi
	resp="$(event_field "$out" reconnected responder)"
	at="$(event_field "$out" reconnected at_ms)"
	if [[ "$resp" == h2 && "$at" =~ ^[0-9]+$ ]]; then CR_REQ=$((at - t0)); fi
	at="$(event_field "$out" request_ended at_ms)"
	local sent
	sent="$(event_field "$out" request_ended sent_ms)"
	if [[ "$(event_field "$out" request_ended kind)" == reset && "$at" =~ ^[0-9]+$ && "$sent" =~ ^[0-9]+$ ]]; then
		CR_RST=$((at - sent))
	fi
	raw "$tag: err_ms=$CR_ERR first_request_on_h2_ms=$CR_REQ stale_request_rst_ms=$CR_RST read_ended=$kind_seen" \
		"h1_reset_log=$(log_count h1 "reset the VIP's TCP connections") client: $(tr '\n' '|' <"$out")"
	lab_done "$tag"
}

# conn_series KEY KIND LABEL CLIENT-FLAGS -- FLOATIP-FLAGS...: RUNS runs;
# sets CS_ERR, CS_REQ, CS_RST to "median|runs|failed" of each figure.
conn_series() {
	local key="$1" kind="$2" label="$3" r
	shift 3
	local -a errs=() reqs=() rsts=()
	say "$key: $RUNS runs ($label)"
	for ((r = 1; r <= RUNS; r++)); do
		conn_run "$kind" "$key-r$r" "$@"
		errs+=("$CR_ERR") reqs+=("$CR_REQ") rsts+=("$CR_RST")
		say "  $key run $r: error after $CR_ERR ms, request on h2 after $CR_REQ ms, stale request RST after $CR_RST ms"
	done
	CS_ERR="$(median "${errs[@]}")|${errs[*]}|$(count_of inf "${errs[@]}")"
	CS_REQ="$(median "${reqs[@]}")|${reqs[*]}|$(count_of inf "${reqs[@]}")"
	CS_RST="$(median "${rsts[@]}")|${rsts[*]}|$(count_of inf "${rsts[@]}")"
}

# conn_row LABEL "median|runs|failed" [NONE-TEXT]: a row; "inf" shows as NONE-TEXT.
conn_row() {
	local med runs failed
	IFS='|' read -r med runs failed <<<"$2"
	if [[ "$med" == inf ]]; then
		row "$1" "${3:-failed}" "${runs//inf/✗}" "" "–"
	else
		row_ms "$1" "$med" "" "$runs" "$failed"
	fi
}

measure_conns() {
	local none="none within the client's own ${CONN_IDLE} s read timeout"
	conn_series conns-on term "reset on" --
	conn_row "Idle TCP client, SIGTERM on the holder: until its read fails (reset)" "$CS_ERR"
	conn_row "Idle TCP client, SIGTERM on the holder: until its first answered request on the new holder" "$CS_REQ"
	conn_series conns-on-fast term "reset on, client dials with a 100 ms timeout" -dial-timeout 100ms --
	conn_row "Same, a client that retries its connect every 100 ms: until its first answered request on the new holder" "$CS_REQ"
	conn_series conns-off term "--no-reset-connections" -- --no-reset-connections
	conn_row "Idle TCP client, SIGTERM, --no-reset-connections: until its read fails" "$CS_ERR" "$none"
	conn_row "Idle TCP client, SIGTERM, --no-reset-connections: until its first answered request on the new holder (after its own timeout)" "$CS_REQ"
	conn_series conns-dead cut "holder death (link cut), client sends after its ${CONN_IDLE} s timeout" -send-after-idle --
	conn_row "Idle TCP client, holder death (link cut): until its read fails" "$CS_ERR" "$none"
	conn_row "Idle TCP client, holder death: its next request on the stale connection until the new holder's RST" "$CS_RST"
}

# --- 3: partition heal ----------------------------------------------------------

# heal_watch: poll every ~10 ms from the heal (HEAL_T0) for at most HEAL_MAX
# s: who holds the VIP, where the client's ARP entry points. Stops once one
# holder with the client pointing at it has lasted STABLE_MS. Sets
# HEAL_SINGLE and HEAL_CLIENT (ms after the heal when the final state began,
# "inf" if not reached), HEAL_SURVIVOR, HEAL_STEPS (state changes).
heal_watch() {
	local trace="$1" a1 a2 mac holder st prev="" t deadline
	local single_since=-1 conv_since=-1 polls=0 began left
	HEAL_STEPS=0 HEAL_SURVIVOR=none
	deadline=$((HEAL_T0 + HEAL_MAX * 1000))
	while :; do
		tick
		t=$((NOW - HEAL_T0))
		a1=0 a2=0
		if holds h1 "$VIP"; then a1=1; fi
		if holds h2 "$VIP"; then a2=1; fi
		mac="$(client_mac)"
		polls=$((polls + 1))
		st="h1=$a1 h2=$a2 client->$mac"
		if [[ "$st" != "$prev" ]]; then
			echo "+${t} ms $st" >>"$trace"
			[[ -z "$prev" ]] || HEAL_STEPS=$((HEAL_STEPS + 1))
			prev="$st"
		fi
		holder=""
		if ((a1 + a2 == 1)); then
			if ((a1)); then holder=h1; else holder=h2; fi
			((single_since >= 0)) || single_since=$t
		else
			single_since=-1
		fi
		if [[ -n "$holder" && "$mac" == "$(mac_of "$holder")" ]]; then
			((conv_since >= 0)) || conv_since=$t
		else
			conv_since=-1
		fi
		((conv_since < 0 || t - conv_since < STABLE_MS)) || break
		((NOW < deadline)) || break
		# The next poll 10 ms after this one began (the polls themselves take
		# several ms: three "ip" commands).
		began=$NOW
		tick
		left=$((began + 10 - NOW))
		((left <= 0)) || sleep "0.$(printf '%03d' "$left")"
	done
	echo "polls=$polls over ${t} ms (one every $((t / (polls > 1 ? polls - 1 : 1))) ms)" >>"$trace"
	HEAL_SURVIVOR="${holder:-none}"
	if ((single_since >= 0)); then HEAL_SINGLE=$single_since; else HEAL_SINGLE=inf; fi
	if ((conv_since >= 0)); then HEAL_CLIENT=$conv_since; else HEAL_CLIENT=inf; fi
}

# heal_run TAG: isolate the holder h1 (carrier stays up: it keeps the VIP),
# let h2 take over and finish its announcements, then heal and watch.
# Client A runs until just before the heal, client B from just before it:
# B's longest gap is the second outage. Sets HR_* results.
heal_run() {
	local tag="$1" ja="$OUT/tmp/$1-a.json" jb="$OUT/tmp/$1-b.json" trace="$OUT/tmp/$1-trace" t_iso pre
	HR_SINGLE=inf HR_CLIENT=inf HR_GAP2=inf HR_GAP1=inf HR_FLIPS=inf HR_NOTE=""
	: >"$trace"
	if ! pair_up h; then
		raw "$tag: setup failed: $PAIR_ERR"
		HR_NOTE="setup failed"
		lab_done "$tag"
		return
	fi
	start_client 120s "$ja" "$OUT/tmp/$tag-a.live"
	local a_pid=$CLIENT_PID
	sleep 1.5
	tick
	t_iso=$NOW
	lab isolate h1 >/dev/null
	if ! wait_until 10 holds h2 "$VIP"; then
		stop_client "$a_pid"
		HR_NOTE="h2 did not claim within 10 s of the isolation"
		raw "$tag: $HR_NOTE"
		lab unisolate h1 >/dev/null
		lab_done "$tag"
		return
	fi
	tick
	echo "isolation: h2 claimed after $((NOW - t_iso)) ms" >>"$trace"
	sleep "$ISO_HOLD"
	pre="h1=$(holds h1 "$VIP" && echo 1 || echo 0) h2=$(holds h2 "$VIP" && echo 1 || echo 0) client->$(client_mac)"
	echo "before heal: $pre" >>"$trace"
	stop_client "$a_pid"
	start_client "$((HEAL_MAX + 10))s" "$jb" "$OUT/tmp/$tag-b.live"
	local b_pid=$CLIENT_PID
	sleep 0.5
	tick
	HEAL_T0=$NOW
	lab unisolate h1 >/dev/null
	tick
	echo "unisolate took $((NOW - HEAL_T0)) ms (the clock starts before it)" >>"$trace"
	heal_watch "$trace"
	sleep 0.5
	stop_client "$b_pid"
	HR_SINGLE=$HEAL_SINGLE HR_CLIENT=$HEAL_CLIENT
	HR_GAP1="$(json_field longest_gap_ms "$ja")"
	HR_GAP2="$(json_field longest_gap_ms "$jb")"
	[[ "$HR_GAP1" =~ ^[0-9]+$ ]] || HR_GAP1=inf
	[[ "$HR_GAP2" =~ ^[0-9]+$ ]] || HR_GAP2=inf
	HR_FLIPS="$(json_changes "$jb")"
	[[ "$pre" == "h1=1 h2=1 "* ]] || HR_NOTE="no split brain formed ($pre)"
	raw "$tag: heal_to_single_ms=$HR_SINGLE heal_to_client_ms=$HR_CLIENT survivor=$HEAL_SURVIVOR" \
		"steps=$HEAL_STEPS second_outage_ms=$HR_GAP2 isolation_outage_ms=$HR_GAP1" \
		"client_b_changes=$HR_FLIPS note='$HR_NOTE'"
	sed 's/^/    /' "$trace" >>"$OUT/runs.log"
	raw "    client B: $(tr -d '\n' <"$jb")"
	if [[ -s "$OUT/tmp/$tag-b.live" ]]; then sed 's/^/    B live: /' "$OUT/tmp/$tag-b.live" >>"$OUT/runs.log"; fi
	raw "    h1 after heal: $(grep -cE 'split brain|conflict' "$(state_dir)/h1.log" || true) split-brain/conflict lines," \
		"h2: $(grep -cE 'split brain|conflict' "$(state_dir)/h2.log" || true)"
	lab_done "$tag"
}

measure_heal() {
	local r
	local -a single=() client=() gap2=() gap1=() flips=() notes=()
	say "heal: $RUNS runs (isolate h1 for ${ISO_HOLD} s after h2's claim, then heal; watch up to ${HEAL_MAX} s)"
	for ((r = 1; r <= RUNS; r++)); do
		heal_run "heal-r$r"
		single+=("$HR_SINGLE") client+=("$HR_CLIENT") gap2+=("$HR_GAP2") gap1+=("$HR_GAP1") flips+=("$HR_FLIPS")
		[[ -z "$HR_NOTE" ]] || notes+=("run $r: $HR_NOTE")
		say "  heal run $r: single holder +$HR_SINGLE ms, client on it +$HR_CLIENT ms, second outage $HR_GAP2 ms ${HR_NOTE:+($HR_NOTE)}"
	done
	row_ms "Partition heal: heal to a single holder" "$(median "${single[@]}")" "" "${single[*]}" "$(count_of inf "${single[@]}")" "$HEAL_MAX"
	row_ms "Partition heal: heal to the client on that holder" "$(median "${client[@]}")" "" "${client[*]}" "$(count_of inf "${client[@]}")" "$HEAL_MAX"
	row_ms "Partition heal: second outage (longest gap after the heal; > 50 ms is an outage)" "$(median "${gap2[@]}")" 50 "${gap2[*]}" "$(count_of inf "${gap2[@]}")"
	row "Partition heal: changes of the answering host seen by the client after the heal" \
		"$(median "${flips[@]}")" "${flips[*]//inf/✗}" "" "–"
	row_ms "Partition start: outage until the standby took over" "$(median "${gap1[@]}")" "" "${gap1[*]}" 0
	if ((${#notes[@]} > 0)); then NOTES+=("heal: ${notes[*]}"); fi
}

# --- 3b: isolated holder ----------------------------------------------------------

REF=192.0.2.100 # the client: the reference host of the isolated runs

# isolated_run TAG: a pair with the client as reference host; isolate the
# holder h1 (carrier up) at a random moment, time h2's claim and h1's
# release, heal 1 s after the release and count the client's moves. Sets
# IR_CLAIM, IR_DROP (ms after the cut, "inf" if not within 15 s), IR_MOVES.
isolated_run() {
	local tag="$1" json="$OUT/tmp/$1.json" t0
	IR_CLAIM=inf IR_DROP=inf IR_MOVES=inf
	if ! pair_up i "--reference=$REF"; then
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	start_client 40s "$json"
	sleep "$(printf '1.%03d' $((500 + RANDOM % 1000)))"
	tick
	t0=$NOW
	lab isolate h1 >/dev/null
	if wait_until 15 holds h2 "$VIP"; then
		tick
		IR_CLAIM=$((NOW - t0))
	fi
	if wait_until 15 eval '! holds h1 "$VIP"'; then
		tick
		IR_DROP=$((NOW - t0))
	fi
	sleep 1
	lab unisolate h1 >/dev/null
	sleep 3
	stop_client "$CLIENT_PID"
	IR_MOVES="$(json_changes "$json")"
	raw "$tag: claim_ms=$IR_CLAIM release_ms=$IR_DROP client_moves=$IR_MOVES" \
		"claims_h1=$(log_count h1 "$CLAIM_RE") claims_h2=$(log_count h2 "$CLAIM_RE")" \
		"h1_holds=$(holds h1 "$VIP" && echo yes || echo no) h2_holds=$(holds h2 "$VIP" && echo yes || echo no)" \
		"summary=$(tr -d '\n' <"$json")"
	lab_done "$tag"
}

measure_isolated() {
	local r
	local -a claim=() drop=() moves=()
	say "isolated: $RUNS runs (reference host $REF; isolate the holder, heal 1 s after it released)"
	for ((r = 1; r <= RUNS; r++)); do
		isolated_run "isolated-r$r"
		claim+=("$IR_CLAIM") drop+=("$IR_DROP") moves+=("$IR_MOVES")
		say "  isolated run $r: standby claimed +$IR_CLAIM ms, isolated holder released +$IR_DROP ms, client moves $IR_MOVES"
	done
	row_ms "Isolated holder (reference host): standby took over, after the cut" "$(median "${claim[@]}")" "" "${claim[*]}" "$(count_of inf "${claim[@]}")" 15
	row_ms "Isolated holder (reference host): cut-off holder released the VIP, after the cut" "$(median "${drop[@]}")" 5000 "${drop[*]}" "$(count_of inf "${drop[@]}")" 15
	local met="**no**"
	[[ "$(median "${moves[@]}")" != 1 ]] || met=yes
	row "Isolated holder (reference host): client moves, cut and heal" "$(median "${moves[@]}")" "${moves[*]//inf/✗}" "1" "$met"
}

# --- 4: false takeovers under loss ----------------------------------------------

# loss_run PCT SLOT RESULTFILE: lab $PREFIX-lSLOT, PCT% loss both ways on
# h2's port for LOSS_SECS, a client on the VIP all along. Runs in a subshell.
loss_run() {
	local pct="$1" slot="$2" res="$3" json mon mon_pid from h1from claims appear
	json="$OUT/tmp/loss-$pct.json"
	mon="$OUT/tmp/loss-$pct.addr"
	if ! pair_up "l$slot"; then
		echo "fail fail fail fail setup:$PAIR_ERR" >"$res"
		lab_done "loss-$pct"
		return
	fi
	# Every address the standby gains or loses, timestamped.
	ip -n "$(ns h2)" -ts monitor address >"$mon" 2>/dev/null &
	mon_pid=$!
	from=$(($(log_lines h2) + 1))
	h1from=$(($(log_lines h1) + 1))
	lab loss h2 "$pct" >/dev/null
	start_client "${LOSS_SECS}s" "$json"
	wait "$CLIENT_PID" || true
	lab loss h2 0 >/dev/null
	kill -s TERM "$mon_pid" 2>/dev/null || true
	wait "$mon_pid" 2>/dev/null || true
	claims="$(log_count h2 "$CLAIM_RE" "$from")"
	appear="$(grep -v Deleted "$mon" | grep -cF " $VIP/32" || true)"
	echo "$claims $appear $(json_field longest_gap_ms "$json") $(json_changes "$json")" \
		"h1_split_brain_lines=$(log_count h1 'split brain|conflict' "$h1from")" \
		"h1_released=$(log_count h1 'released VIP' "$h1from")" \
		"h2_claims_aborted=$(log_count h2 'claim aborted' "$from")" >"$res"
	if [[ -s "$mon" ]]; then sed "s/^/    loss-$pct h2 address event: /" "$mon" >"$res.events"; fi
	lab_done "loss-$pct"
}

# loss_batch PCT...: at most two loss runs at once (one lab each), bounded.
loss_batch() {
	local pct pid deadline slot=0
	local -a pids=()
	for pct in "$@"; do
		slot=$((slot + 1))
		loss_run "$pct" "$slot" "$OUT/tmp/loss-$pct.res" >"$OUT/tmp/loss-$pct.out" 2>&1 &
		pids+=("$!")
		BG+=("$!")
	done
	tick
	deadline=$((NOW + (LOSS_SECS + 60) * 1000))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null; do
			tick
			if ((NOW > deadline)); then
				kill -s TERM "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.5
		done
		wait "$pid" 2>/dev/null || true
	done
}

measure_loss() {
	local -a levels
	IFS=, read -ra levels <<<"$LOSS_LEVELS"
	local i pct
	say "loss: ${LOSS_LEVELS//,/% and }% loss both ways on h2's link, ${LOSS_SECS} s each, two labs at a time"
	for ((i = 0; i < ${#levels[@]}; i += 2)); do
		loss_batch "${levels[@]:i:2}"
	done
	for pct in "${levels[@]}"; do
		local claims="?" appear="?" gap="?" changes="?" rest=""
		if [[ -s "$OUT/tmp/loss-$pct.res" ]]; then
			read -r claims appear gap changes rest <"$OUT/tmp/loss-$pct.res"
		else
			rest="no result: $(tail -n 3 "$OUT/tmp/loss-$pct.out" | tr '\n' ' ')"
		fi
		raw "loss-$pct: seconds=$LOSS_SECS claims_by_standby=$claims vip_appearances_on_standby=$appear" \
			"client_longest_gap_ms=$gap client_responder_changes=$changes $rest"
		if [[ -s "$OUT/tmp/loss-$pct.res.events" ]]; then cat "$OUT/tmp/loss-$pct.res.events" >>"$OUT/runs.log"; fi
		say "  loss $pct%: $claims claims, $appear VIP appearances on h2, client longest gap $gap ms"
		local target="" met="–"
		if ((pct == 5)); then
			target="0"
			if [[ "$claims" == 0 && "$appear" == 0 ]]; then met="yes"; elif [[ "$claims" =~ ^[0-9]+$ ]]; then met="**no**"; fi
		fi
		row "False takeovers, ${pct}% loss both ways on the standby, ${LOSS_SECS} s" \
			"$claims claims, $appear VIP appearances" \
			"one window; client: longest gap $gap ms, $changes responder changes" "$target" "$met"
	done
}
