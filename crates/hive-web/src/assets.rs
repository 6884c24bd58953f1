//! The stylesheet and script, embedded in the binary.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

/// The asset's content type, from its extension; only the kinds the folder holds.
fn content_type(file: &str) -> Option<&'static str> {
    match file.rsplit_once('.')?.1 {
        "css" => Some("text/css; charset=utf-8"),
        "js" => Some("text/javascript; charset=utf-8"),
        _ => None,
    }
}

pub async fn serve(Path(file): Path<String>) -> Response {
    let (Some(asset), Some(kind)) = (Assets::get(&file), content_type(&file)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            // The files change only with the binary; a short lifetime keeps upgrades visible.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        asset.data,
    )
        .into_response()
}
