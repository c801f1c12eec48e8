/* WasmMiddleware: WASI 0.3 components (world wasi:http/middleware) around
 * whatever Apache serves: a static file, mod_proxy, CGI, a WasmComponent.
 *
 * A handler that runs before every other starts the section's middlewares,
 * outermost first, each on the request the one around it passed on. When
 * all of them have called their next handler, it declines: Apache's own
 * handler serves the request, and an output filter hands its response to
 * the innermost middleware, whose response goes to the next one out, and
 * the outermost's to the client. The body a middleware passes on is what
 * the next one in (or the handler, through an input filter) reads. A
 * middleware that answers by itself is the content: those inside it never
 * start. The host (host/src/component/middleware.rs) runs each guest on
 * the request's thread during these calls, and calls back here for
 * everything that touches Apache. docs/directives/WasmMiddleware.md has
 * the rules. */
#include "mod_wasm.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

/* Set while Apache's handler runs inside mw_run_middlewares. */
#define MW_HANDLING_NOTE "mod_wasm-middlewares-handling"

/* The largest read of the body a middleware passes on. */
#define MW_NEXT_BODY_READ (64 * 1024)

/* The piece of a file the handler serves read at once for the innermost
 * middleware: the host's own piece size (BACKEND_PIECE). */
#define MW_FILE_PIECE (64 * 1024)

typedef struct mw_chain mw_chain;

/* One middleware of a request. */
typedef struct {
    mw_exchange_ctx x;    /* first: the log callbacks take it as theirs      */
    mw_chain *chain;
    int index;            /* 0: the outermost                                */
    mw_exchange exchange; /* its callbacks, alive as long as the request     */
    mw_request view;      /* the request it was given                        */
    mw_middleware *host;  /* NULL once finished                              */
} mw_layer_run;

struct mw_chain {
    request_rec *r;
    mw_layer_run *layers;
    int started;          /* layers started                                  */
    int handling;         /* Apache's handler runs, inside this module's     */
    int body;             /* the innermost passes a body on to the handler   */
    int body_done;        /* the handler has read its end                    */
    int head_given;       /* the handler's head went to the innermost        */
    int gone;             /* the innermost reads no more of the response     */
    int broken;           /* the handler's response broke off                */
    int done;             /* the chain has finished                          */
};

static mw_layer_run *innermost(mw_chain *c)
{
    return &c->layers[c->started - 1];
}

/* The body a layer is given: the client's for the outermost, else the one
 * the layer around it passed on. */
static uint32_t layer_read_body(void *ctx, uint8_t *buf, size_t buf_len, size_t *read_out)
{
    mw_layer_run *l = ctx;
    if (l->index == 0) {
        return mw_read_body(&l->x, buf, buf_len, read_out);
    }
    return mw_middleware_read_body(l->chain->layers[l->index - 1].host, buf, buf_len, read_out);
}

/* A layer's response: the client's for the outermost, else the next
 * handler's response for the layer around it. */
static uint32_t layer_head(void *ctx, uint16_t status, const mw_header *headers, size_t len)
{
    mw_layer_run *l = ctx;
    if (l->index == 0) {
        return mw_send_head(&l->x, status, headers, len);
    }
    return mw_middleware_backend_head(l->chain->layers[l->index - 1].host, status, headers, len);
}

static uint32_t layer_data(void *ctx, const uint8_t *data, size_t len, bool flush)
{
    mw_layer_run *l = ctx;
    if (l->index == 0) {
        return mw_send_data(&l->x, data, len, flush);
    }
    return mw_middleware_backend_data(l->chain->layers[l->index - 1].host, data, len);
}

/* The section's configuration with the layer as its guest, as for an
 * access checker: the limits, grants and WasmInstanceReuse are the
 * section's, the description and counters the layer's (and so are reused
 * instances, which the host keys by them). */
static const mw_dir_config *layer_conf(request_rec *r, const mw_dir_config *conf,
                                       const mw_layer *layer)
{
    mw_dir_config *c = apr_pmemdup(r->pool, conf, sizeof(*conf));
    c->component = layer->component;
    c->module = NULL;
    c->where = layer->where;
    c->section = layer->section;
    c->stats = layer->stats;
    return c;
}

/* The request ended before the chain did (a client gone, an error page in
 * its place): the guests still running are stopped. */
static apr_status_t chain_cleanup(void *ctx)
{
    mw_chain *c = ctx;
    int i;

    for (i = 0; i < c->started; i++) {
        if (c->layers[i].host) {
            mw_middleware_free(c->layers[i].host);
            c->layers[i].host = NULL;
            mw_release_instance(c->layers[i].x.conf);
        }
    }
    return APR_SUCCESS;
}

