//! The status page in its three forms: HTML for people, `?auto` (the
//! `Key: value` lines mod_status prints) and the Prometheus text format for
//! scrapers.

use super::histogram::{BUCKETS, quantile_us, upper_bound_us};
use super::region::{ErrorKind, GuestKind, Region, Slot};
use super::stores::StoreSlot;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// Which form of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for a browser.
    Html,
    /// `Key: value` lines, as mod_status's `?auto`.
    Auto,
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
}

impl Format {
    /// The form the page's query asks for: `auto` (as mod_status's
    /// `?auto`), `prometheus`, or either as `format=...`, among any other
    /// `&`-separated words; HTML otherwise. The first that names one wins.
    pub fn from_query(query: &[u8]) -> Format {
        for word in query.split(|&b| b == b'&') {
            match word {
                b"auto" | b"format=auto" => return Format::Auto,
                b"prometheus" | b"format=prometheus" => return Format::Prometheus,
                _ => {}
            }
        }
        Format::Html
    }

    /// The page's Content-Type, NUL-terminated for the C side.
    pub fn content_type(self) -> &'static std::ffi::CStr {
        match self {
            Format::Html => c"text/html; charset=utf-8",
            Format::Auto => c"text/plain; charset=utf-8",
            Format::Prometheus => c"text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// One slot's counters, read once.
struct Row {
    location: String,
    file: String,
    kind: &'static str,
    requests: u64,
    errors: [u64; ErrorKind::ALL.len()],
    in_use: i64,
    memory: i64,
    peak_memory: u64,
    compile_us: u64,
    load_us: u64,
    latency: [u64; BUCKETS + 1],
    latency_sum_us: u64,
}

impl Row {
    fn of(slot: &Slot) -> Row {
        Row {
            location: slot.location(),
            file: slot.file(),
            kind: match slot.kind() {
                GuestKind::Component => "component",
                GuestKind::Component03 => "component (WASI 0.3)",
                GuestKind::Module => "module",
            },
            requests: slot.requests.load(Ordering::Relaxed),
            errors: std::array::from_fn(|i| slot.errors[i].load(Ordering::Relaxed)),
            // A request that has not ended yet may have given back memory
            // another process counted: never show less than nothing.
            in_use: slot.in_use.load(Ordering::Relaxed).max(0),
            memory: slot.memory.load(Ordering::Relaxed).max(0),
            peak_memory: slot.peak_memory.load(Ordering::Relaxed),
            compile_us: slot.compile_us.load(Ordering::Relaxed),
            load_us: slot.load_us.load(Ordering::Relaxed),
            latency: slot.latency.counts(),
            latency_sum_us: slot.latency.sum_us(),
        }
    }

    fn quantile_ms(&self, q: f64) -> Option<f64> {
        quantile_us(&self.latency, q).map(|us| us / 1000.0)
    }
}

/// One store's counters, read once.
struct StoreRow {
    label: String,
    backend: String,
    kind: &'static str,
    operations: u64,
    failed: u64,
    refused: u64,
    latency: [u64; BUCKETS + 1],
    latency_sum_us: u64,
}

impl StoreRow {
    fn of(slot: &StoreSlot) -> StoreRow {
        StoreRow {
            label: slot.label(),
            backend: slot.backend(),
            kind: slot.kind(),
            operations: slot.operations.load(Ordering::Relaxed),
            failed: slot.failed.load(Ordering::Relaxed),
            refused: slot.refused.load(Ordering::Relaxed),
            latency: slot.latency.counts(),
            latency_sum_us: slot.latency.sum_us(),
        }
    }

    fn quantile_ms(&self, q: f64) -> Option<f64> {
        quantile_us(&self.latency, q).map(|us| us / 1000.0)
    }
}

/// The page, as of now, in `format`.
pub fn render(region: &Region, format: Format) -> String {
    let rows: Vec<Row> = region.shown().map(Row::of).collect();
    let stores: Vec<StoreRow> = region.shown_stores().map(StoreRow::of).collect();
    let uptime = now_secs().saturating_sub(region.started());
    match format {
        Format::Html => html(&rows, &stores, region.started(), uptime),
        Format::Auto => auto(&rows, &stores, uptime),
        Format::Prometheus => prometheus(&rows) + &prometheus_stores(&stores),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const PERCENTILES: [(f64, &str); 3] = [(0.5, "P50"), (0.9, "P90"), (0.99, "P99")];

fn auto(rows: &[Row], stores: &[StoreRow], uptime: u64) -> String {
    let mut out = String::new();
    _ = writeln!(out, "Version: mod_wasm/{}", env!("CARGO_PKG_VERSION"));
    _ = writeln!(out, "Uptime: {uptime}");
    _ = writeln!(out, "Locations: {}", rows.len());
    for (n, row) in rows.iter().enumerate() {
        let key = format!("Location{}", n + 1);
        _ = writeln!(out, "{key}: {}", one_line(&row.location));
        _ = writeln!(out, "{key}File: {}", one_line(&row.file));
        _ = writeln!(out, "{key}Kind: {}", row.kind);
        _ = writeln!(out, "{key}Requests: {}", row.requests);
        for kind in ErrorKind::ALL {
            let name = kind.name();
            let title = name[..1].to_uppercase() + &name[1..];
            _ = writeln!(out, "{key}Errors{title}: {}", row.errors[kind as usize]);
        }
        _ = writeln!(out, "{key}InUse: {}", row.in_use);
        for (q, name) in PERCENTILES {
            let ms = row.quantile_ms(q).unwrap_or(0.0);
            _ = writeln!(out, "{key}Latency{name}Ms: {ms:.3}");
        }
        _ = writeln!(out, "{key}CompileMs: {:.3}", row.compile_us as f64 / 1000.0);
        _ = writeln!(out, "{key}LoadMs: {:.3}", row.load_us as f64 / 1000.0);
        _ = writeln!(out, "{key}MemoryBytes: {}", row.memory);
        _ = writeln!(out, "{key}PeakMemoryBytes: {}", row.peak_memory);
    }
    _ = writeln!(out, "Stores: {}", stores.len());
    for (n, store) in stores.iter().enumerate() {
        let key = format!("Store{}", n + 1);
        _ = writeln!(out, "{key}: {}", one_line(&store.label));
        _ = writeln!(out, "{key}Backend: {}", one_line(&store.backend));
        _ = writeln!(out, "{key}Kind: {}", store.kind);
        _ = writeln!(out, "{key}Operations: {}", store.operations);
        _ = writeln!(out, "{key}Failed: {}", store.failed);
        _ = writeln!(out, "{key}Refused: {}", store.refused);
        for (q, name) in PERCENTILES {
            let ms = store.quantile_ms(q).unwrap_or(0.0);
            _ = writeln!(out, "{key}Latency{name}Ms: {ms:.3}");
        }
    }
    out
}

/// A name on one line of `?auto`.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

fn prometheus(rows: &[Row]) -> String {
    let mut out = String::new();
    let labels = |row: &Row| {
        format!(
            "location=\"{}\",file=\"{}\",kind=\"{}\"",
            label(&row.location),
            label(&row.file),
            row.kind
        )
    };
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Row) -> String| {
        _ = writeln!(out, "# HELP mod_wasm_{name} {help}");
        _ = writeln!(out, "# TYPE mod_wasm_{name} {kind}");
        for row in rows {
            _ = write!(out, "{}", value(row));
        }
    };
    family(
        "requests_total",
        "counter",
        "Requests ended or refused, errors included.",
        &|row| {
            format!(
                "mod_wasm_requests_total{{{}}} {}\n",
                labels(row),
                row.requests
            )
        },
    );
    family(
        "errors_total",
        "counter",
        "Requests that failed, by kind of failure.",
        &|row| {
            ErrorKind::ALL
                .iter()
                .map(|&kind| {
                    format!(
                        "mod_wasm_errors_total{{{},error=\"{}\"}} {}\n",
                        labels(row),
                        kind.name(),
                        row.errors[kind as usize]
                    )
                })
                .collect()
        },
    );
    family(
        "instances_in_use",
        "gauge",
        "Requests being served now, in all child processes.",
        &|row| {
            format!(
                "mod_wasm_instances_in_use{{{}}} {}\n",
                labels(row),
                row.in_use
            )
        },
    );
    family(
        "memory_bytes",
        "gauge",
        "Linear memory the instances being served now hold.",
        &|row| format!("mod_wasm_memory_bytes{{{}}} {}\n", labels(row), row.memory),
    );
    family(
        "peak_memory_bytes",
        "gauge",
        "The most linear memory one request has held.",
        &|row| {
            format!(
                "mod_wasm_peak_memory_bytes{{{}}} {}\n",
                labels(row),
                row.peak_memory
            )
        },
    );
    family(
        "compile_seconds",
        "gauge",
        "How long the parent took to compile the file, or to load it from the cache.",
        &|row| {
            format!(
                "mod_wasm_compile_seconds{{{}}} {}\n",
                labels(row),
                row.compile_us as f64 / 1e6
            )
        },
    );
    family(
        "load_seconds",
        "gauge",
        "How long a child process took to load the compiled file.",
        &|row| {
            format!(
                "mod_wasm_load_seconds{{{}}} {}\n",
                labels(row),
                row.load_us as f64 / 1e6
            )
        },
    );
    family(
        "request_duration_seconds",
        "histogram",
        "Time from the start of serving to the last byte of the response.",
        &|row| {
            histogram(
                "mod_wasm_request_duration_seconds",
                &labels(row),
                &row.latency,
                row.latency_sum_us,
            )
        },
    );
    out
}

fn prometheus_stores(stores: &[StoreRow]) -> String {
    let mut out = String::new();
    let labels = |store: &StoreRow| {
        format!(
            "store=\"{}\",backend=\"{}\",kind=\"{}\"",
            label(&store.label),
            label(&store.backend),
            store.kind
        )
    };
    _ = writeln!(
        out,
        "# HELP mod_wasm_store_operations_total Key-value operations guests asked for, refused ones included."
    );
    _ = writeln!(out, "# TYPE mod_wasm_store_operations_total counter");
    for store in stores {
        _ = writeln!(
            out,
            "mod_wasm_store_operations_total{{{}}} {}",
            labels(store),
            store.operations
        );
    }
    _ = writeln!(
        out,
        "# HELP mod_wasm_store_errors_total Key-value operations that failed in the backend or that a limit refused."
    );
    _ = writeln!(out, "# TYPE mod_wasm_store_errors_total counter");
    for store in stores {
        for (error, count) in [("failed", store.failed), ("refused", store.refused)] {
            _ = writeln!(
                out,
                "mod_wasm_store_errors_total{{{},error=\"{error}\"}} {count}",
                labels(store)
            );
        }
    }
    _ = writeln!(
        out,
        "# HELP mod_wasm_store_operation_duration_seconds Time the backend took for one operation."
    );
    _ = writeln!(
        out,
        "# TYPE mod_wasm_store_operation_duration_seconds histogram"
    );
    for store in stores {
        out.push_str(&histogram(
            "mod_wasm_store_operation_duration_seconds",
            &labels(store),
            &store.latency,
            store.latency_sum_us,
        ));
    }
    out
}

/// The lines of one Prometheus histogram `name` with `labels`.
fn histogram(name: &str, labels: &str, counts: &[u64; BUCKETS + 1], sum_us: u64) -> String {
    let mut text = String::new();
    let mut cumulative = 0;
    for (i, count) in counts.iter().enumerate() {
        cumulative += count;
        let le = if i == BUCKETS {
            "+Inf".to_string()
        } else {
            format!("{}", upper_bound_us(i) / 1e6)
        };
        _ = writeln!(text, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    _ = writeln!(text, "{name}_sum{{{labels}}} {}", sum_us as f64 / 1e6);
    _ = writeln!(text, "{name}_count{{{labels}}} {cumulative}");
    text
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn html(rows: &[Row], stores: &[StoreRow], started: u64, uptime: u64) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>mod_wasm status</title>\n<style>\
         body{font-family:sans-serif} td,th{padding:2px 8px;border-bottom:1px solid #ccc}\
         td{text-align:right} td.name{text-align:left}</style></head><body>\n\
         <h1>mod_wasm status</h1>\n",
    );
    _ = writeln!(
        out,
        "<p>mod_wasm {}. Counted since {} UTC ({}), across all child processes.</p>",
        env!("CARGO_PKG_VERSION"),
        utc(started),
        duration_text(uptime)
    );
    if rows.is_empty() {
        out.push_str("<p>No location serves a guest.</p>\n");
    } else {
        out.push_str(
            "<table>\n<tr><th>Location</th><th>Guest</th><th>Requests</th>\
             <th>Trap</th><th>Timeout</th><th>Limit</th><th>Guest error</th>\
             <th>Host error</th><th>In use</th><th>p50</th><th>p90</th><th>p99</th>\
             <th>Compile</th><th>Load</th><th>Memory in use</th><th>Peak memory</th></tr>\n",
        );
        for row in rows {
            _ = write!(
                out,
                "<tr><td class=\"name\">{}</td><td class=\"name\">{} ({})</td><td>{}</td>",
                escape(&row.location),
                escape(&row.file),
                row.kind,
                row.requests
            );
            for count in row.errors {
                _ = write!(out, "<td>{count}</td>");
            }
            _ = write!(out, "<td>{}</td>", row.in_use);
            for (q, _) in PERCENTILES {
                let shown = row.quantile_ms(q).map_or("-".into(), ms_text);
                _ = write!(out, "<td>{shown}</td>");
            }
            _ = writeln!(
                out,
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ms_text(row.compile_us as f64 / 1000.0),
                ms_text(row.load_us as f64 / 1000.0),
                bytes_text(row.memory as u64),
                bytes_text(row.peak_memory)
            );
        }
        out.push_str("</table>\n");
    }
    if !stores.is_empty() {
        out.push_str(
            "<h2>Key-value stores</h2>\n<table>\n<tr><th>Store</th><th>Backend</th>\
             <th>Operations</th><th>Failed</th><th>Refused</th><th>p50</th><th>p90</th>\
             <th>p99</th></tr>\n",
        );
        for store in stores {
            _ = write!(
                out,
                "<tr><td class=\"name\">{}</td><td class=\"name\">{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td>",
                escape(&store.label),
                escape(&store.backend),
                store.operations,
                store.failed,
                store.refused
            );
            for (q, _) in PERCENTILES {
                let shown = store.quantile_ms(q).map_or("-".into(), ms_text);
                _ = write!(out, "<td>{shown}</td>");
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str(
        "<p>Latency percentiles are estimated from buckets √2 apart. \
         Machine-readable: <a href=\"?auto\">?auto</a>, \
         <a href=\"?prometheus\">?prometheus</a>.</p>\n</body></html>\n",
    );
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ms_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.2} ms")
    }
}

fn bytes_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn duration_text(secs: u64) -> String {
    format!(
        "{} d {} h {} min {} s",
        secs / 86400,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DD hh:mm:ss` for seconds since the epoch (the civil calendar
/// from a day count, after Howard Hinnant's `civil_from_days`).
fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Meter, StoreKind, region};
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_305_600 + 3661), "2026-11-22 01:01:01");
    }

    #[test]
    fn names_are_escaped_in_every_form() {
        let region = region();
        let slot = region.slot("/<b>\"x\"\n", "/r.wasm", GuestKind::Component);
        Meter::new(Some(slot)).begin().end(None);
        let html = render(region, Format::Html);
        assert!(html.contains("/&lt;b&gt;&quot;x&quot;\n"), "{html}");
        let prometheus = render(region, Format::Prometheus);
        assert!(
            prometheus.contains(r#"location="/<b>\"x\"\n",file="/r.wasm""#),
            "{prometheus}"
        );
        let auto = render(region, Format::Auto);
        assert!(
            auto.contains(": /<b>\"x\" \n") || auto.contains(": /<b>\"x\" "),
            "{auto}"
        );
    }

    #[test]
    fn the_prometheus_histogram_is_cumulative_and_counts_every_request() {
        let region = region();
        let slot = region.slot("/histogram-test", "/h.wasm", GuestKind::Module);
        for _ in 0..3 {
            Meter::new(Some(slot)).begin().end(None);
        }
        let text = render(region, Format::Prometheus);
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("/histogram-test") && l.contains("_bucket"))
            .collect();
        assert_eq!(mine.len(), BUCKETS + 1);
        let counts: Vec<u64> = mine
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*counts.last().unwrap(), 3);
        assert!(text.contains(
            "mod_wasm_requests_total{location=\"/histogram-test\",file=\"/h.wasm\",kind=\"module\"} 3"
        ));
    }

    #[test]
    fn stores_are_shown_in_every_form() {
        let region = region();
        let store = region.store_slot("render-store", "sqlite:/r.sqlite3", StoreKind::Sqlite);
        store.ran(std::time::Duration::from_micros(300), true);
        store.ran(std::time::Duration::from_micros(300), false);
        store.refused();
        let auto = render(region, Format::Auto);
        let n = auto
            .lines()
            .find_map(|line| line.strip_suffix(": render-store")?.strip_prefix("Store"))
            .expect("the store is listed");
        for (key, value) in [("Operations", "3"), ("Failed", "1"), ("Refused", "1")] {
            assert!(
                auto.contains(&format!("Store{n}{key}: {value}\n")),
                "{auto}"
            );
        }
        let prometheus = render(region, Format::Prometheus);
        let labels = r#"store="render-store",backend="sqlite:/r.sqlite3",kind="sqlite""#;
        for line in [
            format!("mod_wasm_store_operations_total{{{labels}}} 3"),
            format!("mod_wasm_store_errors_total{{{labels},error=\"refused\"}} 1"),
            format!("mod_wasm_store_operation_duration_seconds_count{{{labels}}} 2"),
        ] {
            assert!(prometheus.contains(&line), "{line} not in {prometheus}");
        }
        assert!(render(region, Format::Html).contains("<td class=\"name\">render-store</td>"));
    }

    #[test]
    fn the_query_picks_the_form() {
        assert_eq!(Format::from_query(b""), Format::Html);
        assert_eq!(Format::from_query(b"auto"), Format::Auto);
        assert_eq!(
            Format::from_query(b"refresh=5&format=prometheus"),
            Format::Prometheus
        );
        assert_eq!(Format::from_query(b"prometheus&auto"), Format::Prometheus);
        assert_eq!(Format::from_query(b"automatic"), Format::Html);
    }
}
