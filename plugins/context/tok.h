/* tok.h - exact prompt token counts: byte-level BPE tokenizers loaded from
 * a Hugging Face tokenizer.json or a tiktoken rank file, counted in C.
 *
 * Load once (stage init / reload), share read-only between threads:
 * tok_count() is thread-safe (the piece cache locks per shard).
 */
#ifndef SLUICE_TOK_H
#define SLUICE_TOK_H

#include <stddef.h>

struct tok;

/* Load the tokenizer at `path`.  The format is detected from the content:
 * a Hugging Face tokenizer.json (object with "model"), the npm tiktoken
 * package's encoder JSON (object with "bpe_ranks"), or a .tiktoken rank file
 * ("<base64> <rank>" per line).  `pattern` names the split pattern of a
 * tiktoken encoding ("o200k" or "cl100k"; NULL for tokenizer.json, or for an
 * encoder JSON that carries its own "pat_str").  On failure returns -1 and
 * writes a message naming the file and what is wrong into err. */
int tok_load(const char *path, const char *pattern, struct tok **out, char *err,
             size_t errlen);

/* Number of tokens of `text` (len bytes, not NUL-terminated; invalid UTF-8
 * is counted as U+FFFD per maximal invalid subpart).  No BOS/EOS, no chat
 * template.  -1 only when memory runs out. */
long tok_count(const struct tok *tok, const char *text, size_t len);

/* Frees everything the tokenizer owns; NULL is a no-op. */
void tok_free(struct tok *tok);

/* Bytes of heap the loaded tokenizer holds (tables + cache). */
size_t tok_memory(const struct tok *tok);

/* "hf-bpe" or "tiktoken" and the vocabulary size, for logs. */
const char *tok_kind_name(const struct tok *tok);
unsigned tok_vocab_size(const struct tok *tok);

/* Pre-tokenizer only (tests, fuzzing): calls fn for each piece the text is
 * split into, after added-token extraction, UTF-8 repair and normalization.
 * `special` is 1 for an added token.  Returns -1 if memory runs out. */
typedef void (*tok_piece_fn)(void *ud, const char *piece, size_t len,
                             int special);
int tok_split(const struct tok *tok, const char *text, size_t len,
              tok_piece_fn fn, void *ud);

/* Disables the piece cache (benchmark: cold numbers). */
void tok_set_cache(struct tok *tok, int enabled);

#endif
