/* What serving a component and serving a module have in common: the state
 * of one request, the request body through the input filters, the response
 * through the output filters, log lines from the host, the end of the
 * request, and WasmMaxInstances. */
#include "mod_wasm.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_atomic.h"
#include "apr_lib.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

void mw_exchange_prepare(mw_exchange_ctx *x, request_rec *r, const mw_dir_config *conf)
{
    x->r = r;
    x->conf = conf;
    x->in = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    x->out = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    x->read_status = OK;
    x->err_headers = apr_table_copy(r->pool, r->err_headers_out);
    x->declared = -1;
    x->timeout = apr_time_from_msec(conf->timeout_ms ? conf->timeout_ms : MW_DEFAULT_TIMEOUT_MS);
    x->deadline = apr_time_now() + x->timeout;
}

void mw_exchange_init(mw_exchange_ctx *x, request_rec *r, const mw_dir_config *conf)
{
    mw_exchange_prepare(x, r, conf);
    ap_add_output_filter(MW_RESPONSE_FILTER, x, r, r->connection);
}

/* A Content-Length value: digits only, no sign, no overflow. */
static int parse_length(const char *value, apr_off_t *length)
{
    char *end;
    const char *p;
    for (p = value; *p; p++) {
        if (!apr_isdigit(*p)) {
            return 0;
        }
    }
    return *value && apr_strtoff(length, value, &end, 10) == APR_SUCCESS && *end == '\0';
}

int mw_declare_length(mw_exchange_ctx *x, const char *value)
{
    apr_off_t length;

    if (!parse_length(value, &length) || (x->declared >= 0 && length != x->declared)) {
        return 0;
    }
    x->declared = length;
    return 1;
}

/* Connection-level fields, and those that only make sense with them. */
static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding",
    "TE", "Trailer", "Upgrade", "HTTP2-Settings", NULL};

int mw_is_hop_by_hop(const char *name)
{
    const char *const *hop;

    for (hop = hop_by_hop; *hop; hop++) {
        if (strcasecmp(name, *hop) == 0) {
            return 1;
        }
    }
    return 0;
}

const char *mw_drop_hop_by_hop(request_rec *r)
{
    const char *dropped = NULL;
    const char *const *name;

    for (name = hop_by_hop; *name; name++) {
        if (apr_table_get(r->headers_out, *name) || apr_table_get(r->err_headers_out, *name)) {
            dropped = dropped ? apr_pstrcat(r->pool, dropped, ", ", *name, NULL) : *name;
            apr_table_unset(r->headers_out, *name);
            apr_table_unset(r->err_headers_out, *name);
        }
    }
    return dropped;
}

/* The response's framing is Apache's: body bytes past the declared length
 * would sit on a kept-alive connection as the start of the next response
 * (response smuggling). What fits goes out, the rest is dropped here, before
 * any output filter sees it, and mw_finish() ends the response with an
 * error. */
static void keep_to_declared(mw_exchange_ctx *x)
{
    apr_off_t len = 0;
    apr_bucket *cut;

    if (x->declared < 0) {
        return;
    }
    /* Our buckets all have a known length; read_all settles any other. */
    if (apr_brigade_length(x->out, 1, &len) != APR_SUCCESS || len < 0) {
        apr_brigade_cleanup(x->out);
        x->overran = 1;
        return;
    }
    if (len > x->declared - x->body_sent) {
        len = x->declared - x->body_sent;
        if (apr_brigade_partition(x->out, len, &cut) == APR_SUCCESS) {
            while (cut != APR_BRIGADE_SENTINEL(x->out)) {
                apr_bucket *next = APR_BUCKET_NEXT(cut);
                apr_bucket_delete(cut);
                cut = next;
            }
        }
        else {
            apr_brigade_cleanup(x->out);
            len = 0;
        }
        x->overran = 1;
    }
    x->body_sent += len;
}

