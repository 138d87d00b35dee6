#!/usr/bin/env bash
# kcat (Debian's kcat 1.7.1, librdkafka 2.0.2) compatibility checks against a running Tern broker.
#
# Run: bash tests/compat/kcat_basic.sh BOOTSTRAP TOPIC
#   BOOTSTRAP  broker address, e.g. 127.0.0.1:9092 (node id 1)
#   TOPIC      an existing, empty topic with 3 partitions (kcat cannot create topics)
#
# Checks: kcat -L (topic, 3 partitions, broker 1); keyed produce (-K:) to partitions
# 0..2 with -z snappy/gzip/lz4/zstd and none, headers (-H), NULL values (-Z), and the
# random partitioner; consume back per partition (-C -e -o beginning -p N) and compare
# exactly (sorted only for the randomly partitioned part); offsets; -o N -c M; -o -N;
# -o s@TS; kcat -Q (offset for timestamp).
# Exit 0 only when every check passed. Override the binary with KCAT=/path/to/kcat.
set -Eeuo pipefail
trap 'echo "kcat_basic: FAILED: unexpected error (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

NAME=kcat_basic
KCAT=${KCAT:-/usr/bin/kcat}
T_OUT=${KCAT_TIMEOUT:-60}   # seconds allowed for each kcat invocation

fail() { echo "$NAME: FAILED: $*"; exit 1; }
log() { echo "$*"; }

[ $# -eq 2 ] || { echo "usage: $0 BOOTSTRAP TOPIC" >&2; exit 2; }
BROKER=$1
TOPIC=$2
PARTS=3   # the topic's partition count (given by the caller)
[ -x "$KCAT" ] || fail "kcat not found at $KCAT"
command -v timeout >/dev/null || fail "coreutils timeout not found"

exec 3>&1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kcat_basic.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)

# kc ARGS...: run kcat against the broker with a hard time limit; stderr to $WORK/err.
kc() {
  local rc=0
  timeout "$T_OUT" "$KCAT" -b "$BROKER" -m 15 "$@" 2>"$WORK/err" || rc=$?
  if [ $rc -ne 0 ]; then
    {
      if [ $rc -eq 124 ]; then
        echo "kcat $* : no exit within ${T_OUT}s (killed)"
      else
        echo "kcat $* : exit code $rc"
      fi
      echo "--- kcat stderr (last 20 lines):"; tail -n 20 "$WORK/err"
    } >&3   # the script's stdout, even when kc's stdout is redirected
    return 1
  fi
}

# compare FILE_EXPECTED FILE_GOT WHAT: exact comparison with the first differences shown.
compare() {
  local exp=$1 got=$2 what=$3
  if ! cmp -s "$exp" "$got"; then
    echo "$what: mismatch: expected $(wc -l <"$exp") line(s), got $(wc -l <"$got")"
    echo "--- first differences (diff expected got):"
    diff "$exp" "$got" | head -n 20 | cut -c1-300 || true
    fail "$what: consumed data differs from what was produced"
  fi
}

# gen TAG N: N keyed lines "key:value"; values contain ':' and vary in length
# (some 3 KB) so the codecs have something to compress.
gen() {
  awk -v tag="$1" -v n="$2" 'BEGIN {
    for (i = 0; i < n; i++) {
      reps = (i % 100 == 7) ? 1000 : (i % 40);
      pad = ""; for (j = 0; j < reps; j++) pad = pad "xyz";
      printf "k%d-%s:%s-%d:%s\n", i % 17, tag, tag, i, pad
    }
  }'
}

# produce FILE ARGS...: kcat -P of FILE's lines, keyed with ':', acks=all.
produce() {
  local file=$1; shift
  # message.timeout.ms below the kcat time limit: refused records end as delivery
  # errors (printed by kcat) instead of a killed kcat.
  kc -P -t "$TOPIC" -K: -X acks=all -X message.timeout.ms=$((T_OUT * 750)) "$@" -l "$file" >/dev/null \
    || fail "produce of $(wc -l <"$file") line(s) with [$*] failed"
}

# consume P FORMAT [ARGS...]: the whole partition P from the beginning, to stdout.
consume() {
  local p=$1 fmt=$2; shift 2
  kc -C -t "$TOPIC" -p "$p" -o beginning -e -q -f "$fmt" "$@" \
    || fail "consume of partition $p failed"
}

ms_now() { date +%s%3N; }

echo "$NAME: $("$KCAT" -V 2>&1 | grep -m1 Version), broker $BROKER, topic $TOPIC"

