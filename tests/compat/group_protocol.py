"""The hand-made request scenarios of tests/compat/group_scenarios.py: every answer of the
group coordinator to requests clients get right and wrong, and what its timers decide."""

import json
import time

import common
from common import log
from group_raw import (Raw, code_name, commit, commit_topics, delete_groups, describe_raw, fetch_offsets,
                       fetch_offsets_v8, heartbeat, join_request, join_result, join_sync, leave, list_groups,
                       offset_delete, sync_request, wait_described, wait_heartbeat)


def scenario_protocol(bootstrap, t):
    """Every answer to hand-made requests, good and bad."""
    out = {}
    group = common.unique("diff-protocol")
    a, b, c = (Raw(bootstrap, f"raw-{k}") for k in "abc")
    a.wait_coordinator(group)

    # Joining: v4+ dynamic members first get an id; a session timeout out of bounds, a
    # protocol type or protocols the group does not share are refused.
    r = a.call(join_request(group, topics=[t]), 5)
    out["join_without_id"] = {"error": code_name(r.error_code), "generation": r.generation_id, "got_member_id": r.member_id != ""}
    ma = r.member_id
    out["join_session_too_short"] = code_name(a.call(join_request(group, ma, topics=[t], session_ms=1000), 5).error_code)
    out["join_session_too_long"] = code_name(a.call(join_request(group, ma, topics=[t], session_ms=3_600_000), 5).error_code)
    out["join_unknown_member_id"] = code_name(a.call(join_request(group, "no-such-member", topics=[t]), 5).error_code)
    r = a.call(join_request(group, ma, topics=[t]), 5)
    out["join_with_id"] = join_result(r, ma)
    gen = r.generation_id
    out["sync_wrong_generation"] = code_name(a.call(sync_request(group, gen + 1, ma), 3).error_code)
    out["sync_unknown_member"] = code_name(a.call(sync_request(group, gen, "no-such-member"), 3).error_code)
    r = a.call(sync_request(group, gen, ma, assignments=[(ma, b"assignment-a")]), 3)
    out["sync_leader"] = {"error": code_name(r.error_code), "assignment": r.assignment.decode()}
    out["join_other_protocol_type"] = code_name(
        b.call(join_request(group, topics=[t], protocol_type="connect"), 5).error_code)
    out["join_unshared_protocols"] = code_name(
        b.call(join_request(group, protocols=(("roundrobin", None),), topics=[t]), 5).error_code)
    out["describe_stable"] = describe_raw(c, group)
    out["describe_stable_v0"] = describe_raw(c, group, 0)
    out["describe_stable_v6"] = describe_raw(c, group, 6)
    r = c.call(sync_request(group, gen, ma), 5)
    out["sync_v5_known_protocol"] = [code_name(r.error_code), r.protocol_type, r.protocol_name, r.assignment.decode()]
    req = sync_request(group, gen, ma)
    req.protocol_name = "roundrobin"
    out["sync_v5_other_protocol"] = code_name(c.call(req, 5).error_code)
    req = sync_request(group, gen, ma)
    req.protocol_type = "connect"
    out["sync_v5_other_protocol_type"] = code_name(c.call(req, 5).error_code)

    # Empty group ids; a member id handed out with MEMBER_ID_REQUIRED but never used.
    out["join_empty_group_id"] = code_name(c.call(join_request("", topics=[t]), 5).error_code)
    out["heartbeat_empty_group_id"] = heartbeat(c, "", 1, ma)
    out["sync_empty_group_id"] = code_name(c.call(sync_request("", 1, ma), 3).error_code)
    out["commit_empty_group_id"] = commit(c, "", 1, ma, t, [(0, 1)])
    out["leave_empty_group_id"] = leave(c, "", [(ma, None)])
    pending = c.call(join_request(group, topics=[t]), 5).member_id
    out["heartbeat_pending_member"] = heartbeat(c, group, gen, pending)
    out["sync_pending_member"] = code_name(c.call(sync_request(group, gen, pending), 3).error_code)
    out["commit_pending_member"] = commit(c, group, gen, pending, t, [(0, 1)])
    out["leave_pending_member"] = leave(c, group, [(pending, None)])
    out["describe_after_pending_left"] = describe_raw(c, group)

    # Heartbeats and commits from the member and from impostors.
    out["heartbeat"] = heartbeat(a, group, gen, ma)
    out["heartbeat_wrong_generation"] = heartbeat(a, group, gen + 1, ma)
    out["heartbeat_old_generation"] = heartbeat(a, group, gen - 1, ma)
    out["heartbeat_unknown_member"] = heartbeat(a, group, gen, "no-such-member")
    out["heartbeat_unknown_group"] = heartbeat(a, common.unique("diff-nogroup"), 1, "no-such-member")
    out["commit"] = commit(a, group, gen, ma, t, [(0, 1), (1, 2)])
    out["commit_stale_generation"] = commit(a, group, gen - 1, ma, t, [(0, 3)])
    out["commit_future_generation"] = commit(a, group, gen + 1, ma, t, [(0, 3)])
    out["commit_unknown_member"] = commit(a, group, gen, "no-such-member", t, [(0, 3)])
    out["commit_outside_group_protocol"] = commit(a, group, -1, "", t, [(0, 3)])
    out["commit_unknown_partition"] = commit(a, group, gen, ma, t, [(0, 4), (99, 1)])
    out["commit_unknown_topic"] = commit(a, group, gen, ma, common.unique("diff-notopic"), [(0, 1)])
    notopic = common.unique("diff-notopic")
    r = commit_topics(a, group, gen, ma, [(t, [(1, 3), (7, 1), (0, 4)]), (notopic, [(0, 1)])])
    # Partitions and topics in the order of the response: which the broker refuses before
    # the coordinator sees the request come first.
    out["commit_mixed_topics"] = [["known" if x.name == t else "unknown", p.partition_index, code_name(p.error_code)]
                                  for x in r.topics for p in x.partitions]
    r = commit_topics(a, group, gen, ma, [(t, [(0, 4)]), (notopic, [(0, 1)])])
    out["commit_known_then_unknown_topic"] = [["known" if x.name == t else "unknown", p.partition_index,
                                               code_name(p.error_code)] for x in r.topics for p in x.partitions]
    out["commit_metadata_too_large"] = commit(a, group, gen, ma, t, [(1, 5)], metadata="m" * 5000)
    nogroup = common.unique("diff-nogroup")
    out["commit_unknown_group_v8"] = commit(a, nogroup, 1, "no-such-member", t, [(0, 1)], version=8)
    out["commit_unknown_group_v9"] = commit(a, nogroup, 1, "no-such-member", t, [(0, 1)], version=9)
    out["offsets"] = fetch_offsets(c, group, t, [0, 1, 2])
    out["offsets_v8"] = fetch_offsets_v8(c, group, t, [0, 1, 2])
    out["offsets_unknown_group"] = fetch_offsets(c, nogroup, t, [0])
    out["offsets_unknown_partition"] = fetch_offsets(c, group, t, [0, 42])
    out["offsets_unknown_topic"] = fetch_offsets(c, group, notopic, [0])

    # A second member: the first learns of the rebalance from its heartbeat, may still commit
    # with its generation until it rejoins, and keeps leading.
    r = b.call(join_request(group, topics=[t]), 5)
    mb = r.member_id
    b.send(join_request(group, mb, topics=[t]), 5)          # parked until a rejoins
    time.sleep(0.5)
    out["heartbeat_during_rebalance"] = heartbeat(c, group, gen, ma)
    out["commit_during_rebalance"] = commit(c, group, gen, ma, t, [(0, 5)])
    out["describe_preparing"] = describe_raw(c, group)
    a.send(join_request(group, ma, topics=[t]), 5)
    ra, rb = a.recv(), b.recv()
    out["rejoin_leader"] = join_result(ra, ma)
    out["rejoin_follower"] = join_result(rb, ma)
    gen2 = ra.generation_id
    out["generation_advanced"] = gen2 == gen + 1 and rb.generation_id == gen2
    out["heartbeat_awaiting_sync"] = heartbeat(c, group, gen2, mb)
    out["commit_awaiting_sync"] = commit(c, group, gen2, ma, t, [(0, 6)])
    out["describe_completing"] = describe_raw(c, group)
    b.send(sync_request(group, gen2, mb), 3)                # parked until the leader syncs
    time.sleep(0.3)
    r = a.call(sync_request(group, gen2, ma, assignments=[(ma, b"assignment-a2"), (mb, b"assignment-b2")]), 3)
    rb = b.recv()
    out["sync_two_members"] = {"leader": [code_name(r.error_code), r.assignment.decode()],
                               "follower": [code_name(rb.error_code), rb.assignment.decode()]}
    out["heartbeat_stale_after_rebalance"] = heartbeat(c, group, gen, ma)
    out["commit_stale_after_rebalance"] = commit(c, group, gen, ma, t, [(0, 7)])
    out["offset_delete_subscribed"] = offset_delete(c, group, t, [0])
    out["delete_non_empty_group"] = delete_groups(c, [group])

    # Leaving: one known member and one unknown in a batch; then the old LeaveGroup version.
    out["leave_batch"] = leave(c, group, [(mb, None), ("no-such-member", None)])
    out["heartbeat_after_other_left"] = heartbeat(a, group, gen2, ma)
    r = a.call(join_request(group, ma, topics=[t]), 5)
    out["rejoin_alone"] = join_result(r, ma)
    gen3 = r.generation_id
    r = a.call(sync_request(group, gen3, ma, assignments=[(ma, b"assignment-a3")]), 3)
    out["sync_alone"] = [code_name(r.error_code), r.assignment.decode()]
    out["leave_v1_unknown_member"] = leave(c, group, [("no-such-member", None)], version=1)
    out["leave_unknown_group"] = leave(c, common.unique("diff-nogroup"), [("no-such-member", None)])
    out["leave_v1_unknown_group"] = leave(c, common.unique("diff-nogroup"), [("no-such-member", None)], version=1)
    out["sync_unknown_group"] = code_name(c.call(sync_request(common.unique("diff-nogroup"), 1, "m"), 3).error_code)
    out["leave_v1"] = leave(a, group, [(ma, None)], version=1)
    out["heartbeat_after_leave"] = heartbeat(a, group, gen3, ma)
    out["sync_after_leave"] = code_name(a.call(sync_request(group, gen3, ma), 3).error_code)
    out["describe_empty"] = describe_raw(c, group)
    out["offsets_after_leave"] = fetch_offsets(c, group, t, [0, 1])
    out["commit_empty_group_with_generation"] = commit(c, group, gen3, ma, t, [(0, 8)])
    out["commit_empty_group_outside_protocol"] = commit(c, group, -1, "", t, [(0, 9)])
    out["offset_delete"] = offset_delete(c, group, t, [0, 99])
    out["offset_delete_unknown_group"] = offset_delete(c, common.unique("diff-nogroup"), t, [0])
    out["offsets_after_offset_delete"] = fetch_offsets(c, group, t, [0, 1])
    out["list_groups"] = list_groups(c, group)
    out["describe_unknown_group"] = {f"v{v}": describe_raw(c, common.unique("diff-nogroup"), v) for v in (0, 5, 6)}
    out["delete_groups"] = delete_groups(c, [group, common.unique("diff-nogroup")])
    out["describe_deleted"] = describe_raw(c, group)
    out["offsets_deleted"] = fetch_offsets(c, group, t, [1])
    for x in (a, b, c):
        x.close()
    log(f"  protocol: {json.dumps(out, sort_keys=True)}")
    return out


