/* mod_wasm: serve HTTP requests with WebAssembly components, and with WASI
 * preview1 modules as VMware's mod_wasm 0.12 did (legacy mode).
 *
 * Process model: the parent reads the configuration (twice at start-up, and
 * again on each graceful restart) and compiles every WasmComponent while
 * doing so; the children inherit the compiled artifacts through fork() and
 * load them in child_init. No Wasm runs, and no thread starts, in the
 * parent. */
#include "mod_wasm.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mpm.h"
#include "unixd.h"

static apr_status_t free_host(void *host)
{
    if (mw_current_host() == host) {
        mw_set_current_host(NULL);
    }
    mw_host_free(host);
    return APR_SUCCESS;
}

/* Runs in the parent before each reading of the configuration: a fresh
 * generation for the directives to fill, freed with that configuration. */
static int wasm_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    mw_host *host = mw_host_new();
    if (!host) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, NULL, MWLOGNO(00002) "cannot create the Wasm host");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    mw_set_current_host(host);
    /* The first call maps the status page's counters, before any fork. */
    mw_stats_next_generation();
    apr_pool_cleanup_register(pconf, host, free_host, apr_pool_cleanup_null);
    mw_reset_route_roots(pconf);
    mw_reset_state_dir();
    return OK;
}

static void grant_unreachable(void *server, mw_bytes why)
{
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, server, MWLOGNO(00046) "%.*s", (int)why.len,
                 (const char *)why.ptr);
}

/* Root read the configuration and found each granted directory; the
 * children, which switch to User later, may not reach it. */
static void check_grants(server_rec *s)
{
    mw_host *host = mw_current_host();
    if (host) {
        mw_host_check_grants(host, (uint32_t)ap_unixd_config.user_id,
                             (uint32_t)ap_unixd_config.group_id, s, grant_unreachable);
    }
}

/* apache2 -t: test_config has no way to fail the test but to end it, and
 * a store the children cannot keep safely is a configuration error. */
static void wasm_test_config(apr_pool_t *pconf, server_rec *s)
{
    check_grants(s);
    if (mw_check_kv_stores(s) > 0) {
        exit(1);
    }
}

/* After the configuration was read; not on the first of the two readings
 * at start-up, which only checks it. */
static int wasm_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        check_grants(s);
        if (mw_check_kv_stores(s) > 0) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* Runs in each child after fork(): the Wasmtime engine and every component
 * are loaded here, per process. */
static void wasm_child_init(apr_pool_t *pchild, server_rec *s)
{
    char info[MW_ERROR_LEN] = "", err[MW_ERROR_LEN] = "";
    mw_host *host = mw_current_host();
    int threads = 1;
    bool warn = false;

    if (!host) {
        return;
    }
    /* One request per thread at a time: the instance pool's size. */
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
        threads = 1;
    }
    /* mod_http2 serves its streams on workers of its own, beside the MPM's
     * threads: by its default H2MaxWorkers, 3/2 of ThreadsPerChild and at
     * least 4. Its configuration cannot be read from here; a request that
     * finds the pool full all the same waits for a slot. */
    if (ap_find_linked_module("mod_http2.c")) {
        threads += threads * 3 / 2 > 4 ? threads * 3 / 2 : 4;
    }
    if (mw_host_child_init(host, (uint32_t)threads, info, sizeof(info), &warn, err,
                           sizeof(err)) != MW_RESULT_OK) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     MWLOGNO(00003) "loading components in child %" APR_PID_T_FMT " failed; "
                     "their requests will fail: %s", getpid(), err);
    }
    if (*info) {
        ap_log_error(APLOG_MARK, warn ? APLOG_WARNING : APLOG_DEBUG, 0, s,
                     MWLOGNO(00030) "child %" APR_PID_T_FMT ": %s", getpid(), info);
    }
}

