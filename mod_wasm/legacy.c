/* Serving a request with a WASI preview1 module (legacy mode, as VMware's
 * mod_wasm 0.12 did): arguments and environment (the CGI variables in CGI
 * mode), the request body as stdin, stdout as the response. In CGI mode the
 * response begins with CGI headers, which httpd's own parser reads, and
 * Location and conditional requests are handled as mod_cgi handles them. */
#include "mod_wasm.h"

#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

/* CGI headers are buffered until the blank line that ends them, up to this
 * many bytes; a script that writes more without one is broken. */
#define MW_CGI_HEAD_MAX (64 * 1024)

/* One request. The exchange comes first: the shared callbacks in
 * exchange.c take the same pointer as their context. */
typedef struct {
    mw_exchange_ctx x;
    int wrote;            /* the guest wrote to stdout                      */
    int head_done;        /* CGI headers read (from the start in plain mode) */
    char *head;           /* CGI: stdout until the blank line              */
    apr_size_t head_len;
    int answer;           /* CGI: OK, or the status the headers decided on
                           * instead of passing the body (302, 304, 412), or
                           * 502 when they were malformed                  */
    const char *redirect; /* CGI: a local Location to redirect to          */
} legacy_ctx;

/* Whether buf holds a complete header block: it begins with a blank line,
 * or has one after a header line. */
static int head_complete(const char *buf, apr_size_t len)
{
    apr_size_t i;
    if ((len >= 1 && buf[0] == '\n') || (len >= 2 && buf[0] == '\r' && buf[1] == '\n')) {
        return 1;
    }
    for (i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' || (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n'))) {
            return 1;
        }
    }
    return 0;
}

/* One Content-Length value of the CGI headers, for apr_table_do. */
static int declare_length(void *ctx, const char *key, const char *value)
{
    legacy_ctx *lc = ctx;
    (void)key;
    if (!mw_declare_length(&lc->x, value)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, lc->x.r,
                      MWLOGNO(00040) "%s (%s) sent an invalid Content-Length '%s' in its CGI headers "
                      "(digits only, and the same in every field)", lc->x.r->uri,
                      lc->x.conf->where, value);
        return 0;
    }
    return 1;
}

/* httpd's parser keeps only the last Content-Length line, so two that
 * disagree are caught here, in the raw head, before it reads them. */
static int head_lengths_agree(legacy_ctx *lc)
{
    const char *line = lc->head, *end = lc->head + lc->head_len;
    static const char name[] = "Content-Length:";

    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const char *value, *stop;
        if (!eol) {
            eol = end;
        }
        if (eol == line || (eol == line + 1 && *line == '\r')) {
            break; /* the blank line: the head ends */
        }
        if ((size_t)(eol - line) > sizeof(name) - 1 &&
            strncasecmp(line, name, sizeof(name) - 1) == 0) {
            value = line + sizeof(name) - 1;
            stop = eol;
            while (value < stop && (*value == ' ' || *value == '\t')) {
                value++;
            }
            while (stop > value && (stop[-1] == '\r' || stop[-1] == ' ' || stop[-1] == '\t')) {
                stop--;
            }
            if (!declare_length(lc, NULL, apr_pstrmemdup(lc->x.r->pool, value,
                                                         (apr_size_t)(stop - value)))) {
                return 0;
            }
        }
        line = eol + 1;
    }
    return 1;
}

/* The framing is Apache's: a module's hop-by-hop fields are dropped (its
 * Transfer-Encoding would announce chunks nobody writes), and its
 * Content-Length must be a length, which mw_pass_out then holds its body
 * to. HTTP_BAD_GATEWAY when the length is not one. */
static int frame_head(legacy_ctx *lc, int ret)
{
    request_rec *r = lc->x.r;
    const char *dropped = mw_drop_hop_by_hop(r);

    if (dropped) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MWLOGNO(00041) "%s (%s) sent %s in its CGI headers; dropped (Apache frames "
                      "the response)", r->uri, lc->x.conf->where, dropped);
    }
    if (!apr_table_do(declare_length, lc, r->headers_out, "Content-Length", NULL)) {
        return HTTP_BAD_GATEWAY;
    }
    if (lc->x.declared >= 0) {
        /* One field, however many the module wrote. */
        ap_set_content_length(r, lc->x.declared);
    }
    return ret;
}

/* Reads the CGI headers buffered so far with httpd's parser, and decides
 * what happens to the body. MW_IO_FAILED stops the guest: its output is
 * not a response. */
