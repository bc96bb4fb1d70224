/* mock_control.c - the mock upstream's control API under /_mock/: reset,
 * script rules, read the record, health. Control requests are never
 * recorded and never matched by rules. */
#include "mock.h"

#include <stdlib.h>
#include <string.h>

static enum MHD_Result control_ok(struct MHD_Connection *conn)
{
    return mock_reply_json(conn, 200, json_pack("{s:b}", "ok", 1));
}

static enum MHD_Result control_script(struct MHD_Connection *conn,
                                      const struct mock_req *req)
{
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, 0, &jerr);
    char err[300];
    int rc;

    if (!root) {
        snprintf(err, sizeof(err), "mock script: bad JSON: %s", jerr.text);
        return mock_reply_error(conn, 400, err, NULL);
    }
    rc = mock_script_add(root, err, sizeof(err));
    json_decref(root);
    if (rc)
        return mock_reply_error(conn, 400, err, NULL);
    return control_ok(conn);
}

static enum MHD_Result control_requests(struct MHD_Connection *conn)
{
    const char *since =
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");

    return mock_reply_json(
        conn, 200,
        mock_record_dump(since ? (unsigned)strtoul(since, NULL, 10) : 0));
}

enum MHD_Result mock_control(struct MHD_Connection *conn, struct mock_req *req)
{
    const char *what = req->path + strlen("/_mock/");
    bool get = strcmp(req->method, "GET") == 0;
    bool post = strcmp(req->method, "POST") == 0;

    if (strcmp(what, "health") == 0)
        return control_ok(conn);
    if (post && strcmp(what, "reset") == 0) {
        mock_script_reset();
        mock_record_reset();
        return control_ok(conn);
    }
    if (post && strcmp(what, "script") == 0)
        return control_script(conn, req);
    if (get && (strcmp(what, "script") == 0 || strcmp(what, "rules") == 0))
        return mock_reply_json(conn, 200, mock_script_dump());
    if (get && strcmp(what, "requests") == 0)
        return control_requests(conn);
    return mock_reply_error(conn, 404, "mock control: no such action", NULL);
}
