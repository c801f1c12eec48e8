/* A CGI program in C, compiled to WASI preview1 with Debian's clang and
 * wasi-libc: greets the name in the query (?name=...), and tells how many
 * bytes of request body it read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    const char *query = getenv("QUERY_STRING");
    const char *method = getenv("REQUEST_METHOD");
    const char *name = "world";
    char buf[4096];
    size_t n, total = 0;

    if (query && strncmp(query, "name=", 5) == 0 && query[5]) {
        name = query + 5;
    }
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
        total += n;
    }
    printf("Content-Type: text/plain\r\n\r\n");
    printf("Hello, %s, from C!\n", name);
    printf("%s request, %zu bytes of body\n", method ? method : "no", total);
    return 0;
}
