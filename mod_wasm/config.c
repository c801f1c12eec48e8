/* Directives and per-directory configuration. */
#include "mod_wasm.h"

#include "http_log.h"
#include "apr_lib.h"
#include "apr_strings.h"


APLOG_USE_MODULE(wasm);

/* Set by pre_config, before any directive handler runs; the pool cleanup of
 * that generation frees it. Config reading is single-threaded. */
static mw_host *current_host;

mw_host *mw_current_host(void)
{
    return current_host;
}

void mw_set_current_host(mw_host *host)
{
    current_host = host;
}

void *mw_create_dir_config(apr_pool_t *p, char *dir)
{
    mw_dir_config *conf = apr_pcalloc(p, sizeof(mw_dir_config));
    conf->args = apr_array_make(p, 0, sizeof(const char *));
    conf->cgi = MW_UNSET;
    conf->map_cgi_filenames = MW_UNSET;
    conf->file_routes = MW_UNSET;
    conf->env = apr_array_make(p, 0, sizeof(mw_header));
    conf->dirs = apr_array_make(p, 0, sizeof(mw_dir));
    conf->outgoing = apr_array_make(p, 0, sizeof(const mw_outgoing_rule *));
    conf->stores = apr_array_make(p, 0, sizeof(const mw_kv_store *));
    conf->config = apr_array_make(p, 0, sizeof(mw_header));
    conf->middlewares = apr_array_make(p, 0, sizeof(mw_layer));
    return conf;
}

void *mw_merge_dir_config(apr_pool_t *p, void *base_conf, void *add_conf)
{
    const mw_dir_config *base = base_conf, *add = add_conf;
    mw_dir_config *conf = apr_pcalloc(p, sizeof(*conf));
    /* The guest (component or module) and the description of its directive
     * travel together, as do an instance cap and the count of the section
     * that set it. */
    const mw_dir_config *guest = add->component || add->module ? add : base;
    conf->component = guest->component;
    conf->module = guest->module;
    conf->module_name = guest->module_name;
    conf->module_in_htaccess = guest->module_in_htaccess;
    conf->where = guest->where;
    conf->section = guest->section;
    conf->stats = guest->stats;
    /* A section's checker replaces the one around it, as its Require lines
     * do (AuthMerging Off, Apache's default). */
    guest = add->checker_set ? add : base;
    conf->checker = guest->checker;
    conf->checker_where = guest->checker_where;
    conf->checker_section = guest->checker_section;
    conf->checker_stats = guest->checker_stats;
    conf->checker_set = guest->checker_set;
    /* Middlewares nest: a section's go inside those around it, unless it
     * said WasmMiddleware Off. */
    conf->middlewares = add->middlewares_off
                            ? add->middlewares
                            : apr_array_append(p, base->middlewares, add->middlewares);
    conf->middlewares_off = add->middlewares_off;
    if (add->max_instances) {
        conf->max_instances = add->max_instances;
        conf->in_use = add->in_use;
    }
    else {
        conf->max_instances = base->max_instances;
        conf->in_use = base->in_use;
    }
    /* The pair is one directive's: whichever section set it sets both. */
    conf->reuse = add->reuse ? add->reuse : base->reuse;
    conf->concurrency = add->reuse ? add->concurrency : base->concurrency;
    conf->timeout_ms = add->timeout_ms ? add->timeout_ms : base->timeout_ms;
    conf->memory_limit = add->memory_limit ? add->memory_limit : base->memory_limit;
    conf->args = apr_array_append(p, base->args, add->args);
    conf->entry_point = add->entry_point ? add->entry_point : base->entry_point;
    conf->cgi = add->cgi != MW_UNSET ? add->cgi : base->cgi;
    conf->map_cgi_filenames =
        add->map_cgi_filenames != MW_UNSET ? add->map_cgi_filenames : base->map_cgi_filenames;
    conf->htaccess_grant = add->htaccess_grant ? add->htaccess_grant : base->htaccess_grant;
    conf->htaccess_change = add->htaccess_change ? add->htaccess_change : base->htaccess_change;
    /* Routes start where the section that turned them on or off is. */
    if (add->file_routes != MW_UNSET) {
        conf->file_routes = add->file_routes;
        conf->routes_root = add->routes_root;
    }
    else {
        conf->file_routes = base->file_routes;
        conf->routes_root = base->routes_root;
    }
    conf->env = apr_array_append(p, base->env, add->env);
    conf->dirs = apr_array_append(p, base->dirs, add->dirs);
    conf->outgoing = apr_array_append(p, base->outgoing, add->outgoing);
    conf->stores = apr_array_append(p, base->stores, add->stores);
    conf->config = apr_array_append(p, base->config, add->config);
    return conf;
}

