//! `GET /api/v1/search`: catalogue search with facets.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use shoko_app::App;
use shoko_app::search::SearchPage;
use shoko_search::{Facet, SearchRequest, Sort};

use crate::ApiError;

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_parameter", message)
}

/// Catalogue search: `?q=…&offset=&limit=&sort=&facet=campus&facet=language&filter=campus:HONGO`.
/// Repeated parameters (`facet`, `filter`) are read in order. Public, behind
/// the admission gate (503 or 429 with `Retry-After` under overload).
#[utoipa::path(get, path = "/api/v1/search", tag = "catalogue",
    params(
        ("q" = Option<String>, Query, description = "words, \"phrases\", AND/OR/NOT, title: author: isbn: subject: reading: fields, prefix*"),
        ("offset" = Option<usize>, Query), ("limit" = Option<usize>, Query),
        ("sort" = Option<String>, Query, description = "relevance, title, year or year_asc"),
        ("facet" = Option<Vec<String>>, Query, description = "campus, format, language, year, availability"),
        ("filter" = Option<Vec<String>>, Query, description = "facet:value")),
    responses((status = 200, description = "OK", body = SearchPage), (status = 400, description = "Bad request", body = crate::error::ErrorBody),
              (status = 429, description = "Too many requests", body = crate::error::ErrorBody), (status = 503, description = "Busy", body = crate::error::ErrorBody)))]
pub async fn search(
    State(app): State<App>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchPage>, ApiError> {
    let mut req = SearchRequest {
        limit: 20,
        ..Default::default()
    };
    for (key, value) in url_pairs(raw.as_deref().unwrap_or("")) {
        match key.as_str() {
            "q" => req.query = value,
            "offset" => {
                req.offset = value
                    .parse()
                    .map_err(|_| bad(format!("offset {value:?} is not a number")))?
            }
            "limit" => {
                req.limit = value
                    .parse::<usize>()
                    .map_err(|_| bad(format!("limit {value:?} is not a number")))?
                    .clamp(1, 100)
            }
            "sort" => {
                req.sort = Sort::parse(&value).ok_or_else(|| {
                    bad(format!(
                        "sort {value:?} is not relevance, title, year or year_asc"
                    ))
                })?
            }
            "facet" => req
                .facets
                .push(Facet::parse(&value).ok_or_else(|| bad(format!("unknown facet {value:?}")))?),
            "filter" => {
                let (name, v) = value
                    .split_once(':')
                    .ok_or_else(|| bad(format!("filter {value:?} is not facet:value")))?;
                let facet =
                    Facet::parse(name).ok_or_else(|| bad(format!("unknown facet {name:?}")))?;
                req.filters.push((facet, v.to_owned()));
            }
            _ => return Err(bad(format!("unknown parameter {key:?}"))),
        }
    }
    let page = app.search(&req).await.map_err(|e| match e {
        shoko_app::search::IndexError::Search(shoko_search::SearchError::Query(m)) => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_query", m)
        }
        other => ApiError::unexpected(other),
    })?;
    Ok(Json(page))
}

/// Decodes `a=1&b=2` with percent-encoding and `+` for space, in order.
fn url_pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
