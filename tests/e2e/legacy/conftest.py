"""Legacy mode: the site the legacy-mode tests talk to (WASI preview1
modules served with WasmModule). {legacy} is the legacy test guest: argv[1]
(WasmArg) or `mode=` in the query picks what it does."""

import os

import pytest

from apache import HELLO, LEGACY, Site

LEGACY_SITE = """
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
DocumentRoot {dir}/htdocs
# .htaccess files may use the legacy directives (AllowOverride Options), as
# with the original mod_wasm; SetHandler needs FileInfo.
<Directory {dir}/htdocs>
    AllowOverride Options FileInfo
    Options +ExecCGI
</Directory>
<Directory {dir}/htdocs/no-options>
    AllowOverride FileInfo
</Directory>
# The .htaccess may name a module, but not run it: no ExecCGI, and
# Options=Indexes cannot turn it on.
<Directory {dir}/htdocs/no-execcgi>
    AllowOverride FileInfo Options=Indexes
    Options -ExecCGI
</Directory>
# The admin's module, where an .htaccess may not add grants without ExecCGI.
<Directory {dir}/htdocs/admin-module>
    SetHandler wasm-handler
    WasmModule {legacy}
    WasmArg env
    AllowOverride Options=Indexes
    Options -ExecCGI
</Directory>
# Nor change how it runs (its argv here).
<Directory {dir}/htdocs/admin-module-arg>
    SetHandler wasm-handler
    WasmModule {legacy}
    WasmArg env
    AllowOverride Options=Indexes
    Options -ExecCGI
</Directory>
# An admin's component: an .htaccess may not widen its grants.
<Directory {dir}/htdocs/component>
    SetHandler wasm-handler
    WasmComponent {guest}
</Directory>

# Plain mode: stdout is the response.
<Location /plain>
    SetHandler wasm-handler
    WasmModule {legacy}
    WasmTimeout 5
</Location>
<Location /plain/hello>
    WasmArg hello
</Location>
<Location /plain/args>
    WasmArg args "two words" third
</Location>
<Location /plain/env>
    WasmArg env
    WasmEnv GREETING hello
    WasmEnv SHARED parent
</Location>
# Appends to /plain/env: one more argument, and its SHARED wins.
<Location /plain/env/nested>
    WasmArg ignored-by-env
    WasmEnv SHARED child
</Location>
<Location /plain/big>
    WasmArg big
    WasmEnv MIB 1024
    WasmTimeout 120
</Location>
<Location /plain/slow>
    WasmArg slow
</Location>
<Location /plain/stderr>
    WasmArg stderr
</Location>
<Location /plain/trap>
    WasmArg trap
</Location>
<Location /plain/exit>
    WasmArg exit
</Location>
<Location /plain/exit-after>
    WasmArg exit-after
</Location>
<Location /plain/spin>
    WasmArg spin
    WasmTimeout 0.5
</Location>
# Sleeping in the host (poll_oneoff) is bounded by WasmTimeout too.
<Location /plain/sleep>
    WasmArg sleep
    WasmEnv MS 30000
    WasmTimeout 0.5
</Location>
<Location /plain/alloc>
    WasmArg alloc
    WasmEnv MIB 64
    WasmMemoryLimit 16M
</Location>
<Location /plain/entry>
    WasmEntryPoint alt_entry
</Location>
<Location /plain/no-entry>
    WasmEntryPoint no_such_export
</Location>
# Files: PATH is the file the guest reads or writes (the guest gets no
# Apache environment in plain mode).
<Location /plain/files>
    WasmMapDir /data {dir}/data ro
    WasmMapDir /scratch {dir}/scratch
    WasmDir {dir}/same
</Location>
<Location /plain/files/read-mapped>
    WasmArg read
    WasmEnv PATH /data/hello.txt
</Location>
<Location /plain/files/read-same>
    WasmArg read
    WasmEnv PATH {dir}/same/x.txt
</Location>
<Location /plain/files/read-outside>
    WasmArg read
    WasmEnv PATH {dir}/secret.txt
</Location>
<Location /plain/files/write-ro>
    WasmArg write
    WasmEnv PATH /data/new.txt
</Location>
<Location /plain/files/write-rw>
    WasmArg write
    WasmEnv PATH /scratch/new.txt
</Location>

# CGI mode: the mode comes from the query.
<Location /cgi>
    SetHandler wasm-handler
    WasmModule {legacy}
    WasmEnableCGI On
    WasmEnv FROM_WASMENV yes
    WasmTimeout 5
</Location>
<Location /cgi/big-upload>
    WasmTimeout 120
</Location>
# A local Location redirects here.
<Location /target>
    SetHandler wasm-handler
    WasmModule {legacy}
    WasmArg hello
</Location>

# WasmMapCGIFileNames: SCRIPT_FILENAME as the module sees it.
Alias /mapped {dir}/app
<Directory {dir}/app>
    SetHandler wasm-handler
    WasmModule {legacy}
    WasmEnableCGI On
    WasmMapCGIFileNames On
    WasmMapDir /app {dir}/app
</Directory>

# A component location: .htaccess grants are refused there.
<Location /component>
    SetHandler wasm-handler
    WasmComponent {guest}
</Location>

<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    <Location /v>
        SetHandler wasm-handler
        WasmModule {legacy}
        WasmArg env
        WasmEnv VHOST a
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName b.test
    <Location /v>
        SetHandler wasm-handler
        WasmModule {legacy}
        WasmArg env
    </Location>
</VirtualHost>
"""


def prepare(server):
    """The directories LEGACY_SITE grants and serves."""
    root = server.dir
    for name in ("data", "scratch", "same", "app", "htdocs"):
        (root / name).mkdir()
    (root / "data" / "hello.txt").write_text("hello from data\n")
    (root / "same" / "x.txt").write_text("same path\n")
    (root / "secret.txt").write_text("secret\n")
    (root / "app" / "index.php").write_text("<?php echo 'not really php';\n")
    htaccess = {
        "legacy": f"SetHandler wasm-handler\nWasmModule {LEGACY}\nWasmArg env\n"
                  "WasmEnv FROM htaccess\n",
        "broken": "SetHandler wasm-handler\nWasmModule /nonexistent/module.wasm\n",
        "limits": f"SetHandler wasm-handler\nWasmModule {LEGACY}\nWasmTimeout 100\n",
        "no-options": f"SetHandler wasm-handler\nWasmModule {LEGACY}\n",
        "no-execcgi": f"SetHandler wasm-handler\nWasmModule {LEGACY}\nWasmArg hello\n",
        "component": "WasmEnv FROM htaccess\n",
        "admin-module": "WasmDir /\n",
        "admin-module-arg": "WasmArg hello\n",
        # A component where a module belongs.
        "not-a-module": f"SetHandler wasm-handler\nWasmModule {HELLO}\n",
    }
    for name, text in htaccess.items():
        (root / "htdocs" / name).mkdir()
        (root / "htdocs" / name / ".htaccess").write_text(text)
    # The children run as www-data when the tests run as root.
    os.chmod(root / "scratch", 0o777)


@pytest.fixture(scope="module")
def apache_site():
    return Site(LEGACY_SITE, "legacy", prepare)
