/*
 * yaml_load.c - one YAML document into a jansson tree plus a table of
 * "path -> line" for error messages. Event-driven (libyaml's parser), one
 * recursive descent over mappings and sequences, depth-bounded so that a
 * hostile file cannot exhaust the stack. No knowledge of the config shape
 * lives here: config.c validates the tree.
 */
#include "yaml_load.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YAML_MAX_DEPTH 64

#define TAG_STR "tag:yaml.org,2002:str"
#define TAG_MAP "tag:yaml.org,2002:map"
#define TAG_SEQ "tag:yaml.org,2002:seq"

struct loader {
    yaml_parser_t parser;
    const char *text;
    size_t len;
    const char *name;
    yaml_expand_fn expand;
    struct yaml_doc *doc;
    char *err;
    size_t errlen;
};

static int load_node(struct loader *ld, yaml_event_t *ev, const char *path,
                     int depth, json_t **out);

/* "name:line: path: message", or "name:line: message" at the root. */
static void loader_fail(struct loader *ld, int line, const char *path,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void loader_fail(struct loader *ld, int line, const char *path,
                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path)
        snprintf(ld->err, ld->errlen, "%s:%d: %s: %s", ld->name, line, path,
                 msg);
    else
        snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->name, line, msg);
}

static void loader_oom(struct loader *ld)
{
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->name);
}

/* 1-based line of a byte offset (reader errors carry no mark). */
static int line_at(const char *text, size_t len, size_t offset)
{
    int line = 1;

    for (size_t i = 0; i < offset && i < len; i++)
        if (text[i] == '\n')
            line++;
    return line;
}

static void loader_yaml_error(struct loader *ld)
{
    const yaml_parser_t *p = &ld->parser;
    int line = (int)p->problem_mark.line + 1;
    const char *problem = p->problem ? p->problem : "unknown problem";

    if (p->error == YAML_MEMORY_ERROR) {
        loader_oom(ld);
        return;
    }
    if (p->error == YAML_READER_ERROR)
        line = line_at(ld->text, ld->len, p->problem_offset);
    if (p->context)
        snprintf(ld->err, ld->errlen,
                 "%s:%d: YAML error: %s (%s started at line %d)", ld->name,
                 line, problem, p->context, (int)p->context_mark.line + 1);
    else
        snprintf(ld->err, ld->errlen, "%s:%d: YAML error: %s", ld->name, line,
                 problem);
}

static int next_event(struct loader *ld, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ld->parser, ev))
        return 0;
    loader_yaml_error(ld);
    return -1;
}

/* Take ownership of `path` and remember its line. */
static int doc_record(struct yaml_doc *doc, char *path, int line)
{
    if (doc->nlines == doc->cap) {
        size_t cap = doc->cap ? doc->cap * 2 : 32;
        struct yaml_line *n = realloc(doc->lines, cap * sizeof *n);

        if (!n) {
            free(path);
            return -1;
        }
        doc->lines = n;
        doc->cap = cap;
    }
    doc->lines[doc->nlines].path = path;
    doc->lines[doc->nlines].line = line;
    doc->nlines++;
    return 0;
}

static char *path_key(const char *parent, const char *key)
{
    size_t n = strlen(parent) + strlen(key) + 2;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s%s%s", parent, *parent ? "." : "", key);
    return p;
}

static char *path_index(const char *parent, size_t i)
{
    size_t n = strlen(parent) + 24;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s[%zu]", parent, i);
    return p;
}

int yaml_parse_int(const char *s, long long *out)
{
    const char *p = s;
    char *end;
    long long v;

    if (*p == '-' || *p == '+')
        p++;
    if (!*p)
        return -1;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static const char *skip_digits(const char *p, int *n)
{
    *n = 0;
    while (*p >= '0' && *p <= '9') {
        p++;
        (*n)++;
    }
    return p;
}

int yaml_parse_real(const char *s, double *out)
{
    const char *p = s;
    int nint, nfrac = 0, nexp;
    char *end;
    double v;

    if (*p == '-' || *p == '+')
        p++;
    p = skip_digits(p, &nint);
    if (*p == '.')
        p = skip_digits(p + 1, &nfrac);
    if (nint + nfrac == 0)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        p = skip_digits(p, &nexp);
        if (!nexp)
            return -1;
    }
    if (*p)
        return -1;
    v = strtod(s, &end);
    if (*end || isinf(v) || isnan(v))
        return -1;
    *out = v;
    return 0;
}

static int is_one_of(const char *s, const char *a, const char *b, const char *c)
{
    return !strcmp(s, a) || !strcmp(s, b) || !strcmp(s, c);
}

/* Type an unquoted scalar the way YAML 1.2's core schema would, minus the
 * exotic forms (0x, 0o, .inf, .nan). */
static json_t *scalar_plain(const char *s)
{
    long long i;
    double d;

    if (!*s || !strcmp(s, "~") || is_one_of(s, "null", "Null", "NULL"))
        return json_null();
    if (is_one_of(s, "true", "True", "TRUE"))
        return json_true();
    if (is_one_of(s, "false", "False", "FALSE"))
        return json_false();
    if (!yaml_parse_int(s, &i))
        return json_integer(i);
    if (!yaml_parse_real(s, &d))
        return json_real(d);
    return json_string(s);
}