/* Where the response goes: down all of the request's output filters, or,
 * for a middleware, below the filter that takes what it wraps. */
static ap_filter_t *out_filters(const mw_exchange_ctx *x)
{
    return x->out_after ? x->out_after->next : x->r->output_filters;
}

/* While the guest runs, a client that does not read holds its instance:
 * a write may wait for the socket as long as the request's WasmTimeout has
 * left, not Apache's Timeout if that is longer. The core output filter
 * applies the socket's timeout to each wait, so a client that stops
 * reading is cut off at the deadline; one that trickles a few bytes before
 * each wait runs out can stretch one pass (as it can Apache's Timeout).
 * Over HTTP/2 the socket is mod_http2's, shared by every stream, and its
 * own timeouts apply. */
static apr_status_t pass_within_deadline(mw_exchange_ctx *x)
{
    conn_rec *c = x->r->connection;
    apr_socket_t *s = c->master ? NULL : ap_get_conn_socket(c);
    apr_interval_time_t apache = x->r->server->timeout, before = 0;
    apr_interval_time_t left = x->deadline - apr_time_now();
    int shortened = s && left < apache && apr_socket_timeout_get(s, &before) == APR_SUCCESS;
    apr_status_t rv;

    /* Between two positive timeouts APR makes no system call. */
    if (shortened) {
        apr_socket_timeout_set(s, left > 0 ? left : 1);
    }
    rv = ap_pass_brigade(out_filters(x), x->out);
    if (shortened) {
        apr_socket_timeout_set(s, before);
    }
    if (APR_STATUS_IS_TIMEUP(rv) && !x->write_limit) {
        x->write_limit = shortened ? "WasmTimeout" : "Timeout";
        x->write_limit_time = shortened ? x->timeout : apache;
    }
    return rv;
}

static uint32_t pass(mw_exchange_ctx *x, int bounded)
{
    apr_status_t rv;

    keep_to_declared(x);
    rv = bounded ? pass_within_deadline(x) : ap_pass_brigade(out_filters(x), x->out);
    apr_brigade_cleanup(x->out);
    x->passed = 1;
    if (x->r->connection->aborted) {
        x->client_gone = 1;
    }
    return rv == APR_SUCCESS && !x->client_gone && !x->overran ? MW_IO_OK : MW_IO_FAILED;
}

/* A failure is either the client going away or a filter failing;
 * mw_finish() tells them apart. */
uint32_t mw_pass_out(mw_exchange_ctx *x)
{
    return pass(x, 1);
}

/* Once the response has begun, an error bucket from anywhere (HTTP_IN sends
 * one with an EOS when LimitRequestBody trips mid-upload) must cut the
 * response: only 502 makes the chunk filter withhold the last chunk. */
apr_status_t mw_response_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    mw_exchange_ctx *x = f->ctx;
    apr_bucket *b;

    if (x->passed) {
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            if (AP_BUCKET_IS_ERROR(b)) {
                ((ap_bucket_error *)b->data)->status = HTTP_BAD_GATEWAY;
                f->r->connection->keepalive = AP_CONN_CLOSE;
            }
        }
    }
    return ap_pass_brigade(f->next, bb);
}

/* Through the input filters, which de-chunk the body and enforce
 * LimitRequestBody. */
uint32_t mw_read_body(void *ctx, uint8_t *buf, size_t buf_len, size_t *read_out)
{
    mw_exchange_ctx *x = ctx;
    request_rec *r = x->r;

    while (!x->body_done) {
        apr_size_t len = buf_len;
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(x->in_after ? x->in_after->next : r->input_filters,
                                         x->in, AP_MODE_READBYTES,
                                         APR_BLOCK_READ, buf_len);
        if (rv == APR_SUCCESS) {
            for (b = APR_BRIGADE_FIRST(x->in); b != APR_BRIGADE_SENTINEL(x->in);
                 b = APR_BUCKET_NEXT(b)) {
                if (APR_BUCKET_IS_EOS(b)) {
                    x->body_done = 1;
                }
            }
            rv = apr_brigade_flatten(x->in, (char *)buf, &len);
        }
        apr_brigade_cleanup(x->in);
        if (rv != APR_SUCCESS) {
            x->read_status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            x->body_done = 1;
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                          MWLOGNO(00010) "reading the request body failed (answering %d)",
                          x->read_status);
            return MW_IO_FAILED;
        }
        if (len > 0) {
            *read_out = len;
            return MW_IO_OK;
        }
    }
    *read_out = 0;
    return MW_IO_OK;
}

