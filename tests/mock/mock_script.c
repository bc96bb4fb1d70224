/* mock_script.c - scripted rules of the mock upstream: parse and validate
 * them from POST /_mock/script, pick the first fitting one for a request and
 * count its uses. Rules are immutable once parsed (but for `used`, which the
 * list lock guards) and refcounted so a reset never frees a rule a live
 * request still applies. How a rule is applied lives in mock_serve.c. */
#include "mock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct {
    pthread_mutex_t lock;
    struct mock_rule **rules;
    size_t count;
    size_t cap;
} script = {.lock = PTHREAD_MUTEX_INITIALIZER};

const char *mock_path_strip_v1(const char *path)
{
    if (strncmp(path, "/v1", 3) == 0 && (path[3] == '/' || path[3] == '\0'))
        return path[3] ? path + 3 : "/";
    return path;
}

int mock_script_init(void)
{
    return 0;
}

struct mock_rule *mock_rule_ref(struct mock_rule *rule)
{
    if (rule)
        __atomic_add_fetch(&rule->refs, 1, __ATOMIC_ACQ_REL);
    return rule;
}

void mock_rule_unref(struct mock_rule *rule)
{
    if (!rule || __atomic_sub_fetch(&rule->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    json_decref(rule->src);
    free(rule->match_path);
    free(rule->match_auth);
    free(rule->match_method);
    free(rule->match_model);
    free(rule->match_body);
    json_decref(rule->headers);
    free(rule->body);
    for (size_t i = 0; i < rule->stream.n_raw; i++)
        free(rule->stream.raw[i]);
    free(rule->stream.raw);
    free(rule->stream.raw_len);
    free(rule);
}

/* Fails if obj has a key not in the NULL-terminated list `known`. */
static int script_check_keys(const json_t *obj, const char *const *known,
                             const char *where, char *err, size_t errlen)
{
    const char *key;
    json_t *val;

    json_object_foreach((json_t *)obj, key, val)
    {
        size_t i = 0;

        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i]) {
            snprintf(err, errlen, "%s: unknown key \"%s\"", where, key);
            return -1;
        }
    }
    return 0;
}

static int script_opt_string(const json_t *obj, const char *key, char **out,
                             char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "\"%s\" must be a string", key);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : -1;
}

/* A non-negative integer; *out keeps its value when the key is absent. */
static int script_opt_int(const json_t *obj, const char *key, int *out,
                          char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 1000000000) {
        snprintf(err, errlen, "\"%s\" must be a non-negative integer", key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int script_parse_match(struct mock_rule *r, const json_t *m, char *err,
                              size_t errlen)
{
    static const char *const known[] = {
        "path", "auth", "method", "model", "body_contains", "stream", NULL};
    char *path = NULL;
    json_t *stream;

    if (!json_is_object(m)) {
        snprintf(err, errlen, "\"match\" must be an object");
        return -1;
    }
    if (script_check_keys(m, known, "match", err, errlen) ||
        script_opt_string(m, "path", &path, err, errlen) ||
        script_opt_string(m, "auth", &r->match_auth, err, errlen) ||
        script_opt_string(m, "method", &r->match_method, err, errlen) ||
        script_opt_string(m, "model", &r->match_model, err, errlen) ||
        script_opt_string(m, "body_contains", &r->match_body, err, errlen))
        goto fail;
    if (path) {
        r->match_path = strdup(mock_path_strip_v1(path));
        free(path);
        if (!r->match_path)
            return -1;
    }
    stream = json_object_get(m, "stream");
    if (stream && !json_is_boolean(stream)) {
        snprintf(err, errlen, "match \"stream\" must be a boolean");
        return -1;
    }
    if (stream)
        r->match_stream = json_is_true(stream);
    return 0;
fail:
    free(path);
    return -1;
}

static int script_parse_headers(struct mock_rule *r, const json_t *h, char *err,
                                size_t errlen)
{
    const char *key;
    json_t *val;

    if (!json_is_object(h)) {
        snprintf(err, errlen, "\"headers\" must be an object");
        return -1;
    }
    r->headers = json_object();
    if (!r->headers)
        return -1;
    json_object_foreach((json_t *)h, key, val)
    {
        json_t *s;

        if (json_is_string(val))
            s = json_copy(val);
        else if (json_is_integer(val))
            s = json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(val));
        else {
            snprintf(err, errlen, "header \"%s\" must be a string", key);
            return -1;
        }
        if (json_object_set_new(r->headers, key, s))
            return -1;
    }
    return 0;
}

static int script_parse_raw(struct mock_stream_spec *sp, const json_t *raw,
                            char *err, size_t errlen)
{
    size_t i;
    json_t *v;

    if (!json_is_array(raw)) {
        snprintf(err, errlen, "stream \"raw\" must be an array of strings");
        return -1;
    }
    sp->raw = calloc(json_array_size(raw) + 1, sizeof(*sp->raw));
    sp->raw_len = calloc(json_array_size(raw) + 1, sizeof(*sp->raw_len));
    if (!sp->raw || !sp->raw_len)
        return -1;
    json_array_foreach(raw, i, v)
    {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "stream \"raw\"[%zu] must be a string", i);
            return -1;
        }
        sp->raw_len[i] = json_string_length(v);
        sp->raw[i] = malloc(sp->raw_len[i] + 1);
        if (!sp->raw[i])
            return -1;
        memcpy(sp->raw[i], json_string_value(v), sp->raw_len[i] + 1);
        sp->n_raw = i + 1;
    }
    return 0;
}