/* Whether the directive being read is in an .htaccess file: Apache reads
 * those with one pool for both (ap_check_cmd_context tests the same). */
static int in_htaccess(const cmd_parms *cmd)
{
    return cmd->pool == cmd->temp_pool;
}

/* "<Location /app>", or the server or virtual host the directive is in. */
static const char *section_of(cmd_parms *cmd)
{
    const ap_directive_t *parent = cmd->directive->parent;
    if (in_htaccess(cmd)) {
        return "an .htaccess file";
    }
    if (parent) {
        /* A section's args still end with its '>'. */
        const char *args = parent->args;
        size_t len = strlen(args);
        if (len > 0 && args[len - 1] == '>') {
            len--;
        }
        return apr_psprintf(cmd->pool, "%s %.*s>", parent->directive, (int)len, args);
    }
    return cmd->server->is_virtual ? "its virtual host" : "the server config";
}

/* "WasmComponent <path> in <Location /app> at <file>:<line>" */
static const char *where_of(cmd_parms *cmd, const char *path)
{
    return apr_psprintf(cmd->pool, "%s %s in %s at %s:%d", cmd->cmd->name, path, section_of(cmd),
                        cmd->directive->filename, cmd->directive->line_num);
}

/* An .htaccess file may add grants for the module it runs (as the original
 * mod_wasm allowed with AllowOverride Options), never for a component the
 * admin configured: remember the first one, so that a component location
 * can refuse them. */
static void note_htaccess(cmd_parms *cmd, const char **first)
{
    if (in_htaccess(cmd) && !*first) {
        *first = apr_psprintf(cmd->pool, "%s at %s:%d", cmd->cmd->name,
                              cmd->directive->filename, cmd->directive->line_num);
    }
}

static void note_htaccess_grant(cmd_parms *cmd, mw_dir_config *conf)
{
    note_htaccess(cmd, &conf->htaccess_grant);
}

/* The checks every directive naming a guest shares: the path (relative to
 * ServerRoot) in *path, or an error. `other` is the guest the section must
 * not have already, or NULL. */
static const char *guest_path(cmd_parms *cmd, const char *arg, const void *other,
                              const char **path)
{
    *path = ap_server_root_relative(cmd->pool, arg);
    if (!*path) {
        return apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, arg);
    }
    if (!current_host) {
        return apr_psprintf(cmd->pool, "%s: mod_wasm was not initialised", cmd->cmd->name);
    }
    if (other) {
        return apr_psprintf(cmd->pool, "%s: this section already has a guest; a section "
                            "serves a component (WasmComponent) or a module (WasmModule), "
                            "not both", cmd->cmd->name);
    }
    return NULL;
}

/* After a guest was compiled (or found in a cache) for this directive. */
static void log_compiled(cmd_parms *cmd, const char *path, mw_guest_kind kind,
                         mw_outcome outcome)
{
    mw_bytes what = mw_guest_kind_describe(kind);
    static const char *const how[] = {
        [MW_OUTCOME_COMPILED] = "compiled",
        [MW_OUTCOME_REUSED] = "reused compiled",
        [MW_OUTCOME_LOADED] = "loaded from the cache directory the compiled",
    };
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, cmd->server, MWLOGNO(00001) "%s %s, %.*s (%s:%d)",
                 how[outcome], path, (int)what.len, (const char *)what.ptr,
                 cmd->directive->filename, cmd->directive->line_num);
}

/* Before the first guest is compiled: where compiled code is kept, if no
 * WasmCacheDir said so already. The default is under Apache's runtime
 * directory (DefaultRuntimeDir); if that cannot be used, start-up goes on
 * and every start compiles again. */
