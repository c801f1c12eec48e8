/* What lets a guest keep state and read configuration: the key-value
 * stores (WasmStateDir, WasmKeyValueStore, WasmKeyValue) and the wasi:config
 * variables (WasmConfigVar). The stores themselves live in the host; this
 * side reads the directives and hands each section its store handles. */
#include "mod_wasm.h"

#include "http_log.h"
#include "http_main.h"
#include "apr_strings.h"
#include "unixd.h"

APLOG_USE_MODULE(wasm);

/* WasmStateDir, absolute, or NULL for the default; and the first
 * WasmKeyValueStore that used it, which a later WasmStateDir may not move. */
static const char *state_dir;
static const char *state_dir_used_at;

void mw_reset_state_dir(void)
{
    state_dir = NULL;
    state_dir_used_at = NULL;
}

static mw_bytes bytes_of(const char *text)
{
    return (mw_bytes){(const uint8_t *)text, strlen(text)};
}

/* WasmStateDir <dir>: where `sqlite:` stores without a file keep theirs. */
const char *mw_set_state_dir(cmd_parms *cmd, void *dir_conf, const char *dir)
{
    const char *path = ap_server_root_relative(cmd->pool, dir);
    (void)dir_conf;
    if (cmd->server->is_virtual) {
        return apr_psprintf(cmd->pool, "%s belongs in the main server config: one state "
                            "directory serves every virtual host", cmd->cmd->name);
    }
    if (!path) {
        return apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, dir);
    }
    if (state_dir_used_at) {
        return apr_psprintf(cmd->pool, "%s must come before the stores that keep their file "
                            "in it: %s already does", cmd->cmd->name, state_dir_used_at);
    }
    state_dir = path;
    return NULL;
}

static apr_status_t free_store(void *store)
{
    mw_kv_store_free(store);
    return APR_SUCCESS;
}

/* WasmKeyValueStore <label> <url> [option=value]...: declared for the
 * server or virtual host it is in; checked now, opened by the children. */
const char *mw_add_kv_store(cmd_parms *cmd, void *dir_conf, int argc, char *const argv[])
{
    mw_bytes *options;
    const char *dir, *place;
    char err[MW_ERROR_LEN] = "";
    int i;
    (void)dir_conf;

    if (argc < 2) {
        return apr_psprintf(cmd->pool, "%s takes a label, a URL and options", cmd->cmd->name);
    }
    if (!mw_current_host()) {
        return NULL;
    }
    options = apr_pcalloc(cmd->pool, sizeof(mw_bytes) * (size_t)argc);
    for (i = 2; i < argc; i++) {
        options[i - 2] = bytes_of(argv[i]);
    }
    dir = state_dir ? state_dir : ap_server_root_relative(cmd->pool, "state/mod_wasm");
    place = apr_psprintf(cmd->pool, "%s %s at %s:%d", cmd->cmd->name, argv[0],
                         cmd->directive->filename, cmd->directive->line_num);
    if (mw_host_add_kv_store(mw_current_host(), cmd->server, bytes_of(argv[0]),
                             bytes_of(argv[1]), options, (size_t)(argc - 2), bytes_of(dir),
                             bytes_of(place), err, sizeof(err)) != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (strcasecmp(argv[1], "sqlite:") == 0 && !state_dir_used_at) {
        state_dir_used_at = place;
    }
    return NULL;
}

/* WasmKeyValue <label>...: the section's guests may open these stores,
 * the ones this virtual host (or else the main server) declared above. */
const char *mw_grant_kv_store(cmd_parms *cmd, void *dir_conf, const char *label)
{
    mw_dir_config *conf = dir_conf;
    const mw_kv_store *store = NULL;
    char err[MW_ERROR_LEN] = "";

    if (conf->module) {
        return apr_psprintf(cmd->pool, "%s applies to components only: a WASI preview1 "
                            "module (WasmModule, as in this section) has no wasi:keyvalue",
                            cmd->cmd->name);
    }
    if (!mw_current_host()) {
        return NULL;
    }
    /* ap_server_conf is the main server while directives are processed. */
    if (mw_host_kv_store(mw_current_host(), cmd->server, ap_server_conf, bytes_of(label), &store,
                         err, sizeof(err)) != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    apr_pool_cleanup_register(cmd->pool, store, free_store, apr_pool_cleanup_null);
    *(const mw_kv_store **)apr_array_push(conf->stores) = store;
    return NULL;
}

/* WasmConfigVar <name> <value>: a wasi:config variable of the section. */
const char *mw_add_config_var(cmd_parms *cmd, void *dir_conf, const char *name,
                              const char *value)
{
    mw_dir_config *conf = dir_conf;
    if (!*name) {
        return apr_psprintf(cmd->pool, "%s: the variable name is empty", cmd->cmd->name);
    }
    *(mw_header *)apr_array_push(conf->config) = (mw_header){bytes_of(name), bytes_of(value)};
    return NULL;
}

static void store_file_unsafe(void *server, mw_bytes why)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, server, MWLOGNO(00052) "%.*s", (int)why.len,
                 (const char *)why.ptr);
}

int mw_check_kv_stores(server_rec *s)
{
    mw_host *host = mw_current_host();
    if (!host) {
        return 0;
    }
    return (int)mw_host_check_kv_stores(host, (uint32_t)ap_unixd_config.user_id,
                                        (uint32_t)ap_unixd_config.group_id, s,
                                        store_file_unsafe);
}