def scenario_static_protocol(bootstrap, t):
    """Static membership by hand: a rejoin without member id takes over the old id, which is
    fenced from then on."""
    out = {}
    group = common.unique("diff-static-protocol")
    instance = f"{group}-i"
    a, c = Raw(bootstrap, "raw-static"), Raw(bootstrap, "raw-static-admin")
    a.wait_coordinator(group)
    r = a.call(join_request(group, instance=instance, topics=["t"]), 5)
    out["join"] = join_result(r, r.member_id)
    old, gen = r.member_id, r.generation_id
    r = a.call(sync_request(group, gen, old, instance, assignments=[(old, b"static-assignment")]), 3)
    out["sync"] = [code_name(r.error_code), r.assignment.decode()]
    out["heartbeat_wrong_instance"] = heartbeat(a, group, gen, old, f"{group}-other")
    out["heartbeat_without_instance"] = heartbeat(a, group, gen, old)
    # A restarted process: same instance id, no member id.
    r = a.call(join_request(group, instance=instance, topics=["t"]), 5)
    new = r.member_id
    out["rejoin_without_member_id"] = {
        "error": code_name(r.error_code), "same_generation": r.generation_id == gen, "new_member_id": new != old,
        # Before JoinGroup v9 the old leader id comes back, so the returning member does not
        # think it leads and recompute an assignment the group would ignore.
        "leader_is_old_id": r.leader == old, "members": len(r.members)}
    r = a.call(sync_request(group, gen, new, instance), 3)
    out["sync_new_id"] = [code_name(r.error_code), r.assignment.decode()]
    out["heartbeat_old_id"] = heartbeat(a, group, gen, old, instance)
    out["heartbeat_new_id"] = heartbeat(a, group, gen, new, instance)
    out["commit_old_id"] = commit(a, group, gen, old, t, [(0, 1)], instance=instance)
    out["commit_new_id"] = commit(a, group, gen, new, t, [(0, 2)], instance=instance)
    out["commit_new_id_without_instance"] = commit(a, group, gen, new, t, [(0, 3)])
    out["sync_old_id"] = code_name(a.call(sync_request(group, gen, old, instance), 3).error_code)
    out["join_old_id"] = code_name(a.call(join_request(group, old, instance=instance, topics=["t"]), 5).error_code)
    out["leave_old_id"] = leave(a, group, [(old, instance)])
    out["describe"] = describe_raw(c, group)
    out["leave_by_instance"] = leave(c, group, [("", instance)])
    out["heartbeat_after_removal"] = heartbeat(a, group, gen, new, instance)
    out["describe_after_removal"] = describe_raw(c, group)
    # JoinGroup v9: a returning static leader is told it leads but must skip the assignment.
    r = a.call(join_request(group, instance=instance, topics=["t"]), 9)
    first, gen = r.member_id, r.generation_id
    a.call(sync_request(group, gen, first, instance, assignments=[(first, b"v9-assignment")]), 5)
    r = a.call(join_request(group, instance=instance, topics=["t"]), 9)
    out["rejoin_v9"] = {"error": code_name(r.error_code), "same_generation": r.generation_id == gen,
                        "leader_is_new_id": r.leader == r.member_id, "skip_assignment": r.skip_assignment,
                        "members": len(r.members)}
    out["leave_v9_member"] = leave(c, group, [("", instance)])
    # Before v4 a dynamic member joins at once, without MEMBER_ID_REQUIRED.
    old_group = common.unique("diff-join-v3")
    r = a.call(join_request(old_group, topics=["t"]), 3)
    out["join_v3"] = join_result(r, r.member_id)
    out["leave_v3_member"] = leave(c, old_group, [(r.member_id, None)], version=1)
    a.close()
    c.close()
    log(f"  static protocol: {json.dumps(out, sort_keys=True)}")
    return out


