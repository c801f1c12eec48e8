/* The status page: SetHandler wasm-status. The counters live in memory
 * every child shares, so any child shows the totals; the host renders the
 * page (as HTML, mod_status's ?auto, or Prometheus text) and this side
 * only sends it. */
#include "mod_wasm.h"

#include "http_protocol.h"

static void write_page(void *ctx, const uint8_t *text, size_t len)
{
    ap_rwrite(text, (int)len, ctx);
}

int mw_status_handler(request_rec *r)
{
    mw_status_format format;
    const char *content_type = NULL;

    if (!r->handler || strcmp(r->handler, MW_STATUS_HANDLER_NAME) != 0) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    /* ?auto (as mod_status), ?prometheus or ?format=...; else HTML. */
    format = mw_status_format_of(
        (mw_bytes){(const uint8_t *)r->args, r->args ? strlen(r->args) : 0}, &content_type);
    ap_set_content_type(r, content_type);
    /* Counters change by the moment: never from a cache. */
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    if (mw_stats_render(format, r, write_page) != MW_RESULT_OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
