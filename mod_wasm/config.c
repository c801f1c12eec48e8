/* Directives and per-directory configuration. */
#include "mod_wasm.h"

#include "http_log.h"
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
    return apr_pcalloc(p, sizeof(mw_dir_config));
}

void *mw_merge_dir_config(apr_pool_t *p, void *base_conf, void *add_conf)
{
    const mw_dir_config *base = base_conf, *add = add_conf;
    mw_dir_config *conf = apr_pcalloc(p, sizeof(*conf));
    /* The component and the description of its directive travel together. */
    if (add->component) {
        conf->component = add->component;
        conf->component_where = add->component_where;
    }
    else {
        conf->component = base->component;
        conf->component_where = base->component_where;
    }
    return conf;
}

/* "<Location /app>", or the server or virtual host the directive is in. */
static const char *section_of(cmd_parms *cmd)
{
    const ap_directive_t *parent = cmd->directive->parent;
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

/* WasmComponent <path>: validated and compiled right here, so that a bad
 * file stops start-up (and `apachectl -t`) with this file and line. */
static const char *set_component(cmd_parms *cmd, void *dir_conf, const char *arg)
{
    mw_dir_config *conf = dir_conf;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    const mw_component *component = NULL;
    bool compiled = false;
    char err[MW_ERROR_LEN] = "";
    mw_result rv;

    if (!path) {
        return apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, arg);
    }
    if (!current_host) {
        return apr_psprintf(cmd->pool, "%s: mod_wasm was not initialised", cmd->cmd->name);
    }
    rv = mw_host_add_component(current_host, (mw_bytes){(const uint8_t *)path, strlen(path)},
                               &component, &compiled, err, sizeof(err));
    if (rv != MW_RESULT_OK) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, cmd->server,
                 "MW00001: %s %s (%s:%d)", compiled ? "compiled" : "reused compiled",
                 path, cmd->directive->filename, cmd->directive->line_num);
    conf->component = component;
    conf->component_where = apr_psprintf(cmd->pool, "%s %s in %s at %s:%d", cmd->cmd->name, path,
                                         section_of(cmd), cmd->directive->filename,
                                         cmd->directive->line_num);
    return NULL;
}

const command_rec mw_directives[] = {
    AP_INIT_TAKE1("WasmComponent", set_component, NULL, RSRC_CONF | ACCESS_CONF,
                  "a WebAssembly component exporting wasi:http/incoming-handler "
                  "to serve requests handled by " MW_HANDLER_NAME),
    {NULL}
};