static void decide_cache_dir(cmd_parms *cmd)
{
    char err[MW_ERROR_LEN] = "";
    const char *dir;

    if (mw_host_cache_dir_decided(current_host)) {
        return;
    }
    dir = ap_runtime_dir_relative(cmd->temp_pool, "");
    if (dir && mw_host_set_default_cache_dir(current_host,
                                             (mw_bytes){(const uint8_t *)dir, strlen(dir)}, err,
                                             sizeof(err)) == MW_RESULT_OK) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                 MWLOGNO(00029) "compiled code is not cached on disk, so every start compiles "
                 "again (set WasmCacheDir before %s at %s:%d): %s", cmd->cmd->name,
                 cmd->directive->filename, cmd->directive->line_num,
                 dir ? err : "no runtime directory");
    mw_host_set_cache_dir(current_host, (mw_bytes){NULL, 0}, err, sizeof(err));
}

/* WasmCacheDir <dir>|off: where compiled code is kept across restarts. */
static const char *set_cache_dir(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    char err[MW_ERROR_LEN] = "";
    const char *dir = "", *why = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (why) {
        return why;
    }
    if (!current_host) {
        return "WasmCacheDir: mod_wasm was not initialised";
    }
    if (strcasecmp(arg, "off") != 0) {
        dir = ap_server_root_relative(cmd->temp_pool, arg);
        if (!dir) {
            return apr_psprintf(cmd->pool, "WasmCacheDir: invalid path '%s'", arg);
        }
    }
    if (mw_host_set_cache_dir(current_host, (mw_bytes){(const uint8_t *)dir, strlen(dir)},
                              err, sizeof(err)) != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "WasmCacheDir: %s", err);
    }
    return NULL;
}

/* The status page's counters for the guest at path in section. */
static const mw_stats *stats_of(const char *section, const char *path, mw_guest_kind kind)
{
    return mw_stats_for((mw_bytes){(const uint8_t *)section, strlen(section)},
                        (mw_bytes){(const uint8_t *)path, strlen(path)}, kind);
}

/* The SetHandler that covers this directive in the configuration as
 * written: in its own section or in one around it. NULL if none. (A
 * section elsewhere that matches the same URLs can also set it; Apache
 * merges those per request, which the parse tree cannot show.) */
static const ap_directive_t *last_set_handler(const ap_directive_t *d)
{
    const ap_directive_t *found = NULL;

    for (; d; d = d->next) {
        if (strcasecmp(d->directive, "SetHandler") == 0) {
            found = d;
        }
    }
    return found;
}

static const ap_directive_t *covering_set_handler(const ap_directive_t *d)
{
    const ap_directive_t *section, *set;

    for (section = d->parent; section; section = section->parent) {
        if ((set = last_set_handler(section->first_child))) {
            return set;
        }
    }
    return last_set_handler(ap_conftree);
}

/* A guest in a section that does not hand its requests to wasm-handler is
 * never run: Apache answers 404 (or serves a file) and nothing says why.
 * Said at start-up, with the section, file and line. */
static void check_handler(cmd_parms *cmd)
{
    const ap_directive_t *set = covering_set_handler(cmd->directive);
    const char *args = set ? set->args : NULL;
    const char *handler = set ? ap_getword_conf(cmd->temp_pool, &args) : NULL;

    if (handler && strcmp(handler, MW_HANDLER_NAME) == 0) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                 MWLOGNO(00044) "%s in %s at %s:%d is never run: %s", cmd->cmd->name,
                 section_of(cmd), cmd->directive->filename, cmd->directive->line_num,
                 handler ? apr_psprintf(cmd->temp_pool, "its requests go to the handler '%s' "
                                        "(SetHandler at %s:%d), not " MW_HANDLER_NAME,
                                        handler, set->filename, set->line_num)
                         : "add SetHandler " MW_HANDLER_NAME " to the section (none is set "
                           "in it or around it)");
}

/* What WasmComponent and WasmAccessChecker do once the path is checked:
 * compile the component (or find it in a cache), log how, and describe
 * the directive for log lines and the status page. */
