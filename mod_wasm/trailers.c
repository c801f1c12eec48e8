/* Trailers, both ways: the request's as Apache parsed them (r->trailers_in),
 * and the guest's response trailers into r->trailers_out.
 *
 * Over HTTP/2, mod_http2 sends r->trailers_out as a HEADERS frame after the
 * body by itself. Over HTTP/1.1, httpd 2.4's chunk filter ends a chunked
 * body with a fixed "0" CRLF CRLF and never writes the trailer section; a
 * filter right after it puts the fields between the two. A response that is
 * not chunked (HTTP/1.0, a Content-Length) has nowhere to put them: they are
 * dropped, with a debug line. */
#include "mod_wasm.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

/* What the chunk filter puts before the EOS: the last chunk, no trailer
 * section, the end. */
#define LAST_CHUNK "0\r\n\r\n"

/* Fields a trailer must not carry (RFC 9110 6.5.1): framing, routing,
 * authentication, response control, and what describes the content. A
 * client reading them after the body would act on them too late, or a
 * proxy merging them would change the meaning of what it already sent. */
static const char *const not_in_trailers[] = {
    "Content-Length", "Content-Encoding", "Content-Type", "Content-Range", "Host",
    "Authorization", "Set-Cookie", "Age", "Cache-Control", "Expires", "Date", "Location",
    "Retry-After", "Vary", NULL};

static int may_be_trailer(const char *name)
{
    const char *const *not;

    if (mw_is_hop_by_hop(name)) {
        return 0;
    }
    for (not = not_in_trailers; *not; not++) {
        if (strcasecmp(name, *not) == 0) {
            return 0;
        }
    }
    return 1;
}

uint32_t mw_request_trailers(void *ctx, const mw_header **trailers_out, size_t *len_out)
{
    mw_exchange_ctx *x = ctx;
    request_rec *r = x->r;
    const apr_array_header_t *fields = apr_table_elts(r->trailers_in);
    const apr_table_entry_t *field = (const apr_table_entry_t *)fields->elts;
    mw_header *trailers = apr_palloc(r->pool, sizeof(*trailers) * (fields->nelts + 1));
    size_t len = 0;
    int i;

    for (i = 0; i < fields->nelts; i++) {
        if (field[i].key) {
            trailers[len++] = (mw_header){
                {(const uint8_t *)field[i].key, strlen(field[i].key)},
                {(const uint8_t *)field[i].val, strlen(field[i].val)}};
        }
    }
    *trailers_out = trailers;
    *len_out = len;
    return MW_IO_OK;
}

uint32_t mw_send_trailers(void *ctx, const mw_header *trailers, size_t trailers_len)
{
    mw_exchange_ctx *x = ctx;
    request_rec *r = x->r;
    const char *dropped = NULL;
    size_t i;

    if (r->eos_sent) {
        return MW_IO_FAILED;
    }
    for (i = 0; i < trailers_len; i++) {
        const char *name = apr_pstrmemdup(r->pool, (const char *)trailers[i].name.ptr,
                                          trailers[i].name.len);
        const char *value = apr_pstrmemdup(r->pool, (const char *)trailers[i].value.ptr,
                                           trailers[i].value.len);
        if (may_be_trailer(name)) {
            apr_table_addn(r->trailers_out, name, value);
        }
        else {
            dropped = dropped ? apr_pstrcat(r->pool, dropped, ", ", name, NULL) : name;
        }
    }
    if (dropped) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MWLOGNO(00047) "the guest sent %s as trailers for %s (%s); dropped (they "
                      "may not follow the body)", dropped, r->uri, x->conf->where);
    }
    if (apr_is_empty_table(r->trailers_out) || r->connection->master) {
        return MW_IO_OK; /* mod_http2 sends them itself */
    }
    ap_add_output_filter(MW_TRAILERS_FILTER, NULL, r, r->connection);
    if (!x->passed && x->declared < 0) {
        /* The head has not gone out: with the EOS in the same pass, Apache
         * would count the body and send a Content-Length instead of
         * chunks, leaving no room for trailers. A flush sends it first. */
        APR_BRIGADE_INSERT_TAIL(x->out, apr_bucket_flush_create(r->connection->bucket_alloc));
        return mw_pass_out(x);
    }
    return MW_IO_OK;
}

static int write_field(void *bb, const char *name, const char *value)
{
    apr_brigade_putstrs(bb, NULL, NULL, name, ": ", value, "\r\n", NULL);
    return 1;
}

/* After the chunk filter: "0" CRLF, the trailers, CRLF in place of its
 * last chunk. Runs once, at the EOS. */
apr_status_t mw_trailers_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    apr_bucket *b, *last;
    apr_bucket_brigade *section, *rest;
    const char *data;
    apr_size_t len;

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
        if (!APR_BUCKET_IS_EOS(b)) {
            continue;
        }
        ap_remove_output_filter(f);
        last = APR_BUCKET_PREV(b);
        if (!r->chunked || last == APR_BRIGADE_SENTINEL(bb) ||
            apr_bucket_read(last, &data, &len, APR_BLOCK_READ) != APR_SUCCESS ||
            len != strlen(LAST_CHUNK) || memcmp(data, LAST_CHUNK, len) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          MWLOGNO(00048) "the guest's trailers for %s were not sent: the "
                          "response is not chunked (HTTP/1.0, or a Content-Length)", r->uri);
            break;
        }
        section = apr_brigade_create(r->pool, r->connection->bucket_alloc);
        apr_brigade_puts(section, NULL, NULL, "0\r\n");
        apr_table_do(write_field, section, r->trailers_out, NULL);
        apr_brigade_puts(section, NULL, NULL, "\r\n");
        apr_bucket_delete(last);
        rest = apr_brigade_split_ex(bb, b, NULL);
        APR_BRIGADE_CONCAT(bb, section);
        APR_BRIGADE_CONCAT(bb, rest);
        break;
    }
    return ap_pass_brigade(f->next, bb);
}
