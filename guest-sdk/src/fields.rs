//! Header fields between the `http` crate's `HeaderMap` and wasi:http's
//! `fields`.

use crate::Error;
use http::{HeaderMap, HeaderName, HeaderValue};
use wasi::http::types::Fields;

/// `headers` as fields for the host. The host refuses some names
/// (hop-by-hop fields such as `Connection`), which is an error here.
pub(crate) fn to_fields(headers: &HeaderMap) -> Result<Fields, Error> {
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    Fields::from_list(&entries).map_err(|error| {
        // The host does not say which field it refused: find it.
        let refused = entries
            .iter()
            .find(|(name, value)| Fields::new().append(name, value).is_err())
            .map_or("?", |(name, _)| name.as_str());
        Error::InvalidHeader(format!("{refused} ({error:?})"))
    })
}

/// The entries of the host's fields (of a request or a response) as a
/// `HeaderMap`, repeats and order kept.
pub(crate) fn from_entries(entries: Vec<(String, Vec<u8>)>) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            return Err(Error::InvalidHeader(name));
        };
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::InvalidHeader(name))?;
        headers.append(name, value);
    }
    Ok(headers)
}