static const char *add_component(cmd_parms *cmd, const char *path,
                                 const mw_component **component, const char **where,
                                 const char **section, const mw_stats **stats)
{
    mw_outcome outcome;
    char err[MW_ERROR_LEN] = "";

    decide_cache_dir(cmd);
    if (mw_host_add_component(current_host, (mw_bytes){(const uint8_t *)path, strlen(path)},
                              component, &outcome, err, sizeof(err)) != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    log_compiled(cmd, path, mw_component_guest_kind(*component), outcome);
    *where = where_of(cmd, path);
    *section = cmd->path ? cmd->path : "/";
    *stats = stats_of(*section, path, mw_component_guest_kind(*component));
    return NULL;
}

/* WasmComponent <path>: validated and compiled right here, so that a bad
 * file stops start-up (and `apachectl -t`) with this file and line. */
static const char *set_component(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    const char *path, *why = guest_path(cmd, arg, conf->module, &path);

    if (why) {
        return why;
    }
    if (conf->args->nelts || conf->entry_point || conf->cgi != MW_UNSET ||
        conf->map_cgi_filenames != MW_UNSET) {
        return apr_psprintf(cmd->pool, "%s: this section has WasmArg, WasmEntryPoint, "
                            "WasmEnableCGI or WasmMapCGIFileNames, which apply to a "
                            "WasmModule (legacy mode) only", cmd->cmd->name);
    }
    if ((why = add_component(cmd, path, &conf->component, &conf->where, &conf->section,
                             &conf->stats))) {
        return why;
    }
    check_handler(cmd);
    return NULL;
}

/* WasmAccessChecker <path>|Off (access.c runs it): compiled here too. */
static const char *set_access_checker(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    const char *path, *why;

    conf->checker_set = 1;
    if (strcasecmp(arg, "off") == 0) {
        conf->checker = NULL;
        return NULL;
    }
    if ((why = guest_path(cmd, arg, NULL, &path))) {
        return why;
    }
    return add_component(cmd, path, &conf->checker, &conf->checker_where,
                         &conf->checker_section, &conf->checker_stats);
}

/* WasmMiddleware <path>|Off (middleware.c runs them): a WASI 0.3
 * component, compiled here too, around whatever serves the section. */
static const char *add_middleware(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    mw_layer *layer;
    const char *path, *why;

    if (strcasecmp(arg, "off") == 0) {
        conf->middlewares_off = 1;
        apr_array_clear(conf->middlewares);
        return NULL;
    }
    if ((why = guest_path(cmd, arg, NULL, &path))) {
        return why;
    }
    layer = apr_array_push(conf->middlewares);
    if ((why = add_component(cmd, path, &layer->component, &layer->where, &layer->section,
                             &layer->stats))) {
        return why;
    }
    if (mw_component_guest_kind(layer->component) != MW_GUEST_KIND_COMPONENT03) {
        return apr_psprintf(cmd->pool, "%s: %s is a WASI 0.2 component; a middleware is a "
                            "WASI 0.3 component (world wasi:http/middleware, which imports "
                            "and exports wasi:http/handler@0.3.0)", cmd->cmd->name, path);
    }
    return NULL;
}

static apr_status_t release_module(void *module)
{
    mw_module_release(module);
    return APR_SUCCESS;
}

/* WasmModule <path>: a WASI preview1 module (legacy mode). Compiled like a
 * component when the server's configuration is read; in an .htaccess file
 * (read by a child while serving), compiled by that child on first use. */
static const char *set_module(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    const char *path, *why = guest_path(cmd, arg, conf->component, &path);
    mw_outcome outcome;
    char err[MW_ERROR_LEN] = "";
    mw_bytes bytes;
    mw_result rv;

    if (why) {
        return why;
    }
    if (conf->outgoing->nelts) {
        return apr_psprintf(cmd->pool, "%s: this section has WasmAllowOutgoing, which "
                            "applies to components only", cmd->cmd->name);
    }
    if (conf->reuse > 1) {
        return apr_psprintf(cmd->pool, "%s: this section has WasmInstanceReuse, which "
                            "applies to components only", cmd->cmd->name);
    }
    bytes = (mw_bytes){(const uint8_t *)path, strlen(path)};
    if (in_htaccess(cmd)) {
        rv = mw_host_htaccess_module(current_host, bytes, &conf->module, err, sizeof(err));
        if (rv == MW_RESULT_OK) {
            /* The module is this configuration's until its pool goes. */
            apr_pool_cleanup_register(cmd->pool, conf->module, release_module,
                                      apr_pool_cleanup_null);
            conf->module_in_htaccess = 1;
        }
    }
    else {
        decide_cache_dir(cmd);
        rv = mw_host_add_module(current_host, bytes, &conf->module, &outcome, err, sizeof(err));
    }
    if (rv != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (!in_htaccess(cmd)) {
        log_compiled(cmd, path, MW_GUEST_KIND_MODULE, outcome);
        check_handler(cmd);
    }
    conf->module_name = apr_filepath_name_get(path);
    conf->where = where_of(cmd, path);
    conf->section = cmd->path ? cmd->path : "/";
    conf->stats = stats_of(conf->section, path, MW_GUEST_KIND_MODULE);
    return NULL;
}

/* A numeric directive's value, read by the host (host/src/directive.rs). */
static const char *parse_number(cmd_parms *cmd, mw_number kind, const char *arg,
                                uint64_t *value)
{
    char err[MW_ERROR_LEN] = "";

    if (mw_parse_number(kind, (mw_bytes){(const uint8_t *)arg, strlen(arg)}, value, err,
                        sizeof(err)) != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    return NULL;
}

/* WasmTimeout <seconds>: decimals allowed, e.g. 0.5. */
static const char *set_timeout(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    uint64_t ms;
    const char *why = parse_number(cmd, MW_NUMBER_TIMEOUT, arg, &ms);

    if (!why) {
        conf->timeout_ms = ms;
    }
    return why;
}

/* WasmMemoryLimit <size>: bytes, or with a K, M or G suffix (powers of 1024). */
static const char *set_memory_limit(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    uint64_t bytes;
    const char *why = parse_number(cmd, MW_NUMBER_MEMORY_LIMIT, arg, &bytes);

    if (!why) {
        conf->memory_limit = bytes;
    }
    return why;
}

/* WasmMaxInstances <n>: at most n simultaneous requests of this section
 * (nested sections included, unless they set their own cap) per child
 * process. The count belongs to this directive. */
static const char *set_max_instances(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    uint64_t n;
    const char *why = parse_number(cmd, MW_NUMBER_COUNT, arg, &n);

    if (why) {
        return why;
    }
    conf->max_instances = (int)n;
    conf->in_use = apr_pcalloc(cmd->pool, sizeof(*conf->in_use));
    return NULL;
}

/* WasmInstanceReuse Off|<n> [concurrent=<k>]: an instance of the component
 * serves up to n requests instead of one; a WASI 0.3 instance up to k of them
 * at once. */
static const char *set_reuse(cmd_parms *cmd, void *dir_conf, const char *arg,
                             const char *concurrent)
{
    static const char keyword[] = "concurrent=";
    mw_dir_config *conf = dir_conf;
    uint64_t n, k = 1;
    const char *why = parse_number(cmd, MW_NUMBER_COUNT_OR_OFF, arg, &n);

    if (why) {
        return why;
    }
    if (concurrent) {
        if (ap_cstr_casecmpn(concurrent, keyword, sizeof(keyword) - 1)) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not concurrent=<requests at once>",
                                cmd->cmd->name, concurrent);
        }
        why = parse_number(cmd, MW_NUMBER_COUNT, concurrent + sizeof(keyword) - 1, &k);
        if (why) {
            return why;
        }
        if (k > 1 && n <= 1) {
            return apr_psprintf(cmd->pool, "%s: concurrent= shares an instance between "
                                "requests, which needs a number of requests, not Off",
                                cmd->cmd->name);
        }
    }
    if (n > 1 && conf->module) {
        return apr_psprintf(cmd->pool, "%s applies to components only: a WASI preview1 "
                            "module (WasmModule, as in this section) runs once per request",
                            cmd->cmd->name);
    }
    conf->reuse = (int)n;
    conf->concurrency = (int)k;
    return NULL;
}

/* WasmEnv <name> <value> */
static const char *add_env(cmd_parms *cmd, void *dir_conf, const char *name, const char *value)
{
    mw_dir_config *conf = dir_conf;
    if (!*name || strchr(name, '=')) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a variable name (empty, or contains "
                            "'=')", cmd->cmd->name, name);
    }
    note_htaccess_grant(cmd, conf);
    *(mw_header *)apr_array_push(conf->env) = (mw_header){
        {(const uint8_t *)name, strlen(name)}, {(const uint8_t *)value, strlen(value)}};
    return NULL;
}

