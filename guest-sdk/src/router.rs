//! [`Router`]: requests to handlers by method and path, on `matchit`
//! (the path matcher of axum).

use crate::response::internal_error;
use crate::{IntoResponse, Params, Request, Response};
use http::header::{ALLOW, HeaderValue};
use http::{Method, StatusCode};

type Handler = Box<dyn Fn(Request) -> Response>;

/// Routes requests by method and path.
///
/// Paths are matchit patterns: `/users/{id}` matches one segment (read it
/// with [`RequestExt::param`](crate::RequestExt::param), percent-decoded),
/// `/files/{*path}` the rest of the path. A static segment wins over a
/// parameter. An unknown path is a 404; a known path with another method is
/// a 405 with `Allow`; `HEAD` falls back to the `GET` handler.
///
/// Patterns match the request's whole path, not the part below the
/// `<Location>` that serves the component: at `<Location /api>`, write
/// `/api/users/{id}`, or build the patterns from
/// [`apache::location()`](crate::apache::location).
///
/// ```
/// use mod_wasm_guest::{Request, RequestExt, Router};
///
/// fn router() -> Router {
///     Router::new()
///         .get("/users/{id}", |req: Request| format!("user {}", req.param("id").unwrap()))
///         .post("/users", |_req: Request| (mod_wasm_guest::http::StatusCode::CREATED, "made"))
/// }
/// ```
#[derive(Default)]
pub struct Router {
    paths: matchit::Router<usize>,
    routes: Vec<Route>,
    /// The first pattern matchit refused; every request is then a 500 that
    /// names it, rather than a trap.
    broken: Option<String>,
}

struct Route {
    pattern: String,
    methods: Vec<(Method, Handler)>,
}

impl Router {
    /// A router without routes (everything is a 404).
    pub fn new() -> Self {
        Router::default()
    }

    /// Requests for `method` and `path` go to `handler`.
    pub fn route<R, F>(mut self, method: Method, path: &str, handler: F) -> Self
    where
        R: IntoResponse,
        F: Fn(Request) -> R + 'static,
    {
        let handler: Handler = Box::new(move |request| handler(request).into_response());
        if let Some(route) = self.routes.iter_mut().find(|r| r.pattern == path) {
            route.methods.push((method, handler));
            return self;
        }
        match self.paths.insert(path, self.routes.len()) {
            Ok(()) => self.routes.push(Route {
                pattern: path.to_string(),
                methods: vec![(method, handler)],
            }),
            Err(error) => {
                self.broken
                    .get_or_insert_with(|| format!("invalid route {path:?}: {error}"));
            }
        }
        self
    }

    /// A `GET` route (also answers `HEAD`).
    pub fn get<R: IntoResponse, F: Fn(Request) -> R + 'static>(self, path: &str, f: F) -> Self {
        self.route(Method::GET, path, f)
    }

    /// A `POST` route.
    pub fn post<R: IntoResponse, F: Fn(Request) -> R + 'static>(self, path: &str, f: F) -> Self {
        self.route(Method::POST, path, f)
    }

    /// A `PUT` route.
    pub fn put<R: IntoResponse, F: Fn(Request) -> R + 'static>(self, path: &str, f: F) -> Self {
        self.route(Method::PUT, path, f)
    }

    /// A `PATCH` route.
    pub fn patch<R: IntoResponse, F: Fn(Request) -> R + 'static>(self, path: &str, f: F) -> Self {
        self.route(Method::PATCH, path, f)
    }

    /// A `DELETE` route.
    pub fn delete<R: IntoResponse, F: Fn(Request) -> R + 'static>(self, path: &str, f: F) -> Self {
        self.route(Method::DELETE, path, f)
    }

    /// Answers `request` with the handler of its route.
    pub fn handle(&self, mut request: Request) -> Response {
        if let Some(why) = &self.broken {
            return internal_error(why);
        }
        let (index, params) = match self.paths.at(request.uri().path()) {
            Ok(matched) => (*matched.value, decoded(&matched.params)),
            Err(_) => return (StatusCode::NOT_FOUND, "Not Found\n").into_response(),
        };
        let route = &self.routes[index];
        let method = request.method().clone();
        let handler = route
            .methods
            .iter()
            .find(|(m, _)| *m == method)
            .or_else(|| {
                let get = method == Method::HEAD;
                route.methods.iter().find(|(m, _)| get && *m == Method::GET)
            });
        match handler {
            Some((_, handler)) => {
                // After any a file route of mod_wasm's gave (see Params).
                let Params(mut all) = request.extensions_mut().remove().unwrap_or_default();
                all.extend(params);
                request.extensions_mut().insert(Params(all));
                handler(request)
            }
            None => not_allowed(route),
        }
    }
}

fn decoded(params: &matchit::Params<'_, '_>) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(key, value)| {
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            (key.to_string(), value.into_owned())
        })
        .collect()
}

fn not_allowed(route: &Route) -> Response {
    let mut allow: Vec<&str> = route.methods.iter().map(|(m, _)| m.as_str()).collect();
    // HEAD is answered by the GET route.
    if allow.contains(&"GET") && !allow.contains(&"HEAD") {
        allow.push("HEAD");
    }
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n").into_response();
    if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, RequestExt};

    fn call(router: &Router, method: Method, uri: &str) -> (StatusCode, String, Option<String>) {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router.handle(request);
        let allow = response
            .headers()
            .get(ALLOW)
            .map(|v| v.to_str().unwrap().to_string());
        let status = response.status();
        (status, response.into_body().into_string().unwrap(), allow)
    }

    fn router() -> Router {
        Router::new()
            .get("/users/{id}", |req: Request| {
                format!("user {}", req.param("id").unwrap())
            })
            .get("/users/me", |_req: Request| "me")
            .delete("/users/{id}", |_req: Request| StatusCode::NO_CONTENT)
            .get("/files/{*path}", |req: Request| {
                req.param("path").unwrap().to_string()
            })
    }

    #[test]
    fn paths_and_parameters_are_matched() {
        let router = router();
        assert_eq!(call(&router, Method::GET, "/users/42").1, "user 42");
        assert_eq!(call(&router, Method::GET, "/users/me").1, "me");
        assert_eq!(
            call(&router, Method::GET, "http://host/users/a%20b?x=1").1,
            "user a b"
        );
        assert_eq!(call(&router, Method::GET, "/files/a/b.txt").1, "a/b.txt");
        assert_eq!(
            call(&router, Method::DELETE, "/users/1").0,
            StatusCode::NO_CONTENT
        );
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405_with_allow() {
        let router = router();
        assert_eq!(
            call(&router, Method::GET, "/nothing").0,
            StatusCode::NOT_FOUND
        );
        let (status, _, allow) = call(&router, Method::POST, "/users/1");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(allow.as_deref(), Some("GET, DELETE, HEAD"));
    }

    #[test]
    fn head_is_answered_by_get() {
        assert_eq!(call(&router(), Method::HEAD, "/users/me").0, StatusCode::OK);
    }

    #[test]
    fn a_conflicting_route_is_a_500_not_a_panic() {
        let router = Router::new()
            .get("/a/{x}", |_req: Request| "x")
            .get("/a/{y}", |_req: Request| "y");
        assert_eq!(
            call(&router, Method::GET, "/a/1").0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
