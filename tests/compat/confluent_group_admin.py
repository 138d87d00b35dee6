"""confluent-kafka AdminClient consumer-group operations against a running Tern broker.

Run: <venv python> tests/compat/confluent_group_admin.py --bootstrap 127.0.0.1:PORT

With an active group (one consumer holding all 3 partitions), an idle group (committed,
then closed) and a simple group (offsets written by the admin client only):
list_consumer_groups (states and simple-ness, with and without a state filter),
describe_consumer_groups (state, assignor, member, client id, host, assignment),
list_consumer_group_offsets, alter_consumer_group_offsets (works on the idle group, fails
with UNKNOWN_MEMBER_ID on the active one, creates a simple group), delete_consumer_groups
(NON_EMPTY_GROUP for the active group, GROUP_ID_NOT_FOUND for an unknown one, the idle group
and its offsets go). These are Apache Kafka's answers.

Exit 0 only when every check passed.
"""

import time

from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, Consumer, KafkaError,
                             KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

import common
from common import Deadline, check, check_eq, fail, log

NAME = "confluent_group_admin"
PARTITIONS = 3
PER_PARTITION = 10
RT = 30  # seconds per admin call


def result(fut, what):
    try:
        return fut.result(timeout=RT)
    except KafkaException as e:
        fail(f"{what}: failed: {e.args[0]}")


def expect_error(fut, code, what):
    try:
        r = fut.result(timeout=RT)
    except KafkaException as e:
        err = e.args[0]
        check(err.code() == code, f"{what}: expected {KafkaError(code).name()}, got {err.name()}: {err.str()}")
        return err.name()
    # Some results carry per-partition errors instead of failing the call.
    errors = [tp.error for tp in getattr(r, "topic_partitions", []) if tp.error]
    check(errors and all(e.code() == code for e in errors),
          f"{what}: succeeded, expected {KafkaError(code).name()} (partition errors {errors})")
    return errors[0].name()


def consumer(args, group, client_id):
    return Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": group,
        "client.id": client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",
    })


def listed(admin, **kw):
    r = result(admin.list_consumer_groups(request_timeout=RT, **kw), f"list_consumer_groups({kw})")
    check_eq(r.errors, [], "list_consumer_groups errors")
    return {g.group_id: g for g in r.valid}


def offsets_of(admin, group, topic):
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])]
    r = result(admin.list_consumer_group_offsets(req)[group], f"list_consumer_group_offsets({group})")
    return {tp.partition: tp.offset for tp in r.topic_partitions}


