#!/usr/bin/env bash
# The data-path race: guestabi-net against DPDK testpmd's vhost PMD (net_vhost0), each as the
# vhost-user back-end of the SAME front-end, DPDK testpmd's virtio_user, on the same cores.
# Prints Mpps per run and, per direction and frame size, the medians and the median of the
# per-round ratios. A benchmark, not a test.
#
#   bench/race-dpdk.sh [-b BUILD] [-t SECONDS] [-w SECONDS] [-r ROUNDS] [-s 64,1500]
#                      [-d tx,rx] [-f DEVARGS | -F CONFIGS] [-m MODE] [-c gabi|dpdk [-o DIR]]
#
#   tx   guest TX -> back-end: front-end txonly; guestabi-net --sink, testpmd rxonly
#   rx   back-end -> guest RX: front-end rxonly; guestabi-net --generate SIZE, testpmd txonly
#
# Each back-end polls CPU 1 (guestabi-net under taskset; testpmd's forwarding lcore 1); the
# front-end's forwarding lcore is CPU 0 (its main lcore, which only waits on its command
# FIFO, sits on CPU 1). Both back-ends get the same front-end command line, the same number of
# mbufs, the same warm-up and measuring windows; a round runs them ABBA (then BAAB), and its
# ratio is the mean of guestabi-net's two runs over the mean of DPDK's. The figure is the
# front-end's own: testpmd's "Throughput (since last show)" over the measuring window, after
# the warm-up. -f appends virtio_user devargs (e.g. ",in_order=0"). -F runs the whole race
# once per front-end configuration, ';'-separated devargs lists, and prints their tables one
# after the other; -F all is the four: split and packed rings (packed_vq), in order and not
# (in_order). With packed_vq=1, -c gabi drives packed rings too (bench_netpath --packed).
# -m picks guestabi-net's mode (default: its newest, upstream.guestabi-net.v4); bench/catalog
# adds bench.guestabi-net.v2-in-order, v2 plus VIRTIO_F_IN_ORDER as DPDK offers it, so that
# the front-end takes the same (in-order) paths with both back-ends.
#
# RACE_PERF=DIR records the front-end's core (CPU 0) with perf over each measuring window, into
# DIR/RUN.BACKEND.DIRECTION.SIZE.perf (perf report -i ...): where the front-end's time goes with
# either back-end.
#
# -c BACKEND counts the back-end's instructions per packet with valgrind --tool=callgrind
# (repeatable where wall-clock figures are not), with the functions that cost most; -o DIR
# keeps the profiles for callgrind_annotate:
#   gabi  build/bench/bench_netpath drives guestabi-net in lock-step (a whole ring posted at
#         once, kick-driven, so no empty passes); collected inside net_port_tx and
#         net_port_generate: the whole data path per packet.
#   dpdk  testpmd's vhost PMD under callgrind, the front-end native (so the back-end is the
#         bottleneck and takes full bursts); collected inside rte_vhost_dequeue_burst (tx) or
#         rte_vhost_enqueue_burst (rx), over the packets its exit statistics count: the vhost
#         library's share only (testpmd's mbuf allocation for txonly, the mbuf frees and the
#         PMD's own code are outside).
# Needs dpdk-testpmd (dpdk-dev, librte-net-vhost23, librte-net-virtio23), 2 CPUs, root.
set -uo pipefail

build=build secs=5 warm=2 rounds=3 sizes=64,1500 dirs=tx,rx fe_extra= mode= cg= cg_out=
configs= args=()
while getopts "b:t:w:r:s:d:f:F:m:c:o:h" o; do
  case $o in
    b) build=$OPTARG ;; t) secs=$OPTARG ;; w) warm=$OPTARG ;; r) rounds=$OPTARG ;;
    s) sizes=$OPTARG ;; d) dirs=$OPTARG ;; f) fe_extra=$OPTARG ;; m) mode=$OPTARG ;;
    c) cg=$OPTARG ;; o) cg_out=$OPTARG ;; F) configs=$OPTARG ;;
    *) sed -n "2,40p" "$0"; [[ $o == h ]] && exit 0; exit 2 ;;
  esac
  [[ $o == F ]] || args+=("-$o" "${OPTARG:-}")
done
if [[ -n $configs ]]; then
  [[ $configs == all ]] &&
    configs=",packed_vq=0,in_order=0;,packed_vq=0,in_order=1;,packed_vq=1,in_order=0;,packed_vq=1,in_order=1"
  IFS=';' read -ra config_list <<<"$configs"
  rc=0
  for c in "${config_list[@]}"; do
    label=${c:-"(none: testpmd's defaults)"}
    echo "=== front-end devargs: $label"
    "$0" "${args[@]}" -f "$c" || rc=$?
  done
  exit $rc
