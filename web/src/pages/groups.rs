//! `/groups`: every consumer group's translation onto the targets.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::{respond, Chrome};
use crate::state::AppState;
use crate::views::GroupView;

#[derive(Template)]
#[template(path = "groups.html", blocks = ["live"])]
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<GroupView>,
}

pub async fn groups_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let groups = state.flow_views().into_iter().flat_map(|f| f.groups).collect();
    respond!(headers, GroupsPage { chrome: Chrome::new(&state, &headers, &uri, "groups"), groups })
}