static int same_bytes(mw_bytes a, mw_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static const char *text_of(apr_pool_t *p, mw_bytes b)
{
    return apr_pstrmemdup(p, (const char *)b.ptr, b.len);
}

/* The request a layer passed on becomes the request: its header fields
 * replace the client's, but for Host and the body's framing, which are
 * Apache's. Its method and target must be the ones it was given: Apache
 * chose the handler for them. */
static int pass_on(mw_layer_run *l, const mw_next_request *next)
{
    request_rec *r = l->chain->r;
    apr_table_t *headers = apr_table_make(r->pool, (int)next->headers_len + 2);
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *length = NULL;
    size_t i;

    if (!same_bytes(next->method, l->view.method) ||
        !same_bytes(next->target, l->view.path_with_query)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00056) "%s (%s) passed on %s %s, but its next handler serves %s "
                      "%s: a middleware may change the request's header fields and body, not "
                      "its method or target (use mod_rewrite for those)", r->uri, l->x.conf->where,
                      text_of(r->pool, next->method), text_of(r->pool, next->target), r->method,
                      text_of(r->pool, l->view.path_with_query));
        return 0;
    }
    for (i = 0; i < next->headers_len; i++) {
        const char *name = text_of(r->pool, next->headers[i].name);
        const char *value = text_of(r->pool, next->headers[i].value);
        if (strcasecmp(name, "Content-Length") == 0) {
            length = value;
        }
        else if (strcasecmp(name, "Host") != 0 && !mw_is_hop_by_hop(name)) {
            apr_table_addn(headers, name, value);
        }
    }
    if (host) {
        apr_table_setn(headers, "Host", host);
    }
    if (next->body) {
        if (length) {
            apr_table_setn(headers, "Content-Length", length);
        }
        else {
            apr_table_setn(headers, "Transfer-Encoding", "chunked");
        }
    }
    r->headers_in = headers;
    l->chain->body = next->body;
    return 1;
}

/* Starts layer i on the request as it stands. Returns 1 when it passed the
 * request on (the next layer, or the handler, comes next), 0 when it is
 * the content (it answered, failed, or passed on what it may not), or an
 * HTTP status when it could not start at all. */
static int start_layer(mw_chain *c, int i, const mw_dir_config *conf)
{
    request_rec *r = c->r;
    mw_layer_run *l = &c->layers[i];
    const mw_dir_config *lconf =
        layer_conf(r, conf, &APR_ARRAY_IDX(conf->middlewares, i, mw_layer));
    mw_sandbox sandbox;
    mw_next_request next;
    char err[MW_ERROR_LEN] = "";
    mw_result rv;
    int status;

    l->chain = c;
    l->index = i;
    mw_exchange_prepare(&l->x, r, lconf);
    if ((status = mw_take_instance(r, lconf)) != OK) {
        return status;
    }
    l->exchange = (mw_exchange){
        .ctx = l,
        .read_body = layer_read_body,
        .send_head = layer_head,
        .send_data = layer_data,
        .log = mw_log_line,
        .guest_log = mw_guest_log,
        .request_trailers = i == 0 ? mw_request_trailers : NULL,
        .send_trailers = i == 0 ? mw_send_trailers : NULL,
        .section_log = mw_section_log,
    };
    l->view = mw_request_view(r, lconf, NULL);
    sandbox = mw_sandbox_of(r, lconf);
    rv = mw_middleware_start(lconf->component, &l->view, &sandbox, &l->exchange, &l->host,
                             &next, err, sizeof(err));
    c->started = i + 1;
    if (rv != MW_RESULT_OK) {
        mw_release_instance(lconf);
        c->started = i;
        if (i == 0) {
            return mw_finish(&l->x, rv, err);
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00058) "%s (%s) could not start: %s; the middleware around it "
                      "gets an error response", r->uri, lconf->where, err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!next.method.ptr) {
        return 0;
    }
    if (!pass_on(l, &next)) {
        /* Its call of the next handler fails; what it makes of that is
         * the content. */
        mw_middleware_refuse_next(l->host, "WasmMiddleware: the next handler serves the "
                                           "request's own method and target");
        return 0;
    }
    return 1;
}

/* Ends the chain from layer `from` outwards: each layer's guest is served
 * to its end, and how it ended is what the layer around it gets from its
 * next handler (`ok` for the innermost: the handler's response was whole).
 * Returns what the outermost's end means for the request (mw_finish). */
