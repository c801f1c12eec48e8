/* Serving a request with a component: the request view handed to the host,
 * and the callbacks through which the host sets the response head and
 * pushes the body down the output filters (the rest is in exchange.c). */
#include "mod_wasm.h"

#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_core.h"
#include "http_ssl.h"
#include "util_filter.h"
#include "apr_atomic.h"
#include "apr_lib.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

static mw_bytes bytes_of(const char *s)
{
    return (mw_bytes){(const uint8_t *)s, s ? strlen(s) : 0};
}

/* Puts the guest's status and headers on the request. */
uint32_t mw_send_head(void *ctx, uint16_t status, const mw_header *headers,
                     size_t headers_len)
{
    mw_exchange_ctx *x = ctx;
    request_rec *r = x->r;
    size_t i;

    if (x->read_status != OK || r->eos_sent) {
        /* The request body failed (e.g. 413): that is the answer, not
         * whatever the guest made of the failure. */
        return MW_IO_FAILED;
    }
    r->status = status;
    /* The response's type is the guest's: not the one mod_mime gave the
     * request's file (application/wasm for a component file, or whatever
     * the URL's extension says), which would make a browser download the
     * answer. A guest that sets none sends none. */
    ap_set_content_type(r, NULL);
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
            if (!mw_declare_length(x, value)) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              MWLOGNO(00011) "the guest sent an invalid Content-Length '%s' (digits "
                              "only, and the same in every field)", value);
                return MW_IO_FAILED;
            }
            ap_set_content_length(r, x->declared);
        }
        else if (mw_is_hop_by_hop(name)) {
            /* wasi:http refuses these already (wasmtime's forbidden
             * headers); the framing must not rest on that alone. */
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          MWLOGNO(00042) "the guest sent the hop-by-hop field %s for %s (%s); "
                          "dropped (Apache frames the response)", name, r->uri,
                          x->conf->where);
        }
        else {
            apr_table_addn(r->headers_out, name, value);
        }
    }
    return MW_IO_OK;
}

/* Passes a piece of the body on. HEAD requests run the guest and pass its
 * body as for GET, so that the headers are those of GET (no made-up
 * Content-Length: 0); Apache's HTTP header filter drops the body. */
uint32_t mw_send_data(void *ctx, const uint8_t *data, size_t data_len, bool flush)
{
    mw_exchange_ctx *x = ctx;
    apr_bucket_alloc_t *alloc = x->r->connection->bucket_alloc;

    if (x->r->eos_sent) {
        /* Something else ended the response (an input filter's error). */
        return MW_IO_FAILED;
    }
    if (data_len > 0) {
        APR_BRIGADE_INSERT_TAIL(x->out,
                                apr_bucket_transient_create((const char *)data, data_len, alloc));
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_flush_create(alloc));
    }
    return mw_pass_out(x);
}

/* The path and query as they were before any module's translate_name
 * hook ran, to tell whether one (mod_rewrite with [PT]) changed them; and
 * the target the guest is given when one did. */
#define MW_TARGET_NOTE "mod_wasm-translated-from"
#define MW_REWRITTEN_NOTE "mod_wasm-rewritten-target"

static const char *path_and_query(request_rec *r)
{
    return r->args ? apr_pstrcat(r->pool, r->uri, "?", r->args, NULL) : r->uri;
}

/* A rewritten query may hold what no request target can (mod_rewrite puts
 * decoded back-references in as they are, unless [B]): those bytes are
 * percent-encoded, the rest left as written. */
static const char *escape_query(apr_pool_t *pool, const char *query)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(pool, strlen(query) * 3 + 1), *o = out;
    const unsigned char *q;

    for (q = (const unsigned char *)query; *q; q++) {
        if (*q <= 0x20 || *q >= 0x7f || strchr("\"<>\\^`{|}#", *q)) {
            *o++ = '%';
            *o++ = hex[*q >> 4];
            *o++ = hex[*q & 15];
        }
        else {
            *o++ = (char)*q;
        }
    }
    *o = '\0';
    return out;
}

