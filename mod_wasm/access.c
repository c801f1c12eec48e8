/* WasmAccessChecker: a component decides whether a request goes on to
 * whatever serves it (a static file, mod_proxy, CGI, a WasmComponent).
 *
 * It runs as the first fixup, after Apache's own access control (Require,
 * authentication) has let the request through, so both must allow it and
 * the checker sees the user Apache authenticated. A 2xx answer lets the
 * request go on, with the Wasm-Auth-* fields of that answer added to the
 * request for the backend. Any other answer is the response, as the
 * component wrote it: it is kept here and sent by a handler that runs
 * before every other, so that nothing else serves the request.
 * docs/directives/WasmAccessChecker.md says why it is not a Require
 * provider. */
#include "mod_wasm.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

/* The request fields a checker may set for the backend, and the only ones
 * of its answer that count when it allows. A client's fields of this
 * prefix are removed before the checker runs, so that what reaches the
 * backend under it always comes from the checker. */
#define MW_AUTH_PREFIX "Wasm-Auth-"

/* A refusal is kept whole until the guest is done: its body is bounded. */
#define MW_MAX_REFUSAL_BODY (1024 * 1024)

typedef struct {
    int status;
    const char *status_line;  /* for a code Apache has no phrase for     */
    const char *content_type; /* or NULL                                  */
    apr_table_t *headers;     /* the rest of the head, hop-by-hop dropped */
    apr_bucket_brigade *body;
    apr_off_t body_len;
} mw_refusal;

/* One run of a checker. */
typedef struct {
    mw_exchange_ctx x;   /* first: the log callbacks take it as theirs     */
    int status;          /* the answer's, 0 until its head came            */
    apr_table_t *grants; /* an allowing answer's Wasm-Auth-* fields        */
    mw_refusal *refusal; /* a refusing answer                              */
    int too_big;         /* the refusal's body passed MW_MAX_REFUSAL_BODY  */
} checking;

static int is_auth_field(const char *name)
{
    return strncasecmp(name, MW_AUTH_PREFIX, sizeof(MW_AUTH_PREFIX) - 1) == 0;
}

static uint32_t checker_head(void *ctx, uint16_t status, const mw_header *headers,
                             size_t headers_len)
{
    checking *c = ctx;
    request_rec *r = c->x.r;
    mw_refusal *refusal = NULL;
    size_t i;

    c->status = status;
    if (status >= 300) {
        refusal = c->refusal = apr_pcalloc(r->pool, sizeof(*refusal));
        refusal->status = status;
        if (atoi(ap_get_status_line(status)) != status) {
            refusal->status_line = apr_psprintf(r->pool, "%u", status);
        }
        refusal->headers = apr_table_make(r->pool, (int)headers_len);
        refusal->body = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    }
    for (i = 0; i < headers_len; i++) {
        const char *name = apr_pstrmemdup(r->pool, (const char *)headers[i].name.ptr,
                                          headers[i].name.len);
        const char *value = apr_pstrmemdup(r->pool, (const char *)headers[i].value.ptr,
                                           headers[i].value.len);
        if (!refusal) {
            if (is_auth_field(name)) {
                apr_table_addn(c->grants, name, value);
            }
        }
        else if (strcasecmp(name, "Content-Type") == 0) {
            refusal->content_type = value;
        }
        /* Apache frames the refusal: it has the whole body. */
        else if (strcasecmp(name, "Content-Length") != 0 && !mw_is_hop_by_hop(name)) {
            apr_table_addn(refusal->headers, name, value);
        }
    }
    return MW_IO_OK;
}

/* An allowing answer's body goes nowhere; a refusal's is kept. */
static uint32_t checker_data(void *ctx, const uint8_t *data, size_t data_len, bool flush)
{
    checking *c = ctx;
    mw_refusal *refusal = c->refusal;

    if (!refusal || data_len == 0) {
        return MW_IO_OK;
    }
    if (refusal->body_len + (apr_off_t)data_len > MW_MAX_REFUSAL_BODY) {
        c->too_big = 1;
        return MW_IO_FAILED;
    }
    refusal->body_len += (apr_off_t)data_len;
    return apr_brigade_write(refusal->body, NULL, NULL, (const char *)data, data_len) ==
                   APR_SUCCESS
               ? MW_IO_OK
               : MW_IO_FAILED;
}

/* Apache runs its own access control once for a subrequest or an internal
 * redirect whose configuration is that of the request it came from
 * (ap_process_request_internal): so does the checker, which already
 * decided for that request. */
static int decided_before(const request_rec *r)
{
    return (r->main && r->main->per_dir_config == r->per_dir_config) ||
           (r->prev && r->prev->per_dir_config == r->per_dir_config);
}

static int drop_client_auth_field(void *ctx, const char *key, const char *value)
{
    apr_array_header_t *names = ctx;
    if (is_auth_field(key)) {
        *(const char **)apr_array_push(names) = key;
    }
    return 1;
}

/* A client's Wasm-Auth-* fields are gone before the checker runs: neither
 * it nor the backend may take one for the checker's. */
