#!/usr/bin/env bash
# kcat (Debian's kcat 1.7.1, librdkafka 2.0.2) balanced consumer groups (-G) against a running
# Tern broker.
#
# Run: bash tests/compat/kcat_groups.sh BOOTSTRAP TOPIC
#   BOOTSTRAP  broker address, e.g. 127.0.0.1:9092
#   TOPIC      an existing, empty topic with 3 partitions (kcat cannot create topics)
#
# Checks: 300 keyed records produced; `kcat -G GROUP TOPIC` from the earliest offset gets every
# one of them exactly once, with its content and partition; kcat commits on exit, so a second
# run of the group with -e gets nothing; after 60 more records, a third run gets exactly those
# 60 (it resumed from the committed offsets); a different group starts from the beginning again.
# Exit 0 only when every check passed. Override the binary with KCAT=/path/to/kcat.
set -Eeuo pipefail
trap 'echo "kcat_groups: FAILED: unexpected error (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

NAME=kcat_groups
KCAT=${KCAT:-/usr/bin/kcat}
T_OUT=${KCAT_TIMEOUT:-60}

fail() { echo "$NAME: FAILED: $*"; exit 1; }

[ $# -eq 2 ] || { echo "usage: $0 BOOTSTRAP TOPIC" >&2; exit 2; }
BROKER=$1
TOPIC=$2
GROUP="kcat-group-$$-$RANDOM"
[ -x "$KCAT" ] || fail "kcat not found at $KCAT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kcat_groups.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)

# kc ARGS...: kcat with a hard time limit; its stderr is shown when it fails.
kc() {
  local rc=0
  timeout "$T_OUT" "$KCAT" -b "$BROKER" "$@" 2>"$WORK/err" || rc=$?
  if [ $rc -ne 0 ]; then
    echo "kcat $* : exit code $rc (124: killed after ${T_OUT}s)"
    tail -n 20 "$WORK/err"
    return 1
  fi
}

# group_consume GROUP ARGS...: balanced consumption, one line "partition offset key:value" each.
group_consume() {
  local group=$1; shift
  kc -G "$group" -X auto.offset.reset=earliest -q -f '%p %o %k:%s\n' "$@" "$TOPIC"
}

# compare EXPECTED GOT WHAT: exact comparison with the first differences shown.
compare() {
  if ! cmp -s "$1" "$2"; then
    echo "$3: expected $(wc -l <"$1") line(s), got $(wc -l <"$2")"
    diff "$1" "$2" | head -n 20 || true
    fail "$3: consumed records differ from what was produced"
  fi
}

gen() { awk -v tag="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "k%d-%s:%s-value-%d\n", i, tag, tag, i }'; }

echo "$NAME: $("$KCAT" -V 2>&1 | grep -m1 Version), broker $BROKER, topic $TOPIC, group $GROUP"

gen first 300 >"$WORK/first"
kc -P -t "$TOPIC" -K: -X acks=all -l "$WORK/first" >/dev/null || fail "produce of 300 records failed"

# Exactly 300 records: -c stops there, so a duplicate would hide a missing record; check both.
group_consume "$GROUP" -c 300 >"$WORK/got1" || fail "kcat -G (first run) failed"
cut -d' ' -f3- "$WORK/got1" | sort >"$WORK/got1.kv"
sort "$WORK/first" >"$WORK/first.sorted"
compare "$WORK/first.sorted" "$WORK/got1.kv" "first run of group $GROUP (sorted key:value)"
dups=$(cut -d' ' -f1,2 "$WORK/got1" | sort | uniq -d | head -n 3)
[ -z "$dups" ] || fail "first run: partition/offset delivered twice: $dups"
parts=$(cut -d' ' -f1 "$WORK/got1" | sort -u | tr '\n' ' ')
[ "$parts" = "0 1 2 " ] || fail "first run: records came from partitions '$parts', expected 0 1 2"
echo "  first run: all 300 records, each once, from partitions 0-2"

group_consume "$GROUP" -e >"$WORK/got2" || fail "kcat -G -e (second run) failed"
[ ! -s "$WORK/got2" ] || fail "second run re-delivered $(wc -l <"$WORK/got2") committed record(s): $(head -n 3 "$WORK/got2")"
echo "  second run (-e): nothing new, the first run's offsets were committed"

gen second 60 >"$WORK/second"
kc -P -t "$TOPIC" -K: -X acks=all -l "$WORK/second" >/dev/null || fail "produce of 60 records failed"
group_consume "$GROUP" -c 60 >"$WORK/got3" || fail "kcat -G (third run) failed"
cut -d' ' -f3- "$WORK/got3" | sort >"$WORK/got3.kv"
sort "$WORK/second" >"$WORK/second.sorted"
compare "$WORK/second.sorted" "$WORK/got3.kv" "third run of group $GROUP (only the 60 new records)"
echo "  third run: exactly the 60 records produced after the commit"

group_consume "$GROUP-other" -c 360 >"$WORK/got4" || fail "kcat -G with another group failed"
[ "$(cut -d' ' -f1,2 "$WORK/got4" | sort -u | wc -l)" -eq 360 ] || fail "another group: expected 360 distinct records"
echo "  another group: starts from the beginning (360 records)"

echo "$NAME: OK (360 records, resume from commit) in $(($(date +%s) - START))s"