const char *mw_request_id(request_rec *r)
{
    if (!r->log_id) {
        ap_run_generate_log_id(r->connection, r, &r->log_id);
    }
    return r->log_id ? r->log_id : "";
}

/* The guest's output (stderr is an error, as mod_cgi logs a script's
 * stderr), or a refusal. Lines name the request's id (%L in LogFormat), so
 * that a guest's lines can be matched to its access log line. */
void mw_log_line(void *ctx, uint32_t kind, const uint8_t *text, size_t len)
{
    mw_exchange_ctx *x = ctx;
    request_rec *r = x->r;
    const char *where = x->conf->where;

    switch (kind) {
    case MW_LOG_KIND_GUEST_STDERR:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00015) "guest stderr for %s (%s, request %s): %.*s", r->uri, where,
                      mw_request_id(r), (int)len, (const char *)text);
        break;
    case MW_LOG_KIND_GUEST_STDOUT:
        /* A component answers through wasi:http, not stdout. */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MWLOGNO(00016) "guest stdout for %s (%s, request %s): %.*s", r->uri, where,
                      mw_request_id(r), (int)len, (const char *)text);
        break;
    case MW_LOG_KIND_OUTPUT_SUPPRESSED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MWLOGNO(00017) "the guest wrote more than %d bytes to %.*s for %s (%s); "
                      "the rest is not logged", MW_MAX_LOGGED, (int)len, (const char *)text,
                      r->uri, where);
        break;
    case MW_LOG_KIND_OUTGOING_DENIED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, MWLOGNO(00018) "%.*s, for %s (%s)", (int)len,
                      (const char *)text, r->uri, where);
        break;
    case MW_LOG_KIND_STORE_FAILED:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, MWLOGNO(00050) "%.*s, for %s (%s)", (int)len,
                      (const char *)text, r->uri, where);
        break;
    case MW_LOG_KIND_STORE_REFUSED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, MWLOGNO(00051) "%.*s, for %s (%s)",
                      (int)len, (const char *)text, r->uri, where);
        break;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, MWLOGNO(00019) "%.*s, for %s (%s)", (int)len,
                      (const char *)text, r->uri, where);
        break;
    }
}

static const char *describe(mw_result rv)
{
    switch (rv) {
    case MW_RESULT_GUEST_FAILED: return "the guest failed";
    case MW_RESULT_NO_RESPONSE: return "the guest set no response";
    case MW_RESULT_NOT_LOADED: return "the guest is not loaded";
    case MW_RESULT_BAD_REQUEST: return "the request is not valid for wasi:http";
    case MW_RESULT_SINK_FAILED: return "the response was refused";
    case MW_RESULT_TIMEOUT: return "the request timed out";
    case MW_RESULT_PANIC: return "mod_wasm's host panicked (a bug in mod_wasm)";
    default: return "internal error";
    }
}

/* CGI headers put Set-Cookie into err_headers_out (where it survives
 * errors): that is undone too. */
void mw_forget_head(mw_exchange_ctx *x)
{
    request_rec *r = x->r;
    r->err_headers_out = apr_table_copy(r->pool, x->err_headers);
    r->status = HTTP_OK;
    r->status_line = NULL;
    r->content_type = NULL;
    r->clength = 0;
    apr_table_clear(r->headers_out);
    x->declared = -1;
}

