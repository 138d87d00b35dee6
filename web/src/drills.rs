//! Disaster-recovery drills started from the web: the runs in progress, the history on disk,
//! and what the Drills page draws from them. The drill itself is `tern_mirror::drill`, exactly
//! what `tern drill` runs; the page is [`crate::pages::drills`], the API [`crate::api`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tern_mirror::drill::{self, DrillOptions, DrillProgress, DrillReport, DrillSummary};

use crate::error::WebError;
use crate::state::AppState;

/// A drill started from the web, as it progresses.
#[derive(Debug, Clone, Serialize)]
pub struct DrillRun {
    pub run: String,
    pub flow: String,
    pub started_at_ms: i64,
    pub events: Vec<DrillProgress>,
    /// Set when the drill finished with a report.
    pub report_id: Option<String>,
    pub verdict: Option<String>,
    /// Set when the drill could not run at all.
    pub error: Option<String>,
    pub done: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StartDrill {
    pub flow: String,
    /// Anchored regex of the groups to check; all of the flow's groups when empty.
    #[serde(default)]
    pub groups: Option<String>,
    #[serde(default)]
    pub csrf: Option<String>,
}

pub(crate) fn history(state: &AppState) -> Result<Vec<DrillSummary>, String> {
    match &state.topology().state_dir {
        None => Ok(Vec::new()),
        Some(dir) => drill::history::list(&drill::history_dir(dir)).map_err(|e| e.to_string()),
    }
}

pub(crate) fn load(state: &AppState, id: &str) -> Result<DrillReport, WebError> {
    let topology = state.topology();
    let dir = topology.state_dir.as_ref().ok_or_else(|| WebError::NotFound("this Tern keeps no drill history (no state directory)".to_string()))?;
    let mut report = drill::history::load(&drill::history_dir(dir), id).map_err(|e| WebError::NotFound(format!("no drill {id:?} in the history: {e}")))?;
    // The report as `tern drill` wrote it, less the cluster addresses its errors may name.
    for e in &mut report.errors {
        *e = state.redact(e);
    }
    for g in &mut report.groups {
        g.reason = state.redact(&g.reason);
    }
    Ok(report)
}

/// Starts a drill in the background; returns the run's id.
pub(crate) fn start(state: &AppState, req: &StartDrill) -> Result<String, WebError> {
    let flow = state.topology().flow(&req.flow).cloned().ok_or_else(|| WebError::NotFound(format!("no flow named {:?}", req.flow)))?;
    let opts = match req.groups.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        Some(g) => DrillOptions::with_groups(g).map_err(|e| WebError::BadRequest(format!("groups: {e}")))?,
        None => DrillOptions::default(),
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    {
        let mut runs = state.0.drills.lock().unwrap_or_else(|p| p.into_inner());
        if runs.values().any(|r| r.flow == req.flow && !r.done) {
            return Err(WebError::Conflict(format!("a drill of {} is already running", req.flow)));
        }
        runs.insert(
            run_id.clone(),
            DrillRun { run: run_id.clone(), flow: req.flow.clone(), started_at_ms: crate::metrics::now_ms(), events: vec![], report_id: None, verdict: None, error: None, done: false },
        );
    }
    let clusters: BTreeMap<String, tern_mirror::config::ClusterConfig> = state.topology().clusters.iter().map(|(n, c)| (n.clone(), c.config().clone())).collect();
    let (state, run) = (state.clone(), run_id.clone());
    tracing::info!(flow = %flow.name(), run = %run, "drill started from the web");
    tokio::spawn(async move {
        let events = state.clone();
        let progress_run = run.clone();
        let result = drill::run(&flow, &clusters, &opts, move |mut p| {
            if let DrillProgress::Connected { error: Some(e), .. } = &mut p {
                *e = events.redact(e);
            }
            if let Some(r) = events.0.drills.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&progress_run) {
                r.events.push(p);
            }
        })
        .await;
        let saved = match (&result, &state.topology().state_dir) {
            (Ok(report), Some(dir)) => drill::history::save(&drill::history_dir(dir), report).map(|_| ()).map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        let mut runs = state.0.drills.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = runs.get_mut(&run) {
            match result {
                Ok(report) => {
                    tracing::info!(flow = %report.flow, id = %report.id, verdict = %report.verdict, rpo_records = report.rpo_records, "drill finished");
                    r.report_id = Some(report.id.clone());
                    r.verdict = Some(report.verdict.to_string());
                    r.error = saved.err().map(|e| format!("the report could not be kept: {e}"));
                }
                Err(e) => r.error = Some(state.redact(&e.to_string())),
            }
            r.done = true;
        }
        // Keep the last 50 runs.
        while runs.len() > 50 {
            let Some(oldest) = runs.values().filter(|r| r.done).min_by_key(|r| r.started_at_ms).map(|r| r.run.clone()) else { break };
            runs.remove(&oldest);
        }
    });
    Ok(run_id)
}

/// One progress event as a line of text.
pub fn describe(p: &DrillProgress) -> String {
    match p {
        DrillProgress::Started { id, flow } => format!("drill {id} of {flow} started"),
        DrillProgress::Connected { cluster, error: None } => format!("cluster {cluster} reachable"),
        DrillProgress::Connected { cluster, error: Some(e) } => format!("cluster {cluster} unreachable: {e}"),
        DrillProgress::Groups { groups } => format!("{} group(s) to check: {}", groups.len(), groups.join(", ")),
        DrillProgress::Checked { group, verdict } => format!("{group}: translation checked against the data: {verdict}"),
        DrillProgress::Applied { group, drill_group, apply_ms, read_through } => {
            format!("{group}: applied to {drill_group} in {apply_ms} ms; read through: {read_through}")
        }
        DrillProgress::CleanedUp { deleted } => format!("{deleted} drill group(s) deleted from the target"),
        DrillProgress::Finished { verdict } => format!("finished: {verdict}"),
    }
}

/// A polyline of `values` scaled into a `w` x `h` box, oldest first.
fn chart(values: &[f64], w: f64, h: f64) -> String {
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let step = if values.len() > 1 { w / (values.len() - 1) as f64 } else { 0.0 };
    values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, h - 2.0 - v / max * (h - 4.0))).collect::<Vec<_>>().join(" ")
}

