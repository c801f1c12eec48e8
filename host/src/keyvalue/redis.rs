//! A store on a Redis or Valkey server, which several Apache servers may
//! share.
//!
//! Each child keeps a few connections, opened on first use. Every command
//! is atomic on the server: `INCRBY` for increments, `MSET` and a
//! multi-key `DEL` for batches (all or nothing), and compare-and-swap as a
//! short Lua script, which the server runs without interleaving. When the
//! server goes away, the failing connection and every kept one are
//! dropped, and the next operation connects again; a connection idle for
//! a while is checked with a PING first. A command is never sent twice:
//! after a lost reply nobody knows whether it ran, and an increment counted
//! twice is worse than one reported as failed.
//!
//! `rediss://` connects over TLS (rustls, with ring as everywhere in the
//! host): the server's certificate must chain to the store's `ca=` file or,
//! without one, to the system's certificates (`/etc/ssl/certs`).

use super::{Backend, Failure, Idle, LIST_PAGE};
use redis::{Client, Commands, Connection, RedisResult, TlsCertificates};
use std::path::Path;
use std::time::Duration;

pub struct Redis {
    client: Client,
    /// The URL without its password, for log lines.
    shown: String,
    idle: Idle<Connection>,
}

/// Sets KEYS[1] to ARGV[3] if it holds ARGV[2] (ARGV[1] = "1") or is
/// absent (ARGV[1] = "0"); 1 if it did.
const SWAP_IF: &str = r#"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
    if current then return 0 end
elseif current ~= ARGV[2] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"#;

impl Redis {
    /// A store at `url` (`redis://`, `valkey://`, or over TLS `rediss://`,
    /// `valkeys://`, whose server's certificate must chain to the PEM
    /// certificates in `ca`, or else to the system's); nothing is
    /// connected yet.
    pub fn new(url: &str, ca: Option<&Path>) -> Result<Self, String> {
        let redis_url = if let Some(rest) = url.strip_prefix("valkey://") {
            format!("redis://{rest}")
        } else if let Some(rest) = url.strip_prefix("valkeys://") {
            format!("rediss://{rest}")
        } else {
            url.to_owned()
        };
        let bad =
            |e: redis::RedisError| format!("'{}' is not a Redis URL: {e}", without_password(url));
        let client = if redis_url.starts_with("rediss://") {
            // The redis crate takes rustls' process-wide provider: ring, the
            // one the rest of the host uses. Installed in the parent, before
            // any fork, so every child has it.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let root_cert = match ca {
                Some(file) => Some(
                    std::fs::read(file)
                        .map_err(|e| format!("cannot read the CA file {}: {e}", file.display()))?,
                ),
                None => None,
            };
            let certificates = TlsCertificates {
                client_tls: None,
                root_cert,
            };
            Client::build_with_tls(redis_url.as_str(), certificates).map_err(bad)?
        } else {
            Client::open(redis_url.as_str()).map_err(bad)?
        };
        Ok(Redis {
            client,
            shown: without_password(url),
            idle: Idle::new(),
        })
    }

    /// Runs `command` on a kept connection or a new one.
    fn with<T>(
        &self,
        within: Duration,
        command: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, Failure> {
        let kept = self.idle.take().and_then(|(mut connection, idle_for)| {
            set_timeouts(&mut connection, within).ok()?;
            // A connection idle for a while may have outlived its server
            // (a restart): a PING finds out without risking the command.
            if idle_for > CHECK_AFTER
                && redis::cmd("PING").query::<String>(&mut connection).is_err()
            {
                self.idle.clear();
                return None;
            }
            Some(connection)
        });
        let mut connection = match kept {
            Some(connection) => connection,
            None => {
                let mut connection = self
                    .client
                    .get_connection_with_timeout(within)
                    .map_err(|e| format!("cannot connect to {}: {e}", self.shown))?;
                set_timeouts(&mut connection, within)
                    .map_err(|e| format!("{}: {e}", self.shown))?;
                connection
            }
        };
        let result = command(&mut connection);
        match result {
            Ok(value) => {
                self.idle.put(connection);
                Ok(value)
            }
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                self.idle.clear();
                Err(format!("{}: {e}", self.shown))
            }
            // The server answered with an error: the connection is fine.
            Err(e) => {
                self.idle.put(connection);
                Err(format!("{}: {e}", self.shown))
            }
        }
    }
}

/// How long a kept connection may sit idle before it is checked with a
/// PING before use. Under load connections are reused at once and never
/// pay for it.
const CHECK_AFTER: Duration = Duration::from_millis(250);

fn set_timeouts(connection: &mut Connection, within: Duration) -> RedisResult<()> {
    connection.set_read_timeout(Some(within))?;
    connection.set_write_timeout(Some(within))
}

/// `url` with any password replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

impl Backend for Redis {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn kind(&self) -> crate::stats::StoreKind {
        crate::stats::StoreKind::Redis
    }

    fn get(&self, key: &str, within: Duration) -> Result<Option<Vec<u8>>, Failure> {
        self.with(within, |connection| connection.get(key))
    }

    fn set(&self, key: &str, value: &[u8], within: Duration) -> Result<(), Failure> {
        self.with(within, |connection| connection.set(key, value))
    }

    fn delete(&self, key: &str, within: Duration) -> Result<(), Failure> {
        self.with(within, |connection| connection.del(key))
    }

    fn exists(&self, key: &str, within: Duration) -> Result<bool, Failure> {
        self.with(within, |connection| connection.exists(key))
    }

    fn list_keys(
        &self,
        cursor: Option<&str>,
        within: Duration,
    ) -> Result<(Vec<String>, Option<String>), Failure> {
        let cursor = match cursor {
            None => 0,
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| format!("'{text}' is not a cursor this store gave"))?,
        };
        let (next, keys): (u64, Vec<String>) = self.with(within, |connection| {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(LIST_PAGE)
                .query(connection)
        })?;
        Ok((keys, (next != 0).then(|| next.to_string())))
    }

    fn increment(&self, key: &str, delta: i64, within: Duration) -> Result<i64, Failure> {
        self.with(within, |connection| connection.incr(key, delta))
            .map_err(|e| {
                if e.contains("not an integer") {
                    "the value at the key is not a decimal integer".into()
                } else {
                    e
                }
            })
    }

    fn swap_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        within: Duration,
    ) -> Result<bool, Failure> {
        let swapped: i64 = self.with(within, |connection| {
            redis::Script::new(SWAP_IF)
                .key(key)
                .arg(if expected.is_some() { "1" } else { "0" })
                .arg(expected.unwrap_or_default())
                .arg(value)
                .invoke(connection)
        })?;
        Ok(swapped == 1)
    }

    fn get_many(&self, keys: &[String], within: Duration) -> Result<Vec<Option<Vec<u8>>>, Failure> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(within, |connection| {
            redis::cmd("MGET").arg(keys).query(connection)
        })
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)], within: Duration) -> Result<(), Failure> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.with(within, |connection| connection.mset(pairs))
    }

    fn delete_many(&self, keys: &[String], within: Duration) -> Result<(), Failure> {
        if keys.is_empty() {
            return Ok(());
        }
        self.with(within, |connection| connection.del(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_the_log() {
        assert_eq!(
            without_password("redis://app:secret@cache:6379/1"),
            "redis://app:***@cache:6379/1"
        );
        assert_eq!(without_password("redis://cache/1"), "redis://cache/1");
    }
}
