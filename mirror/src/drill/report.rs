//! The drill report: what `tern drill --json` writes, what the history keeps and what the
//! dashboard renders. Its JSON is a stable, documented schema (README, "Drill report");
//! fields are only ever added, and [`SCHEMA_VERSION`] changes when a meaning changes.

use serde::{Deserialize, Serialize};

/// Version of the report's JSON layout.
///
/// 2: `read_through` is a word (`read`, `nothing-to-read`, `failed`) instead of a boolean, and
/// a translation with nothing replicated is `nothing-replicated` (was `before-map`). Reports
/// written as version 1 still load.
pub const SCHEMA_VERSION: u32 = 2;

pub use crate::states::{Check, ReadThrough, TranslationState, Verdict};

impl Verdict {
    /// Whether the verdict lets a failover go ahead.
    pub fn ok(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::NoOffsets)
    }
}

/// One drill of one flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Unique, sortable by time (`20261125T054512Z-3f9a`); names the drill groups and the
    /// history file.
    pub id: String,
    /// `source->target`.
    pub flow: String,
    pub source: String,
    pub target: String,
    /// The `--groups` regex, if one was given.
    pub groups_filter: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// The flow's failover state when the drill ran; `None` when it could not be read.
    #[serde(default, deserialize_with = "v1::flow_state")]
    pub flow_state: Option<crate::states::FailoverState>,
    /// Worst group verdict, or `error` when the drill itself failed.
    pub verdict: Verdict,
    /// Records of the flow not yet on the target, summed over its partitions.
    pub rpo_records: i64,
    /// Age of the oldest record not yet on the target (seconds), 0 when none.
    pub rpo_seconds: f64,
    /// Time to translate every group, commit the translations to drill groups on the target
    /// and read through them (ms); `None` when nothing was applied.
    pub rto_ms: Option<u64>,
    /// Sums over the groups.
    pub redelivered_records: i64,
    pub missed_records: i64,
    pub partitions: Vec<PartitionRpo>,
    pub groups: Vec<GroupReport>,
    /// Drill-level problems (a cluster unreachable, drill groups not deleted).
    pub errors: Vec<String>,
}

/// Replication state of one source partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionRpo {
    pub topic: String,
    pub partition: i32,
    pub remote_topic: String,
    /// The source's end offset (high watermark).
    pub source_end: i64,
    /// Next source offset to reach the target: everything below it is there.
    pub replicated_end: i64,
    pub rpo_records: i64,
    pub rpo_seconds: f64,
}

/// One consumer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    pub group: String,
    pub verdict: Verdict,
    /// Why, in a sentence an operator can act on.
    pub reason: String,
    /// The drill-only group on the target that received the translated offsets (deleted
    /// afterwards).
    pub drill_group: Option<String>,
    /// Records the group has not consumed yet that are not on the target.
    pub rpo_records: i64,
    pub rpo_seconds: f64,
    /// Records a consumer starting on the target would read again.
    pub redelivered_records: i64,
    /// Records a consumer starting on the target would skip.
    pub missed_records: i64,
    /// Time to commit this group's translation and read through it (ms).
    pub apply_ms: Option<u64>,
    /// What a consumer of the drill group found: `read` (every partition it could read gave
    /// the expected record), `nothing-to-read` (every group position is at the end of what was
    /// replicated), `failed`; `None` when not tried.
    #[serde(default, deserialize_with = "v1::read_through")]
    pub read_through: Option<ReadThrough>,
    pub partitions: Vec<GroupPartitionReport>,
}

/// One group on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPartitionReport {
    pub topic: String,
    pub partition: i32,
    pub remote_topic: String,
    /// Committed offset on the source.
    pub committed: i64,
    /// Where the group resumes on the target; `None` when nothing was replicated yet.
    pub translated: Option<i64>,
    #[serde(deserialize_with = "v1::translation")]
    pub translation: TranslationState,
    pub source_end: i64,
    pub replicated_end: i64,
    pub rpo_records: i64,
    pub rpo_seconds: f64,
    /// How the target record at `translated` compares with the source record at `committed`
    /// (key, value, headers, timestamp): `match`, `skips`, `repeats`, `mismatch`,
    /// `nothing-to-compare` (the group is at the end of what was replicated).
    pub check: Check,
    pub redelivered_records: i64,
    pub missed_records: i64,
    /// The offset the drill group's consumer got, and what it read there.
    pub read_through_offset: Option<i64>,
    #[serde(default, deserialize_with = "v1::read_through")]
    pub read_through: Option<ReadThrough>,
}

/// Reading reports kept from schema version 1.
mod v1 {
    use serde::{Deserialize, Deserializer};

    use super::{ReadThrough, TranslationState};

    /// Version 1 wrote a boolean: `true` for a read that succeeded or had nothing to read.
    pub fn read_through<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReadThrough>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Word(ReadThrough),
            Flag(bool),
        }
        Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
            Either::Word(w) => w,
            Either::Flag(true) => ReadThrough::Read,
            Either::Flag(false) => ReadThrough::Failed,
        }))
    }

    /// Version 1 wrote `unknown` when the state could not be read.
    pub fn flow_state<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::states::FailoverState>, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            None => Ok(None),
            Some(w) if w == "unknown" => Ok(None),
            Some(w) => w.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }

    /// Version 1 called a translation with nothing replicated `before-map`.
    pub fn translation<'de, D: Deserializer<'de>>(d: D) -> Result<TranslationState, D::Error> {
        let word = std::borrow::Cow::<'de, str>::deserialize(d)?;
        match word.as_ref() {
            "before-map" => Ok(TranslationState::NothingReplicated),
            other => other.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A past drill in one line, for lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillSummary {
    pub id: String,
    pub flow: String,
    pub started_at_ms: i64,
    pub verdict: Verdict,
    pub groups: usize,
    pub failed_groups: usize,
    pub rpo_records: i64,
    pub rpo_seconds: f64,
    pub rto_ms: Option<u64>,
}

impl DrillReport {
    pub fn summary(&self) -> DrillSummary {
        DrillSummary {
            id: self.id.clone(),
            flow: self.flow.clone(),
            started_at_ms: self.started_at_ms,
            verdict: self.verdict,
            groups: self.groups.len(),
            failed_groups: self.groups.iter().filter(|g| !g.verdict.ok()).count(),
            rpo_records: self.rpo_records,
            rpo_seconds: self.rpo_seconds,
            rto_ms: self.rto_ms,
        }
    }

    /// The process exit code `tern drill` uses: 0 pass, 1 a group would lose or repeat
    /// records, 2 the drill could not decide.
    pub fn exit_code(&self) -> i32 {
        match self.verdict {
            Verdict::Pass | Verdict::NoOffsets => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
        }
    }
}
