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
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

void mw_exchange_init(mw_exchange_ctx *x, request_rec *r, const mw_dir_config *conf)
{
    x->r = r;
    x->conf = conf;
    x->in = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    x->out = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    x->read_status = OK;
    x->err_headers = apr_table_copy(r->pool, r->err_headers_out);
    ap_add_output_filter(MW_RESPONSE_FILTER, x, r, r->connection);
}

/* A failure is either the client going away or a filter failing;
 * mw_finish() tells them apart. */
uint32_t mw_pass_out(mw_exchange_ctx *x)
{
    apr_status_t rv = ap_pass_brigade(x->r->output_filters, x->out);
    apr_brigade_cleanup(x->out);
    x->passed = 1;
    if (x->r->connection->aborted) {
        x->client_gone = 1;
    }
    return rv == APR_SUCCESS && !x->client_gone ? MW_IO_OK : MW_IO_FAILED;
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
        apr_status_t rv = ap_get_brigade(r->input_filters, x->in, AP_MODE_READBYTES,
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
                          "MW00010: reading the request body failed (answering %d)",
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
                      "MW00015: guest stderr for %s (%s, request %s): %.*s", r->uri, where,
                      mw_request_id(r), (int)len, (const char *)text);
        break;
    case MW_LOG_KIND_GUEST_STDOUT:
        /* A component answers through wasi:http, not stdout. */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "MW00016: guest stdout for %s (%s, request %s): %.*s", r->uri, where,
                      mw_request_id(r), (int)len, (const char *)text);
        break;
    case MW_LOG_KIND_OUTPUT_SUPPRESSED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "MW00017: the guest wrote more than %d bytes to %.*s for %s (%s); "
                      "the rest is not logged", MAX_LOGGED, (int)len, (const char *)text,
                      r->uri, where);
        break;
    case MW_LOG_KIND_OUTGOING_DENIED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "MW00018: %.*s, for %s (%s)", (int)len,
                      (const char *)text, r->uri, where);
        break;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "MW00019: %.*s, for %s (%s)", (int)len,
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
}

int mw_finish(mw_exchange_ctx *x, mw_result rv, const char *err)
{
    request_rec *r = x->r;
    const char *where = x->conf->where;
    apr_bucket_alloc_t *alloc = r->connection->bucket_alloc;

    if (rv == MW_RESULT_OK) {
        if (!r->eos_sent) {
            APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_eos_create(alloc));
            mw_pass_out(x);
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
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "MW00020: %s for %s (%s): %s",
                          describe(rv), r->uri, where, err);
            return HTTP_GATEWAY_TIME_OUT;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "MW00012: %s for %s (%s): %s",
                      describe(rv), r->uri, where, err);
        return rv == MW_RESULT_BAD_REQUEST ? HTTP_BAD_REQUEST : HTTP_INTERNAL_SERVER_ERROR;
    }
    if (x->client_gone) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "MW00013: the client went away during the response for %s (%s)",
                      r->uri, where);
        return OK;
    }
    /* The head is out: the only honest signal left is to cut the response
     * (no last chunk, connection closed), never a clean-looking end. */
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "MW00014: %s after the response began, cutting it, for %s (%s): %s",
                  describe(rv), r->uri, where, err);
    r->connection->keepalive = AP_CONN_CLOSE;
    if (!r->eos_sent) {
        APR_BRIGADE_INSERT_TAIL(x->out,
                                ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL, r->pool, alloc));
        APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_eos_create(alloc));
        mw_pass_out(x);
    }
    return OK;
}

void mw_note_report(request_rec *r, const mw_report *report)
{
    static const char *const errors[] = {"-", "trap", "timeout", "limit", "guest", "host"};
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

/* The reuse scope is the directive that chose the guest and the virtual host
 * serving the request (its server_rec lives as long as the child): a
 * section of the main server applies to every virtual host, and a component
 * that AddHandler or WasmFileRoutes found has no directive at all, yet
 * instances must never carry one host's requests into another's. */
mw_sandbox mw_sandbox_of(request_rec *r, const mw_dir_config *conf)
{
    const char *scope = conf->reuse > 1 ? apr_psprintf(r->pool, "%pp %s", (void *)r->server,
                                                       conf->where ? conf->where : "")
                                        : "";

    return (mw_sandbox){
        .timeout_ms = conf->timeout_ms,
        .memory_limit = conf->memory_limit,
        .env = (const mw_header *)conf->env->elts,
        .env_len = (size_t)conf->env->nelts,
        .dirs = (const mw_dir *)conf->dirs->elts,
        .dirs_len = (size_t)conf->dirs->nelts,
        .outgoing = (const mw_outgoing_rule *const *)conf->outgoing->elts,
        .outgoing_len = (size_t)conf->outgoing->nelts,
        .stats = conf->stats,
        .reuse = conf->reuse > 0 ? (uint32_t)conf->reuse : 1,
        .reuse_scope = {(const uint8_t *)scope, strlen(scope)},
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
                          "MW00021: WasmMaxInstances %d reached for %s (%s); answering 503",
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
