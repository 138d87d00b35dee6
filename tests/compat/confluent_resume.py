"""A confluent-kafka consumer resumes a group where its committed offsets say, and reads to the end.

    confluent_resume.py --bootstrap HOST:PORT --group G --topic T --partitions P

Joins group G (subscribing to T, enable.auto.commit=false, auto.offset.reset=error so that a
partition without a committed offset is an error, not a silent reset), waits until it owns
all P partitions, then reads each from the group's committed offset up to the partition's end
as it stood once assigned. Commits nothing, and leaves the group on close.

Prints one JSON line per partition, then one per record, in the order read:
    {"partition": 0, "committed": 25, "end": 60}
    {"partition": 0, "offset": 25, "key": <base64|null>, "value": <base64|null>,
     "headers": [[name, <base64|null>], ...], "timestamp": 1764870000000}
The test compares them with what the group had left to read on the source.
"""

import base64
import json

from confluent_kafka import Consumer, KafkaError, TopicPartition

import common
from common import Deadline, check, fail, log

NAME = "confluent_resume"


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def body(args):
    assigned = set()

    def on_assign(consumer, partitions):
        assigned.update(tp.partition for tp in partitions)

    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "error",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
    })
    c.subscribe([args.topic], on_assign=on_assign)
    read = {}  # partition -> [message], in the order read

    def poll(deadline):
        for m in c.consume(100, 0.2):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consume error on partition {m.partition()}: {m.error()}")
            read.setdefault(m.partition(), []).append(m)
        deadline.check(f"assigned {sorted(assigned)}, read {({p: len(r) for p, r in read.items()})}")

    joined = Deadline(args.timeout, f"joining group {args.group}")
    while len(assigned) < args.partitions:
        poll(joined)
    check(assigned == set(range(args.partitions)), f"assigned partitions {sorted(assigned)}")

    tps = [TopicPartition(args.topic, p) for p in sorted(assigned)]
    committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=args.timeout)}
    for p, o in committed.items():
        check(o >= 0, f"group {args.group} has no committed offset on {args.topic}/{p} ({o})")
    ends = {p: c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=args.timeout, cached=False)[1] for p in committed}

    def behind():
        # The consumer's position, not the last record read + 1: a transactional topic's
        # partition ends with a marker the consumer steps over but never returns.
        last = {p: read[p][-1].offset() + 1 if read.get(p) else committed[p] for p in committed}
        at = {tp.partition: tp.offset for tp in c.position(tps)}
        nxt = {p: max(last[p], at.get(p, -1)) for p in committed}
        return {p: ends[p] - nxt[p] for p in committed if nxt[p] < ends[p]}

    reading = Deadline(args.timeout, "reading to the end")
    while behind():
        poll(reading)
    c.close()

    for p in sorted(committed):
        print(json.dumps({"partition": p, "committed": committed[p], "end": ends[p]}))
    for p in sorted(read):
        for m in read[p]:
            print(json.dumps({
                "partition": p,
                "offset": m.offset(),
                "key": b64(m.key()),
                "value": b64(m.value()),
                "headers": [[k, b64(v)] for k, v in (m.headers() or [])],
                "timestamp": m.timestamp()[1],
            }))
    total = sum(len(r) for r in read.values())
    log(f"group {args.group}: resumed at {committed}, read {total} record(s) up to {ends}")
    return f"{total} records read from the group's committed offsets"


def extra_args(p):
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, required=True)


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