static int finish_chain(mw_chain *c, int from, int ok)
{
    request_rec *r = c->r;
    int i;

    c->done = 1;
    mw_middleware_backend_end(c->layers[from].host, ok);
    for (i = from; i >= 0; i--) {
        mw_layer_run *l = &c->layers[i], *outer;
        mw_report report = {0};
        char err[MW_ERROR_LEN] = "";
        int answered = mw_middleware_answered(l->host);
        mw_result rv = mw_middleware_finish(l->host, &report, err, sizeof(err));

        l->host = NULL;
        mw_release_instance(l->x.conf);
        if (i == 0) {
            mw_note_report(r, &report);
            return mw_finish(&l->x, rv, err);
        }
        outer = &c->layers[i - 1];
        if (rv == MW_RESULT_OK) {
            mw_middleware_backend_end(outer->host, 1);
            continue;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00057) "%s (%s) failed: %s; the middleware around it gets %s",
                      r->uri, l->x.conf->where, err,
                      answered ? "a response that breaks off" : "an error response");
        if (!answered) {
            int status = rv == MW_RESULT_TIMEOUT ? HTTP_GATEWAY_TIME_OUT
                                                 : HTTP_INTERNAL_SERVER_ERROR;
            mw_middleware_backend_head(outer->host, (uint16_t)status, NULL, 0);
        }
        mw_middleware_backend_end(outer->host, !answered);
    }
    return OK;
}

static void give_head(mw_chain *c, request_rec *r, int status);

int mw_run_middlewares(request_rec *r)
{
    const mw_dir_config *conf = ap_get_module_config(r->per_dir_config, &wasm_module);
    mw_chain *c;
    ap_filter_t *out, *in;
    int i, n, step;

    /* A subrequest's content is part of a response that is wrapped already
     * (an include), or is never sent (a lookup); and the handlers run again
     * from here, where this one has nothing more to do. */
    if (r->main || !conf->middlewares || conf->middlewares->nelts == 0 ||
        apr_table_get(r->notes, MW_HANDLING_NOTE)) {
        return DECLINED;
    }
    n = conf->middlewares->nelts;
    c = apr_pcalloc(r->pool, sizeof(*c));
    c->r = r;
    c->layers = apr_pcalloc(r->pool, sizeof(mw_layer_run) * (size_t)n);
    apr_pool_cleanup_register(r->pool, c, chain_cleanup, apr_pool_cleanup_null);
    for (i = 0; i < n; i++) {
        step = start_layer(c, i, conf);
        if (step == 1) {
            continue;
        }
        if (step == 0) {
            /* Layer i is the content: served like a handler's. */
            return finish_chain(c, i, 1);
        }
        if (i == 0) {
            return step;
        }
        /* It could not start: the one around it gets an error response. */
        mw_middleware_backend_head(c->layers[i - 1].host, (uint16_t)step, NULL, 0);
        return finish_chain(c, i - 1, 1);
    }
    /* Every layer passed the request on: Apache's handler serves it, run
     * from here so that what it returns instead of a response (a missing
     * file's 404) reaches the middlewares too. Its response goes through
     * the output filter, which finishes the chain at its end. */
    out = ap_add_output_filter(MW_MIDDLEWARE_OUT_FILTER, c, r, r->connection);
    in = ap_add_input_filter(MW_MIDDLEWARE_IN_FILTER, c, r, r->connection);
    c->layers[0].x.out_after = out;
    c->layers[0].x.in_after = in;
    apr_table_setn(r->notes, MW_HANDLING_NOTE, "1");
    step = ap_run_handler(r);
    apr_table_unset(r->notes, MW_HANDLING_NOTE);
    if (c->done) {
        return OK;
    }
    /* The handler wrote no response: its status, with no body, is the
     * innermost middleware's response. */
    if (step == DECLINED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00059) "no handler serves %s (handler %s) behind its "
                      "middlewares; they get a 500", r->uri, r->handler ? r->handler : "none");
        step = HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!c->head_given) {
        give_head(c, r, step == OK || step == DONE ? r->status : step);
    }
    step = finish_chain(c, c->started - 1, 1);
    return step == OK ? OK : step;
}

static int add_field(void *ctx, const char *key, const char *value)
{
    apr_array_header_t *fields = ctx;
    mw_header *h;

    if (mw_is_hop_by_hop(key)) {
        return 1;
    }
    h = apr_array_push(fields);
    h->name = (mw_bytes){(const uint8_t *)key, strlen(key)};
    h->value = (mw_bytes){(const uint8_t *)value, strlen(value)};
    return 1;
}

/* The handler's head as it stands when its first bytes (or its end) come,
 * for the innermost layer; then the request's head is cleared, for the
 * outermost layer's answer is the one that goes out. */
