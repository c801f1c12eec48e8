/* make bench's ceiling: the cheapest content handler Apache can run.
 * It answers what the hello component answers, written in C with no
 * WebAssembly, so the gap between this row and the static file is Apache's
 * generic handler path, and the gap between it and component hello is ours. */
#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"

static int native_hello(request_rec *r)
{
    if (r->handler == NULL || strcmp(r->handler, "bench-native-hello") != 0)
        return DECLINED;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    ap_rprintf(r, "Hello from WebAssembly! You asked for %s\n", r->uri);
    return OK;
}

static void register_hooks(apr_pool_t *pool)
{
    (void)pool;
    ap_hook_handler(native_hello, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA bench_native_module = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, register_hooks,
};
