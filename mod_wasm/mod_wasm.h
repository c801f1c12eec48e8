/* mod_wasm: the Apache glue. Everything about WebAssembly lives in the Rust
 * host (host/, header mod_wasm_host.h); this side parses directives, owns
 * the request, and moves bytes between bucket brigades and the host.
 *
 * Log lines carry tags MWnnnnn, each used once; see the table in README.md. */
#ifndef MOD_WASM_H
#define MOD_WASM_H

#include "httpd.h"
#include "http_config.h"
#include "util_filter.h"
#include "mod_wasm_host.h"

/* The handler name that routes a request to this module. */
#define MW_HANDLER_NAME "wasm-handler"

/* Room for one error message from the host. */
#define MW_ERROR_LEN 1024

extern module AP_MODULE_DECLARE_DATA wasm_module;

/* Per-directory configuration. Scalars are "unset" when 0 or NULL, so that
 * a nested section inherits each directive it does not set itself; lists
 * append the nested section's entries to the inherited ones. */
typedef struct {
    const mw_component *component; /* compiled WasmComponent, or NULL      */
    const char *component_where;   /* "WasmComponent <path> in <section> at
                                    * <file>:<line>", for log lines         */
    apr_uint64_t timeout_ms;       /* WasmTimeout                           */
    apr_uint64_t memory_limit;     /* WasmMemoryLimit, bytes per memory     */
    int max_instances;             /* WasmMaxInstances                      */
    apr_uint32_t *in_use;          /* requests of the section that set
                                    * WasmMaxInstances being served now in
                                    * this child process                    */
    apr_array_header_t *env;       /* WasmEnv: mw_header                    */
    apr_array_header_t *dirs;      /* WasmDir, WasmMapDir: mw_dir           */
    apr_array_header_t *outgoing;  /* WasmAllowOutgoing:
                                    * const mw_outgoing_rule *              */
} mw_dir_config;

/* The configuration generation being read or served (config.c). */
mw_host *mw_current_host(void);
void mw_set_current_host(mw_host *host);

/* Directive table and per-directory config (config.c). */
extern const command_rec mw_directives[];
void *mw_create_dir_config(apr_pool_t *p, char *dir);
void *mw_merge_dir_config(apr_pool_t *p, void *base, void *add);

/* Serves r with the component of conf (component.c). */
int mw_serve_component(request_rec *r, const mw_dir_config *conf);

/* The output filter each component response runs through (component.c). */
#define MW_RESPONSE_FILTER "WASM_RESPONSE"
apr_status_t mw_response_filter(ap_filter_t *f, apr_bucket_brigade *bb);

#endif
