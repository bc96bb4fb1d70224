/* mock_handler.c - the libmicrohttpd callbacks of the mock upstream: gather a
 * request (headers into its record, body into a buffer), hand it to the
 * control API or to mock_serve once the body is in, settle its record when
 * libmicrohttpd says how it ended, and count TCP connections. */
#include "mock.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Adds one header under its lower-case name; repeats are joined by ", ". */
static enum MHD_Result handler_add_header(void *cls, enum MHD_ValueKind kind,
                                          const char *key, const char *value)
{
    json_t *headers = cls;
    char *name = strdup(key);
    json_t *old;
    json_t *val;

    (void)kind;
    if (!name)
        return MHD_YES;
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    old = json_object_get(headers, name);
    if (old)
        val =
            json_sprintf("%s, %s", json_string_value(old), value ? value : "");
    else
        val = json_string(value ? value : "");
    json_object_set_new(headers, name, val);
    free(name);
    return MHD_YES;
}

/* The id mock_handler_connection gave this TCP connection. */
static unsigned long handler_conn_id(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? (unsigned long)(uintptr_t)ci->socket_context : 0;
}

/* One query argument, as MHD decoded it. */
static enum MHD_Result handler_add_arg(void *cls, enum MHD_ValueKind kind,
                                       const char *key, const char *value)
{
    (void)kind;
    json_object_set_new(cls, key, json_string(value ? value : ""));
    return MHD_YES;
}

static struct mock_req *handler_req_new(struct MHD_Connection *conn,
                                        const char *url, const char *method)
{
    struct mock_req *req = calloc(1, sizeof(*req));
    json_t *headers;

    if (!req)
        return NULL;
    snprintf(req->method, sizeof(req->method), "%s", method);
    req->path = strdup(url);
    if (!req->path)
        goto fail;
    req->control = strncmp(url, "/_mock/", 7) == 0;
    if (req->control)
        return req;
    headers = json_object();
    if (headers)
        MHD_get_connection_values(conn, MHD_HEADER_KIND, handler_add_header,
                                  headers);
    req->rec = mock_record_begin(method, url, headers, handler_conn_id(conn));
    json_t *query = json_object();
    if (query && MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND,
                                           handler_add_arg, query) > 0)
        mock_record_set_query(req->rec, query);
    else
        json_decref(query);
    if (!req->rec)
        goto fail;
    return req;
fail:
    free(req->path);
    free(req);
    return NULL;
}

static void handler_req_free(struct mock_req *req)
{
    mock_record_unref(req->rec);
    free(req->path);
    free(req->body);
    free(req);
}

/* Appends upload data, keeping the body NUL-terminated. */
static int handler_append(struct mock_req *req, const char *data, size_t len)
{
    if (req->too_large || req->body_len + len > MOCK_BODY_ACCEPT_MAX) {
        req->too_large = true;
        return 0;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = (req->body_len + len + 1) * 2;
        char *grown = realloc(req->body, cap);

        if (!grown)
            return -1;
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

enum MHD_Result mock_handler_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    struct mock_req *req = *con_cls;

    (void)version;
    if (!req) {
        req = handler_req_new(conn, url, method);
        *con_cls = req;
        return req ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size) {
        if (handler_append(req, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->control)
        return mock_control(conn, req);
    if (req->body)
        mock_record_set_body(req->rec, req->body, req->body_len);
    return mock_serve(cls, conn, req);
}

void mock_handler_completed(void *cls, struct MHD_Connection *conn,
                            void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct mock_req *req = *con_cls;

    (void)cls;
    (void)conn;
    if (!req)
        return;
    mock_record_finish(req->rec, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK
                                     ? MOCK_OUT_COMPLETE
                                     : MOCK_OUT_CLIENT_CLOSED);
    handler_req_free(req);
    *con_cls = NULL;
}

void mock_handler_connection(void *cls, struct MHD_Connection *conn,
                             void **socket_context,
                             enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    /* cls: non-NULL on the TLS daemon */
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = (void *)(uintptr_t)mock_record_conn_opened(cls);
    else
        mock_record_conn_closed();
}
