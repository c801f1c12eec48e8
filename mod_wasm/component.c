/* Serving a request with a component: the request view handed to the host,
 * and the callbacks through which the host pulls the request body and pushes
 * the response down the output filters. */
#include "mod_wasm.h"

#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_core.h"
#include "util_filter.h"
#include "apr_atomic.h"
#include "apr_lib.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

/* The state of one request while the host serves it. In the request pool:
 * the response filter still reads it after the handler returned. */
typedef struct {
    request_rec *r;
    const mw_dir_config *conf;
    apr_bucket_brigade *in;  /* request body, one read at a time            */
    apr_bucket_brigade *out; /* response body, one pass at a time           */
    int body_done;           /* input EOS seen: further reads return 0      */
    int read_status;         /* HTTP status of a failed body read, else OK  */
    int passed;              /* a brigade went out: the head is on the wire */
    int client_gone;         /* the connection was aborted                  */
} exchange_ctx;

static mw_bytes bytes_of(const char *s)
{
    return (mw_bytes){(const uint8_t *)s, s ? strlen(s) : 0};
}

/* Passes x->out down the output filters. A failure is either the client
 * going away or a filter failing; finish() tells them apart. */
static uint32_t pass_out(exchange_ctx *x)
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
    exchange_ctx *x = f->ctx;
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

/* Reads the next piece of the request body through the input filters, which
 * de-chunk it and enforce LimitRequestBody. */
static uint32_t read_body(void *ctx, uint8_t *buf, size_t buf_len, size_t *read_out)
{
    exchange_ctx *x = ctx;
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

/* Puts the guest's status and headers on the request. */
static uint32_t send_head(void *ctx, uint16_t status, const mw_header *headers,
                          size_t headers_len)
{
    exchange_ctx *x = ctx;
    request_rec *r = x->r;
    size_t i;

    if (x->read_status != OK || r->eos_sent) {
        /* The request body failed (e.g. 413): that is the answer, not
         * whatever the guest made of the failure. */
        return MW_IO_FAILED;
    }
    r->status = status;
    if (atoi(ap_get_status_line(status)) != status) {
        /* Apache has no reason phrase for this code and would send 500 in
         * the status line: send the bare code (the phrase is optional). */
        r->status_line = apr_psprintf(r->pool, "%u", status);
    }
    for (i = 0; i < headers_len; i++) {
        const char *name = apr_pstrmemdup(r->pool, (const char *)headers[i].name.ptr,
                                          headers[i].name.len);
        const char *value = apr_pstrmemdup(r->pool, (const char *)headers[i].value.ptr,
                                           headers[i].value.len);
        if (strcasecmp(name, "Content-Type") == 0) {
            ap_set_content_type(r, value);
        }
        else if (strcasecmp(name, "Content-Length") == 0) {
            apr_off_t length;
            if (!parse_length(value, &length)) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              "MW00011: the guest sent an invalid Content-Length '%s'", value);
                return MW_IO_FAILED;
            }
            ap_set_content_length(r, length);
        }
        else {
            apr_table_addn(r->headers_out, name, value);
        }
    }
    return MW_IO_OK;
}

/* Passes a piece of the body on; HEAD requests run the guest but send no
 * body, so the bytes are dropped. */
static uint32_t send_data(void *ctx, const uint8_t *data, size_t data_len, bool flush)
{
    exchange_ctx *x = ctx;
    apr_bucket_alloc_t *alloc = x->r->connection->bucket_alloc;

    if (x->r->eos_sent) {
        /* Something else ended the response (an input filter's error). */
        return MW_IO_FAILED;
    }
    if (x->r->header_only) {
        return MW_IO_OK;
    }
    if (data_len > 0) {
        APR_BRIGADE_INSERT_TAIL(x->out,
                                apr_bucket_transient_create((const char *)data, data_len, alloc));
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_flush_create(alloc));
    }
    return pass_out(x);
}