/* Whether the body that went out is shorter than the guest declared, where
 * that matters: a HEAD request and a 204 or 304 carry no body. */
static int body_short(const mw_exchange_ctx *x)
{
    const request_rec *r = x->r;
    return x->declared >= 0 && x->body_sent < x->declared && !r->header_only &&
           !AP_STATUS_IS_HEADER_ONLY(r->status);
}

/* The head is out: the only honest signal left is to cut the response (no
 * last chunk, connection closed), never a clean-looking end. */
static void cut(mw_exchange_ctx *x)
{
    request_rec *r = x->r;
    apr_bucket_alloc_t *alloc = r->connection->bucket_alloc;

    r->connection->keepalive = AP_CONN_CLOSE;
    if (!r->eos_sent) {
        APR_BRIGADE_INSERT_TAIL(x->out,
                                ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL, r->pool, alloc));
        APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_eos_create(alloc));
        pass(x, 0);
    }
}

/* The guest broke its own framing: its fault, counted as a guest error. */
static void framing_failed(mw_exchange_ctx *x)
{
    mw_stats_count(x->conf->stats, MW_ERROR_KIND_GUEST, true);
    apr_table_setn(x->r->notes, "wasm-error", "guest");
    cut(x);
}

int mw_finish(mw_exchange_ctx *x, mw_result rv, const char *err)
{
    request_rec *r = x->r;
    const char *where = x->conf->where;
    apr_bucket_alloc_t *alloc = r->connection->bucket_alloc;

    if (x->overran) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00037) "the guest wrote more than the %" APR_OFF_T_FMT
                      " bytes its Content-Length declared for %s (%s); sent those, dropped "
                      "the rest, ended the response with an error (502, or a cut once its "
                      "head was out)", x->declared, r->uri, where);
        framing_failed(x);
        return OK;
    }
    if (rv == MW_RESULT_OK && body_short(x) && !x->write_limit && !x->client_gone) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00038) "the guest ended its body after %" APR_OFF_T_FMT " of the %"
                      APR_OFF_T_FMT " bytes its Content-Length declared for %s (%s); ended the "
                      "response with an error (502, or a cut once its head was out)",
                      x->body_sent, x->declared, r->uri, where);
        framing_failed(x);
        return OK;
    }
    if (rv == MW_RESULT_OK) {
        if (!r->eos_sent) {
            /* The guest is done and its instance gone: what is left to
             * write waits as Apache's writes do. */
            APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_eos_create(alloc));
            pass(x, 0);
        }
        return OK;
    }
    if (!x->passed) {
        /* Nothing reached the client yet: answer with an error status. */
        mw_forget_head(x);
        if (x->read_status != OK) {
            return x->read_status;
        }
        if (rv == MW_RESULT_TIMEOUT) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, MWLOGNO(00020) "%s for %s (%s): %s",
                          describe(rv), r->uri, where, err);
            return HTTP_GATEWAY_TIME_OUT;
        }
        if (rv == MW_RESULT_BAD_REQUEST) {
            /* The client's mistake, logged as Apache logs its own 400s. */
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, MWLOGNO(00039) "%s for %s (%s): %s",
                          describe(rv), r->uri, where, err);
            return HTTP_BAD_REQUEST;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, MWLOGNO(00012) "%s for %s (%s): %s",
                      describe(rv), r->uri, where, err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (x->write_limit) {
        /* The client's doing, not the guest's: info, as Apache logs its own
         * write timeouts. */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      MWLOGNO(00043) "the client stopped reading the response for %s (%s) and %s "
                      "(%" APR_TIME_T_FMT " ms) ran out; the guest was stopped and the "
                      "connection closed", r->uri, where, x->write_limit,
                      apr_time_as_msec(x->write_limit_time));
        r->connection->keepalive = AP_CONN_CLOSE;
        return OK;
    }
    if (x->client_gone) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      MWLOGNO(00013) "the client went away during the response for %s (%s)",
                      r->uri, where);
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  MWLOGNO(00014) "%s after the response began, cutting it, for %s (%s): %s",
                  describe(rv), r->uri, where, err);
    cut(x);
    return OK;
}

