"""confluent-kafka consumers resume from their commits across a Tern broker restart.

Run in two phases around a broker restart (tests/it/groups_restart.rs does this):
  <venv python> tests/compat/confluent_group_restart.py --bootstrap HOST:PORT --phase before \
      --topic TOPIC --state FILE
  <venv python> tests/compat/confluent_group_restart.py --bootstrap HOST:PORT --phase after \
      --topic TOPIC --state FILE

before: produces 600 records to TOPIC (an existing, empty 3-partition topic); a static
member (group.instance.id) and a dynamic consumer, each in its own group, consume about half
with a synchronous commit after every batch, then close: the dynamic one leaves its group,
the static one stays a member (static members do not leave on close). What was delivered
and committed is written to FILE.
after: a consumer per group (the static one with the same group.instance.id) reads the rest:
every partition must resume exactly at its committed offset, nothing is delivered twice and
the union of both phases is every record with its content. The static member must get a new
member id without the group rebalancing (the test checks the generation on the wire).

Exit 0 only when every check passed.
"""

import json

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

import common
from common import Deadline, check, check_eq, fail, log, short

NAME = "confluent_group_restart"
PARTITIONS = 3
RECORDS = 600
INSTANCE = "tern-restart-static"


def expected():
    return {(i % PARTITIONS, i // PARTITIONS): (b"k%d" % i, b"restart-%d" % i) for i in range(RECORDS)}


def make_consumer(args, group, static):
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 30000,
        "heartbeat.interval.ms": 500,
    }
    if static:
        conf["group.instance.id"] = INSTANCE
    c = Consumer(conf)
    c.subscribe([args.topic])
    return c


def consume(args, c, want, committed, delivered, until):
    """Consumes, checking content and continuity from `committed`, committing after each batch,
    until until(delivered) holds."""
    exp = expected()
    nxt = {}
    dl = Deadline(args.timeout, "consuming")
    while not until(delivered):
        batch = c.consume(50, 0.2)
        for m in batch:
            if m.error():
                fail(f"consume error: {m.error()}")
            p, o = m.partition(), m.offset()
            check_eq((m.key(), m.value()), exp[(p, o)], f"content of partition {p} offset {o}")
            start = nxt.get(p, committed.get(p, 0))
            check(o == start, f"partition {p}: got offset {o}, expected {start} "
                              f"({'the committed offset' if p not in nxt else 'the next one'})")
            check((p, o) not in delivered, f"partition {p} offset {o} delivered twice")
            nxt[p] = o + 1
            delivered.add((p, o))
        if batch:
            tps = [TopicPartition(args.topic, p, o) for p, o in nxt.items()]
            try:
                for tp in c.commit(offsets=tps, asynchronous=False):
                    check(tp.error is None, f"commit of partition {tp.partition}: {tp.error}")
            except KafkaException as e:
                fail(f"commit {nxt}: {e.args[0]}")
            committed.update(nxt)
        dl.check(f"{len(delivered)} delivered, wanted {want}")


def before(args):
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    for (part, _), (k, v) in sorted(expected().items(), key=lambda kv: kv[0][::-1]):
        p.produce(args.topic, key=k, value=v, partition=part)
    check_eq(p.flush(30), 0, "records left unsent")
    state = {}
    for kind in ("static", "dynamic"):
        group = f"{args.topic}-{kind}"
        c = make_consumer(args, group, kind == "static")
        committed, delivered = {}, set()
        half = lambda d: len(d) >= RECORDS // 2 and len({p for p, _ in d}) == PARTITIONS
        consume(args, c, RECORDS // 2, committed, delivered, half)
        member = c.memberid()
        c.close()
        state[kind] = {"group": group, "member_id": member, "committed": committed, "delivered": sorted(delivered)}
        log(f"  {kind} member {member} of {group}: {len(delivered)} records, committed {committed}")
    with open(args.state, "w") as f:
        json.dump(state, f)
    return f"{RECORDS} records produced, about half consumed and committed by each group"


def after(args):
    with open(args.state) as f:
        state = json.load(f)
    out = {}
    for kind in ("static", "dynamic"):
        s = state[kind]
        committed = {int(p): o for p, o in s["committed"].items()}
        delivered = {tuple(x) for x in s["delivered"]}
        resumed_at = dict(committed)
        c = make_consumer(args, s["group"], kind == "static")
        consume(args, c, RECORDS, committed, delivered, lambda d: len(d) == RECORDS)
        check_eq(delivered, set(expected()), f"{kind}: records delivered over both phases")
        member = c.memberid()
        if kind == "static":
            check(member != s["member_id"], f"static member kept its old member id {member}")
        out[kind] = member
        c.close()
        log(f"  {kind}: resumed at {resumed_at}; all {RECORDS} records delivered exactly once over "
            f"both phases; member id now {member}")
    with open(args.state + ".after", "w") as f:
        json.dump(out, f)
    return "both groups resumed from their commits"


def body(args):
    return before(args) if args.phase == "before" else after(args)


def extra_args(p):
    p.add_argument("--phase", choices=["before", "after"], required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--state", required=True, help="JSON file passed from phase before to after")


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
