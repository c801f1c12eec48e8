/* WasmFileRoutes: below a <Directory> with WasmFileRoutes On, a URL that
 * names no file is looked up as a route (the host decides which file:
 * host/src/routes.rs), and the request then maps to that file as if the
 * URL had named it, so that <Directory>, <Files>, access control and the
 * handler all apply to the file really served. The URL the guest sees does
 * not change. A URL naming an existing file reaches only components and
 * public/, as in a Wasm Workers Server site (a worker's .toml holds its
 * secrets). */
#include "mod_wasm.h"

#include "http_core.h"
#include "http_log.h"
#include "http_request.h"
#include "apr_strings.h"

APLOG_USE_MODULE(wasm);

/* The directories with WasmFileRoutes On in the configuration being read
 * or served: a request below none of them costs this hook nothing. */
static apr_array_header_t *route_roots;

void mw_reset_route_roots(apr_pool_t *pconf)
{
    route_roots = apr_array_make(pconf, 0, sizeof(const char *));
}

void mw_add_route_root(const char *dir)
{
    *(const char **)apr_array_push(route_roots) = dir;
}

/* The length of root without trailing slashes if path is root or below it,
 * else 0. */
static size_t below(const char *path, const char *root)
{
    size_t len = strlen(root);
    while (len > 1 && root[len - 1] == '/') {
        len--;
    }
    if (strncmp(path, root, len) == 0 && (path[len] == '/' || path[len] == '\0')) {
        return len;
    }
    return 0;
}

static int below_any_root(const char *path)
{
    int i;
    for (i = 0; route_roots && i < route_roots->nelts; i++) {
        if (below(path, APR_ARRAY_IDX(route_roots, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

/* What mw_route_resolve found, copied into the request's pool. */
typedef struct {
    request_rec *r;
    const char *file;
    mw_route route;
} found_route;

static void take_route(void *ctx, mw_bytes file, bool component, mw_bytes params)
{
    found_route *found = ctx;
    apr_pool_t *pool = found->r->pool;

    found->file = apr_pstrmemdup(pool, (const char *)file.ptr, file.len);
    found->route.component = component;
    found->route.params = params.len ? apr_pstrmemdup(pool, (const char *)params.ptr, params.len)
                                     : NULL;
}

static void set_route(request_rec *r, int component, const char *params)
{
    mw_route *route = apr_pcalloc(r->pool, sizeof(*route));
    route->component = component;
    route->params = params;
    ap_set_module_config(r->request_config, &wasm_module, route);
}

/* The map_to_storage hook, before core's. Below a routes directory it
 * walks the directories itself: a URL naming no file maps to its route's
 * file; one naming a file outside public/ that is no component is a 404.
 * Otherwise it leaves everything as it found it for core's walk. */
int mw_map_route(request_rec *r)
{
    ap_conf_vector_t *defaults = r->per_dir_config;
    char *wanted = r->filename, *path_info = r->path_info;
    apr_finfo_t finfo = r->finfo;
    const mw_dir_config *conf;
    found_route found = {r, NULL, {0, NULL}};
    size_t root_len;
    int status;

    if (!r->filename || r->proxyreq || !below_any_root(r->filename)) {
        return DECLINED;
    }
    r->filename = apr_pstrdup(r->pool, wanted);
    if ((status = ap_directory_walk(r)) != OK) {
        return status;
    }
    conf = ap_get_module_config(r->per_dir_config, &wasm_module);
    if (conf->file_routes == 1 && conf->routes_root &&
        (root_len = below(r->filename, conf->routes_root)) != 0) {
        const char *relative = r->filename + root_len;
        mw_bytes path = {(const uint8_t *)relative, strlen(relative)};

        size_t wanted_root_len = below(wanted, conf->routes_root);

        if (r->finfo.filetype == APR_NOFILE && wanted_root_len) {
            relative = wanted + wanted_root_len;
            path = (mw_bytes){(const uint8_t *)relative, strlen(relative)};
            if (mw_route_resolve((mw_bytes){(const uint8_t *)conf->routes_root, root_len}, path,
                                 &found, take_route)) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, MWLOGNO(00045) "%s is routed to %s", r->uri,
                              found.file);
                /* A fresh walk for the file, from the server's defaults as
                 * core's would start. */
                r->per_dir_config = defaults;
                r->filename = apr_pstrdup(r->pool, found.file);
                r->path_info = NULL;
                r->finfo.filetype = APR_NOFILE;
                if ((status = ap_directory_walk(r)) != OK || (status = ap_file_walk(r)) != OK) {
                    return status;
                }
                set_route(r, found.route.component, found.route.params);
                return OK;
            }
        }
        else if (r->finfo.filetype != APR_NOFILE) {
            switch (mw_route_reach(path, r->finfo.filetype == APR_DIR)) {
            case MW_REACH_COMPONENT:
                set_route(r, 1, NULL);
                break;
            case MW_REACH_PUBLIC:
                set_route(r, 0, NULL);
                break;
            case MW_REACH_DIRECTORY:
                break;
            case MW_REACH_HIDDEN:
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                              MWLOGNO(00036) "%s is not served: below %s (WasmFileRoutes On) only "
                              "components and public/ are", r->uri, conf->routes_root);
                return HTTP_NOT_FOUND;
            }
        }
    }
    /* Core's walk follows, from where it would have started. */
    r->per_dir_config = defaults;
    r->filename = wanted;
    r->path_info = path_info;
    r->finfo = finfo;
    return DECLINED;
}

/* A route to a component is served by wasm-handler where nothing else
 * claimed the request (AddHandler wasm-handler .wasm is then not needed):
 * never as a download of the file. A static file from public/ is Apache's
 * to serve, even where SetHandler wasm-handler makes every other file a
 * component. A WasmComponent or WasmModule configured for the URL, or
 * another handler an admin set, keeps the request. */
int mw_route_handler_fixup(request_rec *r)
{
    const mw_route *route = mw_route_of(r);
    const mw_dir_config *conf = ap_get_module_config(r->per_dir_config, &wasm_module);

    if (!route || conf->component || conf->module) {
        return DECLINED;
    }
    if (route->component && (!r->handler || strcmp(r->handler, "default-handler") == 0)) {
        r->handler = MW_HANDLER_NAME;
    }
    else if (!route->component && r->handler && strcmp(r->handler, MW_HANDLER_NAME) == 0) {
        r->handler = "default-handler";
    }
    return DECLINED;
}

const mw_route *mw_route_of(request_rec *r)
{
    return ap_get_module_config(r->request_config, &wasm_module);
}