def body(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = common.unique("compat-group-admin")
    active, idle, simple = (common.unique(f"compat-{k}") for k in ("active", "idle", "simple"))
    unknown = common.unique("compat-unknown")
    result(admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic], "create_topics")
    p = Producer({"bootstrap.servers": args.bootstrap})
    for i in range(PARTITIONS * PER_PARTITION):
        p.produce(topic, value=b"v%d" % i, partition=i % PARTITIONS)
    check_eq(p.flush(30), 0, "records left unsent")

    # The idle group: consume everything, commit, leave.
    c = consumer(args, idle, "idle-consumer")
    c.subscribe([topic])
    got, dl = 0, Deadline(args.timeout, "the idle group's consumer reading every record")
    while got < PARTITIONS * PER_PARTITION:
        got += sum(1 for m in c.consume(100, 0.2) if not m.error())
        dl.check(f"{got} records")
    c.commit(asynchronous=False)
    c.close()

    # The active group: one consumer holding every partition.
    a = consumer(args, active, "active-consumer")
    a.subscribe([topic])
    dl = Deadline(args.timeout, "the active group's consumer getting its assignment")
    while len(a.assignment()) < PARTITIONS:
        a.poll(0.2)
        dl.check(f"assignment {a.assignment()}")
    log(f"  groups: {active} (1 member, all partitions), {idle} (committed and left)")

    groups = listed(admin)
    check(active in groups and idle in groups, f"list_consumer_groups: {active} and {idle} not both in {sorted(groups)}")
    check_eq(groups[active].state, ConsumerGroupState.STABLE, f"state of {active}")
    check_eq(groups[idle].state, ConsumerGroupState.EMPTY, f"state of {idle}")
    check_eq((groups[active].is_simple_consumer_group, groups[idle].is_simple_consumer_group), (False, False),
             "is_simple_consumer_group of the active and idle groups")
    stable = listed(admin, states={ConsumerGroupState.STABLE})
    empty = listed(admin, states={ConsumerGroupState.EMPTY})
    check(active in stable and idle not in stable, f"states=STABLE listed {sorted(stable)}")
    check(idle in empty and active not in empty, f"states=EMPTY listed {sorted(empty)}")
    log("  list_consumer_groups: states Stable/Empty, state filters select exactly those")

    desc = admin.describe_consumer_groups([active, idle])
    d = result(desc[active], f"describe_consumer_groups({active})")
    check_eq(d.state, ConsumerGroupState.STABLE, "described state of the active group")
    check_eq(d.partition_assignor, "range", "partition assignor of the active group")
    check_eq(len(d.members), 1, "members of the active group")
    m = d.members[0]
    check_eq(m.client_id, "active-consumer", "member client id")
    check(m.host.endswith("127.0.0.1"), f"member host {m.host!r}")
    check_eq(sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions),
             [(topic, p) for p in range(PARTITIONS)], "member assignment")
    d = result(desc[idle], f"describe_consumer_groups({idle})")
    check_eq((d.state, len(d.members)), (ConsumerGroupState.EMPTY, 0), "described state and members of the idle group")
    log(f"  describe_consumer_groups: active is Stable, range, member {m.member_id} at {m.host} with "
        f"{len(m.assignment.topic_partitions)} partitions; idle is Empty without members")

    check_eq(offsets_of(admin, idle, topic), {p: PER_PARTITION for p in range(PARTITIONS)}, "committed offsets of the idle group")
    new = [TopicPartition(topic, p, 3 + p) for p in range(PARTITIONS)]
    r = result(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(idle, new)])[idle], "alter offsets of the idle group")
    check_eq([tp.error for tp in r.topic_partitions], [None] * PARTITIONS, "alter offsets partition errors")
    check_eq(offsets_of(admin, idle, topic), {p: 3 + p for p in range(PARTITIONS)}, "offsets of the idle group after alter")
    err = expect_error(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(active, new)])[active],
                       KafkaError.UNKNOWN_MEMBER_ID, "alter offsets of the active group")
    log(f"  alter_consumer_group_offsets: idle group altered; active group refused with {err}")

    result(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(simple, new[:1])])[simple], "alter offsets of a new group")
    groups = listed(admin)
    check(simple in groups, f"the group created by alter_consumer_group_offsets is not listed: {sorted(groups)}")
    check_eq((groups[simple].is_simple_consumer_group, groups[simple].state), (True, ConsumerGroupState.EMPTY),
             "simple group created by an offset commit")
    log("  a group created by alter_consumer_group_offsets is listed as a simple, Empty group")

    res = admin.delete_consumer_groups([active, unknown], request_timeout=RT)
    e1 = expect_error(res[active], KafkaError.NON_EMPTY_GROUP, f"delete_consumer_groups({active})")
    e2 = expect_error(res[unknown], KafkaError.GROUP_ID_NOT_FOUND, f"delete_consumer_groups({unknown})")
    res = admin.delete_consumer_groups([idle, simple], request_timeout=RT)
    result(res[idle], f"delete_consumer_groups({idle})")
    result(res[simple], f"delete_consumer_groups({simple})")
    groups = listed(admin)
    check(idle not in groups and simple not in groups, f"deleted groups still listed: {sorted(groups)}")
    check(active in groups, f"{active} vanished")
    check_eq(offsets_of(admin, idle, topic), {p: -1001 for p in range(PARTITIONS)}, "offsets of the deleted idle group")
    log(f"  delete_consumer_groups: active -> {e1}, unknown -> {e2}; idle and simple groups and their offsets deleted")

    a.close()
    dl = Deadline(args.timeout, "the active group becoming Empty after its member closed")
    while listed(admin).get(active) is None or listed(admin)[active].state != ConsumerGroupState.EMPTY:
        dl.check()
        time.sleep(0.1)
    result(admin.delete_consumer_groups([active], request_timeout=RT)[active], f"delete_consumer_groups({active}) once empty")
    log("  after its consumer closed, the active group is Empty and can be deleted")
    return "list, describe, list/alter offsets, delete"


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0]))