/* Grants the host directory `host` to the guest as `guest`; `mode` is NULL,
 * "ro" or "rw". The directory must exist when the configuration is read. */
static const char *add_dir(cmd_parms *cmd, mw_dir_config *conf, const char *guest,
                           const char *host, const char *mode)
{
    const char *path = ap_server_root_relative(cmd->pool, host);
    bool read_only = false;
    apr_finfo_t info;
    apr_status_t rv;

    if (mode && strcasecmp(mode, "ro") == 0) {
        read_only = true;
    }
    else if (mode && strcasecmp(mode, "rw") != 0) {
        return apr_psprintf(cmd->pool, "%s: the access mode '%s' is not ro or rw",
                            cmd->cmd->name, mode);
    }
    if (!*guest) {
        return apr_psprintf(cmd->pool, "%s: the guest path is empty", cmd->cmd->name);
    }
    if (!path) {
        return apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, host);
    }
    rv = apr_stat(&info, path, APR_FINFO_TYPE, cmd->pool);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: %s: %pm", cmd->cmd->name, path, &rv);
    }
    if (info.filetype != APR_DIR) {
        return apr_psprintf(cmd->pool, "%s: %s is not a directory", cmd->cmd->name, path);
    }
    note_htaccess_grant(cmd, conf);
    /* Checked once the children's User is known (an .htaccess file is read
     * by a child, which has it already). */
    if (!in_htaccess(cmd) && current_host) {
        const char *place = where_of(cmd, path);
        mw_host_note_grant(current_host, (mw_bytes){(const uint8_t *)path, strlen(path)},
                           (mw_bytes){(const uint8_t *)place, strlen(place)});
    }
    *(mw_dir *)apr_array_push(conf->dirs) = (mw_dir){
        {(const uint8_t *)guest, strlen(guest)}, {(const uint8_t *)path, strlen(path)},
        read_only};
    return NULL;
}