static int script_parse_stream(struct mock_rule *r, const json_t *s, char *err,
                               size_t errlen)
{
    static const char *const known[] = {"chunks", "delay_ms",    "cut_after",
                                        "raw",    "stall_after", "stall_ms",
                                        NULL};
    struct mock_stream_spec *sp = &r->stream;
    json_t *raw;

    r->has_stream = true;
    sp->chunks = -1;
    sp->delay_ms = -1;
    sp->cut_after = -1;
    sp->stall_after = -1;
    if (json_is_true(s))
        return 0;
    if (!json_is_object(s)) {
        snprintf(err, errlen, "\"stream\" must be an object or true");
        return -1;
    }
    if (script_check_keys(s, known, "stream", err, errlen) ||
        script_opt_int(s, "chunks", &sp->chunks, err, errlen) ||
        script_opt_int(s, "delay_ms", &sp->delay_ms, err, errlen) ||
        script_opt_int(s, "cut_after", &sp->cut_after, err, errlen) ||
        script_opt_int(s, "stall_after", &sp->stall_after, err, errlen) ||
        script_opt_int(s, "stall_ms", &sp->stall_ms, err, errlen))
        return -1;
    if (sp->stall_ms > 0 && sp->stall_after < 0)
        sp->stall_after = 0; /* headers, then silence */
    raw = json_object_get(s, "raw");
    if (raw && script_parse_raw(sp, raw, err, errlen))
        return -1;
    return 0;
}

static int script_parse_body(struct mock_rule *r, const json_t *obj, char *err,
                             size_t errlen)
{
    json_t *body = json_object_get(obj, "body");
    json_t *js = json_object_get(obj, "json");

    if (body && js) {
        snprintf(err, errlen, "give \"body\" or \"json\", not both");
        return -1;
    }
    if (body && !json_is_string(body)) {
        snprintf(err, errlen, "\"body\" must be a string (use \"json\")");
        return -1;
    }
    if (body) {
        r->body_len = json_string_length(body);
        r->body = malloc(r->body_len + 1);
        if (!r->body)
            return -1;
        memcpy(r->body, json_string_value(body), r->body_len + 1);
        /* raw text that looks like JSON is most likely meant as JSON */
        r->body_type = (r->body[0] == '{' || r->body[0] == '[')
                           ? "application/json"
                           : "text/plain";
    } else if (js) {
        r->body = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!r->body)
            return -1;
        r->body_len = strlen(r->body);
        r->body_type = "application/json";
    }
    return 0;
}

/* One rule from its JSON; NULL with err set on a bad rule. */
static struct mock_rule *script_parse_rule(const json_t *obj, char *err,
                                           size_t errlen)
{
    static const char *const known[] = {
        "match", "times",    "status", "headers", "body", "json",
        "close", "stall_ms", "stream", "comment", NULL};
    struct mock_rule *r;
    json_t *v;

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "a rule must be an object");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->refs = 1;
    r->times = 1;
    r->match_stream = -1;
    r->src = json_deep_copy(obj);
    if (script_check_keys(obj, known, "rule", err, errlen) ||
        script_opt_int(obj, "times", &r->times, err, errlen) ||
        script_opt_int(obj, "status", &r->status, err, errlen) ||
        script_opt_int(obj, "stall_ms", &r->stall_ms, err, errlen) ||
        script_parse_body(r, obj, err, errlen))
        goto fail;
    if (r->status != 0 && (r->status < 100 || r->status > 999)) {
        snprintf(err, errlen, "\"status\" must be 100..999");
        goto fail;
    }
    if ((v = json_object_get(obj, "match")) &&
        script_parse_match(r, v, err, errlen))
        goto fail;
    if ((v = json_object_get(obj, "headers")) &&
        script_parse_headers(r, v, err, errlen))
        goto fail;
    if ((v = json_object_get(obj, "stream")) && !json_is_false(v) &&
        script_parse_stream(r, v, err, errlen))
        goto fail;
    v = json_object_get(obj, "close");
    if (v && !json_is_boolean(v)) {
        snprintf(err, errlen, "\"close\" must be a boolean");
        goto fail;
    }
    r->close = json_is_true(v);
    return r;