/* A line about the request from the host: the guest's output (stderr is an
 * error, as mod_cgi logs a script's stderr), or a refusal. */
static void log_line(void *ctx, uint32_t kind, const uint8_t *text, size_t len)
{
    exchange_ctx *x = ctx;
    request_rec *r = x->r;
    const char *where = x->conf->component_where;

    switch (kind) {
    case MW_LOG_KIND_GUEST_STDERR:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "MW00015: guest stderr for %s (%s): %.*s",
                      r->uri, where, (int)len, (const char *)text);
        break;
    case MW_LOG_KIND_GUEST_STDOUT:
        /* A component answers through wasi:http, not stdout. */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "MW00016: guest stdout for %s (%s): %.*s", r->uri, where, (int)len,
                      (const char *)text);
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

/* The request target as received; for an absolute-form target, its path
 * and query. */
static const char *request_target(request_rec *r)
{
    if (r->unparsed_uri && (r->unparsed_uri[0] == '/' || strcmp(r->unparsed_uri, "*") == 0)) {
        return r->unparsed_uri;
    }
    return apr_uri_unparse(r->pool, &r->parsed_uri, APR_URI_UNP_OMITSITEPART);
}

/* The authority of an absolute-form target (which overrides Host, RFC 9112
 * 3.2.2), else Host as the client sent it, else (HTTP/1.0 without Host) the
 * server's name and port. */
static const char *authority(request_rec *r)
{
    const char *host = apr_table_get(r->headers_in, "Host");
    if (r->parsed_uri.hostinfo) {
        return r->parsed_uri.hostinfo;
    }
    if (host && *host) {
        return host;
    }
    return apr_psprintf(r->pool, "%s:%u", ap_get_server_name_for_url(r),
                        ap_get_server_port(r));
}

static const char *describe(mw_result rv)
{
    switch (rv) {
    case MW_RESULT_GUEST_FAILED: return "the guest failed";
    case MW_RESULT_NO_RESPONSE: return "the guest set no response";
    case MW_RESULT_NOT_LOADED: return "the component is not loaded";
    case MW_RESULT_BAD_REQUEST: return "the request is not valid for wasi:http";
    case MW_RESULT_SINK_FAILED: return "the response was refused";
    case MW_RESULT_TIMEOUT: return "the request timed out";
    default: return "internal error";
    }
}

/* Forgets the guest's head when its response never went out, so that the
 * error response Apache sends instead carries none of it. */
static void forget_head(request_rec *r)
{
    r->status = HTTP_OK;
    r->status_line = NULL;
    r->content_type = NULL;
    r->clength = 0;
    apr_table_clear(r->headers_out);
}

/* Ends the request after the host returned. */
static int finish(exchange_ctx *x, const mw_dir_config *conf, mw_result rv, const char *err)
{
    request_rec *r = x->r;
    apr_bucket_alloc_t *alloc = r->connection->bucket_alloc;

    if (rv == MW_RESULT_OK) {
        if (!r->eos_sent) {
            APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_eos_create(alloc));
            pass_out(x);
        }
        return OK;
    }
    if (!x->passed) {
        /* Nothing reached the client yet: answer with an error status. */
        forget_head(r);
        if (x->read_status != OK) {
            return x->read_status;
        }
        if (rv == MW_RESULT_TIMEOUT) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "MW00020: %s for %s (%s): %s",
                          describe(rv), r->uri, conf->component_where, err);
            return HTTP_GATEWAY_TIME_OUT;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "MW00012: %s for %s (%s): %s",
                      describe(rv), r->uri, conf->component_where, err);
        return rv == MW_RESULT_BAD_REQUEST ? HTTP_BAD_REQUEST : HTTP_INTERNAL_SERVER_ERROR;
    }
    if (x->client_gone) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "MW00013: the client went away during the response for %s (%s)",
                      r->uri, conf->component_where);
        return OK;
    }
    /* The head is out: the only honest signal left is to cut the response
     * (no last chunk, connection closed), never a clean-looking end. */
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "MW00014: %s after the response began, cutting it, for %s (%s): %s",
                  describe(rv), r->uri, conf->component_where, err);
    r->connection->keepalive = AP_CONN_CLOSE;
    if (!r->eos_sent) {
        APR_BRIGADE_INSERT_TAIL(x->out,
                                ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL, r->pool, alloc));
        APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_eos_create(alloc));
        pass_out(x);
    }
    return OK;
}

