/* WasmFileRoutes: a URL that names no file below a <Directory> with
 * WasmFileRoutes On is looked up as a route (the host decides which file:
 * host/src/routes.rs), and the request then maps to that file as if the
 * URL had named it, so that <Directory>, <Files>, access control and the
 * handler all apply to the file really served. The URL the guest sees does
 * not change. */
#include "mod_wasm.h"

#include "http_core.h"
#include "http_log.h"
#include "http_request.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

/* What mw_route_resolve found, copied into the request's pool. */
typedef struct {
    request_rec *r;
    const char *file;
    mw_route route;
} found_route;

static void take_route(void *ctx, mw_bytes file, bool component, const mw_header *params,
                       size_t params_len)
{
    found_route *found = ctx;
    apr_pool_t *pool = found->r->pool;
    mw_header *copy = apr_palloc(pool, sizeof(*copy) * (params_len + 1));
    size_t i;

    for (i = 0; i < params_len; i++) {
        const char *name = apr_pstrmemdup(pool, (const char *)params[i].name.ptr,
                                          params[i].name.len);
        const char *value = apr_pstrmemdup(pool, (const char *)params[i].value.ptr,
                                           params[i].value.len);
        copy[i] = (mw_header){{(const uint8_t *)name, strlen(name)},
                              {(const uint8_t *)value, strlen(value)}};
    }
    found->file = apr_pstrmemdup(pool, (const char *)file.ptr, file.len);
    found->route = (mw_route){component, copy, params_len};
}

/* The map_to_storage hook, before core's: Apache's own walk first; if it
 * found no file where routes are on, the route's file instead. */
int mw_map_route(request_rec *r)
{
    const mw_dir_config *conf;
    const char *wanted, *relative;
    found_route found = {r, NULL, {0, NULL, 0}};
    size_t root_len;
    int status;

    if (!r->filename || r->proxyreq) {
        return DECLINED;
    }
    wanted = apr_pstrdup(r->pool, r->filename);
    if ((status = ap_directory_walk(r)) != OK) {
        return status;
    }
    conf = ap_get_module_config(r->per_dir_config, &wasm_module);
    if (conf->file_routes != 1 || r->finfo.filetype != APR_NOFILE || !conf->routes_root) {
        /* Core's walk, which follows, finds this one cached. */
        return DECLINED;
    }
    root_len = strlen(conf->routes_root);
    while (root_len > 1 && conf->routes_root[root_len - 1] == '/') {
        root_len--;
    }
    if (strncmp(wanted, conf->routes_root, root_len) != 0 ||
        (wanted[root_len] != '/' && wanted[root_len] != '\0')) {
        return DECLINED;
    }
    relative = wanted + root_len;
    if (!mw_route_resolve((mw_bytes){(const uint8_t *)conf->routes_root, root_len},
                          (mw_bytes){(const uint8_t *)relative, strlen(relative)}, &found,
                          take_route)) {
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "%s is routed to %s", r->uri, found.file);
    r->filename = apr_pstrdup(r->pool, found.file);
    r->path_info = NULL;
    r->finfo.filetype = APR_NOFILE;
    if ((status = ap_directory_walk(r)) != OK || (status = ap_file_walk(r)) != OK) {
        return status;
    }
    ap_set_module_config(r->request_config, &wasm_module,
                         apr_pmemdup(r->pool, &found.route, sizeof(found.route)));
    return OK;
}

/* A route to a component is served by wasm-handler whatever AddHandler
 * says about .wasm files: never as a download of the file. A static file
 * from public/ is Apache's to serve, even where SetHandler wasm-handler
 * makes every other file a component. */
int mw_route_handler_fixup(request_rec *r)
{
    const mw_route *route = mw_route_of(r);

    if (route && route->component) {
        r->handler = MW_HANDLER_NAME;
    }
    else if (route && r->handler && strcmp(r->handler, MW_HANDLER_NAME) == 0) {
        r->handler = "default-handler";
    }
    return DECLINED;
}

const mw_route *mw_route_of(request_rec *r)
{
    return ap_get_module_config(r->request_config, &wasm_module);
}
