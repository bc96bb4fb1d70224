/*
 * admin_ui.c - serves the dashboard's three embedded files under
 * /admin/ui. Nothing here reads a file or talks to a stage: the page fetches
 * its data from the admin API and /metrics with the operator's token.
 */
#include "admin_ui.h"
#include "request.h"

#include <string.h>

/* Everything from this origin only; no inline script or style, no frames,
 * no forms posting elsewhere. img-src data: is the empty favicon. */
#define UI_CSP                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; "                \
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "              \
    "form-action 'none'; frame-ancestors 'none'"

struct ui_file {
    const char *path;
    const char *ctype;
    const unsigned char *data;
    const size_t *len;
};

static const struct ui_file ui_files[] = {
    {"ui", "text/html; charset=utf-8", ui_index_html, &ui_index_html_len},
    {"ui/app.js", "text/javascript; charset=utf-8", ui_app_js, &ui_app_js_len},
    {"ui/app.css", "text/css; charset=utf-8", ui_app_css, &ui_app_css_len},
};

static const struct ui_file *ui_find(const char *path)
{
    for (size_t i = 0; i < sizeof ui_files / sizeof ui_files[0]; i++)
        if (!strcmp(path, ui_files[i].path))
            return &ui_files[i];
    return NULL;
}

int admin_ui_path(const char *path)
{
    return ui_find(path) != NULL;
}

void admin_ui_answer(struct sluice_ctx *ctx, const char *path)
{
    const struct ui_file *f = ui_find(path);
    if (strcmp(ctx->method, "GET") && strcmp(ctx->method, "HEAD")) {
        hdrs_add(&ctx->out_headers, "Allow", "GET, HEAD");
        request_set_error(ctx, 405, "invalid_request_error",
                          "method_not_allowed", NULL,
                          "method not allowed on this admin path");
        return;
    }
    request_set_response(ctx, 200, f->ctype, (const char *)f->data, *f->len);
    hdrs_add(&ctx->out_headers, "Content-Security-Policy", UI_CSP);
    hdrs_add(&ctx->out_headers, "X-Content-Type-Options", "nosniff");
    hdrs_add(&ctx->out_headers, "Referrer-Policy", "no-referrer");
    hdrs_add(&ctx->out_headers, "X-Frame-Options", "DENY");
    hdrs_add(&ctx->out_headers, "Cache-Control", "no-store");
}