# ---------------------------------------------------------------- metadata
kc -L -t "$TOPIC" >"$WORK/meta" || fail "kcat -L -t $TOPIC failed"
grep -Eq "^ *1 brokers:" "$WORK/meta" || { cat "$WORK/meta"; fail "-L: expected exactly 1 broker"; }
grep -Eq "^ *broker 1 at [^ ]+:[0-9]+" "$WORK/meta" || { cat "$WORK/meta"; fail "-L: broker 1 not listed"; }
grep -Fq "topic \"$TOPIC\" with $PARTS partitions:" "$WORK/meta" \
  || { cat "$WORK/meta"; fail "-L: topic $TOPIC with $PARTS partitions not listed"; }
for p in $(seq 0 $((PARTS - 1))); do
  grep -Eq "^ *partition $p, leader 1, replicas: 1, isrs: 1\$" "$WORK/meta" \
    || { cat "$WORK/meta"; fail "-L: partition $p not led by broker 1 (replicas 1, isrs 1)"; }
done
kc -L >"$WORK/meta_all" || fail "kcat -L (all topics) failed"
grep -Fq "topic \"$TOPIC\" with $PARTS partitions:" "$WORK/meta_all" \
  || { cat "$WORK/meta_all"; fail "-L (all topics): $TOPIC not listed"; }
log "  -L: broker 1, topic $TOPIC with $PARTS partitions led by broker 1: ok"

# ---------------------------------------------------------------- produce
# Per partition, in this order (the order within a partition is defined):
#   p0: A (snappy, 250)  then D (zstd, 100)
#   p1: B (gzip, 250)    then E (none, 50, with headers)
#   p2: C (lz4, 250)     then G (NULL values/keys with -Z, 5)
# and then R (snappy, 95, no -p: keyed partitioner) spread over all three.
gen p0-snappy 250 >"$WORK/A"
gen p1-gzip 250 >"$WORK/B"
gen p2-lz4 250 >"$WORK/C"
gen p0-zstd 100 >"$WORK/D"
gen p1-none 50 >"$WORK/E"
printf 'nk0:\nnk1:v1\n:nokey\n:\nnk4:\n' >"$WORK/G"
gen rand-snappy 95 >"$WORK/R"

T0=$(ms_now)
produce "$WORK/A" -p 0 -z snappy
produce "$WORK/B" -p 1 -z gzip
produce "$WORK/C" -p 2 -z lz4
sleep 0.2
T_MID=$(ms_now)   # after every record of A/B/C, before every record of D/E/G/R
sleep 0.2
produce "$WORK/D" -p 0 -z zstd
produce "$WORK/E" -p 1 -H h1=v1 -H h2=v2 -H h1=dup -H empty=
produce "$WORK/G" -p 2 -Z
produce "$WORK/R" -z snappy
T_END=$(ms_now)
TOTAL=$(cat "$WORK"/{A,B,C,D,E,G,R} | wc -l)
log "  produced $TOTAL records: p0 snappy+zstd, p1 gzip+none(+headers), p2 lz4+NULLs(-Z), 95 keyed-partitioned"

# ---------------------------------------------------------------- consume and compare
# Expected text output with -f '%k:%s\n' (G is consumed with -Z: NULL printed as "NULL").
cat "$WORK/A" "$WORK/D" >"$WORK/exp0"
cat "$WORK/B" "$WORK/E" >"$WORK/exp1"
cat "$WORK/C" >"$WORK/exp2"
printf 'nk0:NULL\nnk1:v1\nNULL:nokey\nNULL:NULL\nnk4:NULL\n' >>"$WORK/exp2"
: >"$WORK/rest"
for p in $(seq 0 $((PARTS - 1))); do [ -e "$WORK/exp$p" ] || : >"$WORK/exp$p"; done
for p in $(seq 0 $((PARTS - 1))); do
  consume "$p" '%k:%s\n' -Z >"$WORK/got$p"
  n=$(wc -l <"$WORK/exp$p")
  head -n "$n" "$WORK/got$p" >"$WORK/head$p"
  compare "$WORK/exp$p" "$WORK/head$p" "partition $p (first $n records, in order)"
  tail -n +"$((n + 1))" "$WORK/got$p" >>"$WORK/rest"
  # offsets are 0..count-1 with no gaps
  consume "$p" '%o\n' >"$WORK/off$p"
  seq 0 $(($(wc -l <"$WORK/got$p") - 1)) >"$WORK/offexp$p"
  compare "$WORK/offexp$p" "$WORK/off$p" "partition $p offsets"
  log "  partition $p: $(wc -l <"$WORK/got$p") records consumed, first $n identical and in order, offsets contiguous from 0"
done
sort "$WORK/R" >"$WORK/R.sorted"
sort "$WORK/rest" >"$WORK/rest.sorted"
compare "$WORK/R.sorted" "$WORK/rest.sorted" "keyed-partitioned records (sorted, all partitions)"
log "  keyed-partitioned records: all $(wc -l <"$WORK/R") found exactly once across partitions"

