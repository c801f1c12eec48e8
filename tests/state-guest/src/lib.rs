//! The state tests' guest: one route per key-value or configuration
//! operation, picked by the last path segment, with the store's label,
//! the key and other arguments in the query (`?store=counter&key=n`).
//! A store's failure is a 500 whose body is the error, so that a test
//! can tell an `access-denied` from a backend that is down.

use mod_wasm_guest::http::StatusCode;
use mod_wasm_guest::kv::Store;
use mod_wasm_guest::{Error, IntoResponse, Request, RequestExt, Response, config, handler};

#[handler]
fn handle(req: Request) -> Response {
    let op = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
    match op.as_str() {
        "config" => match config::get(&req.query("name").unwrap_or_default()) {
            Some(value) => value.into_response(),
            None => (StatusCode::NOT_FOUND, "unset\n").into_response(),
        },
        "config-all" => config::all()
            .into_iter()
            .map(|(name, value)| format!("{name}={value}\n"))
            .collect::<String>()
            .into_response(),
        _ => match on_store(&op, req) {
            Ok(response) => response,
            Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
        },
    }
}

fn on_store(op: &str, req: Request) -> Result<Response, Error> {
    let store = Store::open(&req.query("store").unwrap_or_default())?;
    let key = req.query("key").unwrap_or_default();
    Ok(match op {
        "get" => match store.get(&key)? {
            Some(value) => value.into_response(),
            None => (StatusCode::NOT_FOUND, "absent\n").into_response(),
        },
        "set" => {
            store.set(&key, req.into_body().into_bytes()?)?;
            StatusCode::NO_CONTENT.into_response()
        }
        "delete" => {
            store.delete(&key)?;
            StatusCode::NO_CONTENT.into_response()
        }
        "exists" => store.exists(&key)?.to_string().into_response(),
        "keys" => lines(store.keys()?),
        "incr" => {
            let by = req.query("by").and_then(|by| by.parse().ok()).unwrap_or(1);
            store.increment(&key, by)?.to_string().into_response()
        }
        // Appends the body to the value, in a compare-and-swap loop.
        "append" => {
            let tail = req.into_body().into_bytes()?;
            let written = store.update(&key, |current| {
                let mut value = current.unwrap_or_default().to_vec();
                value.extend_from_slice(&tail);
                value
            })?;
            written.into_response()
        }
        // keys=a,b,c: one line per key, its value or "-".
        "get-many" => {
            let keys = req.query("keys").unwrap_or_default();
            let keys: Vec<&str> = keys.split(',').collect();
            let values = store.get_many(&keys)?;
            lines(values.into_iter().map(|value| match value {
                Some(value) => String::from_utf8_lossy(&value).into_owned(),
                None => "-".into(),
            }))
        }
        // The body's lines are key=value pairs, written together.
        "set-many" => {
            let body = String::from_utf8_lossy(&req.into_body().into_bytes()?).into_owned();
            let pairs: Vec<(&str, &[u8])> = body
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(key, value)| (key, value.as_bytes()))
                .collect();
            store.set_many(&pairs)?;
            StatusCode::NO_CONTENT.into_response()
        }
        "delete-many" => {
            let keys = req.query("keys").unwrap_or_default();
            store.delete_many(&keys.split(',').collect::<Vec<_>>())?;
            StatusCode::NO_CONTENT.into_response()
        }
        // n operations in one request, for the per-request cap.
        "many-ops" => {
            let n: u32 = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(1);
            for _ in 0..n {
                store.get(&key)?;
            }
            format!("{n} operations\n").into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such operation\n").into_response(),
    })
}

fn lines(items: impl IntoIterator<Item = String>) -> Response {
    items
        .into_iter()
        .map(|item| item + "\n")
        .collect::<String>()
        .into_response()
}
