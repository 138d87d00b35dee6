"""Consumer-group scenarios whose observable outcomes must be the same on any Kafka broker.

Run: <venv python> tests/compat/group_scenarios.py --bootstrap HOST:PORT --summary FILE
     [--phase all|before-restart|after-restart --state FILE]

tests/it/groups_reference.rs runs this against Apache Kafka and against `tern broker` and
compares the two JSON summaries written to FILE, which hold only what does not depend on
timing: committed offsets, assignment sizes per phase, group states, error names, where a
resumed consumer starts. Member ids, generation numbers of client-driven groups and
timestamps stay out (the hand-made request scenarios, which drive every request themselves,
keep their generation numbers).

Scenarios (phase `all`):
- split-range, split-cooperative: three confluent-kafka consumers (range, then
  cooperative-sticky, set explicitly) split a 6-partition topic 2/2/2, commit, one closes
  (committing on revocation), the other two take over 3/3, all close; every assignment must
  resume exactly at the last commit.
- resume-and-reset: on the range group, now empty, the admin client resets the offsets; a new
  consumer starts exactly there; while it is active the admin client is refused offset resets,
  offset deletion and group deletion; after it closed they work.
- static: two static members (group.instance.id); one closes and comes back with its old
  partitions without a rebalance; a third consumer with the same instance id fences it;
  LeaveGroup by instance id removes them.
- protocol, static_protocol (group_protocol.py, with group_raw.py): JoinGroup, SyncGroup, Heartbeat, OffsetCommit, LeaveGroup,
  DescribeGroups, ListGroups, DeleteGroups, OffsetFetch and OffsetDelete sent by hand
  (kafka-python's message classes, pinned versions, one connection per member so a JoinGroup
  can wait while others act) with the arguments clients get wrong: unknown and pending members,
  stale and future generations, fenced static members, empty groups, unknown groups, topics
  and partitions, the error code of every answer and the order of partitions in it.
- timeouts: what the coordinator's timers decide, not when: a silent member's session ends,
  a member that does not rejoin or never syncs is dropped, a simple group becomes a consumer
  group, a returning static member with another subscription.
Consumers here are polled round-robin from one thread: librdkafka heartbeats and rebalances in
its own threads, so outcomes do not depend on the polling. (kafka-python's KafkaConsumer does
not fit: it abandons a join that completes between two polls and joins again, which can keep
a group rebalancing on any broker.)

Phases before-restart / after-restart: a dynamic and a static consumer commit part of a topic;
the broker is restarted in between; the groups come back (states, members, offsets) and
consumers resume at the committed offsets.

Exit 0 only when the scenarios ran; the comparison is the caller's.
"""

import json
import time

from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, Consumer, KafkaError,
                             KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

import common
from common import Deadline, check_eq, log
from group_protocol import scenario_protocol, scenario_static_protocol, scenario_timeouts
from group_raw import LeaveGroupRequest, Raw, code_name, offset_delete

NAME = "group_scenarios"
RT = 30  # seconds per admin call

# ---------------------------------------------------------------------------------------------
# Shared pieces


def value(tag, p, o):
    return b"%s-%d-%d" % (tag.encode(), p, o)


class Topic:
    """A fresh topic with records whose content is known from (partition, offset)."""

    def __init__(self, sc, prefix, partitions, name=None):
        self.sc, self.partitions = sc, partitions
        self.name = name or common.unique(prefix)
        self.end = {p: 0 for p in range(partitions)}
        if name is None:
            sc.create_topic(self.name, partitions)

    def produce(self, per_partition):
        errors = []
        for p in range(self.partitions):
            for _ in range(per_partition):
                o = self.end[p]
                self.sc.producer.produce(self.name, key=b"k%d" % o, value=value(self.name, p, o), partition=p,
                                         on_delivery=lambda err, msg: errors.append(err) if err else None)
                self.end[p] += 1
        check_eq(self.sc.producer.flush(RT), 0, "records left unsent")
        check_eq(errors, [], f"delivery errors producing to {self.name}")


def err_name(e):
    """The name of a confluent-kafka error, or None for success."""
    if e is None:
        return None
    if isinstance(e, KafkaException):
        e = e.args[0]
    return e.name() if isinstance(e, KafkaError) else repr(e)