# Same key -> same partition for the partitioner-placed records.
for p in $(seq 0 $((PARTS - 1))); do
  tail -n +"$(($(wc -l <"$WORK/exp$p") + 1))" "$WORK/got$p" | cut -d: -f1 | sort -u | sed "s/\$/ $p/"
done >"$WORK/keyparts"
dups=$(cut -d' ' -f1 "$WORK/keyparts" | sort | uniq -d | head -n 3)
[ -z "$dups" ] || fail "keyed-partitioned records: key(s) found in more than one partition: $dups"

# Headers (E) and NULL lengths (G).
consume 1 '%h\n' >"$WORK/hdr1"
if [ "$(wc -l <"$WORK/hdr1")" -lt 300 ]; then fail "headers: partition 1 has fewer than 300 records"; fi
sed -n '251,300p' "$WORK/hdr1" | sort -u >"$WORK/hdrE"
echo 'h1=v1,h2=v2,h1=dup,empty=' >"$WORK/hdrExp"
compare "$WORK/hdrExp" "$WORK/hdrE" "headers of the 50 records produced with -H (order and duplicate key kept)"
head -n 250 "$WORK/hdr1" | sort -u >"$WORK/hdrB"
[ "$(cat "$WORK/hdrB")" = "" ] || fail "headers: records produced without -H have headers: $(head -c 200 "$WORK/hdrB")"
consume 2 '%K %S\n' >"$WORK/len2"
sed -n '251,255p' "$WORK/len2" >"$WORK/lenG"
printf '3 -1\n3 2\n-1 5\n-1 -1\n3 -1\n' >"$WORK/lenGexp"
compare "$WORK/lenGexp" "$WORK/lenG" "key/value lengths of the -Z records (-1 = NULL)"
log "  headers (-H, duplicate key, empty value) and NULL key/value (-Z): ok"

# ---------------------------------------------------------------- offsets
kc -C -t "$TOPIC" -p 0 -o 100 -c 5 -q -f '%o %k:%s\n' >"$WORK/o100" || fail "consume -o 100 -c 5 failed"
sed -n '101,105p' "$WORK/got0" | awk '{ printf "%d %s\n", 99 + NR, $0 }' >"$WORK/o100exp"
compare "$WORK/o100exp" "$WORK/o100" "-p 0 -o 100 -c 5"
kc -C -t "$TOPIC" -p 0 -o -10 -e -q -f '%k:%s\n' >"$WORK/olast" || fail "consume -o -10 failed"
tail -n 10 "$WORK/got0" >"$WORK/olastexp"
compare "$WORK/olastexp" "$WORK/olast" "-p 0 -o -10 (last 10 records)"
log "  -o 100 -c 5 and -o -10: ok"

# ---------------------------------------------------------------- timestamps
# CreateTime timestamps as set by the producer: A before T_MID, D after it.
consume 0 '%T\n' >"$WORK/ts0"
awk -v t0="$T0" -v mid="$T_MID" -v end="$T_END" 'NR <= 250 && ($1 < t0 || $1 >= mid) { print "record " NR-1 " (A): ts " $1 " not in [" t0 "," mid ")"; bad=1; exit }
  NR > 250 && NR <= 350 && ($1 <= mid || $1 > end) { print "record " NR-1 " (D): ts " $1 " not in (" mid "," end "]"; bad=1; exit }
  END { exit bad }' "$WORK/ts0" || fail "partition 0: record timestamps are not the producer's CreateTime"
kc -Q -t "$TOPIC:0:0" -t "$TOPIC:1:$T_MID" -t "$TOPIC:2:$((T_END + 3600000))" >"$WORK/q" || fail "kcat -Q failed"
grep -Fxq "$TOPIC [0] offset 0" "$WORK/q" || { cat "$WORK/q"; fail "-Q $TOPIC:0:0: expected offset 0"; }
grep -Fxq "$TOPIC [1] offset 250" "$WORK/q" || { cat "$WORK/q"; fail "-Q $TOPIC:1:T_MID ($T_MID): expected offset 250 (first record after A/B/C)"; }
grep -Fxq "$TOPIC [2] offset -1" "$WORK/q" || { cat "$WORK/q"; fail "-Q $TOPIC:2:<future>: expected offset -1 (no such record)"; }
kc -C -t "$TOPIC" -p 0 -o "s@$T_MID" -c 1 -q -f '%o %k:%s\n' >"$WORK/s_at" || fail "consume -o s@$T_MID failed"
echo "250 $(sed -n 251p "$WORK/got0")" >"$WORK/s_atexp"
compare "$WORK/s_atexp" "$WORK/s_at" "-p 0 -o s@T_MID (first record at/after the timestamp)"
log "  timestamps: CreateTime kept; -Q (0 -> 0, mid -> 250, future -> -1) and -o s@ts: ok"

echo "$NAME: OK ($TOTAL records) in $(($(date +%s) - START))s"
