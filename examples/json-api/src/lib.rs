//! A JSON API: routes by method and path, JSON in and out, and what Apache
//! knows about the request (its log, the client, the user, the location).

use mod_wasm_guest::http::StatusCode;
use mod_wasm_guest::{IntoResponse, Json, Request, RequestExt, Response, Router, apache, handler};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Serialize)]
struct Created {
    id: u64,
    name: String,
    /// The name's length, to show the server read the JSON.
    name_length: usize,
}

#[derive(Serialize)]
struct WhoAmI {
    client_addr: String,
    user: Option<String>,
    tls: bool,
    location: String,
    request_id: String,
}

#[handler]
fn handle(req: Request) -> Response {
    apache::log::info(&format!("json-api: {} {}", req.method(), req.uri().path()));
    if apache::log::enabled(apache::log::Level::Debug) {
        apache::log::debug(&format!("json-api: headers {:?}", req.headers()));
    }
    let api = format!("{}/api", apache::location().trim_end_matches('/'));
    Router::new()
        .get(&format!("{api}/users/{{id}}"), user)
        .post(&format!("{api}/users"), create_user)
        .get(&format!("{api}/whoami"), who_am_i)
        .handle(req)
}

fn user(req: Request) -> Response {
    let id = req.param("id").unwrap_or_default();
    match id.parse::<u64>() {
        Ok(id) => Json(User {
            id,
            name: format!("user {id}"),
        })
        .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, format!("not a user id: {id}\n")).into_response(),
    }
}

fn create_user(req: Request) -> Response {
    let new: NewUser = match req.into_body().json() {
        Ok(new) => new,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    };
    let created = Created {
        id: 1,
        name_length: new.name.chars().count(),
        name: new.name,
    };
    (StatusCode::CREATED, Json(created)).into_response()
}

fn who_am_i(_req: Request) -> Json<WhoAmI> {
    Json(WhoAmI {
        client_addr: apache::client_addr(),
        user: apache::user(),
        tls: apache::tls(),
        location: apache::location(),
        request_id: apache::request_id(),
    })
}
