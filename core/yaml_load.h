/*
 * yaml_load.h - read one YAML document (libyaml events) into a jansson tree,
 * remembering the line of every node by its path ("server.port",
 * "pipeline[2].config.keys_file") so that the config validator can say
 * where a bad value sits. It knows nothing about sluice's config shape.
 *
 * Plain scalars are typed (null, ~, true, false, integers, reals); quoted
 * scalars stay strings. Every scalar value (not keys) goes through the
 * caller's expand function first. Duplicate keys, anchors, aliases, tags
 * other than !!str and more than one document are errors.
 */
#ifndef SLUICE_YAML_LOAD_H
#define SLUICE_YAML_LOAD_H

#include <jansson.h>
#include <stddef.h>

/* Rewrite a scalar before typing it; returns a malloc'd string, or NULL and
 * a message in err. */
typedef char *(*yaml_expand_fn)(const char *in, char *err, size_t errlen);

struct yaml_line {
    char *path;
    int line; /* 1-based */
};

struct yaml_doc {
    json_t *root; /* owned */
    struct yaml_line *lines;
    size_t nlines;
    size_t cap;
};

/* Parse `text`; `name` prefixes error messages ("name:line: ..."). expand
 * may be NULL. On success *out is a new doc the caller frees with
 * yaml_doc_free; on error returns -1 with err set. An empty stream is an
 * error. */
int yaml_load(const char *text, size_t len, const char *name,
              yaml_expand_fn expand, struct yaml_doc **out, char *err,
              size_t errlen);
void yaml_doc_free(struct yaml_doc *doc);

/* Line of `path`, or of its nearest recorded ancestor ("a.b[3].c" falls back
 * to "a.b[3]", "a.b", "a"); the root's line when nothing matches. */
int yaml_doc_line(const struct yaml_doc *doc, const char *path);

/* Strict number syntax shared with the validator: optional sign, digits,
 * for reals an optional fraction and exponent. 0 ok, -1 not a number (or
 * out of range). */
int yaml_parse_int(const char *s, long long *out);
int yaml_parse_real(const char *s, double *out);

#endif
