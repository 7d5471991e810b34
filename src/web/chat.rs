//! The citizens' chat (`/`): a question box, the answer streamed from `/api/ask` by the
//! page's script, citations that open the cited passage, feedback per answer.

use super::{render, HtmlError, Layout, PageCaller};
use askama::Template;
use axum::response::Response;

/// Questions offered on the empty screen: common citizen questions the statutes answer.
const EXAMPLES: &[&str] = &[
    "건강진단은 언제 다시 받아야 하나요?",
    "건강기능식품을 판매하려면 신고해야 하나요?",
    "식품 표시에 유통기한 대신 소비기한을 쓰나요?",
    "수입식품을 들여올 때 어떤 신고가 필요한가요?",
];

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    layout: Layout,
    examples: &'static [&'static str],
}

/// `GET /`.
pub async fn page(PageCaller(caller): PageCaller) -> Result<Response, HtmlError> {
    Ok(render(&ChatPage {
        layout: Layout::of(&caller, "chat"),
        examples: EXAMPLES,
    }))
}