/* WasmDir <dir> [ro|rw]: the guest sees the directory at the same path. */
static const char *add_same_dir(cmd_parms *cmd, void *dir_conf, const char *dir,
                                const char *mode)
{
    const char *path = ap_server_root_relative(cmd->pool, dir);
    return add_dir(cmd, dir_conf, path ? path : dir, dir, mode);
}

/* WasmMapDir <guest> <host> [ro|rw] */
static const char *add_mapped_dir(cmd_parms *cmd, void *dir_conf, const char *guest,
                                  const char *host, const char *mode)
{
    return add_dir(cmd, dir_conf, guest, host, mode);
}

static apr_status_t free_rule(void *rule)
{
    mw_outgoing_rule_free(rule);
    return APR_SUCCESS;
}

/* WasmAllowOutgoing <pattern>...: parsed now, so that a bad pattern stops
 * start-up. */
static const char *add_outgoing(cmd_parms *cmd, void *dir_conf, const char *pattern)
{
    mw_dir_config *conf = dir_conf;
    const mw_outgoing_rule *rule = NULL;
    char err[MW_ERROR_LEN] = "";
    if (conf->module) {
        return apr_psprintf(cmd->pool, "%s applies to components only: a WASI preview1 "
                            "module (WasmModule, as in this section) has no HTTP client",
                            cmd->cmd->name);
    }
    if (mw_outgoing_rule_new((mw_bytes){(const uint8_t *)pattern, strlen(pattern)}, &rule, err,
                             sizeof(err)) != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    apr_pool_cleanup_register(cmd->pool, rule, free_rule, apr_pool_cleanup_null);
    *(const mw_outgoing_rule **)apr_array_push(conf->outgoing) = rule;
    return NULL;
}

/* The legacy-only directives (argv, entry point, CGI) shape how a module
 * runs; next to a component in one section they would silently do
 * nothing, so they are refused there. In an .htaccess file they change the
 * admin's module like a grant does, so they need what grants need. */
static const char *legacy_only(cmd_parms *cmd, mw_dir_config *conf)
{
    if (conf->component) {
        return apr_psprintf(cmd->pool, "%s applies to a WasmModule (legacy mode) only, and "
                            "this section serves a component (WasmComponent)",
                            cmd->cmd->name);
    }
    note_htaccess(cmd, &conf->htaccess_change);
    return NULL;
}

/* WasmArg <arg>: appended to argv, after the module's file name. */
static const char *add_arg(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    const char *why = legacy_only(cmd, conf);
    if (why) {
        return why;
    }
    *(const char **)apr_array_push(conf->args) = arg;
    return NULL;
}

/* WasmEntryPoint <export>: whether the module has it is known per request
 * only (a nested section may name another module); a missing export is a
 * 500 with its name in the log. */
static const char *set_entry_point(cmd_parms *cmd, void *dir_conf, const char *name)
{
    const char *why = legacy_only(cmd, dir_conf);
    if (!why) {
        ((mw_dir_config *)dir_conf)->entry_point = name;
    }
    return why;
}

static const char *set_cgi(cmd_parms *cmd, void *dir_conf, int on)
{
    const char *why = legacy_only(cmd, dir_conf);
    if (!why) {
        ((mw_dir_config *)dir_conf)->cgi = on;
    }
    return why;
}

static const char *set_map_cgi_filenames(cmd_parms *cmd, void *dir_conf, int on)
{
    const char *why = legacy_only(cmd, dir_conf);
    if (!why) {
        ((mw_dir_config *)dir_conf)->map_cgi_filenames = on;
    }
    return why;
}

/* A component file below a WasmFileRoutes directory that cannot be served:
 * its own requests will fail, start-up goes on. */
static void route_not_ready(void *ctx, mw_bytes why)
{
    cmd_parms *cmd = ctx;
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                 MWLOGNO(00034) "%s at %s:%d: %.*s; its requests will get 500", cmd->cmd->name,
                 cmd->directive->filename, cmd->directive->line_num, (int)why.len,
                 (const char *)why.ptr);
}