/* The content handler: requests whose handler is wasm-handler. */
static int wasm_handler(request_rec *r)
{
    const mw_dir_config *conf;

    if (!r->handler || strcmp(r->handler, MW_HANDLER_NAME) != 0) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->per_dir_config, &wasm_module);
    if (conf->module) {
        /* A content author's module, or the grants a content author gave a
         * module, make it their script: it needs what a CGI script needs
         * (AllowOverride Options=Indexes must not be enough). */
        if ((conf->module_in_htaccess || conf->htaccess_grant || conf->htaccess_change) &&
            !(ap_allow_options(r) & OPT_EXECCGI)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          MWLOGNO(00027) "%s (%s) is refused: a module named or given grants in "
                          "an .htaccess file (%s) runs only where Options ExecCGI is on",
                          r->uri, conf->where,
                          conf->module_in_htaccess ? "WasmModule"
                          : conf->htaccess_grant   ? conf->htaccess_grant
                                                   : conf->htaccess_change);
            return HTTP_FORBIDDEN;
        }
        return mw_serve_module(r, conf);
    }
    if (!conf->component) {
        /* The request's file is the component (AddHandler wasm-handler
         * .wasm, or a route of WasmFileRoutes). */
        if (r->filename && r->finfo.filetype == APR_REG) {
            return mw_serve_file_component(r, conf);
        }
        if (r->filename && r->finfo.filetype == APR_NOFILE &&
            ap_strcasecmp_match(r->filename, "*.wasm") == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          MWLOGNO(00031) "%s: there is no component file %s", r->uri, r->filename);
            return HTTP_NOT_FOUND;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00004) "%s is handled by " MW_HANDLER_NAME " but no WasmComponent "
                      "or WasmModule is configured for it, and it names no component file",
                      r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (conf->htaccess_grant) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MWLOGNO(00026) "%s (%s) is refused: %s grants the admin's component "
                      "something; .htaccess grants apply to a WasmModule only", r->uri,
                      conf->where, conf->htaccess_grant);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return mw_serve_component(r, conf, NULL);
}

static void wasm_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(wasm_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(wasm_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(wasm_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(wasm_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* Around every other translate_name hook: did one rewrite the target? */
    ap_hook_translate_name(mw_note_target, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_map_to_storage(mw_note_rewrite, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* Before core's, which only walks what ours did not map. */
    ap_hook_map_to_storage(mw_map_route, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(mw_route_handler_fixup, NULL, NULL, APR_HOOK_LAST);
    /* The first fixup, once Apache's own access control has allowed the
     * request; a refusal is sent from there and ends the request. */
    ap_hook_fixups(mw_check_access, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* Before every handler: the middlewares start, and decline to the
     * real handler once they all called it. */
    ap_hook_handler(mw_run_middlewares, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(wasm_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(mw_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(MW_RESPONSE_FILTER, mw_response_filter, NULL, AP_FTYPE_RESOURCE);
    /* Below the content filters a handler's response runs through (an
     * include), above those of the response as a whole (deflate, Header). */
    ap_register_output_filter(MW_MIDDLEWARE_OUT_FILTER, mw_middleware_out_filter, NULL,
                              AP_FTYPE_CONTENT_SET - 1);
    ap_register_input_filter(MW_MIDDLEWARE_IN_FILTER, mw_middleware_in_filter, NULL,
                             AP_FTYPE_RESOURCE);
    /* Right after httpd's chunk filter (AP_FTYPE_TRANSCODE), before any
     * connection filter (TLS). */
    ap_register_output_filter(MW_TRAILERS_FILTER, mw_trailers_filter, NULL,
                              AP_FTYPE_TRANSCODE + 1);
}

AP_DECLARE_MODULE(wasm) = {
    STANDARD20_MODULE_STUFF,
    mw_create_dir_config,
    mw_merge_dir_config,
    NULL,                       /* server config: everything is per directory */
    NULL,
    mw_directives,
    wasm_register_hooks,
    AP_MODULE_FLAG_NONE
};
