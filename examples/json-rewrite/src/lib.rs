//! Rewrites the JSON a proxied backend answers with, before it reaches the
//! client. A middleware: the request goes to the next handler unchanged
//! (in the example, mod_proxy's), and every JSON response comes back with
//! * the fields the section's `WasmConfigVar json-redact` names (separated
//!   by commas) removed, at any depth: a backend that says more than the
//!   public should hear (an address, an internal id) is cut to size here;
//! * keys renamed from snake_case to camelCase when `WasmConfigVar
//!   json-keys camelCase` says so.
//!
//! A JSON body is read whole (at most `LIMIT` bytes) to be parsed; other
//! bodies stream through untouched. A JSON body that cannot be rewritten
//! (too large, or not JSON after all) gets a 502, never the unredacted
//! original.

use serde_json::Value;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::{self, StreamReader, StreamResult};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(JsonRewrite);

/// The imported handler: the next one, which Apache runs.
mod next {
    wasip3::wit_bindgen::generate!({
        inline: "package mod-wasm:examples; world next { import wasi:http/handler@0.3.0; }",
        path: "../../wit/wasi-0.3",
        with: {
            "wasi:http/types@0.3.0": wasip3::http::types,
            "wasi:clocks/types@0.3.0": wasip3::clocks::types,
        },
        generate_all,
        runtime_path: "wasip3::wit_bindgen::rt",
    });
}

/// The section's `WasmConfigVar` variables.
mod config {
    wasip3::wit_bindgen::generate!({
        path: "../../wit/deps/config.wit",
        world: "wasi:config/imports@0.2.0-draft-2024-09-27",
        runtime_path: "wasip3::wit_bindgen::rt",
    });
}

use config::wasi::config::store;
use next::wasi::http::handler;

/// The largest JSON body rewritten: 1 MiB.
const LIMIT: usize = 1 << 20;

struct JsonRewrite;

impl wasip3::exports::http::handler::Guest for JsonRewrite {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let response = handler::handle(request).await?;
        let headers = response.get_headers().clone();
        if !is_json(&headers) {
            return Ok(response);
        }
        let status = response.get_status_code();
        let (_, done) = wit_future::new(|| Ok(()));
        let (body, trailers) = Response::consume_body(response, done);
        let Some(bytes) = read_at_most(body, LIMIT).await else {
            return text(502, format!("the backend's JSON is over {LIMIT} bytes\n"));
        };
        let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
            return text(502, "the backend's answer is not JSON\n".to_owned());
        };
        let redacted = var("json-redact");
        let redacted: Vec<&str> = redacted
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        let camel = var("json-keys").eq_ignore_ascii_case("camelCase");
        rewrite(&mut json, &redacted, camel);
        let mut rewritten =
            serde_json::to_vec(&json).map_err(|_| ErrorCode::InternalError(None))?;
        rewritten.push(b'\n');
        headers
            .set(
                "content-length",
                &[rewritten.len().to_string().into_bytes()],
            )
            .map_err(|_| ErrorCode::InternalError(None))?;
        let (mut out, contents) = wit_stream::new();
        let (response, _) = Response::new(headers, Some(contents), trailers);
        response
            .set_status_code(status)
            .map_err(|()| ErrorCode::InternalError(None))?;
        wit_bindgen::spawn(async move {
            out.write_all(rewritten).await;
        });
        Ok(response)
    }
}

/// Whether the content type is JSON's: `application/json` or a
/// `+json` suffix (`application/problem+json`), with any parameters.
fn is_json(headers: &Fields) -> bool {
    headers.get("content-type").iter().any(|value| {
        let value = String::from_utf8_lossy(value).to_ascii_lowercase();
        let kind = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        kind == "application/json" || (kind.starts_with("application/") && kind.ends_with("+json"))
    })
}

/// The whole stream, or `None` once it passes `limit` bytes.
async fn read_at_most(mut body: StreamReader<u8>, limit: usize) -> Option<Vec<u8>> {
    let mut whole = Vec::new();
    loop {
        let (result, piece) = body.read(Vec::with_capacity(64 * 1024)).await;
        whole.extend_from_slice(&piece);
        if whole.len() > limit {
            return None;
        }
        if !matches!(result, StreamResult::Complete(_)) {
            return Some(whole);
        }
    }
}

/// `json` without the `redacted` keys, renamed to camelCase if `camel`.
fn rewrite(json: &mut Value, redacted: &[&str], camel: bool) {
    match json {
        Value::Object(fields) => {
            let old = std::mem::take(fields);
            for (key, mut value) in old {
                if redacted.contains(&key.as_str()) {
                    continue;
                }
                rewrite(&mut value, redacted, camel);
                let key = if camel { camel_case(&key) } else { key };
                fields.insert(key, value);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite(item, redacted, camel)),
        _ => {}
    }
}

/// `client_addr` → `clientAddr`.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The variable's value, or "" where the section sets none.
fn var(key: &str) -> String {
    store::get(key).ok().flatten().unwrap_or_default()
}

/// A response of `status` with `body` as its text.
fn text(status: u16, body: String) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
        .map_err(|_| ErrorCode::InternalError(None))?;
    let (mut out, contents) = wit_stream::new();
    let (_, no_trailers) = wit_future::new(|| Ok(None));
    let (response, _) = Response::new(headers, Some(contents), no_trailers);
    response
        .set_status_code(status)
        .map_err(|()| ErrorCode::InternalError(None))?;
    wit_bindgen::spawn(async move {
        out.write_all(body.into_bytes()).await;
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_redacted_keys_at_any_depth_and_renames() {
        let mut json: Value = serde_json::from_str(
            r#"{"client_addr":"1.2.3.4","user":{"first_name":"Ada","request_id":"x"},"list":[{"request_id":1}]}"#,
        )
        .unwrap();
        rewrite(&mut json, &["request_id"], true);
        assert_eq!(
            json.to_string(),
            r#"{"clientAddr":"1.2.3.4","list":[{}],"user":{"firstName":"Ada"}}"#
        );
    }

    #[test]
    fn camel_case_keeps_a_leading_underscore_and_plain_words() {
        assert_eq!(camel_case("_private_key"), "_privateKey");
        assert_eq!(camel_case("name"), "name");
    }
}