static void give_head(mw_chain *c, request_rec *r, int status)
{
    apr_array_header_t *fields = apr_array_make(r->pool, 16, sizeof(mw_header));

    /* A 304 or 204 has no body, whatever length the handler set first. */
    if (AP_STATUS_IS_HEADER_ONLY(status)) {
        apr_table_unset(r->headers_out, "Content-Length");
    }
    apr_table_do(add_field, fields, r->headers_out, NULL);
    if (r->err_headers_out != r->headers_out) {
        apr_table_do(add_field, fields, r->err_headers_out, NULL);
    }
    if (r->content_type && !apr_table_get(r->headers_out, "Content-Type")) {
        add_field(fields, "Content-Type", r->content_type);
    }
    c->head_given = 1;
    r->status = HTTP_OK;
    r->status_line = NULL;
    r->content_type = NULL;
    r->clength = 0;
    apr_table_clear(r->headers_out);
    r->err_headers_out = apr_table_make(r->pool, 4);
    if (mw_middleware_backend_head(innermost(c)->host, (uint16_t)status,
                                   (const mw_header *)fields->elts,
                                   (size_t)fields->nelts) != MW_IO_OK) {
        c->gone = 1;
    }
}

/* What the handler serves goes to the innermost middleware, a piece at a
 * time as it asks; at its end the chain finishes, and the outermost's
 * answer, already passed below this filter as it came, ends. */
apr_status_t mw_middleware_out_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    mw_chain *c = f->ctx;
    request_rec *r = f->r;
    int eos = 0, status;

    if (c->done) {
        apr_brigade_cleanup(bb);
        return APR_SUCCESS;
    }
    /* Apache marks the response ended as the handler passes its EOS, but
     * this filter keeps that EOS: the response ends when the outermost
     * middleware's does, and its writes until then are not refused. */
    r->eos_sent = 0;
    if (!c->head_given) {
        give_head(c, r, r->status);
    }
    while (!APR_BRIGADE_EMPTY(bb) && !eos) {
        apr_bucket *b = APR_BRIGADE_FIRST(bb);
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_EOS(b)) {
            eos = 1;
        }
        else if (AP_BUCKET_IS_ERROR(b)) {
            c->broken = 1;
        }
        else if (!APR_BUCKET_IS_METADATA(b) && !c->gone) {
            if (APR_BUCKET_IS_FILE(b)) {
                /* Read, not mapped: unmapping a file's pages flushes the
                 * TLB of every thread of the process (an interrupt to each
                 * core), which cost a small file's response more than
                 * copying it does. */
                apr_bucket_file_enable_mmap(b, 0);
                apr_bucket_file_set_buf_size(b, MW_FILE_PIECE);
            }
            if (apr_bucket_read(b, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
                c->broken = 1;
                c->gone = 1;
            }
            else if (len > 0 &&
                     mw_middleware_backend_data(innermost(c)->host, (const uint8_t *)data,
                                                len) != MW_IO_OK) {
                /* The middleware is done with it: the rest goes nowhere. */
                c->gone = 1;
            }
        }
        apr_bucket_delete(b);
    }
    apr_brigade_cleanup(bb);
    if (!eos) {
        return APR_SUCCESS;
    }
    status = finish_chain(c, c->started - 1, !c->broken);
    if (status == OK) {
        return APR_SUCCESS;
    }
    /* The outermost failed before its head: Apache answers with the error
     * status, past this filter. */
    ap_remove_output_filter(f);
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_error_create(status, NULL, r->pool,
                                                       r->connection->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection->bucket_alloc));
    return ap_pass_brigade(f->next, bb);
}

/* The handler reads the body the innermost middleware passed on, and only
 * that (none, if it passed none). */
apr_status_t mw_middleware_in_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                     ap_input_mode_t mode, apr_read_type_e block,
                                     apr_off_t readbytes)
{
    mw_chain *c = f->ctx;
    apr_bucket_alloc_t *alloc = f->c->bucket_alloc;
    apr_size_t len = MW_NEXT_BODY_READ;
    size_t got = 0;
    char *buf;

    if (mode != AP_MODE_READBYTES && mode != AP_MODE_GETLINE) {
        return mode == AP_MODE_INIT ? APR_SUCCESS : APR_ENOTIMPL;
    }
    if (c->body_done || !c->body || c->done) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(alloc));
        return APR_SUCCESS;
    }
    if (readbytes > 0 && (apr_size_t)readbytes < len) {
        len = (apr_size_t)readbytes;
    }
    buf = apr_bucket_alloc(len, alloc);
    if (mw_middleware_read_body(innermost(c)->host, (uint8_t *)buf, len, &got) != MW_IO_OK) {
        apr_bucket_free(buf);
        return APR_EGENERAL;
    }
    if (got == 0) {
        apr_bucket_free(buf);
        c->body_done = 1;
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(alloc));
        return APR_SUCCESS;
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_heap_create(buf, got, apr_bucket_free, alloc));
    return APR_SUCCESS;
}
