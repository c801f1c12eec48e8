//! State that outlives the instance. Every request runs in a fresh
//! instance, maybe in another child, yet the count goes up by one each
//! time and a cart keeps its items: both live in the key-value store the
//! section grants (`WasmKeyValue visits-cart`). The greeting is the
//! section's `WasmConfigVar greeting`.
//!
//! - `GET  <location>/`              the visit count
//! - `GET  <location>/cart/{id}`     a cart, as JSON
//! - `POST <location>/cart/{id}`     adds `{"item": …, "quantity": …}` to it
//! - `DELETE <location>/cart/{id}`   empties it

use mod_wasm_guest::http::StatusCode;
use mod_wasm_guest::kv::Store;
use mod_wasm_guest::{
    Error, IntoResponse, Json, Request, RequestExt, Response, Router, apache, config, handler,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The store's label, as the configuration declares it.
const STORE: &str = "visits-cart";

#[derive(Deserialize)]
struct Added {
    item: String,
    quantity: u32,
}

/// A cart: item → quantity.
#[derive(Serialize, Deserialize, Default)]
struct Cart {
    items: BTreeMap<String, u32>,
}

#[handler]
fn handle(req: Request) -> Response {
    let base = apache::location().trim_end_matches('/').to_owned();
    Router::new()
        .get(&format!("{base}/"), visit)
        .get(&format!("{base}/cart/{{id}}"), cart)
        .post(&format!("{base}/cart/{{id}}"), add_to_cart)
        .delete(&format!("{base}/cart/{{id}}"), empty_cart)
        .handle(req)
}

fn visit(_req: Request) -> Result<String, Error> {
    let count = Store::open(STORE)?.increment("visits", 1)?;
    let greeting = config::get("greeting").unwrap_or_else(|| "Hello".into());
    Ok(format!("{greeting}! You are visitor number {count}.\n"))
}

fn cart_key(req: &Request) -> String {
    format!("cart:{}", req.param("id").unwrap_or_default())
}

fn cart(req: Request) -> Result<Json<Cart>, Error> {
    let cart = Store::open(STORE)?.get_json(&cart_key(&req))?;
    Ok(Json(cart.unwrap_or_default()))
}

/// Adds in a compare-and-swap loop: two requests adding to one cart at
/// once both count.
fn add_to_cart(req: Request) -> Result<Response, Error> {
    let key = cart_key(&req);
    let added: Added = req.into_body().json()?;
    if added.item.is_empty() || added.quantity == 0 {
        return Ok((StatusCode::BAD_REQUEST, "an item and a quantity above 0\n").into_response());
    }
    let mut unreadable = None;
    let written = Store::open(STORE)?.update(&key, |current| {
        let mut cart: Cart = match current.map(serde_json::from_slice).transpose() {
            Ok(cart) => cart.unwrap_or_default(),
            Err(e) => {
                unreadable = Some(e.to_string());
                Cart::default()
            }
        };
        *cart.items.entry(added.item.clone()).or_default() += added.quantity;
        serde_json::to_vec(&cart).unwrap_or_default()
    })?;
    if let Some(why) = unreadable {
        apache::log::warn(&format!("{key} held no cart ({why}); it starts anew"));
    }
    let cart: Cart = serde_json::from_slice(&written).map_err(|e| Error::Json(e.to_string()))?;
    Ok(Json(cart).into_response())
}

fn empty_cart(req: Request) -> Result<StatusCode, Error> {
    Store::open(STORE)?.delete(&cart_key(&req))?;
    Ok(StatusCode::NO_CONTENT)
}