/* The location's limits and grants, as views into its configuration. */
static mw_sandbox sandbox_of(const mw_dir_config *conf)
{
    return (mw_sandbox){
        .timeout_ms = conf->timeout_ms,
        .memory_limit = conf->memory_limit,
        .env = (const mw_header *)conf->env->elts,
        .env_len = (size_t)conf->env->nelts,
        .dirs = (const mw_dir *)conf->dirs->elts,
        .dirs_len = (size_t)conf->dirs->nelts,
        .outgoing = (const mw_outgoing_rule *const *)conf->outgoing->elts,
        .outgoing_len = (size_t)conf->outgoing->nelts,
    };
}

/* WasmMaxInstances: takes an instance slot, or answers 503 when none is
 * free. The count is per child process: the instances it bounds live in
 * this process's memory. */
static int take_instance(request_rec *r, const mw_dir_config *conf)
{
    apr_uint32_t in_use;

    if (conf->max_instances <= 0 || !conf->in_use) {
        return OK;
    }
    do {
        in_use = apr_atomic_read32(conf->in_use);
        if (in_use >= (apr_uint32_t)conf->max_instances) {
            apr_table_setn(r->err_headers_out, "Retry-After", "1");
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "MW00021: WasmMaxInstances %d reached for %s (%s); answering 503",
                          conf->max_instances, r->uri, conf->component_where);
            return HTTP_SERVICE_UNAVAILABLE;
        }
    } while (apr_atomic_cas32(conf->in_use, in_use + 1, in_use) != in_use);
    return OK;
}

static void release_instance(const mw_dir_config *conf)
{
    if (conf->max_instances > 0 && conf->in_use) {
        apr_atomic_dec32(conf->in_use);
    }
}

int mw_serve_component(request_rec *r, const mw_dir_config *conf)
{
    const apr_array_header_t *fields = apr_table_elts(r->headers_in);
    const apr_table_entry_t *field = (const apr_table_entry_t *)fields->elts;
    mw_header *headers = apr_palloc(r->pool, sizeof(*headers) * (fields->nelts + 1));
    size_t headers_len = 0;
    exchange_ctx *x = apr_pcalloc(r->pool, sizeof(*x));
    mw_request request;
    mw_sandbox sandbox = sandbox_of(conf);
    mw_exchange exchange;
    char err[MW_ERROR_LEN] = "";
    mw_result rv;
    int i, status;

    if ((status = take_instance(r, conf)) != OK) {
        return status;
    }
    for (i = 0; i < fields->nelts; i++) {
        if (field[i].key) {
            headers[headers_len++] = (mw_header){bytes_of(field[i].key), bytes_of(field[i].val)};
        }
    }
    request = (mw_request){
        .method = bytes_of(r->method),
        .scheme = bytes_of(ap_http_scheme(r)),
        .authority = bytes_of(authority(r)),
        .path_with_query = bytes_of(request_target(r)),
        .headers = headers,
        .headers_len = headers_len,
    };
    x->r = r;
    x->conf = conf;
    x->in = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    x->out = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    x->read_status = OK;
    ap_add_output_filter(MW_RESPONSE_FILTER, x, r, r->connection);
    exchange = (mw_exchange){x, read_body, send_head, send_data, log_line};

    rv = mw_component_serve(conf->component, &request, &sandbox, &exchange, err, sizeof(err));
    release_instance(conf);
    return finish(x, conf, rv, err);
}
