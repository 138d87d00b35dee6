"""Streams records with confluent-kafka (librdkafka) at a steady rate for a while, as an
application would while brokers fail under it: acks=all, idempotent, retried by the client.

    confluent_stream.py --bootstrap HOST:PORT --topic T --partitions P --seconds S --rate R --tag TAG

Record i goes to partition i % P with key "TAG-k<i>" and value "TAG-v<i>". At the end, prints
one line "ACKED <partition> <value>" per record the cluster acknowledged, then the summary.
Records whose delivery failed are printed as "FAILED <partition> <value> <error>" (they may or
may not be in the log, as with any producer).
"""

import time

import common
from confluent_kafka import Producer


def extra(p):
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--rate", type=float, required=True, help="records per second")
    p.add_argument("--tag", default="s")


def main(args):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 120000,
        "compression.type": "lz4",
    })
    acked, failed = [], []

    def delivered(err, msg):
        value = msg.value().decode()
        if err is None:
            acked.append((msg.partition(), value))
        else:
            failed.append((msg.partition(), value, str(err)))

    start = time.monotonic()
    i = 0
    while time.monotonic() - start < args.seconds:
        due = start + i / args.rate
        now = time.monotonic()
        if due > now:
            producer.poll(due - now)
            continue
        p = i % args.partitions
        producer.produce(args.topic, key=f"{args.tag}-k{i}".encode(), value=f"{args.tag}-v{i}".encode(), partition=p,
                         on_delivery=delivered)
        producer.poll(0)
        i += 1
    left = producer.flush(args.timeout)
    common.check(left == 0, f"{left} records still undelivered after {args.timeout} s")
    for p, v in acked:
        print(f"ACKED {p} {v}")
    for p, v, e in failed:
        print(f"FAILED {p} {v} {e}")
    return f"{i} records produced, {len(acked)} acknowledged, {len(failed)} failed"


if __name__ == "__main__":
    common.run_main("confluent_stream", main, common.parse_args("a steady confluent-kafka producer", extra))