static uint32_t read_head(legacy_ctx *lc)
{
    request_rec *r = lc->x.r;
    apr_bucket_alloc_t *alloc = r->connection->bucket_alloc;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, alloc);
    const char *location;
    int ret;

    lc->head_done = 1;
    if (lc->head_len > 0) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(lc->head, lc->head_len, r->pool,
                                                           alloc));
    }
    ret = head_lengths_agree(lc)
              ? ap_scan_script_header_err_brigade_ex(r, bb, NULL, APLOG_MODULE_INDEX)
              : HTTP_BAD_GATEWAY;
    if (ret == OK || ret == HTTP_NOT_MODIFIED || ret == HTTP_PRECONDITION_FAILED) {
        ret = frame_head(lc, ret);
    }
    if (ret == HTTP_NOT_MODIFIED || ret == HTTP_PRECONDITION_FAILED) {
        /* The script's validators meet the request's conditions. */
        lc->answer = ret;
        apr_brigade_cleanup(bb);
        return MW_IO_OK;
    }
    if (ret != OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00022) "the CGI headers of %s (%s) are malformed (the line before "
                      "says how); answering 502", r->uri, lc->x.conf->where);
        /* The parser left its reason for the error page too: the client
         * gets the status, the log gets the details. */
        apr_table_unset(r->notes, "error-notes");
        mw_stats_count(lc->x.conf->stats, MW_ERROR_KIND_GUEST, true);
        apr_table_setn(r->notes, "wasm-error", "guest");
        lc->answer = HTTP_BAD_GATEWAY;
        apr_brigade_cleanup(bb);
        return MW_IO_FAILED;
    }
    location = apr_table_get(r->headers_out, "Location");
    if (location && r->status == HTTP_OK) {
        /* As mod_cgi: a local path is an internal redirect, anything else
         * a 302, and the script's body is dropped either way. */
        if (location[0] == '/') {
            lc->redirect = location;
        }
        else {
            lc->answer = HTTP_MOVED_TEMPORARILY;
        }
        apr_brigade_cleanup(bb);
        return MW_IO_OK;
    }
    /* What followed the blank line is the start of the body. */
    APR_BRIGADE_CONCAT(lc->x.out, bb);
    return MW_IO_OK;
}

/* Buffers stdout until the CGI headers are complete. Returns the bytes of
 * data it took, or -1 when the guest must stop. */
static apr_ssize_t take_head(legacy_ctx *lc, const uint8_t *data, size_t len)
{
    request_rec *r = lc->x.r;
    apr_size_t room, take;

    if (!lc->head) {
        lc->head = apr_palloc(r->pool, MW_CGI_HEAD_MAX);
    }
    room = MW_CGI_HEAD_MAX - lc->head_len;
    take = len < room ? len : room;
    memcpy(lc->head + lc->head_len, data, take);
    lc->head_len += take;
    if (head_complete(lc->head, lc->head_len)) {
        return read_head(lc) == MW_IO_OK ? (apr_ssize_t)take : -1;
    }
    if (lc->head_len == MW_CGI_HEAD_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00025) "%s (%s) wrote %d bytes without ending its CGI headers; "
                      "answering 502", r->uri, lc->x.conf->where, MW_CGI_HEAD_MAX);
        mw_stats_count(lc->x.conf->stats, MW_ERROR_KIND_GUEST, true);
        apr_table_setn(r->notes, "wasm-error", "guest");
        lc->answer = HTTP_BAD_GATEWAY;
        return -1;
    }
    return (apr_ssize_t)take;
}

/* The guest's stdout: the response body (after the CGI headers in CGI
 * mode). HEAD requests run the guest and pass its body as for GET, as
 * mod_cgi does; Apache's HTTP header filter drops it. */
static uint32_t send_stdout(void *ctx, const uint8_t *data, size_t len, bool flush)
{
    legacy_ctx *lc = ctx;
    request_rec *r = lc->x.r;
    apr_bucket_alloc_t *alloc = r->connection->bucket_alloc;

    if (r->eos_sent) {
        return MW_IO_FAILED;
    }
    lc->wrote |= len > 0;
    if (!lc->head_done) {
        apr_ssize_t took = take_head(lc, data, len);
        if (took < 0) {
            return MW_IO_FAILED;
        }
        data += took;
        len -= (size_t)took;
        if (!lc->head_done) {
            return MW_IO_OK;
        }
    }
    if (lc->answer != OK || lc->redirect) {
        apr_brigade_cleanup(lc->x.out);
        return MW_IO_OK;
    }
    if (len > 0) {
        APR_BRIGADE_INSERT_TAIL(lc->x.out,
                                apr_bucket_transient_create((const char *)data, len, alloc));
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(lc->x.out, apr_bucket_flush_create(alloc));
    }
    if (APR_BRIGADE_EMPTY(lc->x.out)) {
        return MW_IO_OK;
    }
    return mw_pass_out(&lc->x);
}

/* The CGI variables of r, as mod_cgi gives them to a script. */
static apr_array_header_t *cgi_variables(request_rec *r, const mw_dir_config *conf)
{
    const apr_array_header_t *vars;
    const apr_table_entry_t *var;
    apr_array_header_t *env;
    int i;

    ap_add_common_vars(r);
    ap_add_cgi_vars(r);
    /* Apache's own PATH names host directories a WASI program can neither
     * see nor execute from; WasmEnv can set one. */
    apr_table_unset(r->subprocess_env, "PATH");
    vars = apr_table_elts(r->subprocess_env);
    var = (const apr_table_entry_t *)vars->elts;
    env = apr_array_make(r->pool, vars->nelts, sizeof(mw_header));
    for (i = 0; i < vars->nelts; i++) {
        if (var[i].key && var[i].val) {
            *(mw_header *)apr_array_push(env) = (mw_header){
                {(const uint8_t *)var[i].key, strlen(var[i].key)},
                {(const uint8_t *)var[i].val, strlen(var[i].val)}};
        }
    }
    return env;
}