static void drop_client_auth_fields(request_rec *r)
{
    apr_array_header_t *names = apr_array_make(r->pool, 0, sizeof(const char *));
    int i;

    apr_table_do(drop_client_auth_field, names, r->headers_in, NULL);
    for (i = 0; i < names->nelts; i++) {
        apr_table_unset(r->headers_in, APR_ARRAY_IDX(names, i, const char *));
    }
}

/* The section's configuration, with the checker as its guest: the limits
 * and grants are the section's, the description and counters the
 * checker's (and so are reused instances, which the host keys by them). */
static const mw_dir_config *checker_conf(request_rec *r, const mw_dir_config *conf)
{
    mw_dir_config *c = apr_pmemdup(r->pool, conf, sizeof(*conf));
    c->component = conf->checker;
    c->module = NULL;
    c->where = conf->checker_where;
    c->section = conf->checker_section;
    c->stats = conf->checker_stats;
    return c;
}

/* Sends the checker's refusal as the response and ends the request's
 * processing (DONE): no later fixup (mod_dir's redirect to a directory's
 * slash, its index) and no handler runs. The filters a handler would get
 * are inserted first, so that Header and mod_deflate apply to it. */
static int send_refusal(request_rec *r, const mw_refusal *refusal)
{
    apr_bucket_brigade *body;
    int status;

    /* As Apache does before its own error responses. */
    if ((status = ap_discard_request_body(r)) != OK) {
        return status;
    }
    ap_run_insert_filter(r);
    r->status = refusal->status;
    r->status_line = refusal->status_line;
    ap_set_content_type(r, refusal->content_type);
    apr_table_overlap(r->headers_out, refusal->headers, APR_OVERLAP_TABLES_SET);
    ap_set_content_length(r, refusal->body_len);
    body = refusal->body;
    APR_BRIGADE_INSERT_TAIL(body, apr_bucket_eos_create(r->connection->bucket_alloc));
    return ap_pass_brigade(r->output_filters, body) == APR_SUCCESS ? DONE : AP_FILTER_ERROR;
}

int mw_check_access(request_rec *r)
{
    const mw_dir_config *conf = ap_get_module_config(r->per_dir_config, &wasm_module);
    checking *c;
    mw_request request;
    mw_sandbox sandbox;
    mw_exchange exchange;
    mw_report report = {0};
    char err[MW_ERROR_LEN] = "";
    mw_result rv;
    int status;

    if (!conf->checker || decided_before(r)) {
        return DECLINED;
    }
    drop_client_auth_fields(r);
    conf = checker_conf(r, conf);
    c = apr_pcalloc(r->pool, sizeof(*c));
    c->grants = apr_table_make(r->pool, 2);
    mw_exchange_prepare(&c->x, r, conf);
    c->x.body_done = 1; /* the checker gets the head of the request only */
    if ((status = mw_take_instance(r, conf)) != OK) {
        return status;
    }
    request = mw_request_view(r, conf, NULL);
    sandbox = mw_sandbox_of(r, conf);
    exchange = (mw_exchange){
        .ctx = c,
        .read_body = mw_read_body,
        .send_head = checker_head,
        .send_data = checker_data,
        .log = mw_log_line,
        .guest_log = mw_guest_log,
        .section_log = mw_section_log,
    };
    rv = mw_component_serve(conf->component, &request, &sandbox, &exchange, &report, err,
                            sizeof(err));
    mw_release_instance(conf);
    mw_note_report(r, &report);
    if (c->too_big) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00053) "%s (%s) answered with a body of more than %d bytes, "
                      "more than a refusal may hold; answering 500", r->uri, conf->where,
                      MW_MAX_REFUSAL_BODY);
        apr_table_setn(r->notes, "wasm-access", "failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (rv != MW_RESULT_OK) {
        /* A checker that fails refuses: the error status, and nothing of
         * what it wrote. */
        apr_table_setn(r->notes, "wasm-access", "failed");
        status = mw_finish(&c->x, rv, err);
        return status == OK ? HTTP_INTERNAL_SERVER_ERROR : status;
    }
    if (c->status >= 200 && c->status < 300) {
        apr_table_setn(r->notes, "wasm-access", "allowed");
        apr_table_overlap(r->headers_in, c->grants, APR_OVERLAP_TABLES_SET);
        return DECLINED;
    }
    if (!c->refusal) {
        /* The host reports a guest without a final answer as a failure
         * (its "guest failed" line), so this is not expected: but a
         * checker never allows by default. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00054) "%s (%s) finished without a final answer; answering 500",
                      r->uri, conf->where);
        apr_table_setn(r->notes, "wasm-access", "failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_table_setn(r->notes, "wasm-access", "refused");
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  MWLOGNO(00055) "%s is refused with %d (%s, request %s)", r->uri, c->status,
                  conf->where, mw_request_id(r));
    if (r->main) {
        /* A subrequest has no client of its own to answer: its status
         * tells the request that made it (mod_include, mod_dir). */
        return c->status;
    }
    return send_refusal(r, c->refusal);
}
