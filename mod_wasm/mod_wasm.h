/* mod_wasm: the Apache glue. Everything about WebAssembly lives in the Rust
 * host (host/, header mod_wasm_host.h); this side parses directives, owns
 * the request, and moves bytes between bucket brigades and the host.
 *
 * Log lines carry tags MWnnnnn (MWLOGNO), each used once; docs/log-messages.md
 * says what each means. */
#ifndef MOD_WASM_H
#define MOD_WASM_H

#include "httpd.h"
#include "http_config.h"
#include "util_filter.h"
#include "mod_wasm_host.h"

/* The handler name that routes a request to this module. */
#define MW_HANDLER_NAME "wasm-handler"

/* The tag a log line starts with, as httpd's APLOGNO: MWLOGNO(00012) "text"
 * is "MW00012: text". Each number is used once (a test checks it against
 * docs/log-messages.md), so that a line in a log leads to one place. */
#define MWLOGNO(n) "MW" #n ": "

/* Room for one error message from the host. */
#define MW_ERROR_LEN 1024

extern module AP_MODULE_DECLARE_DATA wasm_module;

/* An On/Off directive that was not set. */
#define MW_UNSET -1

/* Per-directory configuration. Scalars are "unset" when 0, NULL or
 * MW_UNSET, so that a nested section inherits each directive it does not
 * set itself; lists append the nested section's entries to the inherited
 * ones. */
typedef struct {
    /* The guest: a component or a module, never both. */
    const mw_component *component; /* compiled WasmComponent, or NULL      */
    const mw_module *module;       /* compiled WasmModule, or NULL         */
    const char *module_name;       /* its file name: argv[0]               */
    int module_in_htaccess;        /* the module was named in an .htaccess
                                    * file: it (like a module given grants
                                    * there) runs only where Options
                                    * ExecCGI is on                         */
    const char *where;             /* "WasmComponent <path> in <section> at
                                    * <file>:<line>", for log lines         */
    const char *section;           /* the path of the section that set the
                                    * guest ("/app"; "/" for the whole
                                    * server), for mod-wasm:host            */
    const mw_stats *stats;         /* the guest's counters for the status
                                    * page (wasm-status)                    */
    /* Legacy mode (WasmModule) only. */
    apr_array_header_t *args;      /* WasmArg: const char *                */
    const char *entry_point;       /* WasmEntryPoint, or NULL for _start   */
    int cgi;                       /* WasmEnableCGI: MW_UNSET, 0 or 1      */
    int map_cgi_filenames;         /* WasmMapCGIFileNames: likewise        */
    const char *htaccess_grant;    /* the first WasmEnv, WasmDir or
                                    * WasmMapDir read from an .htaccess
                                    * file, or NULL: modules only           */
    const char *htaccess_change;   /* likewise WasmArg, WasmEntryPoint,
                                    * WasmEnableCGI, WasmMapCGIFileNames:
                                    * they change how a module runs, and
                                    * mean nothing to a component           */
    /* Components served as the request's file (routes.c). */
    int file_routes;               /* WasmFileRoutes: MW_UNSET, 0 or 1      */
    const char *routes_root;       /* the <Directory> that set it           */
    /* Both modes. */
    apr_uint64_t timeout_ms;       /* WasmTimeout                           */
    apr_uint64_t memory_limit;     /* WasmMemoryLimit, bytes per memory     */
    int max_instances;             /* WasmMaxInstances                      */
    apr_uint32_t *in_use;          /* requests of the section that set
                                    * WasmMaxInstances being served now in
                                    * this child process                    */
    int reuse;                     /* WasmInstanceReuse: requests one
                                    * instance serves; 1 for Off, 0 unset   */
    int concurrency;               /* its concurrent=: requests one WASI 0.3
                                    * instance serves at once; 0 or 1: one  */
    apr_array_header_t *env;       /* WasmEnv: mw_header                    */
    apr_array_header_t *dirs;      /* WasmDir, WasmMapDir: mw_dir           */
    apr_array_header_t *outgoing;  /* WasmAllowOutgoing:
                                    * const mw_outgoing_rule *              */
    /* WasmAccessChecker (access.c): the component that decides, after
     * Apache's own access control, whether a request goes on; with the
     * description and counters of its directive. `checker_set` says this
     * section named one or turned it Off (checker NULL). */
    const mw_component *checker;
    const char *checker_where;
    const char *checker_section;
    const mw_stats *checker_stats;
    int checker_set;
    /* WasmMiddleware (middleware.c): the WASI 0.3 components around
     * whatever serves the request, outermost first (mw_layer); with
     * `middlewares_off`, this section's list replaces the one around it. */
    apr_array_header_t *middlewares;
    int middlewares_off;
    /* Components only. */
    apr_array_header_t *stores;    /* WasmKeyValue: const mw_kv_store *     */
    apr_array_header_t *config;    /* WasmConfigVar: mw_header              */
} mw_dir_config;

