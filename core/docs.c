/*
 * docs.c - GET /openapi.json, /docs and /redoc. The document is compiled
 * into the binary (see cmake/embed.cmake), never read from disk while
 * serving. The two HTML pages load their JavaScript and CSS from a CDN, as
 * FastAPI's do, or from docs.assets_url for sites without Internet access:
 *   <assets_url>/swagger-ui.css, <assets_url>/swagger-ui-bundle.js
 *     (the files of the npm package swagger-ui-dist)
 *   <assets_url>/redoc.standalone.js (from the npm package redoc)
 */
#include "docs.h"
#include "buf.h"
#include "request.h"
#include "server.h"

#include <string.h>

#define SWAGGER_CDN "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"
#define REDOC_CDN   "https://cdn.jsdelivr.net/npm/redoc@2/bundles"

int docs_enabled(void)
{
    return !server_main || !server_main->cfg || server_main->cfg->docs_enabled;
}

static const char *assets_url(void)
{
    return server_main && server_main->cfg ? server_main->cfg->docs_assets_url
                                           : NULL;
}

/* assets_url was checked by the config loader: no quote, '<' or '>'. */
static void swagger_page(buf_t *b)
{
    const char *base = assets_url() ? assets_url() : SWAGGER_CDN;
    buf_printf(b,
               "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
               "<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, "
               "initial-scale=1\">\n"
               "<title>sluice API - Swagger UI</title>\n"
               "<link rel=\"stylesheet\" href=\"%s/swagger-ui.css\">\n"
               "</head>\n<body>\n<div id=\"swagger-ui\"></div>\n"
               "<script src=\"%s/swagger-ui-bundle.js\"></script>\n"
               "<script>\n"
               "window.ui = SwaggerUIBundle({url: \"/openapi.json\", "
               "dom_id: \"#swagger-ui\", deepLinking: true, "
               "persistAuthorization: true, tryItOutEnabled: true});\n"
               "</script>\n</body>\n</html>\n",
               base, base);
}

static void redoc_page(buf_t *b)
{
    const char *base = assets_url() ? assets_url() : REDOC_CDN;
    buf_printf(b,
               "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
               "<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, "
               "initial-scale=1\">\n"
               "<title>sluice API - ReDoc</title>\n"
               "<style>body { margin: 0; padding: 0; }</style>\n"
               "</head>\n<body>\n"
               "<redoc spec-url=\"/openapi.json\"></redoc>\n"
               "<script src=\"%s/redoc.standalone.js\"></script>\n"
               "</body>\n</html>\n",
               base);
}

void docs_answer(struct sluice_ctx *ctx)
{
    buf_t b;
    if (ctx->route == ROUTE_OPENAPI) {
        request_set_response(ctx, 200, "application/json",
                             (const char *)openapi_json, openapi_json_len);
        return;
    }
    buf_init(&b);
    if (ctx->route == ROUTE_DOCS)
        swagger_page(&b);
    else
        redoc_page(&b);
    if (b.oom)
        request_set_error(ctx, 500, "server_error", NULL, NULL,
                          "out of memory");
    else
        request_set_response(ctx, 200, "text/html; charset=utf-8", b.data,
                             b.len);
    buf_release(&b);
}
