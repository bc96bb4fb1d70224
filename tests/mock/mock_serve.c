/* mock_serve.c - answers one non-control request once its body is in: picks
 * the scripted rule that fits (mock_script.c), applies its stall / close /
 * status / body / headers / stream shape, and otherwise plays an OpenAI
 * upstream: /v1/chat/completions (plain or streamed) and /v1/models, each
 * also without the /v1 prefix. Bodies come from mock_reply.c and
 * mock_stream.c; the record of what was sent from mock_record.c. */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parsed chat request, when the body is JSON. */
struct serve_req {
    json_t *json;
    const char *model;
    bool stream;
    bool include_usage;
    char parse_error[160];
};

static void serve_parse(struct mock_req *req, struct serve_req *sr)
{
    json_error_t jerr;
    json_t *opts;

    snprintf(sr->parse_error, sizeof(sr->parse_error), "empty body");
    if (req->body_len == 0)
        return;
    sr->json = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!sr->json) {
        snprintf(sr->parse_error, sizeof(sr->parse_error), "%s", jerr.text);
        return;
    }
    if (!json_is_object(sr->json)) {
        snprintf(sr->parse_error, sizeof(sr->parse_error),
                 "body must be a JSON object");
        json_decref(sr->json);
        sr->json = NULL;
        return;
    }
    sr->model = json_string_value(json_object_get(sr->json, "model"));
    sr->stream = json_is_true(json_object_get(sr->json, "stream"));
    opts = json_object_get(sr->json, "stream_options");
    sr->include_usage = json_is_true(json_object_get(opts, "include_usage"));
}

static enum MHD_Result serve_queue(struct MHD_Connection *conn,
                                   struct mock_req *req, int status,
                                   struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    mock_record_set_status(req->rec, status);
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result serve_body(struct MHD_Connection *conn,
                                  struct mock_req *req, int status,
                                  const char *type, const char *body,
                                  size_t len, const json_t *headers)
{
    mock_record_set_status(req->rec, status);
    return mock_reply_queue(conn, status, type, body, len, headers);
}

static enum MHD_Result serve_error(struct MHD_Connection *conn,
                                   struct mock_req *req, int status,
                                   const char *message, const json_t *headers)
{
    mock_record_set_status(req->rec, status);
    return mock_reply_error(conn, status, message, headers);
}

static enum MHD_Result serve_json(struct MHD_Connection *conn,
                                  struct mock_req *req, int status,
                                  json_t *body, const json_t *headers)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    enum MHD_Result ret;

    json_decref(body);
    if (!text)
        return MHD_NO;
    ret = serve_body(conn, req, status, "application/json", text, strlen(text),
                     headers);
    free(text);
    return ret;
}

/* The rule's stream shape with the command line's defaults filled in. */
static struct mock_stream_spec serve_spec(const struct mock_opts *opts,
                                          const struct mock_rule *rule)
{
    struct mock_stream_spec sp = {
        .chunks = -1, .delay_ms = -1, .cut_after = -1, .stall_after = -1};

    if (rule && rule->has_stream)
        sp = rule->stream;
    if (sp.chunks < 0)
        sp.chunks = opts->chunks;
    if (sp.delay_ms < 0)
        sp.delay_ms = opts->delay_ms;
    return sp;
}

static enum MHD_Result
serve_stream(const struct mock_opts *opts, struct MHD_Connection *conn,
             struct mock_req *req, const struct serve_req *sr,
             struct mock_rule *rule, int status, enum mock_stream_kind kind)
{
    struct mock_stream_args a = {
        .kind = kind,
        .rec = req->rec,
        .rule = rule,
        .spec = serve_spec(opts, rule),
        .seq = mock_record_seq(req->rec),
        .model = sr->model ? sr->model : "mock-model",
        .include_usage = sr->include_usage,
        .body_len = req->body_len,
        .fd = mock_wait_conn_fd(conn),
    };
    struct MHD_Response *resp = mock_stream_response(&a);

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (rule && rule->headers)
        mock_reply_add_headers(resp, rule->headers);
    return serve_queue(conn, req, status, resp);
}

static enum MHD_Result serve_chat(const struct mock_opts *opts,
                                  struct MHD_Connection *conn,
                                  struct mock_req *req,
                                  const struct serve_req *sr,
                                  struct mock_rule *rule)
{
    const json_t *headers = rule ? rule->headers : NULL;
    int status = rule && rule->status ? rule->status : 200;
    char msg[256];
    char *text;
    char *body;
    enum MHD_Result ret;

    if (strcmp(req->method, "POST") != 0)
        return serve_error(conn, req, 405, "use POST", headers);
    if (!sr->json) {
        snprintf(msg, sizeof(msg),
                 "mock upstream: could not parse the JSON body: %s",
                 sr->parse_error);
        return serve_error(conn, req, 400, msg, headers);
    }
    if (sr->stream || (rule && rule->has_stream))
        return serve_stream(opts, conn, req, sr, rule, status,
                            MOCK_STREAM_CHAT);
    text = mock_reply_user_text(sr->json);
    body = mock_reply_completion(mock_record_seq(req->rec),
                                 sr->model ? sr->model : "mock-model",
                                 text ? text : "", req->body_len);
    free(text);
    if (!body)
        return MHD_NO;
    ret = serve_body(conn, req, status, "application/json", body, strlen(body),
                     headers);
    free(body);
    return ret;
}

