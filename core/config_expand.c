/*
 * config_expand.c - ${VAR} and ${VAR:-default} in config values, the way a
 * shell would: ${VAR} is empty when unset, ${VAR:-d} gives d when VAR is
 * unset or empty, $$ is a literal '$', a '$' before anything else is kept.
 * The default is literal text up to the first '}' (no nesting). Errors name
 * the offset of the offending "${". Not here: where values come from
 * (yaml_load.c calls this on every scalar).
 */
#include "config.h"

#include "buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Expand the "${...}" starting at in[*i]; advances *i past the '}'. */
static int expand_one(const char *in, size_t *i, buf_t *out, char *err,
                      size_t errlen)
{
    size_t start = *i, j = *i + 2, k;
    char name[256];
    const char *val, *close;

    if (!in[j]) {
        snprintf(err, errlen, "unterminated '${' at offset %zu", start);
        return -1;
    }
    if (!is_name_start(in[j])) {
        snprintf(err, errlen, "bad variable name in '${' at offset %zu", start);
        return -1;
    }
    for (k = j; is_name_char(in[k]); k++)
        ;
    if (k - j >= sizeof name) {
        snprintf(err, errlen, "variable name too long at offset %zu", start);
        return -1;
    }
    memcpy(name, in + j, k - j);
    name[k - j] = '\0';
    val = getenv(name);
    if (in[k] == '}') {
        buf_puts(out, val ? val : "");
        *i = k + 1;
        return 0;
    }
    close = in[k] == ':' && in[k + 1] == '-' ? strchr(in + k + 2, '}') : NULL;
    if (!close) {
        if (!in[k] || (in[k] == ':' && in[k + 1] == '-'))
            snprintf(err, errlen, "unterminated '${' at offset %zu", start);
        else
            snprintf(err, errlen,
                     "bad character '%c' in '${' at offset %zu (expected "
                     "'}' or ':-')",
                     isprint((unsigned char)in[k]) ? in[k] : '?', k);
        return -1;
    }
    if (val && *val)
        buf_puts(out, val);
    else
        buf_append(out, in + k + 2, (size_t)(close - (in + k + 2)));
    *i = (size_t)(close - in) + 1;
    return 0;
}

char *config_expand_env(const char *in, char *err, size_t errlen)
{
    buf_t out;
    size_t i = 0;

    buf_init(&out);
    buf_append(&out, "", 0); /* "" in, "" out (not NULL) */
    while (in[i]) {
        size_t run = strcspn(in + i, "$");

        buf_append(&out, in + i, run);
        i += run;
        if (!in[i])
            break;
        if (in[i + 1] == '$') {
            buf_append(&out, "$", 1);
            i += 2;
        } else if (in[i + 1] == '{') {
            if (expand_one(in, &i, &out, err, errlen))
                goto fail;
        } else {
            buf_append(&out, "$", 1); /* a lone '$' is literal */
            i++;
        }
    }
    if (out.oom) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return buf_steal(&out, NULL);
fail:
    buf_release(&out);
    return NULL;
}
