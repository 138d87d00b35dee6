"""confluent-kafka's transactional producer, committing and aborting transactions in turn.

Run: <venv python> tests/compat/confluent_transactions.py --bootstrap HOST:PORT --topic T
     --transactions N --per M

Writes N transactions of M records each to partition 0 of T (values "t<i>-<j>"), committing the
even-numbered ones and aborting the odd-numbered ones after every record was written (delivery
reports with offsets). Then reads T from the start with isolation.level=read_committed.

Checks: the read_committed consumer sees exactly the records of the committed transactions, in
order, at the offsets their delivery reports gave; a read_uncommitted consumer sees every record
written, aborted ones included. Prints one JSON line for the caller:
{"transactional_id": ..., "committed": [[offset, value], ...], "aborted": [[first, last], ...],
 "uncommitted": <records read_uncommitted saw>}.

Exit 0 only when every check passed.
"""

import json

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

import common
from common import Deadline, check_eq, fail, log

NAME = "confluent_transactions"


def extra(p):
    p.add_argument("--topic", required=True)
    p.add_argument("--transactions", type=int, default=6)
    p.add_argument("--per", type=int, default=10)


def body(args):
    txn_id = common.unique("tern-txn")
    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 1,
    })
    p.init_transactions(60)
    reports = {}

    def delivered(err, msg):
        if err is not None:
            fail(f"delivery of {msg.value()!r}: {err}")
        reports[msg.value().decode()] = msg.offset()

    committed, aborted = [], []
    for i in range(args.transactions):
        p.begin_transaction()
        values = [f"t{i}-{j}" for j in range(args.per)]
        for v in values:
            p.produce(args.topic, value=v.encode(), key=f"k{i}".encode(), partition=0, on_delivery=delivered)
        p.flush(60)
        offsets = [reports[v] for v in values]
        if i % 2 == 0:
            p.commit_transaction(60)
            committed.extend(zip(offsets, values))
        else:
            p.abort_transaction(60)
            aborted.append([offsets[0], offsets[-1]])
    log(f"{len(committed)} records committed, {len(aborted)} transactions aborted: {aborted}")

    got = read_all(args, "read_committed", len(committed))
    check_eq(got, [list(r) for r in committed], "records a read_committed consumer sees")
    written = len(committed) + sum(last - first + 1 for first, last in aborted)
    everything = read_all(args, "read_uncommitted", written)
    check_eq(sorted(v for _, v in everything), sorted(f"t{i}-{j}" for i in range(args.transactions) for j in range(args.per)),
             "records a read_uncommitted consumer sees")
    print(json.dumps({"transactional_id": txn_id, "committed": [list(r) for r in committed], "aborted": aborted,
                      "uncommitted": len(everything)}), flush=True)
    return (f"{len(committed)} committed records seen by read_committed, {len(aborted)} aborted transactions skipped; "
            f"read_uncommitted saw all {len(everything)}")


def read_all(args, isolation, expected):
    """[offset, value] of partition 0 from the start, with `isolation`: `expected` records,
    then nothing more for two seconds."""
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": common.unique("txn-reader"),
        "isolation.level": isolation,
        "enable.auto.commit": False,
    })
    try:
        c.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
        got = []
        dl = Deadline(120, f"{isolation} records")
        while len(got) < expected:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append([m.offset(), m.value().decode()])
            dl.check(f"{len(got)} of {expected}")
        extra_msg = c.poll(2.0)
        if extra_msg is not None and not extra_msg.error():
            fail(f"{isolation} saw more than {expected} records: {extra_msg.value()!r} at {extra_msg.offset()}")
        return got
    finally:
        c.close()


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra))