def scenario_timeouts(bootstrap, t):
    """What the coordinator's timers do: a silent member's session ends, a member that does not
    rejoin in time or never sends SyncGroup is dropped, a static member that changes its
    subscription makes the group rebalance. Only outcomes are kept, not when they happened."""
    out = {}
    a, b, c = (Raw(bootstrap, f"timer-{k}") for k in "abc")

    # A member that stops heartbeating: removed when its session (the 6 s minimum) ends; the
    # group's generation moves on to an empty one.
    group = common.unique("diff-session")
    a.wait_coordinator(group)
    m, gen = join_sync(a, group, topics=[t], session_ms=6000)
    commit(a, group, gen, m, t, [(0, 3)])
    out["session_expired"] = wait_described(c, group, "Empty", "the silent member's session ending")
    out["session_expired_heartbeat"] = heartbeat(a, group, gen, m)
    out["session_expired_commit"] = commit(a, group, gen, m, t, [(0, 4)])
    out["session_expired_offsets"] = fetch_offsets(c, group, t, [0])
    _, gen2 = join_sync(a, group, topics=[t])
    out["session_expired_next_generation"] = gen2 - gen

    # A member that does not rejoin within the rebalance timeout is dropped from the next
    # generation.
    group = common.unique("diff-rejoin")
    a.wait_coordinator(group)
    ma, gen = join_sync(a, group, topics=[t], rebalance_ms=3000)
    req = join_request(group, topics=[t])
    req.rebalance_timeout_ms = 3000
    req.member_id = b.call(req, 5).member_id
    b.send(req, 5)                       # parked until a rejoins, which it never does
    r = b.recv()
    out["not_rejoined"] = {"joined": join_result(r, r.member_id), "generation_step": r.generation_id - gen}
    mb = r.member_id
    b.call(sync_request(group, r.generation_id, mb, assignments=[(mb, b"b")]), 3)
    out["not_rejoined_heartbeat"] = heartbeat(a, group, gen, ma)
    out["not_rejoined_described"] = describe_raw(c, group)
    leave(c, group, [(mb, None)])

    # A follower that never sends SyncGroup: dropped at the rebalance timeout and the group
    # rebalances for the leader, who hears of it from its heartbeat.
    group = common.unique("diff-nosync")
    a.wait_coordinator(group)
    ma, gen = join_sync(a, group, topics=[t], rebalance_ms=3000)
    req = join_request(group, topics=[t])
    req.rebalance_timeout_ms = 3000
    req.member_id = b.call(req, 5).member_id
    mb = req.member_id
    b.send(req, 5)
    time.sleep(0.3)
    req_a = join_request(group, ma, topics=[t])
    req_a.rebalance_timeout_ms = 3000
    ra = a.call(req_a, 5)
    b.recv()
    gen = ra.generation_id
    r = a.call(sync_request(group, gen, ma, assignments=[(ma, b"a"), (mb, b"b")]), 3)
    out["no_sync_leader_synced"] = code_name(r.error_code)
    out["no_sync_leader_heartbeat"] = wait_heartbeat(a, group, gen, ma, "REBALANCE_IN_PROGRESS",
                                                     "the leader hearing of the rebalance")
    ra = a.call(req_a, 5)
    out["no_sync_rejoined"] = {**join_result(ra, ma), "generation_step": ra.generation_id - gen}
    out["no_sync_dropped_heartbeat"] = heartbeat(b, group, gen, mb)
    a.call(sync_request(group, ra.generation_id, ma, assignments=[(ma, b"a")]), 3)
    leave(c, group, [(ma, None)])

    # A simple group (offsets only) becomes a consumer group when someone joins it.
    group = common.unique("diff-simple")
    a.wait_coordinator(group)
    out["simple_commit"] = commit(c, group, -1, "", t, [(0, 2)])
    out["simple_described"] = describe_raw(c, group)
    out["simple_listed"] = list_groups(c, group)["all"]
    m, gen = join_sync(a, group, topics=[t])
    out["simple_joined"] = {"generation": gen, "described": describe_raw(c, group)}
    leave(a, group, [(m, None)])
    out["simple_deleted"] = delete_groups(c, [group])
    out["simple_offsets_after_delete"] = fetch_offsets(c, group, t, [0])

    # Static member rejoining (no member id) with another subscription, and with the same one.
    group = common.unique("diff-static-change")
    instance = f"{group}-i"
    a.wait_coordinator(group)
    m, gen = join_sync(a, group, instance=instance, topics=[t])
    r = a.call(join_request(group, instance=instance, topics=[t, "other"]), 5)
    out["static_changed_subscription"] = {"error": code_name(r.error_code), "generation_step": r.generation_id - gen,
                                          "members": len(r.members)}
    gen = r.generation_id
    a.call(sync_request(group, gen, r.member_id, instance, assignments=[(x.member_id, b"x") for x in r.members]), 3)
    r = a.call(join_request(group, instance=instance, topics=[t, "other"]), 5)
    out["static_same_subscription"] = {"error": code_name(r.error_code), "generation_step": r.generation_id - gen,
                                       "members": len(r.members)}
    leave(c, group, [("", instance)])
    for x in (a, b, c):
        x.close()
    log(f"  timers: {json.dumps(out, sort_keys=True)}")
    return out