/* "tag:yaml.org,2002:int" reads better as "!!int". */
static void fail_tag(struct loader *ld, int line, const char *path,
                     const char *tag)
{
    static const char std[] = "tag:yaml.org,2002:";

    if (!strncmp(tag, std, sizeof std - 1))
        loader_fail(ld, line, path, "YAML tag !!%s is not supported",
                    tag + sizeof std - 1);
    else
        loader_fail(ld, line, path, "YAML tag %s is not supported", tag);
}

static int load_scalar(struct loader *ld, yaml_event_t *ev, const char *path,
                       int line, json_t **out)
{
    const char *raw = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    char msg[256] = "";
    char *text;

    if (tag && strcmp(tag, TAG_STR)) {
        fail_tag(ld, line, path, tag);
        return -1;
    }
    if (strlen(raw) != ev->data.scalar.length) {
        loader_fail(ld, line, path, "value contains a NUL character");
        return -1;
    }
    text = ld->expand ? ld->expand(raw, msg, sizeof msg) : strdup(raw);
    if (!text) {
        if (ld->expand)
            loader_fail(ld, line, path, "%s", msg);
        else
            loader_oom(ld);
        return -1;
    }
    *out = plain && !tag ? scalar_plain(text) : json_string(text);
    free(text);
    if (!*out) {
        loader_fail(ld, line, path, "value is not valid UTF-8");
        return -1;
    }
    return 0;
}

static int load_sequence(struct loader *ld, const char *path, int depth,
                         json_t **out)
{
    json_t *arr = json_array();
    yaml_event_t ev;

    if (!arr)
        goto oom;
    for (size_t i = 0;; i++) {
        json_t *item;
        char *ipath;

        if (next_event(ld, &ev))
            goto fail;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        ipath = path_index(path, i);
        if (!ipath || doc_record(ld->doc, ipath, ev.start_mark.line + 1)) {
            yaml_event_delete(&ev);
            goto oom;
        }
        /* ipath now belongs to the doc, which outlives this call. */
        if (load_node(ld, &ev, ipath, depth + 1, &item))
            goto fail;
        if (json_array_append_new(arr, item))
            goto oom;
    }
    *out = arr;
    return 0;
oom:
    loader_oom(ld);
fail:
    json_decref(arr);
    return -1;
}

/* Check a mapping key event and copy its text into *key (caller frees). */
static int mapping_key(struct loader *ld, yaml_event_t *ev, const char *path,
                       char **key)
{
    int line = (int)ev->start_mark.line + 1;

    if (ev->type != YAML_SCALAR_EVENT) {
        loader_fail(ld, line, path, "mapping keys must be plain strings");
        return -1;
    }
    if (ev->data.scalar.anchor || ev->data.scalar.tag) {
        loader_fail(ld, line, path,
                    "anchors and tags on keys are not supported");
        return -1;
    }
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
        loader_fail(ld, line, path, "key contains a NUL character");
        return -1;
    }
    *key = strdup((const char *)ev->data.scalar.value);
    if (!*key) {
        loader_oom(ld);
        return -1;
    }
    return 0;
}

static int load_mapping(struct loader *ld, const char *path, int depth,
                        json_t **out)
{
    json_t *obj = json_object();
    yaml_event_t ev;
    char *key = NULL;

    if (!obj)
        goto oom;
    for (;;) {
        json_t *val;
        char *kpath;
        int line;

        if (next_event(ld, &ev))
            goto fail;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        line = (int)ev.start_mark.line + 1;
        if (mapping_key(ld, &ev, path, &key)) {
            yaml_event_delete(&ev);
            goto fail;
        }
        yaml_event_delete(&ev);
        kpath = path_key(path, key);
        if (!kpath || doc_record(ld->doc, kpath, line))
            goto oom;
        if (json_object_get(obj, key)) {
            loader_fail(ld, line, kpath, "duplicate key '%s'", key);
            goto fail;
        }
        if (next_event(ld, &ev))
            goto fail;
        if (load_node(ld, &ev, kpath, depth + 1, &val))
            goto fail;
        if (json_object_set_new(obj, key, val))
            goto oom;
        free(key);
        key = NULL;
    }
    *out = obj;
    return 0;
oom:
    loader_oom(ld);
fail:
    free(key);
    json_decref(obj);
    return -1;
}

static int check_collection(struct loader *ld, const char *path, int line,
                            const yaml_char_t *anchor, const yaml_char_t *tag,
                            const char *std_tag)
{
    if (anchor) {
        loader_fail(ld, line, path, "YAML anchors (&%s) are not supported",
                    (const char *)anchor);
        return -1;
    }
    if (tag && strcmp((const char *)tag, std_tag)) {
        fail_tag(ld, line, path, (const char *)tag);
        return -1;
    }
    return 0;
}

