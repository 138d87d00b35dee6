//! Names shared across the mirror: the flow's consumer group, drill groups and the partition
//! key type.

use crate::config::Flow;

/// A source partition: topic and partition number.
pub type Tp = (String, i32);

/// The consumer group the workers of a flow share on the source cluster.
pub fn group_id(flow: &Flow) -> String {
    format!("tern.{}.{}", flow.source, flow.target)
}

/// Prefix of every drill group on the target; the mirror never checkpoints such groups.
pub const DRILL_GROUP_PREFIX: &str = "tern-drill.";
