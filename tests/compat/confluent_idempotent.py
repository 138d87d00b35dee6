"""confluent-kafka idempotent producer (enable.idempotence=true) through a proxy that drops
connections after the broker wrote a produce request but before its response reaches the
client, so librdkafka retries batches the broker already has.

Run: <venv python> tests/compat/confluent_idempotent.py --bootstrap PROXY:PORT --topic T
     --count N --partitions P

Checks: every message is acknowledged without error; reading each partition back from the
start gives every message exactly once, in the order produced; each delivery report's offset
is the offset the message is read at (a duplicate is acknowledged with its original offset).

Exit 0 only when every check passed.
"""

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

import common
from common import Deadline, check, check_eq, fail, log

NAME = "confluent_idempotent"


def extra(p):
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--partitions", type=int, default=2)


def body(args):
    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 40,
        "max.in.flight.requests.per.connection": 5,
        "retry.backoff.ms": 20,
        "reconnect.backoff.ms": 10,
        "reconnect.backoff.max.ms": 100,
        "message.timeout.ms": 120000,
    })
    reports = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append((msg.value(), err))
        else:
            reports[msg.value()] = (msg.partition(), msg.offset())

    sent = {q: [] for q in range(args.partitions)}
    for i in range(args.count):
        value = b"m%06d" % i
        q = i % args.partitions
        sent[q].append(value)
        while True:
            try:
                p.produce(args.topic, value=value, key=b"k%d" % (i % 11), partition=q, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(args.timeout)
    check_eq(left, 0, "messages still undelivered after flush")
    check(not errors, f"{len(errors)} delivery errors, first: {errors[:1]}")
    check_eq(len(reports), args.count, "delivery reports")

    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": common.unique("idem"),
                  "enable.auto.commit": False})
    try:
        for q in range(args.partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(args.topic, q), timeout=10)
            check_eq(hi - lo, len(sent[q]), f"records in partition {q} (watermarks {lo}, {hi})")
            c.assign([TopicPartition(args.topic, q, OFFSET_BEGINNING)])
            got = []
            dl = Deadline(args.timeout, f"reading partition {q}")
            while len(got) < len(sent[q]):
                m = c.poll(0.2)
                if m is not None:
                    check(m.error() is None, f"consumer error: {m.error()}")
                    got.append((m.offset(), m.value()))
                dl.check(f"{len(got)} of {len(sent[q])}")
            for n, ((offset, value), want) in enumerate(zip(got, sent[q])):
                if value != want:
                    fail(f"partition {q}: record {n} at offset {offset} is {value!r}, expected {want!r}")
                if reports[value] != (q, offset):
                    fail(f"partition {q}: {value!r} read at offset {offset}, acknowledged at {reports[value]}")
            log(f"  partition {q}: {len(got)} records, each once and in order; acknowledged offsets match")
    finally:
        c.close()
    return f"{args.count} idempotent messages, no duplicates"


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra))