/* Build the value starting at *ev. Always deletes *ev. */
static int load_node(struct loader *ld, yaml_event_t *ev, const char *path,
                     int depth, json_t **out)
{
    int line = (int)ev->start_mark.line + 1;
    int rc = -1;

    if (depth > YAML_MAX_DEPTH) {
        loader_fail(ld, line, path, "nested deeper than %d levels",
                    YAML_MAX_DEPTH);
        goto done;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor)
            loader_fail(ld, line, path, "YAML anchors (&%s) are not supported",
                        (const char *)ev->data.scalar.anchor);
        else
            rc = load_scalar(ld, ev, path, line, out);
        break;
    case YAML_SEQUENCE_START_EVENT:
        if (!check_collection(ld, path, line, ev->data.sequence_start.anchor,
                              ev->data.sequence_start.tag, TAG_SEQ))
            rc = load_sequence(ld, path, depth, out);
        break;
    case YAML_MAPPING_START_EVENT:
        if (!check_collection(ld, path, line, ev->data.mapping_start.anchor,
                              ev->data.mapping_start.tag, TAG_MAP))
            rc = load_mapping(ld, path, depth, out);
        break;
    case YAML_ALIAS_EVENT:
        loader_fail(ld, line, path, "YAML aliases (*%s) are not supported",
                    (const char *)ev->data.alias.anchor);
        break;
    default:
        loader_fail(ld, line, path, "unexpected YAML event");
        break;
    }
done:
    yaml_event_delete(ev);
    return rc;
}

/* Expect an event of `type`; anything else is a structural surprise. */
static int expect_event(struct loader *ld, yaml_event_type_t type,
                        yaml_event_t *ev)
{
    if (next_event(ld, ev))
        return -1;
    if (ev->type == type)
        return 0;
    loader_fail(ld, (int)ev->start_mark.line + 1, NULL,
                "YAML error: unexpected content");
    yaml_event_delete(ev);
    return -1;
}

static int load_document(struct loader *ld)
{
    yaml_event_t ev;
    char *root_path;

    if (expect_event(ld, YAML_STREAM_START_EVENT, &ev))
        return -1;
    yaml_event_delete(&ev);
    if (next_event(ld, &ev))
        return -1;
    if (ev.type != YAML_DOCUMENT_START_EVENT) {
        yaml_event_delete(&ev);
        loader_fail(ld, 1, NULL, "the file is empty: expected a mapping");
        return -1;
    }
    yaml_event_delete(&ev);
    if (next_event(ld, &ev))
        return -1;
    root_path = strdup("");
    if (!root_path || doc_record(ld->doc, root_path, ev.start_mark.line + 1)) {
        yaml_event_delete(&ev);
        loader_oom(ld);
        return -1;
    }
    if (load_node(ld, &ev, "", 0, &ld->doc->root))
        return -1;
    if (expect_event(ld, YAML_DOCUMENT_END_EVENT, &ev))
        return -1;
    yaml_event_delete(&ev);
    if (next_event(ld, &ev))
        return -1;
    if (ev.type != YAML_STREAM_END_EVENT) {
        loader_fail(ld, (int)ev.start_mark.line + 1, NULL,
                    "more than one YAML document ('---') in the file");
        yaml_event_delete(&ev);
        return -1;
    }
    yaml_event_delete(&ev);
    return 0;
}

int yaml_load(const char *text, size_t len, const char *name,
              yaml_expand_fn expand, struct yaml_doc **out, char *err,
              size_t errlen)
{
    struct loader ld = {.text = text,
                        .len = len,
                        .name = name,
                        .expand = expand,
                        .err = err,
                        .errlen = errlen};
    int rc;

    *out = NULL;
    ld.doc = calloc(1, sizeof *ld.doc);
    if (!ld.doc || !yaml_parser_initialize(&ld.parser)) {
        free(ld.doc);
        loader_oom(&ld);
        return -1;
    }
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
    rc = load_document(&ld);
    yaml_parser_delete(&ld.parser);
    if (rc) {
        yaml_doc_free(ld.doc);
        return -1;
    }
    *out = ld.doc;
    return 0;
}

void yaml_doc_free(struct yaml_doc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->nlines; i++)
        free(doc->lines[i].path);
    free(doc->lines);
    json_decref(doc->root);
    free(doc);
}

static int doc_find(const struct yaml_doc *doc, const char *path, size_t n)
{
    for (size_t i = 0; i < doc->nlines; i++) {
        const char *p = doc->lines[i].path;

        if (strlen(p) == n && !strncmp(p, path, n))
            return doc->lines[i].line;
    }
    return 0;
}

int yaml_doc_line(const struct yaml_doc *doc, const char *path)
{
    size_t n = strlen(path);

    if (!doc)
        return 1;
    for (;;) {
        int line = doc_find(doc, path, n);

        if (line)
            return line;
        if (!n)
            return 1;
        /* Drop the last component: ".key" or "[i]". */
        while (n > 0 && path[n - 1] != '.' && path[n - 1] != '[')
            n--;
        if (n > 0)
            n--;
    }
}
