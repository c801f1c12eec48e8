//! A `WasmAccessChecker` for bearer tokens: JSON Web Tokens signed with
//! HMAC-SHA256 (RFC 7519, `alg` HS256) under the secret the section sets
//! with `WasmConfigVar jwt-secret`.
//!
//! A valid token lets the request go on to whatever serves it, with the
//! token's subject for the backend in `Wasm-Auth-User` (and its `scope`, if
//! any, in `Wasm-Auth-Scope`). Anything else gets a 401 whose
//! `WWW-Authenticate` says why, as RFC 6750 describes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use mod_wasm_guest::http::{HeaderMap, HeaderValue, StatusCode};
use mod_wasm_guest::{IntoResponse, Request, RequestExt, Response, apache, config, handler};
use serde::Deserialize;
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// The claims this checker reads; others are ignored.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Seconds since the epoch after which the token is refused.
    exp: Option<u64>,
    /// Seconds since the epoch before which the token is refused.
    nbf: Option<u64>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[handler]
fn check(req: Request) -> Response {
    let Some(secret) = config::get("jwt-secret") else {
        // The checker fails, so the request is refused with a 500.
        apache::log::error("jwt-checker: the section sets no WasmConfigVar jwt-secret");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(token) = req
        .header_str("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return refuse(None);
    };
    match verify(token.trim(), secret.as_bytes(), now()) {
        Ok(claims) => {
            apache::log::info(&format!("jwt-checker: {} allowed", claims.sub));
            let mut fields = HeaderMap::new();
            for (name, value) in [
                ("wasm-auth-user", Some(claims.sub)),
                ("wasm-auth-scope", claims.scope),
            ] {
                if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    fields.insert(name, value);
                }
            }
            (StatusCode::OK, fields, ()).into_response()
        }
        Err(why) => {
            apache::log::info(&format!("jwt-checker: token refused: {why}"));
            refuse(Some(why))
        }
    }
}

/// A 401 that asks for a token, saying what was wrong with the one given.
fn refuse(why: Option<&str>) -> Response {
    let realm = format!("Bearer realm=\"{}\"", apache::location());
    let challenge = match why {
        None => realm,
        Some(why) => format!("{realm}, error=\"invalid_token\", error_description=\"{why}\""),
    };
    let mut fields = HeaderMap::new();
    fields.insert(
        "www-authenticate",
        HeaderValue::from_str(&challenge).expect("a plain challenge"),
    );
    let body = match why {
        None => "a bearer token is required\n".to_string(),
        Some(why) => format!("the token is refused: {why}\n"),
    };
    (StatusCode::UNAUTHORIZED, fields, body).into_response()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The token's claims if it is well formed, signed with `secret` and valid
/// at `now`; else why not.
fn verify(token: &str, secret: &[u8], now: u64) -> Result<Claims, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let header: Header = decode_json(header).map_err(|_| "not a JWT")?;
    // Only what this checker signs with: never "none", never another key type.
    if header.alg != "HS256" {
        return Err("the algorithm is not HS256");
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "not a JWT")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
    // In constant time.
    mac.verify_slice(&signature)
        .map_err(|_| "the signature is wrong")?;
    let claims: Claims = decode_json(payload)?;
    if claims.exp.is_some_and(|exp| now >= exp) {
        return Err("the token has expired");
    }
    if claims.nbf.is_some_and(|nbf| now < nbf) {
        return Err("the token is not valid yet");
    }
    Ok(claims)
}

/// The length of `header.payload`, what the signature covers.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, &'static str> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "not a JWT")?;
    serde_json::from_slice(&bytes).map_err(|_| "the claims are not the expected JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(header: &str, claims: &str, secret: &[u8]) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(signed.as_bytes());
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn a_signed_token_is_valid_until_it_expires() {
        let token = sign(HS256, r#"{"sub":"ada","exp":100,"scope":"read"}"#, b"k");
        let claims = verify(&token, b"k", 99).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.scope.as_deref()),
            ("ada", Some("read"))
        );
        assert_eq!(
            verify(&token, b"k", 100).err(),
            Some("the token has expired")
        );
    }

    #[test]
    fn another_key_another_algorithm_or_a_changed_claim_is_refused() {
        let token = sign(HS256, r#"{"sub":"ada"}"#, b"k");
        assert_eq!(
            verify(&token, b"other", 0).err(),
            Some("the signature is wrong")
        );
        let none = sign(r#"{"alg":"none"}"#, r#"{"sub":"ada"}"#, b"k");
        assert_eq!(
            verify(&none, b"k", 0).err(),
            Some("the algorithm is not HS256")
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"sub":"root"}"#);
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), b"k", 0).err(),
            Some("the signature is wrong")
        );
        assert_eq!(verify("a.b", b"k", 0).err(), Some("not a JWT"));
    }

    #[test]
    fn a_token_before_its_time_is_refused() {
        let token = sign(HS256, r#"{"sub":"ada","nbf":50}"#, b"k");
        assert_eq!(
            verify(&token, b"k", 49).err(),
            Some("the token is not valid yet")
        );
        assert!(verify(&token, b"k", 50).is_ok());
    }
}
