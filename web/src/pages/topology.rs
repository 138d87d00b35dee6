//! `/`: clusters and flows as a graph, with the tables behind it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::{respond, Chrome};
use crate::state::AppState;
use crate::topology::{layout, Graph};
use crate::views::{ClusterView, FlowView};

#[derive(Template)]
#[template(path = "index.html", blocks = ["live"])]
struct TopologyPage {
    chrome: Chrome,
    graph: Graph,
    clusters: Vec<ClusterView>,
    flows: Vec<FlowView>,
    legend: [&'static str; 5],
}

pub async fn topology_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let clusters = state.cluster_views();
    let flows = state.flow_views();
    let graph = layout(&clusters, &flows);
    respond!(headers, TopologyPage { chrome: Chrome::new(&state, &headers, &uri, "topology"), graph, clusters, flows, legend: ["ok", "lagging", "paused", "failed-over", "error"] })
}