/// RPO and RTO of a flow's past drills, oldest first, for the history chart.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub flow: String,
    pub drills: usize,
    pub rpo_points: String,
    pub rto_points: String,
    pub max_rpo: i64,
    pub max_rto_ms: u64,
}

pub(crate) fn trends(history: &[DrillSummary]) -> Vec<Trend> {
    let mut by_flow: BTreeMap<&str, Vec<&DrillSummary>> = BTreeMap::new();
    for d in history {
        by_flow.entry(&d.flow).or_default().push(d);
    }
    by_flow
        .into_iter()
        .map(|(flow, mut ds)| {
            ds.sort_by_key(|d| d.started_at_ms);
            let rpo: Vec<f64> = ds.iter().map(|d| d.rpo_records as f64).collect();
            let rto: Vec<f64> = ds.iter().map(|d| d.rto_ms.unwrap_or(0) as f64).collect();
            Trend {
                flow: flow.to_string(),
                drills: ds.len(),
                rpo_points: chart(&rpo, 240.0, 40.0),
                rto_points: chart(&rto, 240.0, 40.0),
                max_rpo: ds.iter().map(|d| d.rpo_records).max().unwrap_or(0),
                max_rto_ms: ds.iter().filter_map(|d| d.rto_ms).max().unwrap_or(0),
            }
        })
        .collect()
}

/// `2026-11-25 05:45:12 UTC` from milliseconds since the epoch (templates pass a reference).
pub fn when(ms: &i64) -> String {
    drill::format_utc(*ms)
}

pub(crate) type Runs = std::sync::Mutex<BTreeMap<String, DrillRun>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_charts() {
        assert_eq!(when(&0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(&1_795_585_522_267), "2026-11-25 05:45:22 UTC");
        assert_eq!(chart(&[0.0, 10.0], 100.0, 40.0), "0.0,38.0 100.0,2.0");
        assert_eq!(chart(&[5.0], 100.0, 40.0), "0.0,2.0");
    }
}