/* WasmFileRoutes On|Off: in a <Directory> section, whose directory is where
 * the routes start (routes.c). Its component files are compiled now, as
 * WasmComponent files are, so that the children start with them. */
static const char *set_file_routes(cmd_parms *cmd, void *dir_conf, int on)
{
    mw_dir_config *conf = dir_conf;
    const ap_directive_t *section = cmd->directive->parent;
    size_t ready;

    /* <Directory ~ "regex"> is a <DirectoryMatch> by another name. */
    if (!section || strcasecmp(section->directive, "<Directory") != 0 || !cmd->path ||
        in_htaccess(cmd) || section->args[strspn(section->args, "\"'")] == '~') {
        return apr_psprintf(cmd->pool, "%s belongs in a <Directory> section (not "
                            "<DirectoryMatch> or <Directory ~>): its directory is where the "
                            "routes start",
                            cmd->cmd->name);
    }
    conf->file_routes = on;
    conf->routes_root = cmd->path;
    if (on) {
        mw_add_route_root(cmd->path);
    }
    if (on && current_host) {
        decide_cache_dir(cmd);
        ready = mw_host_preload_routes(current_host,
                                       (mw_bytes){(const uint8_t *)cmd->path,
                                                  strlen(cmd->path)},
                                       cmd, route_not_ready);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, cmd->server,
                     MWLOGNO(00035) "%" APR_SIZE_T_FMT " component files below %s are ready "
                     "(%s:%d)", ready, cmd->path, cmd->directive->filename,
                     cmd->directive->line_num);
    }
    return NULL;
}

/* Where directives may appear. The limits, WasmComponent and
 * WasmAllowOutgoing are the admin's alone. The directives VMware's mod_wasm
 * 0.12 had may also appear in .htaccess files under AllowOverride Options,
 * as they could there; see README "Legacy mode" for what that grants. */
#define MW_ADMIN_ONLY (RSRC_CONF | ACCESS_CONF)
#define MW_LEGACY (RSRC_CONF | ACCESS_CONF | OR_OPTIONS)