/* argv: the module's file name, then WasmArg. */
static apr_array_header_t *arguments(request_rec *r, const mw_dir_config *conf)
{
    const char *const *args = (const char *const *)conf->args->elts;
    apr_array_header_t *argv = apr_array_make(r->pool, conf->args->nelts + 1, sizeof(mw_bytes));
    int i;

    *(mw_bytes *)apr_array_push(argv) =
        (mw_bytes){(const uint8_t *)conf->module_name, strlen(conf->module_name)};
    for (i = 0; i < conf->args->nelts; i++) {
        *(mw_bytes *)apr_array_push(argv) = (mw_bytes){(const uint8_t *)args[i], strlen(args[i])};
    }
    return argv;
}

/* Ends the request after the guest exited with `status` (rv OK), or
 * failed. */
static int finish(legacy_ctx *lc, mw_result rv, int32_t status, const char *err)
{
    request_rec *r = lc->x.r;
    const char *where = lc->x.conf->where;

    if (rv != MW_RESULT_OK) {
        if (lc->answer == HTTP_BAD_GATEWAY && !lc->x.passed) {
            /* Malformed CGI headers stopped the guest; already logged. */
            mw_forget_head(&lc->x);
            return HTTP_BAD_GATEWAY;
        }
        return mw_finish(&lc->x, rv, err);
    }
    if (status != 0 && !lc->wrote) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00023) "%s (%s) exited with status %d before writing anything",
                      r->uri, where, (int)status);
        mw_forget_head(&lc->x);
        return lc->x.read_status != OK ? lc->x.read_status : HTTP_INTERNAL_SERVER_ERROR;
    }
    if (status != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MWLOGNO(00024) "%s (%s) exited with status %d after writing its response",
                      r->uri, where, (int)status);
    }
    if (!lc->head_done && read_head(lc) != MW_IO_OK) {
        mw_forget_head(&lc->x);
        return HTTP_BAD_GATEWAY;
    }
    if (lc->x.read_status != OK && !lc->x.passed) {
        mw_forget_head(&lc->x);
        return lc->x.read_status;
    }
    if (lc->redirect) {
        /* As mod_cgi: the redirected request is a GET without a body. */
        ap_discard_request_body(r);
        r->method = "GET";
        r->method_number = M_GET;
        apr_table_unset(r->headers_in, "Content-Length");
        ap_internal_redirect_handler(lc->redirect, r);
        return OK;
    }
    if (lc->answer == HTTP_NOT_MODIFIED) {
        r->status = HTTP_NOT_MODIFIED;
        return OK;
    }
    if (lc->answer != OK) {
        return lc->answer;
    }
    return mw_finish(&lc->x, MW_RESULT_OK, err);
}

int mw_serve_module(request_rec *r, const mw_dir_config *conf)
{
    legacy_ctx *lc = apr_pcalloc(r->pool, sizeof(*lc));
    apr_array_header_t *argv, *env = NULL;
    mw_invocation invocation;
    mw_sandbox sandbox = mw_sandbox_of(r, conf);
    mw_exchange exchange;
    mw_report report = {0};
    char err[MW_ERROR_LEN] = "";
    int32_t exit_status = 0;
    mw_result rv;
    int status;

    if ((status = mw_take_instance(r, conf)) != OK) {
        return status;
    }
    mw_exchange_init(&lc->x, r, conf);
    lc->answer = OK;
    lc->head_done = conf->cgi != 1;
    argv = arguments(r, conf);
    if (conf->cgi == 1) {
        env = cgi_variables(r, conf);
    }
    invocation = (mw_invocation){
        .args = (const mw_bytes *)argv->elts,
        .args_len = (size_t)argv->nelts,
        .env = env ? (const mw_header *)env->elts : NULL,
        .env_len = env ? (size_t)env->nelts : 0,
        .entry_point = {(const uint8_t *)conf->entry_point,
                        conf->entry_point ? strlen(conf->entry_point) : 0},
        /* SCRIPT_FILENAME as the guest sees it, below its WasmDir or
         * WasmMapDir (the host maps it). */
        .map_script_filename = conf->map_cgi_filenames == 1,
    };
    exchange = (mw_exchange){lc, mw_read_body, NULL, send_stdout, mw_log_line, NULL};

    rv = mw_module_serve(conf->module, &invocation, &sandbox, &exchange, &exit_status, &report,
                         err, sizeof(err));
    mw_release_instance(conf);
    mw_note_report(r, &report);
    return finish(lc, rv, exit_status, err);
}