/* One WasmMiddleware: its component, with the description and counters of
 * its directive. */
typedef struct {
    const mw_component *component;
    const char *where;
    const char *section;
    const mw_stats *stats;
} mw_layer;

/* The configuration generation being read or served (config.c). */
mw_host *mw_current_host(void);
void mw_set_current_host(mw_host *host);

/* Directive table and per-directory config (config.c). */
extern const command_rec mw_directives[];
void *mw_create_dir_config(apr_pool_t *p, char *dir);
void *mw_merge_dir_config(apr_pool_t *p, void *base, void *add);

/* State and configuration for guests (state.c): the directive handlers,
 * the reset before each reading, and the start-up check of the stores'
 * files, which returns how many are unsafe (each logged). */
const char *mw_set_state_dir(cmd_parms *cmd, void *dir_conf, const char *dir);
const char *mw_add_kv_store(cmd_parms *cmd, void *dir_conf, int argc, char *const argv[]);
const char *mw_grant_kv_store(cmd_parms *cmd, void *dir_conf, const char *label);
const char *mw_add_config_var(cmd_parms *cmd, void *dir_conf, const char *name,
                              const char *value);
void mw_reset_state_dir(void);
int mw_check_kv_stores(server_rec *s);

/* The state of one request while the host serves it. In the request pool:
 * the response filter still reads it after the handler returned. */
typedef struct {
    request_rec *r;
    const mw_dir_config *conf;
    apr_bucket_brigade *in;  /* request body, one read at a time            */
    apr_bucket_brigade *out; /* response body, one pass at a time           */
    int body_done;           /* input EOS seen: further reads return 0      */
    int read_status;         /* HTTP status of a failed body read, else OK  */
    int passed;              /* a brigade went out: the head is on the wire */
    int client_gone;         /* the connection was aborted                  */
    apr_table_t *err_headers; /* r->err_headers_out before the guest ran    */
    apr_off_t declared;      /* the guest's Content-Length, or -1: what
                              * mw_pass_out lets through, and no byte more  */
    apr_off_t body_sent;     /* body bytes passed so far                    */
    int overran;             /* the guest wrote past `declared`: the excess
                              * was dropped and the response is cut         */
    apr_interval_time_t timeout; /* WasmTimeout                            */
    apr_time_t deadline;     /* when it runs out: writes to the client while
                              * the guest runs end then, as the guest does  */
    ap_filter_t *out_after;  /* the response goes to this filter's next one
                              * (a middleware's, below the filter that
                              * takes what it wraps), else down all of
                              * r->output_filters                          */
    ap_filter_t *in_after;   /* likewise, where the request body is read    */
    const char *write_limit; /* the limit a write to the client ran into
                              * ("WasmTimeout", "Timeout"), or NULL         */
    apr_interval_time_t write_limit_time; /* and its length                 */
} mw_exchange_ctx;

/* Serving, in either mode (exchange.c). */
void mw_exchange_init(mw_exchange_ctx *x, request_rec *r, const mw_dir_config *conf);
/* The same for a guest whose answer is not the response (an access
 * checker): nothing is added to the output filters. */
void mw_exchange_prepare(mw_exchange_ctx *x, request_rec *r, const mw_dir_config *conf);
/* Passes x->out down the output filters, never a body byte beyond the
 * declared length (MW_IO_FAILED, x->overran set, when it dropped some). */
uint32_t mw_pass_out(mw_exchange_ctx *x);
/* Sets x->declared from one of a guest's Content-Length values (a
 * component's fields, a module's CGI headers): every value must be digits
 * only and the same as any before it; 0 when it is not (the caller logs). */
int mw_declare_length(mw_exchange_ctx *x, const char *value);
/* Drops the hop-by-hop fields (RFC 9110 7.6.1) from r's response headers:
 * Apache frames the response and manages the connection, never the guest.
 * Returns the names it dropped, comma-separated, or NULL. */
const char *mw_drop_hop_by_hop(request_rec *r);
int mw_is_hop_by_hop(const char *name);
/* mw_exchange callbacks: read_body and log, with an mw_exchange_ctx. */
uint32_t mw_read_body(void *ctx, uint8_t *buf, size_t buf_len, size_t *read_out);
void mw_log_line(void *ctx, uint32_t kind, const uint8_t *text, size_t len);
/* Forgets the guest's head when its response never went out, so that the
 * error response Apache sends instead carries none of it. */