class Scenarios:
    def __init__(self, args):
        self.args = args
        self.admin = AdminClient({"bootstrap.servers": args.bootstrap})
        # Idempotent: the checks expect each record at the offset it was counted for, so a retry
        # (a broker just restarted answering late, say) must not write a batch twice.
        self.producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})

    def create_topic(self, name, partitions):
        f = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name]
        f.result(RT)
        # Wait until the new topic's partitions have leaders, as a consumer's metadata sees them.
        dl = Deadline(self.args.timeout, f"metadata of {name}")
        while True:
            md = self.admin.list_topics(name, timeout=RT).topics.get(name)
            if md and md.error is None and len(md.partitions) == partitions and all(
                    p.leader >= 0 for p in md.partitions.values()):
                return
            dl.check()
            time.sleep(0.1)

    # --- admin views --------------------------------------------------------------------------

    def committed(self, group, topic):
        """{partition: committed offset} as the admin client lists them (-1001 when none)."""
        req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic.name, p) for p in range(topic.partitions)])]
        r = self.admin.list_consumer_group_offsets(req, request_timeout=RT)[group].result(RT)
        return {str(tp.partition): tp.offset for tp in r.topic_partitions}

    def describe(self, group):
        """What describe_consumer_groups shows of a group, without ids: state, assignor,
        members' assignment sizes (sorted), or the error."""
        try:
            d = self.admin.describe_consumer_groups([group], request_timeout=RT)[group].result(RT)
        except KafkaException as e:
            return {"error": err_name(e)}
        return {
            "state": d.state.name,
            "assignor": d.partition_assignor,
            "simple": d.is_simple_consumer_group,
            "members": len(d.members),
            "assignment_sizes": sorted(len(m.assignment.topic_partitions) for m in d.members),
        }

    def wait_state(self, group, state, what):
        dl = Deadline(self.args.timeout, what)
        while True:
            d = self.describe(group)
            if d.get("state") == state.name:
                return d
            dl.check(f"described as {d}")
            time.sleep(0.1)

    def listed(self, group):
        """The group's state in list_consumer_groups, unfiltered and with each state filter."""
        out = {}
        r = self.admin.list_consumer_groups(request_timeout=RT).result(RT)
        check_eq(r.errors, [], "list_consumer_groups errors")
        g = next((x for x in r.valid if x.group_id == group), None)
        out["listed"] = None if g is None else {"state": g.state.name, "simple": g.is_simple_consumer_group}
        for s in (ConsumerGroupState.STABLE, ConsumerGroupState.EMPTY):
            r = self.admin.list_consumer_groups(states={s}, request_timeout=RT).result(RT)
            out[f"in_{s.name.lower()}_filter"] = any(x.group_id == group for x in r.valid)
        return out

    def admin_call(self, fut):
        """The error name of an admin call (None when it worked), including per-partition ones."""
        try:
            r = fut.result(RT)
        except KafkaException as e:
            return err_name(e)
        errors = sorted({err_name(tp.error) for tp in getattr(r, "topic_partitions", []) if tp.error})
        return ",".join(errors) if errors else None

    def alter_offsets(self, group, topic, offsets):
        tps = [TopicPartition(topic.name, p, o) for p, o in offsets.items()]
        return self.admin_call(self.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group])

    def delete_offsets(self, group, topic, partitions):
        """OffsetDelete, as kafka-consumer-groups.sh --delete-offsets sends it (confluent-kafka's
        admin client has no call for it)."""
        raw = Raw(self.args.bootstrap, "offset-deleter")
        try:
            return offset_delete(raw, group, topic.name, partitions)
        finally:
            raw.close()

    def delete_groups(self, groups):
        futs = self.admin.delete_consumer_groups(groups, request_timeout=RT)
        return {("group" if i == 0 else f"group{i}"): self.admin_call(futs[g]) for i, g in enumerate(groups)}


# ---------------------------------------------------------------------------------------------
# confluent-kafka consumers, polled round-robin from this thread


