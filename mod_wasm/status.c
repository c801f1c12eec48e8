/* The status page: SetHandler wasm-status. The counters live in memory
 * every child shares, so any child shows the totals; the host renders the
 * page (as HTML, mod_status's ?auto, or Prometheus text) and this side
 * only sends it. */
#include "mod_wasm.h"

#include "http_protocol.h"
#include "apr_strings.h"

/* Which form the query asks for: ?auto (as mod_status), ?prometheus or
 * ?format=prometheus; else HTML. */
static mw_status_format format_of(apr_pool_t *pool, const char *args)
{
    char *word, *state;

    if (!args) {
        return MW_STATUS_FORMAT_HTML;
    }
    for (word = apr_strtok(apr_pstrdup(pool, args), "&", &state); word;
         word = apr_strtok(NULL, "&", &state)) {
        if (strcmp(word, "auto") == 0 || strcmp(word, "format=auto") == 0) {
            return MW_STATUS_FORMAT_AUTO;
        }
        if (strcmp(word, "prometheus") == 0 || strcmp(word, "format=prometheus") == 0) {
            return MW_STATUS_FORMAT_PROMETHEUS;
        }
    }
    return MW_STATUS_FORMAT_HTML;
}

static void write_page(void *ctx, const uint8_t *text, size_t len)
{
    ap_rwrite(text, (int)len, ctx);
}

int mw_status_handler(request_rec *r)
{
    mw_status_format format;

    if (!r->handler || strcmp(r->handler, MW_STATUS_HANDLER_NAME) != 0) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    format = format_of(r->pool, r->args);
    switch (format) {
    case MW_STATUS_FORMAT_AUTO:
        ap_set_content_type(r, "text/plain; charset=utf-8");
        break;
    case MW_STATUS_FORMAT_PROMETHEUS:
        ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
        break;
    default:
        ap_set_content_type(r, "text/html; charset=utf-8");
        break;
    }
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