fi
[[ -z $cg || $cg == gabi || $cg == dpdk ]] || { echo "race-dpdk: -c gabi or -c dpdk" >&2; exit 2; }
vg=()
if [[ -n $cg ]]; then
  command -v valgrind >/dev/null || { echo "race-dpdk: no valgrind" >&2; exit 77; }
  [[ $secs == 5 ]] && secs=10
  [[ $warm == 2 ]] && warm=4
fi
net=$build/devices/net/guestabi-net
catalog=$(cd "$(dirname "$0")" && pwd)/catalog   # bench.guestabi-net.v2-in-order
tools=$(cd "$(dirname "$0")/../tools" && pwd)     # net-control.py
command -v dpdk-testpmd >/dev/null || { echo "race-dpdk: no dpdk-testpmd" >&2; exit 77; }
[[ -x $net ]] || { echo "race-dpdk: no $net (build first)" >&2; exit 77; }
[[ $(nproc) -ge 2 ]] || { echo "race-dpdk: needs 2 CPUs" >&2; exit 77; }
export GUESTABI_SYSTEM_CATALOG=

work=$(mktemp -d /tmp/gabi-race-XXXXXX)
pids=() prefixes=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  for x in "${prefixes[@]}"; do rm -rf "/var/run/dpdk/$x"; done
  [[ -n ${RACE_KEEP:-} ]] && echo "race: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {  # wait_for FILE PATTERN TIMEOUT_S
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# gabi_passes CONTROL_SOCKET: guestabi-net's busy-poll passes and idle ones so far ("N M")
gabi_passes() {
  python3 "$tools/net-control.py" "$1" "stats 0" busy_poll.passes busy_poll.idle_passes 2>/dev/null
}

# run_one BACKEND(gabi|dpdk) DIR(tx|rx) SIZE RUN_ID: sets $result to Mpps (or "fail"), and for
# guestabi-net $idle to the share of its busy-poll passes that found nothing to do over the
# measuring window (the part of its core the data path left unused: the front-end's limit)
run_one() {
  local be=$1 dir=$2 size=$3 id=$4 d=$work/$4 be_pid fe_pid fe_mode be_fwd mpps be_in fe_in
  local pre_b=gabirace$$b$id pre_f=gabirace$$f$id p0= p1=
  idle=
  mkdir -p "$d"
  mkfifo "$d/be.in" "$d/fe.in"
  prefixes+=("$pre_b" "$pre_f")
  if [[ $dir == tx ]]; then fe_mode=txonly be_fwd=rxonly; else fe_mode=rxonly be_fwd=txonly; fi
  exec {be_in}<>"$d/be.in" {fe_in}<>"$d/fe.in"
  vg=()
  local fn=rte_vhost_dequeue_burst
  [[ $dir == rx ]] && fn=rte_vhost_enqueue_burst
  [[ -n $cg ]] && vg=(valgrind --tool=callgrind --toggle-collect="$fn" --callgrind-out-file="$d/callgrind.out")
  if [[ $be == gabi ]]; then
    local kind=(--sink)
    [[ $dir == rx ]] && kind=(--generate "$size")
    taskset -c 1 "$net" --catalog "$catalog" --busy-poll ${mode:+--mode "$mode"} --socket "$d/sock" "${kind[@]}" --control "$d/ctl" \
      --ready-fd 3 3>"$d/ready" >"$d/be.log" 2>&1 &
    be_pid=$!
    pids+=("$be_pid")
    wait_for "$d/ready" READY 60 || { result=fail; return; }
  else
    stdbuf -oL "${vg[@]}" dpdk-testpmd -l 0-1 --no-pci --no-huge -m 512 --file-prefix "$pre_b" \
      --vdev "net_vhost0,iface=$d/sock,queues=1" -- --total-num-mbufs=16384 \
      --forward-mode="$be_fwd" --txpkts="$size" --auto-start --stats-period 0 \
      <&"$be_in" >"$d/be.log" 2>&1 &
    be_pid=$!
    pids+=("$be_pid")
    wait_for "$d/be.log" "binding succeeded" 120 || { result=fail; return; }
  fi
  stdbuf -oL dpdk-testpmd -l 0-1 --main-lcore 1 --no-pci --no-huge -m 512 --file-prefix "$pre_f" \
    --vdev "net_virtio_user0,path=$d/sock,queues=1$fe_extra" -- -i --total-num-mbufs=16384 \
    --forward-mode="$fe_mode" --txpkts="$size" --auto-start \
    <&"$fe_in" >"$d/fe.log" 2>&1 &
  fe_pid=$!
  pids+=("$fe_pid")
  if wait_for "$d/fe.log" "Start automatic packet forwarding" 120; then
    sleep "$warm"
    echo "show port stats 0" >&"$fe_in"
    [[ $be == gabi && -z $cg ]] && p0=$(gabi_passes "$d/ctl")
    if [[ -n ${RACE_PERF:-} ]]; then
      perf record -q -C 0 -o "$RACE_PERF/$id.$be.$dir.$size.perf" -- sleep "$secs" >/dev/null 2>&1
    else
      sleep "$secs"
    fi
    echo "show port stats 0" >&"$fe_in"
    [[ $be == gabi && -z $cg ]] && p1=$(gabi_passes "$d/ctl")
    sleep 0.3
  fi
  echo "stop" >&"$fe_in"
  echo "quit" >&"$fe_in"
  timeout 20 tail --pid="$fe_pid" -f /dev/null || kill "$fe_pid" 2>/dev/null
  wait "$fe_pid" 2>/dev/null
  if [[ $be == gabi ]]; then kill -TERM "$be_pid"; else echo >&"$be_in"; fi
  timeout 60 tail --pid="$be_pid" -f /dev/null || kill -KILL "$be_pid" 2>/dev/null
  wait "$be_pid" 2>/dev/null
  exec {be_in}>&- {fe_in}>&-
  rm -rf "/var/run/dpdk/$pre_b" "/var/run/dpdk/$pre_f"
  # the second show: packets per second over the measuring window
  local key=Tx-pps
  [[ $dir == rx ]] && key=Rx-pps
  if [[ -n $cg ]]; then
    cg_report "$d" "$dir" "$be" "$size"
    return
  fi
  mpps=$(grep "$key" "$d/fe.log" | sed -n '2s/.*'"$key"': *\([0-9]*\).*/\1/p')
  if [[ -z $mpps || $mpps == 0 ]]; then
    result=fail
  else
    result=$(awk -v p="$mpps" 'BEGIN{printf "%.2f", p/1e6}')
  fi
  if [[ -n $p0 && -n $p1 ]]; then
    idle=$(awk -v a="$p0" -v b="$p1" 'BEGIN{split(a, x, " "); split(b, y, " ");
      if (y[1] > x[1]) printf "%.0f", 100 * (y[2] - x[2]) / (y[1] - x[1])}')
  fi
}