class Member:
    """One consumer of a group and what its rebalance callbacks reported. Commits only when
    told to and on revocation (including the revocation of close)."""

    def __init__(self, sc, ledger, name, group, topic, assignor, instance=None, session_ms=10000):
        self.sc, self.ledger, self.name, self.topic = sc, ledger, name, topic
        self.owned = set()
        self.events = []          # ("assign" | "revoke" | "lost", [partitions])
        self.pos = {}             # partition -> next offset to process
        self.error = None
        conf = {
            "bootstrap.servers": sc.args.bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": assignor,
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": 500,
        }
        if instance:
            conf["group.instance.id"] = instance
        self.c = Consumer(conf)
        self.c.subscribe([topic.name], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _on_assign(self, consumer, partitions):
        ps = sorted(tp.partition for tp in partitions)
        self.events.append(("assign", ps))
        for p in ps:
            self.owned.add(p)
            self.ledger.start_session(self.name, p)

    def _on_revoke(self, consumer, partitions):
        ps = sorted(tp.partition for tp in partitions)
        self.events.append(("revoke", ps))
        self.commit(ps)
        for p in ps:
            self.owned.discard(p)
            self.pos.pop(p, None)

    def _on_lost(self, consumer, partitions):
        ps = sorted(tp.partition for tp in partitions)
        self.events.append(("lost", ps))
        for p in ps:
            self.owned.discard(p)
            self.pos.pop(p, None)

    def commit(self, partitions=None):
        offsets = {p: o for p, o in self.pos.items() if partitions is None or p in partitions}
        if not offsets:
            return
        tps = [TopicPartition(self.topic.name, p, o) for p, o in sorted(offsets.items())]
        try:
            result = self.c.commit(offsets=tps, asynchronous=False)
            errors = [err_name(tp.error) for tp in result if tp.error]
        except KafkaException as e:
            errors = [err_name(e)]
        if errors:
            self.ledger.commit_errors.append(errors[0])
            return
        self.ledger.committed.update(offsets)

    def poll(self):
        if self.error:
            return
        for m in self.c.consume(50, 0.05):
            if m.error():
                self.error = m.error()
                log(f"  {self.name}: consume error {self.error}")
                return
            self.ledger.deliver(self, m.partition(), m.offset(), m.value())
            self.pos[m.partition()] = m.offset() + 1

    def close(self):
        try:
            self.c.close()
        except (KafkaException, RuntimeError) as e:
            log(f"  {self.name}: close: {e}")


class Ledger:
    """Deliveries and commits of one group's consumers; anomalies are collected, not raised,
    so the summary shows them."""

    def __init__(self, topic):
        self.topic = topic
        self.committed = {}        # partition -> last committed offset (from these consumers or resets)
        self.session = {}          # (consumer, partition) -> next offset expected, None before the first
        self.first = {}            # partition -> first offset of its latest assignment session
        self.seen = {}             # (partition, offset) -> times delivered
        self.anomalies = []
        self.commit_errors = []

    def start_session(self, consumer, p):
        self.session[(consumer, p)] = None

    def deliver(self, member, p, o, v):
        if v != value(self.topic.name, p, o):
            self.anomalies.append(f"partition {p} offset {o}: unexpected content")
        k = (member.name, p)
        if k not in self.session or p not in member.owned:
            self.anomalies.append(f"partition {p} offset {o} delivered to a consumer not owning it")
        expect = self.session.get(k)
        if expect is None:
            start = self.committed.get(p, 0)
            self.first[p] = o
            if o != start:
                self.anomalies.append(f"partition {p}: a new assignment started at {o}, the last commit was {start}")
        elif o != expect:
            self.anomalies.append(f"partition {p}: offset {o} follows {expect - 1}")
        self.session[k] = o + 1
        self.seen[(p, o)] = self.seen.get((p, o), 0) + 1

    def all_delivered(self):
        return all((p, o) in self.seen for p, end in self.topic.end.items() for o in range(end))

    def duplicates(self):
        return sum(n - 1 for n in self.seen.values())


def pump(sc, members, what, until):
    """Polls every member in turn until until() holds."""
    dl = Deadline(sc.args.timeout, what)
    while not until():
        for m in members:
            m.poll()
        dl.check(" / ".join(f"{m.name} owns {sorted(m.owned)}" for m in members))


def split(members, partitions, sizes):
    """The members' partitions are disjoint, cover the topic and have these sizes."""
    owned = [p for m in members for p in m.owned]
    return sorted(owned) == list(range(partitions)) and sorted(len(m.owned) for m in members) == sizes


def scenario_split(sc, assignor):
    """Three consumers split a topic, one leaves, two take over; returns (summary, the range
    group's topic and group for the next scenario)."""
    topic = Topic(sc, f"diff-split-{assignor}", 6)
    group = common.unique(f"diff-split-{assignor}")
    ledger = Ledger(topic)
    out = {}
    topic.produce(5)
    ms = [Member(sc, ledger, f"{assignor}-c{i}", group, topic, assignor) for i in range(3)]
    pump(sc, ms, "three consumers splitting 2/2/2 and reading everything",
         lambda: split(ms, 6, [2, 2, 2]) and ledger.all_delivered())
    for m in ms:
        m.commit()
    out["three_members"] = {
        "sizes": sorted(len(m.owned) for m in ms),
        "described": sc.wait_state(group, ConsumerGroupState.STABLE, "the group of three being Stable"),
        "committed": sc.committed(group, topic),
        "listed": sc.listed(group),
    }
    log(f"  {assignor}: three consumers split 2/2/2: {out['three_members']}")

    topic.produce(3)
    pump(sc, ms, "three consumers reading the second wave", ledger.all_delivered)
    leaver, rest = ms[0], ms[1:]
    before = {m.name: set(m.owned) for m in rest}
    marks = {m.name: len(m.events) for m in rest}
    leaver.close()
    pump(sc, rest, "two consumers taking over 3/3", lambda: split(rest, 6, [3, 3]) and ledger.all_delivered())
    out["after_leave"] = {
        "sizes": sorted(len(m.owned) for m in rest),
        # Cooperative members give nothing back and only gain; eager ones give everything back
        # first (and what they get then depends on how member ids sort).
        "revoked_during_rebalance": sorted(any(e[0] == "revoke" and e[1] for e in m.events[marks[m.name]:]) for m in rest),
        "described": sc.wait_state(group, ConsumerGroupState.STABLE, "the group of two being Stable"),
        "committed_sorted": sorted(sc.committed(group, topic).values()),
    }
    if assignor == "cooperative-sticky":
        out["after_leave"]["kept_previous"] = sorted(before[m.name] <= m.owned for m in rest)
    log(f"  {assignor}: after one left: {out['after_leave']}")

    for m in rest:
        m.close()
    out["after_close"] = {
        "described": sc.wait_state(group, ConsumerGroupState.EMPTY, "the group being Empty after every consumer closed"),
        "committed": sc.committed(group, topic),
        "listed": sc.listed(group),
    }
    out["duplicates"] = ledger.duplicates()
    out["anomalies"] = ledger.anomalies
    out["commit_errors"] = ledger.commit_errors
    log(f"  {assignor}: all closed: {out['after_close']}; {out['duplicates']} duplicate(s), anomalies {ledger.anomalies}")
    return out, (topic, group, ledger)


def scenario_resume_and_reset(sc, topic, group, ledger):
    """Admin offset resets on the empty range group, a consumer resuming there, and what the
    admin client may not do while it is active."""
    out = {}
    reset = {p: p for p in range(topic.partitions)}
    out["reset_empty_group"] = sc.alter_offsets(group, topic, reset)
    out["committed_after_reset"] = sc.committed(group, topic)
    ledger.committed.update(reset)
    topic.produce(2)
    r = Member(sc, ledger, "resumer", group, topic, "range")
    pump(sc, [r], "a new consumer reading from the reset offsets to the end",
         lambda: len(r.owned) == topic.partitions and all(r.pos.get(p) == topic.end[p] for p in range(topic.partitions)))
    out["resumed_at"] = {str(p): ledger.first.get(p) for p in range(topic.partitions)}
    out["active"] = {
        "described": sc.wait_state(group, ConsumerGroupState.STABLE, "the resumed group being Stable"),
        "listed": sc.listed(group),
        "reset_refused": sc.alter_offsets(group, topic, {0: 1}),
        "delete_offsets_refused": sc.delete_offsets(group, topic, [0]),
        "delete_group_refused": sc.delete_groups([group]),
    }
    log(f"  resumed at {out['resumed_at']}; while active: {out['active']}")
    r.commit()
    r.close()
    sc.wait_state(group, ConsumerGroupState.EMPTY, "the group being Empty after the resumer closed")
    unknown = common.unique("diff-unknown")
    out["idle"] = {
        "committed": sc.committed(group, topic),
        "delete_offsets": sc.delete_offsets(group, topic, [0]),
        "committed_after_delete": sc.committed(group, topic),
        "delete_groups": sc.delete_groups([group, unknown]),
    }
    out["deleted"] = {
        "described": sc.describe(group),
        "committed": sc.committed(group, topic),
        "listed": sc.listed(group),
        "unknown_described": sc.describe(unknown),
    }
    out["anomalies"] = ledger.anomalies
    out["commit_errors"] = ledger.commit_errors
    log(f"  once idle: {out['idle']}; deleted: {out['deleted']}")
    return out


def scenario_static(sc):
    """Static members: a closed one keeps its place, comes back to its partitions, is fenced
    by a newer instance with its group.instance.id, and is removed by instance id."""
    topic = Topic(sc, "diff-static", 4)
    group = common.unique("diff-static")
    ledger = Ledger(topic)
    ids = {k: f"{group}-{k}" for k in ("a", "b")}
    out = {}
    topic.produce(8)
    a = Member(sc, ledger, "static-a", group, topic, "range", instance=ids["a"], session_ms=30000)
    b = Member(sc, ledger, "static-b", group, topic, "range", instance=ids["b"], session_ms=30000)
    pump(sc, [a, b], "two static members splitting 2/2", lambda: split([a, b], 4, [2, 2]) and ledger.all_delivered())
    for m in (a, b):
        m.commit()
    d = sc.admin.describe_consumer_groups([group], request_timeout=RT)[group].result(RT)
    out["two_members"] = {
        "described": sc.describe(group),
        "instances": sorted((m.group_instance_id or "").removeprefix(group + "-") for m in d.members),
    }
    owned_a, b_marks = set(a.owned), len(b.events)
    a.close()
    # A static member does not leave on close: the group keeps it until its session ends.
    out["after_static_close"] = {"described": sc.describe(group)}
    topic.produce(1)
    a2 = Member(sc, ledger, "static-a-again", group, topic, "range", instance=ids["a"], session_ms=30000)
    pump(sc, [a2, b], "the static member returning to its partitions",
         lambda: len(a2.owned) == 2 and ledger.all_delivered())
    out["after_static_return"] = {
        "same_partitions": a2.owned == owned_a,
        "other_member_rebalanced": b.events[b_marks:] != [],
        "described": sc.describe(group),
    }
    log(f"  static: {out}")

    a3 = Member(sc, ledger, "static-a-fencer", group, topic, "range", instance=ids["a"], session_ms=30000)
    pump(sc, [a2, a3, b], "a newer instance with the same group.instance.id fencing the old one",
         lambda: a2.error is not None and len(a3.owned) == 2)
    out["fenced"] = {
        "error": err_name(a2.error),
        "fencer_partitions_same": a3.owned == owned_a,
        "other_member_rebalanced": b.events[b_marks:] != [],
    }
    a2.close()
    for m in (a3, b):
        m.commit()
        m.close()
    out["after_static_closes"] = {"described": sc.describe(group), "committed": sc.committed(group, topic)}
    # Removal by group.instance.id alone (what kafka-consumer-groups --delete ... does for
    # static members), plus one instance that is not in the group.
    raw = Raw(sc.args.bootstrap, "static-remover")
    raw.wait_coordinator(group)
    leave = LeaveGroupRequest(group_id=group, members=[
        LeaveGroupRequest.MemberIdentity(member_id="", group_instance_id=i, reason=None)
        for i in (ids["a"], ids["b"], f"{group}-nobody")])
    r = raw.call(leave, 3)
    out["removed_by_instance_id"] = {"error": code_name(r.error_code), "members": [code_name(m.error_code) for m in r.members]}
    out["after_removal"] = {
        "described": sc.wait_state(group, ConsumerGroupState.EMPTY, "the static group being Empty after removal"),
        "committed": sc.committed(group, topic),
    }
    out["anomalies"] = ledger.anomalies
    out["commit_errors"] = ledger.commit_errors
    raw.close()
    log(f"  static, fenced and removed: {out['fenced']}, {out['removed_by_instance_id']}, {out['after_removal']}")
    return out


# ---------------------------------------------------------------------------------------------
# Across a broker restart


def restart_before(sc, args):
    topic = Topic(sc, "diff-restart", 3)
    topic.produce(10)
    state = {"topic": topic.name, "groups": {}}
    out = {}
    for kind in ("dynamic", "static"):
        group = common.unique(f"diff-restart-{kind}")
        ledger = Ledger(topic)
        m = Member(sc, ledger, f"restart-{kind}", group, topic, "range",
                   instance=f"{group}-i" if kind == "static" else None, session_ms=30000)
        pump(sc, [m], f"the {kind} consumer reading everything", lambda: len(m.owned) == 3 and ledger.all_delivered())
        # Commit a known point (not the end) so resuming is visible.
        m.pos = {p: 4 + p for p in range(3)}
        m.commit()
        m.close()
        state["groups"][kind] = group
        out[kind] = {"committed": sc.committed(group, topic), "described": sc.describe(group)}
    with open(args.state, "w") as f:
        json.dump(state, f)
    log(f"  before the restart: {out}")
    return out


def restart_after(sc, args):
    with open(args.state) as f:
        state = json.load(f)
    topic = Topic(sc, "", 3, name=state["topic"])
    topic.end = {p: 10 for p in range(3)}
    out = {}
    raw = Raw(args.bootstrap, "restart-check")
    for group in state["groups"].values():
        raw.wait_coordinator(group)  # a restarted Kafka loads its groups first
    raw.close()
    for kind in ("dynamic", "static"):
        group = state["groups"][kind]
        out[kind] = {"described": sc.describe(group), "committed": sc.committed(group, topic)}
    topic.produce(2)
    for kind in ("dynamic", "static"):
        group = state["groups"][kind]
        ledger = Ledger(topic)
        ledger.committed = {p: 4 + p for p in range(3)}
        m = Member(sc, ledger, f"restart-{kind}-again", group, topic, "range",
                   instance=f"{group}-i" if kind == "static" else None, session_ms=30000)
        pump(sc, [m], f"the {kind} consumer resuming after the restart",
             lambda: len(m.owned) == 3 and all(m.pos.get(p) == topic.end[p] for p in range(3)))
        m.commit()
        out[kind].update({
            "resumed_at": {str(p): ledger.first.get(p) for p in range(3)},
            "delivered": len(ledger.seen),
            "described_rejoined": sc.describe(group),
            "anomalies": ledger.anomalies,
            "commit_errors": ledger.commit_errors,
        })
        m.close()
        out[kind]["committed_at_end"] = sc.committed(group, topic)
    log(f"  after the restart: {out}")
    return out


# ---------------------------------------------------------------------------------------------


def body(args):
    sc = Scenarios(args)
    if args.phase == "before-restart":
        summary = {"before_restart": restart_before(sc, args)}
    elif args.phase == "after-restart":
        summary = {"after_restart": restart_after(sc, args)}
    else:
        summary = {}
        only = set(args.only.split(",")) if args.only else None
        wanted = lambda name: only is None or name in only
        if wanted("split") or wanted("resume_and_reset"):
            summary["split_range"], (topic, group, ledger) = scenario_split(sc, "range")
        if wanted("split"):
            summary["split_cooperative"], _ = scenario_split(sc, "cooperative-sticky")
        if wanted("resume_and_reset"):
            summary["resume_and_reset"] = scenario_resume_and_reset(sc, topic, group, ledger)
        if wanted("static"):
            summary["static"] = scenario_static(sc)
        if wanted("protocol") or wanted("static_protocol") or wanted("timeouts"):
            topic = Topic(sc, "diff-protocol", 2).name
        if wanted("protocol"):
            summary["protocol"] = scenario_protocol(args.bootstrap, topic)
        if wanted("static_protocol"):
            summary["static_protocol"] = scenario_static_protocol(args.bootstrap, topic)
        if wanted("timeouts"):
            summary["timeouts"] = scenario_timeouts(args.bootstrap, topic)
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    return f"{', '.join(summary)} written to {args.summary}"


def extra_args(p):
    p.add_argument("--summary", required=True, help="file the JSON summary is written to")
    p.add_argument("--phase", choices=["all", "before-restart", "after-restart"], default="all")
    p.add_argument("--state", help="JSON file passed from phase before-restart to after-restart")
    p.add_argument("--only", help="comma-separated scenarios of phase all to run (default: every one): "
                                  "split, resume_and_reset, static, protocol, static_protocol, timeouts")


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