void mw_forget_head(mw_exchange_ctx *x);
/* Ends the request after the host returned rv (err: why it failed). */
int mw_finish(mw_exchange_ctx *x, mw_result rv, const char *err);
/* Apache's id for the request, the one %L prints; made now if no log line
 * has needed it yet. */
const char *mw_request_id(request_rec *r);
/* Puts what the host measured of the request into r->notes, for
 * LogFormat's %{...}n (README "Logging"). */
void mw_note_report(request_rec *r, const mw_report *report);
/* The location's limits and grants, as views into its configuration (the
 * reuse scope is allocated from r's pool). */
mw_sandbox mw_sandbox_of(request_rec *r, const mw_dir_config *conf);
/* WasmMaxInstances: takes an instance slot, or answers 503 when none is
 * free; every OK is followed by mw_release_instance. */
int mw_take_instance(request_rec *r, const mw_dir_config *conf);
void mw_release_instance(const mw_dir_config *conf);

/* A translate_name hook that runs before all others and notes the target,
 * so that a rewritten one is seen (component.c). */
int mw_note_target(request_rec *r);
/* A map_to_storage hook that runs before all others and notes whether the
 * target was rewritten (component.c). */
int mw_note_rewrite(request_rec *r);
/* The request as the host gets it (component.c): views into r, valid for
 * the request; conf->section is the guest's location, params a route's
 * parameters or NULL. */
mw_request mw_request_view(request_rec *r, const mw_dir_config *conf, const char *params);
/* mw_exchange callbacks that put a component's head on r and pass its body
 * down the output filters (component.c). */
uint32_t mw_send_head(void *ctx, uint16_t status, const mw_header *headers, size_t headers_len);
uint32_t mw_send_data(void *ctx, const uint8_t *data, size_t data_len, bool flush);
/* mw_exchange callbacks a component's log lines go through (component.c). */
void mw_guest_log(void *ctx, uint32_t level, const uint8_t *text, size_t len);
void mw_section_log(const void *server, const uint8_t *place, size_t place_len,
                    uint32_t kind, uint32_t level, const uint8_t *text, size_t len);
/* Serves r with the component of conf (component.c); params: a route's
 * parameters for the guest, or NULL. */
int mw_serve_component(request_rec *r, const mw_dir_config *conf, const char *params);
/* Serves r with the component its file is (component.c). */
int mw_serve_file_component(request_rec *r, const mw_dir_config *conf);

/* Serves r with the WASI preview1 module of conf (legacy.c). */
int mw_serve_module(request_rec *r, const mw_dir_config *conf);

/* WasmFileRoutes (routes.c): the directories it is on in, the hooks that
 * map a URL below them, and the route a request took (NULL if none). */
void mw_reset_route_roots(apr_pool_t *pconf);
void mw_add_route_root(const char *dir);
int mw_map_route(request_rec *r);
int mw_route_handler_fixup(request_rec *r);
typedef struct {
    int component;      /* a component file, else a static file (public/)  */
    const char *params; /* its [name] segments, form-urlencoded, or NULL   */
} mw_route;
const mw_route *mw_route_of(request_rec *r);

/* WasmAccessChecker (access.c): the fixup that runs the checker and sends
 * its refusal instead of the content. */
int mw_check_access(request_rec *r);

/* WasmMiddleware (middleware.c): the handler that runs before every other
 * and starts the request's middlewares, and the filters that hand what the
 * real handler serves to them and the body they pass on to it. */
int mw_run_middlewares(request_rec *r);
#define MW_MIDDLEWARE_OUT_FILTER "WASM_MIDDLEWARE_OUT"
#define MW_MIDDLEWARE_IN_FILTER "WASM_MIDDLEWARE_IN"
apr_status_t mw_middleware_out_filter(ap_filter_t *f, apr_bucket_brigade *bb);
apr_status_t mw_middleware_in_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                     ap_input_mode_t mode, apr_read_type_e block,
                                     apr_off_t readbytes);

/* The status page, SetHandler wasm-status (status.c). */
#define MW_STATUS_HANDLER_NAME "wasm-status"
int mw_status_handler(request_rec *r);

/* The output filter each response runs through (exchange.c). */
#define MW_RESPONSE_FILTER "WASM_RESPONSE"
apr_status_t mw_response_filter(ap_filter_t *f, apr_bucket_brigade *bb);

/* Trailers both ways (trailers.c): mw_exchange callbacks, and the filter
 * that writes the response's into an HTTP/1.1 chunked body. */
uint32_t mw_request_trailers(void *ctx, const mw_header **trailers_out, size_t *len_out);
uint32_t mw_send_trailers(void *ctx, const mw_header *trailers, size_t trailers_len);
#define MW_TRAILERS_FILTER "WASM_TRAILERS"
apr_status_t mw_trailers_filter(ap_filter_t *f, apr_bucket_brigade *bb);

#endif
