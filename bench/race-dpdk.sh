#!/usr/bin/env bash
# The data-path race: guestabi-net against DPDK testpmd's vhost PMD (net_vhost0), each as the
# vhost-user back-end of the SAME front-end, DPDK testpmd's virtio_user, on the same cores.
# Prints Mpps per run and, per direction and frame size, the medians and the median of the
# per-round ratios. A benchmark, not a test.
#
#   bench/race-dpdk.sh [-b BUILD] [-t SECONDS] [-w SECONDS] [-r ROUNDS] [-s 64,1500]
#                      [-d tx,rx] [-f DEVARGS] [-m MODE]
#
#   tx   guest TX -> back-end: front-end txonly; guestabi-net --sink, testpmd rxonly
#   rx   back-end -> guest RX: front-end rxonly; guestabi-net --generate SIZE, testpmd txonly
#
# Each back-end polls CPU 1 (guestabi-net under taskset; testpmd's forwarding lcore 1); the
# front-end's forwarding lcore is CPU 0 (its main lcore, which only waits on its command
# FIFO, sits on CPU 1). Both back-ends get the same front-end command line, the same number of
# mbufs, the same warm-up and measuring windows, and the rounds alternate which one goes
# first. The figure is the front-end's own: testpmd's "Throughput (since last show)" over the
# measuring window, after the warm-up. -f appends virtio_user devargs (e.g. ",in_order=0").
# Needs dpdk-testpmd (dpdk-dev, librte-net-vhost23, librte-net-virtio23), 2 CPUs, root.
set -uo pipefail

build=build secs=5 warm=2 rounds=3 sizes=64,1500 dirs=tx,rx fe_extra= mode=
while getopts "b:t:w:r:s:d:f:m:h" o; do
  case $o in
    b) build=$OPTARG ;; t) secs=$OPTARG ;; w) warm=$OPTARG ;; r) rounds=$OPTARG ;;
    s) sizes=$OPTARG ;; d) dirs=$OPTARG ;; f) fe_extra=$OPTARG ;; m) mode=$OPTARG ;;
    *) sed -n '2,20p' "$0"; [[ $o == h ]] && exit 0; exit 2 ;;
  esac
done
net=$build/devices/net/guestabi-net
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

