"""Reads every partition of a topic from the start with confluent-kafka, at an isolation level.

Run: <venv python> tests/compat/confluent_read_topic.py --bootstrap HOST:PORT --topic T
     --isolation read_committed|read_uncommitted --at-least N

Reads until at least N records arrived, then until nothing more arrives for three seconds.
Prints one JSON line for the caller: {"partitions": {"<p>": [value, ...]}}, values decoded as
UTF-8, in offset order per partition.

Exit 0 when N records were read before the deadline.
"""

import json
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

import common
from common import Deadline

NAME = "confluent_read_topic"


def extra(p):
    p.add_argument("--topic", required=True)
    p.add_argument("--isolation", choices=["read_committed", "read_uncommitted"], required=True)
    p.add_argument("--at-least", type=int, required=True)


def body(args):
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": common.unique("topic-reader"),
        "isolation.level": args.isolation,
        "enable.auto.commit": False,
    })
    try:
        md = c.list_topics(args.topic, timeout=30)
        partitions = sorted(md.topics[args.topic].partitions)
        c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
        got = {p: [] for p in partitions}
        total = 0
        dl = Deadline(args.timeout, f"{args.isolation} records of {args.topic}")
        quiet_since = time.monotonic()
        while total < args.at_least or time.monotonic() - quiet_since < 3.0:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got[m.partition()].append(m.value().decode())
                total += 1
                quiet_since = time.monotonic()
            if total < args.at_least:
                dl.check(f"{total} of at least {args.at_least}")
        print(json.dumps({"partitions": {str(p): v for p, v in got.items()}}), flush=True)
        return f"{total} records, {args.isolation}"
    finally:
        c.close()


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra))
