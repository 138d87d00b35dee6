//! `/topics`: every replicated topic's configs on both sides, with drift highlighted.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::{respond, Chrome};
use crate::state::AppState;
use crate::views::TopicView;

#[derive(Template)]
#[template(path = "topics.html", blocks = ["live"])]
struct TopicsPage {
    chrome: Chrome,
    topics: Vec<TopicView>,
}

pub async fn topics_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    respond!(headers, TopicsPage { chrome: Chrome::new(&state, &headers, &uri, "topics"), topics: state.topic_views() })
}