# run_one BACKEND(gabi|dpdk) DIR(tx|rx) SIZE RUN_ID: sets $result to Mpps (or "fail")
run_one() {
  local be=$1 dir=$2 size=$3 id=$4 d=$work/$4 be_pid fe_pid fe_mode be_fwd mpps be_in fe_in
  local pre_b=gabirace$$b$id pre_f=gabirace$$f$id
  mkdir -p "$d"
  mkfifo "$d/be.in" "$d/fe.in"
  prefixes+=("$pre_b" "$pre_f")
  if [[ $dir == tx ]]; then fe_mode=txonly be_fwd=rxonly; else fe_mode=rxonly be_fwd=txonly; fi
  exec {be_in}<>"$d/be.in" {fe_in}<>"$d/fe.in"
  if [[ $be == gabi ]]; then
    local kind=(--sink)
    [[ $dir == rx ]] && kind=(--generate "$size")
    taskset -c 1 "$net" --busy-poll ${mode:+--mode "$mode"} --socket "$d/sock" "${kind[@]}" \
      --ready-fd 3 3>"$d/ready" >"$d/be.log" 2>&1 &
    be_pid=$!
    pids+=("$be_pid")
    wait_for "$d/ready" READY 10 || { result=fail; return; }
  else
    stdbuf -oL dpdk-testpmd -l 0-1 --no-pci --no-huge -m 512 --file-prefix "$pre_b" \
      --vdev "net_vhost0,iface=$d/sock,queues=1" -- --total-num-mbufs=16384 \
      --forward-mode="$be_fwd" --txpkts="$size" --auto-start --stats-period 0 \
      <&"$be_in" >"$d/be.log" 2>&1 &
    be_pid=$!
    pids+=("$be_pid")
    wait_for "$d/be.log" "binding succeeded" 30 || { result=fail; return; }
  fi
  stdbuf -oL dpdk-testpmd -l 0-1 --main-lcore 1 --no-pci --no-huge -m 512 --file-prefix "$pre_f" \
    --vdev "net_virtio_user0,path=$d/sock,queues=1$fe_extra" -- -i --total-num-mbufs=16384 \
    --forward-mode="$fe_mode" --txpkts="$size" --auto-start \
    <&"$fe_in" >"$d/fe.log" 2>&1 &
  fe_pid=$!
  pids+=("$fe_pid")
  if wait_for "$d/fe.log" "Start automatic packet forwarding" 30; then
    sleep "$warm"
    echo "show port stats 0" >&"$fe_in"
    sleep "$secs"
    echo "show port stats 0" >&"$fe_in"
    sleep 0.3
  fi
  echo "stop" >&"$fe_in"
  echo "quit" >&"$fe_in"
  timeout 20 tail --pid="$fe_pid" -f /dev/null || kill "$fe_pid" 2>/dev/null
  wait "$fe_pid" 2>/dev/null
  if [[ $be == gabi ]]; then kill -TERM "$be_pid"; else echo >&"$be_in"; fi
  timeout 20 tail --pid="$be_pid" -f /dev/null || kill -KILL "$be_pid" 2>/dev/null
  wait "$be_pid" 2>/dev/null
  exec {be_in}>&- {fe_in}>&-
  rm -rf "/var/run/dpdk/$pre_b" "/var/run/dpdk/$pre_f"
  # the second show: packets per second over the measuring window
  local key=Tx-pps
  [[ $dir == rx ]] && key=Rx-pps
  mpps=$(grep "$key" "$d/fe.log" | sed -n '2s/.*'"$key"': *\([0-9]*\).*/\1/p')
  if [[ -z $mpps || $mpps == 0 ]]; then
    result=fail
  else
    result=$(awk -v p="$mpps" 'BEGIN{printf "%.2f", p/1e6}')
  fi
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "-"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

echo "race: guestabi-net ($("$net" --list-modes | head -n1 | cut -f1)${mode:+, mode $mode}) vs DPDK $(dpkg-query -W -f '${Version}' dpdk-dev 2>/dev/null) net_vhost;" \
  "front-end: testpmd virtio_user${fe_extra:+ ($fe_extra)}; back-end on CPU 1, front-end on CPU 0;" \
  "${rounds} rounds of ${secs} s after ${warm} s"
summary=()
id=0
IFS=, read -ra dir_list <<<"$dirs"
IFS=, read -ra size_list <<<"$sizes"
for dir in "${dir_list[@]}"; do
  for size in "${size_list[@]}"; do
    g_all=() d_all=() r_all=()
    for ((r = 1; r <= rounds; r++)); do
      order=(gabi dpdk)
      ((r % 2 == 0)) && order=(dpdk gabi)
      for be in "${order[@]}"; do
        id=$((id + 1))
        run_one "$be" "$dir" "$size" "$id"
        v=$result
        printf '  %s %5s B round %d  %-12s %s Mpps\n' "$dir" "$size" "$r" "$be" "$v"
        [[ $be == gabi ]] && g=$v || dp=$v
      done
      [[ $g != fail ]] && g_all+=("$g")
      [[ $dp != fail ]] && d_all+=("$dp")
      [[ $g != fail && $dp != fail ]] && r_all+=("$(awk -v a="$g" -v b="$dp" 'BEGIN{printf "%.3f", a/b}')")
    done
    summary+=("$(printf '%-3s %5s B   guestabi-net %7s Mpps   DPDK %7s Mpps   ratio %s   (rounds: %s)' \
      "$dir" "$size" "$(echo "${g_all[*]}" | median)" "$(echo "${d_all[*]}" | median)" \
      "$(echo "${r_all[*]}" | median)" "${r_all[*]}")")
  done
done
echo "medians (ratio: median of the per-round guestabi-net/DPDK ratios):"
printf '  %s\n' "${summary[@]}"