const command_rec mw_directives[] = {
    AP_INIT_TAKE1("WasmComponent", set_component, NULL, MW_ADMIN_ONLY,
                  "a WebAssembly component exporting wasi:http/incoming-handler "
                  "to serve requests handled by " MW_HANDLER_NAME),
    AP_INIT_TAKE1("WasmAccessChecker", set_access_checker, NULL, MW_ADMIN_ONLY,
                  "a WebAssembly component that decides, after Apache's access control, "
                  "whether a request goes on: a 2xx answer allows it, any other is the "
                  "response; or Off"),
    AP_INIT_TAKE1("WasmMiddleware", add_middleware, NULL, MW_ADMIN_ONLY,
                  "a WASI 0.3 component (world wasi:http/middleware) around whatever "
                  "serves the section, inside those of the sections around it; or Off"),
    AP_INIT_TAKE1("WasmModule", set_module, NULL, MW_LEGACY,
                  "a WASI preview1 module to run for each request handled by "
                  MW_HANDLER_NAME "; its stdout is the response"),
    AP_INIT_ITERATE("WasmArg", add_arg, NULL, MW_LEGACY,
                    "arguments for the module, after its file name"),
    AP_INIT_TAKE1("WasmEntryPoint", set_entry_point, NULL, MW_LEGACY,
                  "the export of the module to call instead of _start"),
    AP_INIT_FLAG("WasmEnableCGI", set_cgi, NULL, MW_LEGACY,
                 "On: the module gets the CGI environment and writes CGI headers "
                 "(default Off)"),
    AP_INIT_FLAG("WasmMapCGIFileNames", set_map_cgi_filenames, NULL, MW_LEGACY,
                 "On: SCRIPT_FILENAME is translated to the module's view through the "
                 "WasmMapDir mappings (default Off)"),
    AP_INIT_TAKE1("WasmTimeout", set_timeout, NULL, MW_ADMIN_ONLY,
                  "seconds a request may take before its guest is stopped (default 60)"),
    AP_INIT_TAKE1("WasmMemoryLimit", set_memory_limit, NULL, MW_ADMIN_ONLY,
                  "the size each linear memory of a guest may reach, e.g. 64M "
                  "(default 128M)"),
    AP_INIT_TAKE1("WasmMaxInstances", set_max_instances, NULL, MW_ADMIN_ONLY,
                  "simultaneous requests of this section per child process; more "
                  "get 503 (default: no cap)"),
    AP_INIT_TAKE12("WasmInstanceReuse", set_reuse, NULL, MW_ADMIN_ONLY,
                   "Off, or how many requests one instance of the component serves; its "
                   "memory carries over (default Off). concurrent=<k>: a WASI 0.3 "
                   "instance serves up to k of them at once (default 1)"),
    AP_INIT_TAKE2("WasmEnv", add_env, NULL, MW_LEGACY,
                  "an environment variable for the guest: name and value"),
    AP_INIT_TAKE12("WasmDir", add_same_dir, NULL, MW_LEGACY,
                   "a host directory the guest may open at the same path; ro or rw "
                   "(default rw)"),
    AP_INIT_TAKE23("WasmMapDir", add_mapped_dir, NULL, MW_LEGACY,
                   "the guest path and the host directory it opens; ro or rw "
                   "(default rw)"),
    AP_INIT_ITERATE("WasmAllowOutgoing", add_outgoing, NULL, MW_ADMIN_ONLY,
                    "destinations of outgoing HTTP requests: [scheme://]host[:port]"),
    AP_INIT_TAKE1("WasmStateDir", mw_set_state_dir, NULL, RSRC_CONF,
                  "where sqlite: key-value stores without a file of their own keep it "
                  "(default: state/mod_wasm under ServerRoot)"),
    AP_INIT_TAKE_ARGV("WasmKeyValueStore", mw_add_kv_store, NULL, RSRC_CONF,
                      "a key-value store for guests: <label> sqlite:[<file>]|redis[s]://<host>"
                      "[:<port>][/<db>] [max-value=<size>] [max-ops=<n>] [timeout=<seconds>] "
                      "[ca=<file>]"),
    AP_INIT_ITERATE("WasmKeyValue", mw_grant_kv_store, NULL, MW_ADMIN_ONLY,
                    "labels of the key-value stores this section's components may open"),
    AP_INIT_TAKE2("WasmConfigVar", mw_add_config_var, NULL, MW_ADMIN_ONLY,
                  "a wasi:config variable for this section's components: <name> <value>"),
    AP_INIT_FLAG("WasmFileRoutes", set_file_routes, NULL, ACCESS_CONF,
                 "On: a URL below this <Directory> that names no file is served by the "
                 "component its path names, e.g. api/hello.wasm or users/[id].wasm, or "
                 "by a static file from public/ (default Off)"),
    AP_INIT_TAKE1("WasmCacheDir", set_cache_dir, NULL, RSRC_CONF,
                  "where compiled code is kept across restarts, or off; before the "
                  "first WasmComponent or WasmModule (default: mod_wasm in the "
                  "runtime directory)"),
    {NULL}
};