/* The endpoints beside chat (mock_api.c); /responses and /completions
 * stream like chat does, each in its own event shape. */
static enum MHD_Result
serve_api(const struct mock_opts *opts, struct MHD_Connection *conn,
          struct mock_req *req, const struct serve_req *sr,
          struct mock_rule *rule, const char *path, bool multipart)
{
    const json_t *headers = rule ? rule->headers : NULL;
    int status = rule && rule->status ? rule->status : 200;
    char msg[256];

    if (strcmp(req->method, "POST") != 0)
        return serve_error(conn, req, 405, "use POST", headers);
    if (!multipart && !sr->json) {
        snprintf(msg, sizeof(msg),
                 "mock upstream: could not parse the JSON body: %s",
                 sr->parse_error);
        return serve_error(conn, req, 400, msg, headers);
    }
    if (sr->stream || (rule && rule->has_stream)) {
        if (!strcmp(path, "/responses"))
            return serve_stream(opts, conn, req, sr, rule, status,
                                MOCK_STREAM_RESPONSES);
        if (!strcmp(path, "/completions"))
            return serve_stream(opts, conn, req, sr, rule, status,
                                MOCK_STREAM_COMPLETIONS);
        if (!strcmp(path, "/audio/transcriptions"))
            return serve_stream(opts, conn, req, sr, rule, status,
                                MOCK_STREAM_TRANSCRIPT);
    }
    return mock_api_serve(conn, req, path, sr->json, sr->model, status,
                          headers);
}

/* Stall, close, or a scripted body/error; MHD_YES when nothing applied
 * (*handled stays false) and the endpoint answers. */
static enum MHD_Result serve_rule(struct MHD_Connection *conn,
                                  struct mock_req *req,
                                  const struct mock_rule *rule, bool *handled)
{
    char msg[96];

    *handled = true;
    if (rule->stall_ms &&
        mock_wait_ms(mock_wait_conn_fd(conn), rule->stall_ms)) {
        mock_record_mark(req->rec, MOCK_OUT_CLIENT_CLOSED);
        return MHD_NO;
    }
    if (rule->close) {
        mock_record_mark(req->rec, MOCK_OUT_CLOSED);
        return MHD_NO;
    }
    if (rule->body)
        return serve_body(conn, req, rule->status ? rule->status : 200,
                          rule->body_type, rule->body, rule->body_len,
                          rule->headers);
    if (rule->status >= 400 && !rule->has_stream) {
        snprintf(msg, sizeof(msg), "mock upstream: scripted status %d",
                 rule->status);
        return serve_error(conn, req, rule->status, msg, rule->headers);
    }
    *handled = false;
    return MHD_YES;
}

enum MHD_Result mock_serve(const struct mock_opts *opts,
                           struct MHD_Connection *conn, struct mock_req *req)
{
    const char *path = mock_path_strip_v1(req->path);
    size_t pl = strlen(path);
    /* also Azure's shape: /openai/deployments/<name>/chat/completions */
    bool chat = strcmp(path, "/chat/completions") == 0 ||
                (!strncmp(path, "/openai/deployments/", 20) && pl > 37 &&
                 !strcmp(path + pl - 17, "/chat/completions"));
    bool api = mock_api_known(path), multipart = mock_api_is_multipart(path);
    char *form_model = NULL;
    struct serve_req sr = {0};
    struct mock_req_info info;
    struct mock_rule *rule;
    enum MHD_Result ret;
    bool handled = false;

    if (req->too_large)
        return serve_error(conn, req, 413, "mock upstream: body too large",
                           NULL);
    if (chat || (api && !multipart))
        serve_parse(req, &sr);
    if (multipart) {
        char *st = mock_api_form_field(req->body, req->body_len, "stream");
        form_model = mock_api_form_field(req->body, req->body_len, "model");
        sr.model = form_model;
        sr.stream = st && !strcmp(st, "true");
        free(st);
    }
    info = (struct mock_req_info){
        .method = req->method,
        .path = req->path,
        .auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                            MHD_HTTP_HEADER_AUTHORIZATION),
        .model = sr.model,
        .body = req->body,
        .stream = sr.stream,
    };
    rule = mock_script_take(&info);
    ret = rule ? serve_rule(conn, req, rule, &handled) : MHD_YES;
    if (handled)
        goto out;
    if (chat)
        ret = serve_chat(opts, conn, req, &sr, rule);
    else if (api)
        ret = serve_api(opts, conn, req, &sr, rule, path, multipart);
    else if (strcmp(path, "/models") == 0)
        ret = serve_json(conn, req, rule && rule->status ? rule->status : 200,
                         mock_reply_models(), rule ? rule->headers : NULL);
    else
        ret = serve_error(conn, req, 404, "mock upstream: no such endpoint",
                          rule ? rule->headers : NULL);
out:
    mock_rule_unref(rule);
    json_decref(sr.json);
    free(form_model);
    return ret;
}