int mw_note_target(request_rec *r)
{
    apr_table_setn(r->notes, MW_TARGET_NOTE, apr_pstrdup(r->pool, path_and_query(r)));
    return DECLINED;
}

/* Right after translate_name: compared here, not when serving, so that
 * what later changes r->uri (mod_dir's and mod_negotiation's fast
 * redirects to the file they chose) is not taken for a rewrite. */
int mw_note_rewrite(request_rec *r)
{
    const char *before = apr_table_get(r->notes, MW_TARGET_NOTE);
    const char *path;

    if (before && strcmp(before, path_and_query(r)) != 0) {
        path = ap_os_escape_path(r->pool, r->uri, 1);
        apr_table_setn(r->notes, MW_REWRITTEN_NOTE,
                       r->args ? apr_pstrcat(r->pool, path, "?",
                                             escape_query(r->pool, r->args), NULL)
                               : path);
    }
    return DECLINED;
}

/* The request target as received; for an absolute-form target, its path
 * and query. When a module rewrote the path or query on the way in, the
 * rewritten one: the guest answers for the URL Apache mapped to it, as a
 * proxied backend would (the client's is in no header; a guest that needs
 * it can be given it with RequestHeader). */
static const char *request_target(request_rec *r)
{
    const char *rewritten = apr_table_get(r->notes, MW_REWRITTEN_NOTE);

    if (rewritten) {
        return rewritten;
    }
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

/* A message the guest wrote through mod-wasm:host/log (wit/host.wit), at
 * the level it chose; LogLevel filters it like any of our messages. */
void mw_guest_log(void *ctx, uint32_t level, const uint8_t *text, size_t len)
{
    mw_exchange_ctx *x = ctx;
    request_rec *r = x->r;
    int at = level > APLOG_TRACE8 ? APLOG_TRACE8 : (int)level;

    ap_log_rerror(APLOG_MARK, at, 0, r, MWLOGNO(00028) "guest log for %s (%s, request %s): %.*s",
                  r->uri, x->conf->where, mw_request_id(r), (int)len, (const char *)text);
}

/* A line of a shared WASI 0.3 instance serving several requests at once
 * (WasmInstanceReuse <n> concurrent=<k>): no request can be told as its
 * own, so it is the section's, at the level its kind has for a request's
 * line. Called from the instance's thread, maybe after
 * the request that passed `server` ended: ap_log_error with the virtual
 * host, which lives as long as the child, and nothing else. */
void mw_section_log(const void *server, const uint8_t *place, size_t place_len,
                    uint32_t kind, uint32_t level, const uint8_t *text, size_t len)
{
    const char *what = "host";
    int at = APLOG_WARNING;

    switch (kind) {
    case MW_LOG_KIND_GUEST_STDERR: what = "guest stderr"; at = APLOG_ERR; break;
    case MW_LOG_KIND_GUEST_STDOUT: what = "guest stdout"; break;
    case MW_LOG_KIND_OUTPUT_SUPPRESSED: what = "more than 64 KiB of guest output, the rest "
                                               "not logged, on"; break;
    case MW_LOG_KIND_OUTGOING_DENIED: what = "outgoing request refused"; break;
    case MW_LOG_KIND_STORE_FAILED: what = "key-value store"; at = APLOG_ERR; break;
    case MW_LOG_KIND_STORE_REFUSED: what = "key-value store refused"; break;
    case MW_LOG_KIND_GUEST_LOG:
        what = "guest log";
        at = level > APLOG_TRACE8 ? APLOG_TRACE8 : (int)level;
        break;
    }
    ap_log_error(APLOG_MARK, at, 0, (const server_rec *)server,
                 MWLOGNO(00049) "%s (shared instance, %.*s): %.*s", what, (int)place_len,
                 (const char *)place, (int)len, (const char *)text);
}

mw_request mw_request_view(request_rec *r, const mw_dir_config *conf, const char *params)
{
    const apr_array_header_t *fields = apr_table_elts(r->headers_in);
    const apr_table_entry_t *field = (const apr_table_entry_t *)fields->elts;
    mw_header *headers = apr_palloc(r->pool, sizeof(*headers) * (fields->nelts + 1));
    size_t headers_len = 0;
    int i;

    for (i = 0; i < fields->nelts; i++) {
        if (field[i].key) {
            headers[headers_len++] = (mw_header){bytes_of(field[i].key), bytes_of(field[i].val)};
        }
    }
    return (mw_request){
        .method = bytes_of(r->method),
        .scheme = bytes_of(ap_http_scheme(r)),
        .authority = bytes_of(authority(r)),
        .path_with_query = bytes_of(request_target(r)),
        .headers = headers,
        .headers_len = headers_len,
        .client_addr = bytes_of(r->useragent_ip),
        .user = bytes_of(r->user),
        .tls = ap_ssl_conn_is_ssl(r->connection) != 0,
        .location = bytes_of(conf->section),
        .request_id = bytes_of(mw_request_id(r)),
        .log_level = (uint8_t)ap_get_request_module_loglevel(r, APLOG_MODULE_INDEX),
        /* The host gives them to the guest in its own header, and drops a
         * client's field of that name. */
        .route_params = bytes_of(params),
    };
}

int mw_serve_component(request_rec *r, const mw_dir_config *conf, const char *params)
{
    mw_exchange_ctx *x = apr_pcalloc(r->pool, sizeof(*x));
    mw_request request;
    mw_sandbox sandbox = mw_sandbox_of(r, conf);
    mw_exchange exchange;
    mw_report report = {0};
    char err[MW_ERROR_LEN] = "";
    mw_result rv;
    int status;

    if ((status = mw_take_instance(r, conf)) != OK) {
        return status;
    }
    request = mw_request_view(r, conf, params);
    mw_exchange_init(x, r, conf);
    exchange = (mw_exchange){
        .ctx = x,
        .read_body = mw_read_body,
        .send_head = mw_send_head,
        .send_data = mw_send_data,
        .log = mw_log_line,
        .guest_log = mw_guest_log,
        .request_trailers = mw_request_trailers,
        .send_trailers = mw_send_trailers,
        .section_log = mw_section_log,
    };

    rv = mw_component_serve(conf->component, &request, &sandbox, &exchange, &report, err,
                            sizeof(err));
    mw_release_instance(conf);
    mw_note_report(r, &report);
    return mw_finish(x, rv, err);
}

static apr_status_t release_component(void *component)
{
    mw_component_release(component);
    return APR_SUCCESS;
}

/* The request's file is a component: compiled by this child on first use
 * (and again when the file changes), run with the limits and grants of
 * the sections the file is in. Like a CGI script, a file someone dropped in
 * the tree runs only where Options ExecCGI is on. */
int mw_serve_file_component(request_rec *r, const mw_dir_config *conf)
{
    const mw_route *route;
    mw_dir_config *file_conf;
    const mw_component *component = NULL;
    char err[MW_ERROR_LEN] = "";

    if (!(ap_allow_options(r) & OPT_EXECCGI)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00032) "%s is refused: the component file %s runs only where "
                      "Options ExecCGI is on", r->uri, r->filename);
        return HTTP_FORBIDDEN;
    }
    if (mw_host_file_component(mw_current_host(), bytes_of(r->filename), &component, err,
                               sizeof(err)) != MW_RESULT_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00033) "%s: the component file cannot be served: %s", r->uri, err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* After the response filter, which still reads the configuration. */
    apr_pool_cleanup_register(r->pool, component, release_component, apr_pool_cleanup_null);
    file_conf = apr_pmemdup(r->pool, conf, sizeof(*conf));
    file_conf->component = component;
    file_conf->where = apr_psprintf(r->pool, "component file %s", r->filename);
    file_conf->section = r->uri;
    /* Counted per file, under the directory that routes to it, if any
     * (not per URL: a route's URLs are countless). */
    file_conf->stats = mw_stats_for(bytes_of(conf->routes_root ? conf->routes_root
                                                               : "(the request's file)"),
                                    bytes_of(r->filename), mw_component_guest_kind(component));
    route = mw_route_of(r);
    return mw_serve_component(r, file_conf, route ? route->params : NULL);
}