fail:
    if (!err[0])
        snprintf(err, errlen, "out of memory");
    mock_rule_unref(r);
    return NULL;
}

static int script_append(struct mock_rule **rules, size_t n)
{
    int rc = -1;

    pthread_mutex_lock(&script.lock);
    if (script.count + n > script.cap) {
        size_t cap = (script.count + n) * 2 + 8;
        struct mock_rule **grown = realloc(script.rules, cap * sizeof(*grown));

        if (!grown)
            goto out;
        script.rules = grown;
        script.cap = cap;
    }
    memcpy(script.rules + script.count, rules, n * sizeof(*rules));
    script.count += n;
    rc = 0;
out:
    pthread_mutex_unlock(&script.lock);
    return rc;
}

int mock_script_add(const json_t *root, char *err, size_t errlen)
{
    const json_t *list = root;
    struct mock_rule **parsed = NULL;
    size_t n = 0;
    int rc = -1;

    err[0] = '\0';
    if (json_is_object(root) && json_object_get(root, "rules"))
        list = json_object_get(root, "rules");
    else if (json_is_object(root))
        list = NULL; /* a single rule */
    if (list && !json_is_array(list)) {
        snprintf(err, errlen, "\"rules\" must be an array");
        return -1;
    }
    parsed = calloc(list ? json_array_size(list) + 1 : 1, sizeof(*parsed));
    if (!parsed)
        goto out;
    for (; list ? n < json_array_size(list) : n < 1; n++) {
        const json_t *obj = list ? json_array_get(list, n) : root;
        char why[200] = "";

        parsed[n] = script_parse_rule(obj, why, sizeof(why));
        if (!parsed[n]) {
            snprintf(err, errlen, "rule %zu: %s", n, why);
            goto out;
        }
    }
    rc = script_append(parsed, n);
    if (rc == 0)
        n = 0; /* the list owns them now */
out:
    while (n > 0)
        mock_rule_unref(parsed[--n]);
    free(parsed);
    if (rc && !err[0])
        snprintf(err, errlen, "out of memory");
    return rc;
}

static bool script_match_str(const char *want, const char *have)
{
    return !want || (have && strcmp(want, have) == 0);
}

static bool script_fits(const struct mock_rule *r,
                        const struct mock_req_info *in)
{
    if (r->times != 0 && r->used >= r->times)
        return false;
    if (r->match_path &&
        strcmp(r->match_path, mock_path_strip_v1(in->path)) != 0)
        return false;
    if (r->match_method && strcasecmp(r->match_method, in->method) != 0)
        return false;
    if (r->match_stream >= 0 && r->match_stream != in->stream)
        return false;
    if (r->match_body && (!in->body || !strstr(in->body, r->match_body)))
        return false;
    return script_match_str(r->match_auth, in->auth) &&
           script_match_str(r->match_model, in->model);
}

struct mock_rule *mock_script_take(const struct mock_req_info *info)
{
    struct mock_rule *found = NULL;

    pthread_mutex_lock(&script.lock);
    for (size_t i = 0; i < script.count && !found; i++) {
        if (script_fits(script.rules[i], info)) {
            found = script.rules[i];
            found->used++;
            __atomic_add_fetch(&found->refs, 1, __ATOMIC_ACQ_REL);
        }
    }
    pthread_mutex_unlock(&script.lock);
    return found;
}

void mock_script_reset(void)
{
    struct mock_rule **rules;
    size_t count;

    pthread_mutex_lock(&script.lock);
    rules = script.rules;
    count = script.count;
    script.rules = NULL;
    script.count = 0;
    script.cap = 0;
    pthread_mutex_unlock(&script.lock);
    for (size_t i = 0; i < count; i++)
        mock_rule_unref(rules[i]);
    free(rules);
}

void mock_script_fini(void)
{
    mock_script_reset();
}

json_t *mock_script_dump(void)
{
    json_t *list = json_array();

    if (!list)
        return NULL;
    pthread_mutex_lock(&script.lock);
    for (size_t i = 0; i < script.count; i++) {
        const struct mock_rule *r = script.rules[i];

        json_array_append_new(list, json_pack("{s:o?, s:i, s:i}", "rule",
                                              json_deep_copy(r->src), "used",
                                              r->used, "times", r->times));
    }
    pthread_mutex_unlock(&script.lock);
    return json_pack("{s:o}", "rules", list);
}
