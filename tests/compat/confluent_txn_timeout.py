"""A transactional producer killed inside a transaction: the transaction is aborted after its
timeout and read_committed consumers move on.

Run: <venv python> tests/compat/confluent_txn_timeout.py --bootstrap HOST:PORT --topic T
     --txn-timeout-ms MS

A child process (confluent-kafka, transaction.timeout.ms=MS) begins a transaction, writes five
records ("open-<i>") to partition 0 of T, waits for their delivery and kills itself with SIGKILL.
Then five plain records ("after-<i>") are written.

Checks: a read_committed consumer reads exactly the five "after" records, and not before the
transaction's timeout has passed since the child started (until the abort the open transaction
holds the last stable offset); a read_uncommitted consumer reads all ten. Prints one JSON line:
{"waited_seconds": <from the child's start to the last "after" record read_committed>}.

Exit 0 only when every check passed.
"""

import json
import signal
import subprocess
import sys
import time

from confluent_kafka import Producer

import common
from common import check_eq, fail, log
from confluent_transactions import read_all

NAME = "confluent_txn_timeout"

CHILD = r"""
import os, signal, sys
from confluent_kafka import Producer
bootstrap, topic, txn_id, timeout = sys.argv[1:5]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
              "transaction.timeout.ms": int(timeout), "linger.ms": 1})
p.init_transactions(60)
p.begin_transaction()
failed = []
for i in range(5):
    p.produce(topic, value=f"open-{i}".encode(), partition=0,
              on_delivery=lambda err, msg: err is not None and failed.append(str(err)))
p.flush(60)
if failed:
    print("delivery failed: " + failed[0], flush=True)
    sys.exit(1)
print("written", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def extra(p):
    p.add_argument("--topic", required=True)
    p.add_argument("--txn-timeout-ms", type=int, default=5000)


def body(args):
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-c", CHILD, args.bootstrap, args.topic, common.unique("tern-killed"), str(args.txn_timeout_ms)],
                           capture_output=True, text=True, timeout=120)
    if child.returncode != -signal.SIGKILL or "written" not in child.stdout:
        fail(f"the transactional child did not write and die by SIGKILL: rc {child.returncode}, {child.stdout!r} {child.stderr[-500:]!r}")
    log(f"child wrote five records in an open transaction and was killed after {time.monotonic() - started:.1f}s")

    p = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    for i in range(5):
        p.produce(args.topic, value=f"after-{i}".encode(), partition=0)
    if p.flush(60) != 0:
        fail("the plain records were not delivered")

    after = [f"after-{i}" for i in range(5)]
    committed = read(args, "read_committed", 5)
    waited = time.monotonic() - started
    check_eq(committed, after, "records a read_committed consumer sees")
    if waited * 1000 < args.txn_timeout_ms:
        fail(f"read_committed read past the open transaction after {waited:.1f}s, before its timeout of {args.txn_timeout_ms} ms")
    everything = read(args, "read_uncommitted", 10)
    check_eq(everything, [f"open-{i}" for i in range(5)] + after, "records a read_uncommitted consumer sees")
    print(json.dumps({"waited_seconds": round(waited, 1)}), flush=True)
    return f"the killed producer's transaction was aborted; read_committed moved on after {waited:.1f}s"


def read(args, isolation, expected):
    """Values of partition 0 from the start with `isolation`: `expected` of them, then nothing
    more for two seconds."""
    return [v for _, v in read_all(args, isolation, expected)]


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra))