void mw_note_report(request_rec *r, const mw_report *report)
{
    static const char *const errors[] = {"-", "trap", "timeout", "limit", "guest", "host",
                                         "shared"};
    apr_table_t *notes = r->notes;

    apr_table_setn(notes, "wasm-time-us", apr_psprintf(r->pool, "%" APR_UINT64_T_FMT,
                                                       (apr_uint64_t)report->total_us));
    apr_table_setn(notes, "wasm-instantiate-us",
                   apr_psprintf(r->pool, "%" APR_UINT64_T_FMT,
                                (apr_uint64_t)report->instantiate_us));
    apr_table_setn(notes, "wasm-memory-peak", apr_psprintf(r->pool, "%" APR_UINT64_T_FMT,
                                                           (apr_uint64_t)report->peak_memory));
    /* A failure the C side found (bad CGI headers) has set it already. */
    if (report->error != MW_ERROR_KIND_NONE || !apr_table_get(notes, "wasm-error")) {
        apr_table_setn(notes, "wasm-error",
                       report->error < sizeof(errors) / sizeof(*errors) ? errors[report->error]
                                                                        : "host");
    }
}

/* The limits and grants of the section; Rust keys reused instances by them
 * and by the virtual host and directive. */
mw_sandbox mw_sandbox_of(request_rec *r, const mw_dir_config *conf)
{
    const char *place = conf->where ? conf->where : "";

    return (mw_sandbox){
        .timeout_ms = conf->timeout_ms,
        .memory_limit = conf->memory_limit,
        .env = (const mw_header *)conf->env->elts,
        .env_len = (size_t)conf->env->nelts,
        .dirs = (const mw_dir *)conf->dirs->elts,
        .dirs_len = (size_t)conf->dirs->nelts,
        .outgoing = (const mw_outgoing_rule *const *)conf->outgoing->elts,
        .outgoing_len = (size_t)conf->outgoing->nelts,
        .stores = (const mw_kv_store *const *)conf->stores->elts,
        .stores_len = (size_t)conf->stores->nelts,
        .config = (const mw_header *)conf->config->elts,
        .config_len = (size_t)conf->config->nelts,
        .stats = conf->stats,
        .reuse = conf->reuse > 0 ? (uint32_t)conf->reuse : 1,
        .concurrency = conf->concurrency > 0 ? (uint32_t)conf->concurrency : 1,
        .server = r->server,
        .place = {(const uint8_t *)place, strlen(place)},
    };
}

/* The count is per child process: the instances it bounds live in this
 * process's memory. */
int mw_take_instance(request_rec *r, const mw_dir_config *conf)
{
    apr_uint32_t in_use;

    if (conf->max_instances <= 0 || !conf->in_use) {
        return OK;
    }
    do {
        in_use = apr_atomic_read32(conf->in_use);
        if (in_use >= (apr_uint32_t)conf->max_instances) {
            apr_table_setn(r->err_headers_out, "Retry-After", "1");
            mw_stats_count(conf->stats, MW_ERROR_KIND_LIMIT, false);
            apr_table_setn(r->notes, "wasm-error", "limit");
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          MWLOGNO(00021) "WasmMaxInstances %d reached for %s (%s); answering 503",
                          conf->max_instances, r->uri, conf->where);
            return HTTP_SERVICE_UNAVAILABLE;
        }
    } while (apr_atomic_cas32(conf->in_use, in_use + 1, in_use) != in_use);
    return OK;
}

void mw_release_instance(const mw_dir_config *conf)
{
    if (conf->max_instances > 0 && conf->in_use) {
        apr_atomic_dec32(conf->in_use);
    }
}