# cg_top FILE PACKETS: the functions that cost most, per packet
cg_top() {
  callgrind_annotate "$1" 2>/dev/null | awk -v p="$2" '
    /file:function/ {on=1; next}
    on && (/^--/ || /^$/) && n {exit}
    on && NF >= 2 && $1 ~ /^[0-9,]+$/ {v=$1; gsub(",", "", v); if (v/p < 1) exit;
      o=""; f=$NF; if (f ~ /^\[/) {o=f; f=$(NF-1)}; sub(/.*:/, "", f); sub(/.*\//, "", o);
      printf "    %7.1f  %s %s\n", v/p, f, (f ~ /^0x/) ? "[" o : ""; if (++n == 12) exit}'
}

cg_total() { callgrind_annotate "$1" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,; }

# cg_report DIR DIRECTION BACKEND SIZE: the DPDK back-end's figure from its profile and its exit
# statistics; sets $result to instructions per packet
cg_report() {
  local d=$1 dir=$2 be=$3 size=$4 pk ir key=RX-packets
  [[ $dir == rx ]] && key=TX-packets
  pk=$(sed -n 's/.*'"$key"': *\([0-9]*\) .*/\1/p' "$d/be.log" | tail -n 1)
  ir=$(cg_total "$d/callgrind.out")
  if [[ -z $pk || -z $ir || $pk == 0 ]]; then
    result=fail
    return
  fi
  result=$(awk -v i="$ir" -v p="$pk" 'BEGIN{printf "%.0f", i/p}')
  echo "  $be $dir $size B: $pk packets, $ir instructions, $result per packet; most:"
  cg_top "$d/callgrind.out" "$pk"
  [[ -n $cg_out ]] && mkdir -p "$cg_out" && cp "$d/callgrind.out" "$cg_out/callgrind.$be.$dir.$size"
}

# cg_gabi DIRECTION SIZE: guestabi-net's figure through bench_netpath; sets $result
cg_gabi() {
  local dir=$1 size=$2 out=$work/cg.$1.$2 line pk ir
  local packed=()
  [[ $fe_extra == *packed_vq=1* ]] && packed=(--packed)
  line=$("$build/bench/bench_netpath" --"$dir" --size "$size" --rounds 500 --catalog "$catalog" ${mode:+--mode "$mode"} "${packed[@]}" \
    --wrap "valgrind --tool=callgrind --toggle-collect=net_port_tx --toggle-collect=net_port_generate --callgrind-out-file=$out" 2>/dev/null)
  pk=$(echo "$line" | sed -n 's/.*: \([0-9]*\) packets.*/\1/p')
  ir=$(cg_total "$out")
  if [[ -z $pk || -z $ir || $pk == 0 ]]; then
    result=fail
    return
  fi
  result=$(awk -v i="$ir" -v p="$pk" 'BEGIN{printf "%.0f", i/p}')
  echo "  gabi $dir $size B: $pk packets, $ir instructions, $result per packet; most:"
  cg_top "$out" "$pk"
  [[ -n $cg_out ]] && mkdir -p "$cg_out" && cp "$out" "$cg_out/callgrind.gabi.$dir.$size"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "-"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

if [[ -n $cg ]]; then
  echo "callgrind: $cg's instructions per packet (see -h for what is counted)"
  IFS=, read -ra dir_list <<<"$dirs"
  IFS=, read -ra size_list <<<"$sizes"
  id=0 summary=()
  for dir in "${dir_list[@]}"; do
    for size in "${size_list[@]}"; do
      id=$((id + 1))
      if [[ $cg == gabi ]]; then cg_gabi "$dir" "$size"; else run_one "$cg" "$dir" "$size" "$id"; fi
      summary+=("$(printf '%-3s %5s B  %s instructions per packet' "$dir" "$size" "$result")")
    done
  done
  echo "$cg under callgrind:"
  printf '  %s\n' "${summary[@]}"
  exit 0
fi
echo "race: guestabi-net (mode ${mode:-$("$net" --list-modes | head -n1 | cut -f1)}) vs DPDK $(dpkg-query -W -f '${Version}' dpdk-dev 2>/dev/null) net_vhost;" \
  "front-end: testpmd virtio_user${fe_extra:+ ($fe_extra)}; back-end on CPU 1, front-end on CPU 0;" \
  "${rounds} rounds of ${secs} s after ${warm} s"
summary=()
id=0
IFS=, read -ra dir_list <<<"$dirs"
IFS=, read -ra size_list <<<"$sizes"
for dir in "${dir_list[@]}"; do
  for size in "${size_list[@]}"; do
    g_all=() d_all=() r_all=() i_all=()
    for ((r = 1; r <= rounds; r++)); do
      # ABBA: each back-end runs twice per round, first and last in turn, so that a drift of
      # the machine's load (or an after-effect of the previous run) weighs on both alike
      order=(gabi dpdk dpdk gabi)
      ((r % 2 == 0)) && order=(dpdk gabi gabi dpdk)
      gs=() ds=()
      for be in "${order[@]}"; do
        id=$((id + 1))
        sleep 1
        run_one "$be" "$dir" "$size" "$id"
        v=$result
        printf '  %s %5s B round %d  %-12s %s Mpps%s\n' "$dir" "$size" "$r" "$be" "$v" \
          "${idle:+  (idle in $idle% of its passes)}"
        [[ -n $idle ]] && i_all+=("$idle")
        [[ $v == fail ]] && continue
        if [[ $be == gabi ]]; then gs+=("$v"); else ds+=("$v"); fi
      done
      ((${#gs[@]} == 0 || ${#ds[@]} == 0)) && continue
      g=$(printf '%s\n' "${gs[@]}" | awk '{s+=$1} END{printf "%.2f", s/NR}')
      dp=$(printf '%s\n' "${ds[@]}" | awk '{s+=$1} END{printf "%.2f", s/NR}')
      g_all+=("$g")
      d_all+=("$dp")
      r_all+=("$(awk -v a="$g" -v b="$dp" 'BEGIN{printf "%.3f", a/b}')")
    done
    summary+=("$(printf '%-3s %5s B   guestabi-net %7s Mpps   DPDK %7s Mpps   ratio %s   (rounds: %s)   guestabi-net idle %s%%' \
      "$dir" "$size" "$(echo "${g_all[*]}" | median)" "$(echo "${d_all[*]}" | median)" \
      "$(echo "${r_all[*]}" | median)" "${r_all[*]}" "$(echo "${i_all[*]}" | median)")")
  done
done
echo "medians over the rounds (a round: the mean of each back-end's two runs; ratio: the median of the per-round guestabi-net/DPDK ratios; idle: the median share of guestabi-net's busy-poll passes that found nothing to do, where the front-end is the limit):"
printf '  %s\n' "${summary[@]}"
