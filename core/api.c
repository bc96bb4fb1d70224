/*
 * api.c - the table of OpenAI endpoints carried through the pipeline (see
 * api.h). Paths match exactly, after the caller dropped a trailing slash.
 */
#include "api.h"

#include <string.h>

#define ROW(n, p, up, b, s, i)                                                 \
    {                                                                          \
        n, p, up, b, s, 1u << (i)                                              \
    }

static const struct api_route api_table[] = {
    ROW("chat", "/v1/chat/completions", "/chat/completions", API_BODY_JSON,
        API_STREAM_DATA, 0),
    ROW("responses", "/v1/responses", "/responses", API_BODY_JSON,
        API_STREAM_NAMED, 1),
    ROW("completions", "/v1/completions", "/completions", API_BODY_JSON,
        API_STREAM_DATA, 2),
    ROW("embeddings", "/v1/embeddings", "/embeddings", API_BODY_JSON,
        API_STREAM_NONE, 3),
    ROW("moderations", "/v1/moderations", "/moderations", API_BODY_JSON,
        API_STREAM_NONE, 4),
    ROW("audio_speech", "/v1/audio/speech", "/audio/speech", API_BODY_JSON,
        API_STREAM_NONE, 5),
    ROW("audio_transcriptions", "/v1/audio/transcriptions",
        "/audio/transcriptions", API_BODY_MULTIPART, API_STREAM_DATA, 6),
    ROW("audio_translations", "/v1/audio/translations", "/audio/translations",
        API_BODY_MULTIPART, API_STREAM_NONE, 7),
    ROW("images_generations", "/v1/images/generations", "/images/generations",
        API_BODY_JSON, API_STREAM_NONE, 8),
    ROW("rerank", "/v1/rerank", "/rerank", API_BODY_JSON, API_STREAM_NONE, 9),
    ROW("passthrough", NULL, NULL, API_BODY_RAW, API_STREAM_NONE, 10),
};

#define API_N (sizeof api_table / sizeof api_table[0])

const struct api_route *api_find(const char *path)
{
    for (size_t i = 0; i < API_N; i++) {
        const char *p = api_table[i].path;
        if (p && (!strcmp(path, p) || !strcmp(path, p + 3))) /* or no /v1 */
            return &api_table[i];
    }
    return NULL;
}

const struct api_route *api_by_name(const char *name)
{
    for (size_t i = 0; i < API_N; i++)
        if (!strcmp(name, api_table[i].name))
            return &api_table[i];
    return NULL;
}

const struct api_route *api_chat(void)
{
    return &api_table[0];
}

const struct api_route *api_passthrough(void)
{
    return &api_table[API_N - 1];
}

uint32_t api_all_mask(void)
{
    return (1u << API_N) - 1;
}

const char *api_names(void)
{
    return "chat, responses, completions, embeddings, moderations, "
           "audio_speech, audio_transcriptions, audio_translations, "
           "images_generations, rerank, passthrough";
}
