/*
 * estimate.c - the one-pass token estimator (see estimate.h).
 *
 * The scanner mirrors the o200k_base pre-tokenizer closely enough for a
 * linear model to work: Latin words split at lower->Upper, digits in groups
 * of three, punctuation runs, whitespace runs (a single space rides on the
 * next word), and script runs. A run of ASCII letters and digits that
 * changes class often (base64, hex, UUID parts) is counted by length
 * instead, because BPE cuts such text into short pieces.
 */
#include "estimate.h"

#include <math.h>
#include <string.h>

/* Character classes. */
enum {
    K_PUNCT,
    K_LOWER,
    K_UPPER,
    K_DIGIT,
    K_SPACE,
    K_NL,
    K_LATINX,
    K_MARK,
    K_CJK,
    K_CJKP,
    K_KANA,
    K_HANGUL,
    K_CYR,
    K_ARAB,
    K_INDIC,
    K_THAI,
    K_OTHERL,
    K_EMOJI,
    K_JOIN,
    K_SYMBOL
};

/* Letter groups, for word runs (0 = not in a letter run). */
enum {
    G_NONE,
    G_LATIN,
    G_CJK,
    G_KANA,
    G_HANGUL,
    G_CYR,
    G_ARAB,
    G_INDIC,
    G_THAI,
    G_OTHER
};

static const unsigned char ascii_class[128] = {
    ['\t'] = K_SPACE, ['\n'] = K_NL,   ['\v'] = K_SPACE, ['\f'] = K_SPACE,
    ['\r'] = K_NL,    [' '] = K_SPACE, ['0'] = K_DIGIT,  ['1'] = K_DIGIT,
    ['2'] = K_DIGIT,  ['3'] = K_DIGIT, ['4'] = K_DIGIT,  ['5'] = K_DIGIT,
    ['6'] = K_DIGIT,  ['7'] = K_DIGIT, ['8'] = K_DIGIT,  ['9'] = K_DIGIT,
    ['A'] = K_UPPER,  ['B'] = K_UPPER, ['C'] = K_UPPER,  ['D'] = K_UPPER,
    ['E'] = K_UPPER,  ['F'] = K_UPPER, ['G'] = K_UPPER,  ['H'] = K_UPPER,
    ['I'] = K_UPPER,  ['J'] = K_UPPER, ['K'] = K_UPPER,  ['L'] = K_UPPER,
    ['M'] = K_UPPER,  ['N'] = K_UPPER, ['O'] = K_UPPER,  ['P'] = K_UPPER,
    ['Q'] = K_UPPER,  ['R'] = K_UPPER, ['S'] = K_UPPER,  ['T'] = K_UPPER,
    ['U'] = K_UPPER,  ['V'] = K_UPPER, ['W'] = K_UPPER,  ['X'] = K_UPPER,
    ['Y'] = K_UPPER,  ['Z'] = K_UPPER, ['a'] = K_LOWER,  ['b'] = K_LOWER,
    ['c'] = K_LOWER,  ['d'] = K_LOWER, ['e'] = K_LOWER,  ['f'] = K_LOWER,
    ['g'] = K_LOWER,  ['h'] = K_LOWER, ['i'] = K_LOWER,  ['j'] = K_LOWER,
    ['k'] = K_LOWER,  ['l'] = K_LOWER, ['m'] = K_LOWER,  ['n'] = K_LOWER,
    ['o'] = K_LOWER,  ['p'] = K_LOWER, ['q'] = K_LOWER,  ['r'] = K_LOWER,
    ['s'] = K_LOWER,  ['t'] = K_LOWER, ['u'] = K_LOWER,  ['v'] = K_LOWER,
    ['w'] = K_LOWER,  ['x'] = K_LOWER, ['y'] = K_LOWER,  ['z'] = K_LOWER,
    /* everything else below 0x80 (0 = K_PUNCT): punctuation, controls */
};

static int cp_class(uint32_t c)
{
    if (c < 0x300) {
        if (c >= 0xC0 && c != 0xD7 && c != 0xF7)
            return K_LATINX;
        if (c == 0xA0 || c == 0x85)
            return K_SPACE;
        return c == 0xAA || c == 0xB5 || c == 0xBA ? K_LATINX : K_SYMBOL;
    }
    if (c < 0x370)
        return K_MARK;
    if (c < 0x2000) {
        if (c >= 0x400 && c < 0x530)
            return K_CYR;
        if ((c >= 0x600 && c < 0x700) || (c >= 0x750 && c < 0x780))
            return (c >= 0x64B && c < 0x660) || c == 0x670 ? K_MARK : K_ARAB;
        if (c >= 0x900 && c < 0xE00)
            return K_INDIC;
        if (c >= 0xE00 && c < 0xF00)
            return K_THAI;
        if (c >= 0x1100 && c < 0x1200)
            return K_HANGUL;
        if (c >= 0x1E00 && c < 0x1F00)
            return K_LATINX;
        if (c >= 0x1AB0 && c < 0x1B00)
            return K_MARK;
        if (c >= 0x1DC0 && c < 0x1E00)
            return K_MARK;
        return K_OTHERL;
    }
    if (c < 0x3000) {
        if (c == 0x200D || (c >= 0x200B && c < 0x2010) || c == 0x20E3 ||
            c == 0x2060)
            return K_JOIN;
        if (c == 0x2028 || c == 0x2029)
            return K_NL;
        if (c < 0x200B || c == 0x202F || c == 0x205F)
            return K_SPACE;
        if (c >= 0x20D0 && c < 0x2100)
            return K_MARK;
        if ((c >= 0x2600 && c < 0x27C0) || (c >= 0x2B00 && c < 0x2C00) ||
            c == 0x231A || c == 0x231B || c == 0x23F0 || c == 0x23F3 ||
            (c >= 0x23E9 && c < 0x23F4) || (c >= 0x23F8 && c < 0x23FB))
            return K_EMOJI;
        if (c >= 0x2C00 && c < 0x2E00)
            return K_OTHERL;
        if (c >= 0x2E80 && c < 0x2FE0)
            return K_CJK;
        return K_SYMBOL;
    }
    if (c < 0xA000) {
        if (c < 0x3040)
            return c == 0x3000 ? K_SPACE : K_CJKP;
        if (c < 0x3100)
            return K_KANA;
        if (c >= 0x3130 && c < 0x3190)
            return K_HANGUL;
        if (c >= 0x31F0 && c < 0x3200)
            return K_KANA;
        if (c >= 0x3400)
            return K_CJK;
        return K_CJKP;
    }
    if (c < 0x10000) {
        if (c >= 0xAC00 && c < 0xD7B0)
            return K_HANGUL;
        if (c >= 0xF900 && c < 0xFB00)
            return K_CJK;
        if ((c >= 0xFB50 && c < 0xFE00) || (c >= 0xFE70 && c < 0xFF00))
            return K_ARAB;
        if (c >= 0xFE00 && c < 0xFE10)
            return K_JOIN;
        if (c >= 0xFE20 && c < 0xFE30)
            return K_MARK;
        if (c >= 0xFF00 && c < 0xFF66)
            return K_CJKP;
        if (c >= 0xFF66 && c < 0xFFA0)
            return K_KANA;
        if (c >= 0xFFA0 && c < 0xFFE0)
            return K_HANGUL;
        if (c >= 0xA830 && c < 0xA840)
            return K_INDIC;
        return c >= 0xE000 ? K_SYMBOL : K_OTHERL;
    }
    if (c >= 0x1F3FB && c <= 0x1F3FF)
        return K_JOIN; /* skin tones */
    if (c >= 0x1F000 && c < 0x1FB00)
        return K_EMOJI;
    if (c >= 0x20000 && c < 0x32000)
        return K_CJK;
    if (c >= 0xE0000 && c < 0xE1000)
        return K_JOIN; /* tags, variation selectors supplement */
    return K_SYMBOL;
}

static const unsigned char class_group[] = {
    [K_LOWER] = G_LATIN, [K_UPPER] = G_LATIN,  [K_LATINX] = G_LATIN,
    [K_CJK] = G_CJK,     [K_KANA] = G_KANA,    [K_HANGUL] = G_HANGUL,
    [K_CYR] = G_CYR,     [K_ARAB] = G_ARAB,    [K_INDIC] = G_INDIC,
    [K_THAI] = G_THAI,   [K_OTHERL] = G_OTHER,
};

/* What a letter/digit run holds, for the hex/base64 test. */
enum { A_DIGIT = 1, A_LOWER = 2, A_UPPER = 4, A_NONHEX = 8, A_EXT = 16 };

/* Scanner state for one text. */
struct scan {
    uint64_t *f;
    int group; /* letter group of the current run */
    int prev;  /* class of the previous character */
    /* the current run of ASCII letters/digits (and Latin letters) */
    uint32_t alen, atrans;
    int alast;       /* K_LOWER/K_UPPER/K_DIGIT of its last character */
    unsigned amask;  /* A_* seen in the run */
    uint32_t piece;  /* letters of the current Latin piece */
    uint32_t pupper; /* capitals in it */
    uint32_t digits; /* digits of the current digit run */
    /* counts pending until the run ends (words, or hex/base64?) */
    uint64_t p_word, p_exc4, p_exc8, p_upper, p_digit;
    /* whitespace and punctuation runs */
    uint32_t wlen;
    int wnl, wtab;
    uint32_t plen;
    unsigned char plast, pprev;
};

#if defined(__GNUC__)
#define EST_INLINE static inline __attribute__((always_inline))
#else
#define EST_INLINE static inline
#endif

EST_INLINE void piece_end(struct scan *s)
{
    if (s->piece > 1 && s->pupper == s->piece)
        s->p_upper += s->piece;
    s->pupper = 0;
    if (s->piece > 4)
        s->p_exc4 += s->piece - 4;
    if (s->piece > 8)
        s->p_exc8 += s->piece - 8;
    s->piece = 0;
}

EST_INLINE void digits_end(struct scan *s)
{
    s->p_digit += (s->digits + 2) / 3;
    s->digits = 0;
}

EST_INLINE void alnum_end(struct scan *s)
{
    if (!s->alen)
        return;
    piece_end(s);
    digits_end(s);
    unsigned m = s->amask;
    int letters = m & (A_LOWER | A_UPPER);
    if ((m & A_DIGIT) && letters && !(m & (A_NONHEX | A_EXT)) &&
        (s->alen >= 8 || s->atrans >= 2)) {
        s->f[EST_HEX] += s->alen;
    } else if (!(m & A_EXT) && s->alen >= 10 &&
               (((m & A_DIGIT) && letters && s->atrans * 3 >= s->alen) ||
                ((m & A_LOWER) && (m & A_UPPER) && s->atrans * 2 >= s->alen))) {
        s->f[EST_BASE64] += s->alen;
    } else {
        s->f[EST_WORD] += s->p_word;
        s->f[EST_WORD_EXC4] += s->p_exc4;
        s->f[EST_WORD_EXC8] += s->p_exc8;
        s->f[EST_WORD_UPPER] += s->p_upper;
        s->f[EST_DIGIT_GROUP] += s->p_digit;
    }
    s->alen = s->atrans = 0;
    s->amask = 0;
    s->p_word = s->p_exc4 = s->p_exc8 = s->p_upper = s->p_digit = 0;
}

/* A single space rides on the next word or punctuation, except at the end
 * of the text; a single tab does not merge as well. */
EST_INLINE void space_end(struct scan *s, int at_end)
{
    if (!s->wlen)
        return;
    if (s->wnl)
        s->f[EST_NEWLINE_RUN]++;
    else if (s->wlen > 1 || s->wtab || at_end) {
        s->f[EST_SPACE_RUN]++;
        s->f[EST_SPACE_CHAR] += s->wlen;
    }
    s->wlen = 0;
    s->wnl = s->wtab = 0;
}

/* An ASCII letter, digit or non-ASCII Latin letter (cp: its code). */
static inline void alnum_char(struct scan *s, int k, uint32_t cp)
{
    int sub = k == K_LATINX ? K_LOWER : k;
    if (s->alen && sub != s->alast)
        s->atrans++;
    s->alen++;
    if (sub == K_DIGIT) {
        if (s->piece)
            piece_end(s);
        s->digits++;
        s->amask |= A_DIGIT;
    } else {
        s->amask |= sub == K_UPPER ? A_UPPER : A_LOWER;
        if (k == K_LATINX)
            s->amask |= A_EXT;
        else if ((cp | 0x20) > 'f')
            s->amask |= A_NONHEX;
        if (s->digits)
            digits_end(s);
        /* a new piece: after a non-letter, or lower -> Upper */
        if (!s->piece || (sub == K_UPPER && s->alast == K_LOWER)) {
            if (s->piece)
                piece_end(s);
            s->p_word++;
        }
        s->piece++;
        s->pupper += sub == K_UPPER;
        if (k == K_LATINX)
            s->f[cp < 0x100    ? EST_LATIN1
                 : cp < 0x1E00 ? EST_LATIN_EXT
                               : EST_LATIN_VI]++;
    }
    s->alast = sub;
}

static inline void punct_char(struct scan *s, unsigned char b)
{
    s->f[EST_PUNCT]++;
    if (!s->plen)
        s->f[EST_PUNCT_RUN]++;
    else if (s->plen >= 2 && b == s->plast && b == s->pprev)
        s->f[EST_REPEAT]++;
    s->pprev = s->plast;
    s->plast = b;
    s->plen++;
}

static const unsigned char group_feature[][2] = {
    [G_CJK] = {EST_CJK, EST_CJK},
    [G_KANA] = {EST_KANA, EST_KANA},
    [G_HANGUL] = {EST_HANGUL, EST_HANGUL_WORD},
    [G_CYR] = {EST_CYRILLIC, EST_CYRILLIC_WORD},
    [G_ARAB] = {EST_ARABIC, EST_ARABIC_WORD},
    [G_INDIC] = {EST_INDIC, EST_INDIC_WORD},
    [G_THAI] = {EST_THAI, EST_THAI},
    [G_OTHER] = {EST_OTHER, EST_OTHER_WORD},
};

EST_INLINE void char_step(struct scan *s, int k, uint32_t cp)
{
    int alnum = k == K_LOWER || k == K_UPPER || k == K_DIGIT || k == K_LATINX ||
                (k == K_MARK && s->alen && s->piece);
    if (!alnum && s->alen)
        alnum_end(s);
    if (k != K_SPACE && k != K_NL)
        space_end(s, 0);
    if (k != K_PUNCT)
        s->plen = 0;

    switch (k) {
    case K_LOWER:
    case K_UPPER:
    case K_DIGIT:
    case K_LATINX:
        alnum_char(s, k, cp);
        s->group = k == K_DIGIT ? G_NONE : G_LATIN;
        break;
    case K_MARK:
        s->f[EST_MARK]++;
        break; /* keeps the current run */
    case K_SPACE:
    case K_NL:
        if (cp != ' ')
            s->wtab = 1;
        s->wlen++;
        s->wnl |= k == K_NL;
        s->group = G_NONE;
        break;
    case K_PUNCT:
        punct_char(s, (unsigned char)cp);
        s->group = G_NONE;
        break;
    case K_CJKP:
        s->f[EST_CJK_PUNCT]++;
        s->group = G_NONE;
        break;
    case K_EMOJI:
        s->f[EST_EMOJI]++;
        s->group = G_NONE;
        break;
    case K_JOIN:
        s->f[EST_JOINER]++;
        break;
    case K_SYMBOL:
        s->f[EST_SYMBOL]++;
        s->group = G_NONE;
        break;
    default: {
        int g = class_group[k];
        s->f[group_feature[g][0]]++;
        if (s->group != g) {
            if (group_feature[g][1] != group_feature[g][0])
                s->f[group_feature[g][1]]++;
            s->group = g;
        }
        break;
    }
    }
    if (k != K_MARK && k != K_JOIN)
        s->prev = k;
}

/* Decode one UTF-8 sequence at p (n bytes left, n >= 1). Returns its
 * length; *cp = U+FFFD-ish marker 0x110000 for an invalid byte. */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char b = p[0];
    size_t len;
    uint32_t c;
    if (b >= 0xE1 && b < 0xF0 && b != 0xED && n >= 3 && (p[1] & 0xC0) == 0x80 &&
        (p[2] & 0xC0) == 0x80) {
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) |
              (p[2] & 0x3F);
        return 3;
    }
    if (b >= 0xF0 && b < 0xF5)
        len = 4, c = b & 0x07;
    else if (b >= 0xE0)
        len = b < 0xF0 ? 3 : 0, c = b & 0x0F;
    else if (b >= 0xC2)
        len = 2, c = b & 0x1F;
    else
        len = 0, c = 0;
    if (!len || len > n) {
        *cp = 0x110000;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *cp = 0x110000;
            return 1;
        }
        c = (c << 6) | (p[i] & 0x3F);
    }
    *cp = c;
    return len;
}

/* The end of a run of 'a'..'z' starting at j: eight bytes at a time (a
 * byte is in range when adding 0x1f sets its top bit and adding 0x05 does
 * not, its own top bit clear; a carry out of a byte >= 0x80 only touches
 * later bytes, after the first one out of range). */
EST_INLINE size_t lower_run(const unsigned char *p, size_t j, size_t len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t hi = 0x8080808080808080ull;
    while (j + 8 <= len) {
        uint64_t x;
        memcpy(&x, p + j, 8);
        uint64_t in = (x + 0x1f1f1f1f1f1f1f1full) &
                      ~(x + 0x0505050505050505ull) & ~x & hi;
        if (in != hi)
            return j + (size_t)__builtin_ctzll(~in & hi) / 8;
        j += 8;
    }
#endif
    while (j < len && p[j] >= 'a' && p[j] <= 'z')
        j++;
    return j;
}

/* The counts alnum_end() adds for a finished word of letters only, one
 * piece of `piece` letters of which the first `upper` are capitals. */
EST_INLINE void word_done(struct scan *s, uint32_t upper, uint32_t piece)
{
    s->f[EST_WORD]++;
    if (piece > 1 && upper == piece)
        s->f[EST_WORD_UPPER] += piece;
    if (piece > 4)
        s->f[EST_WORD_EXC4] += piece - 4;
    if (piece > 8)
        s->f[EST_WORD_EXC8] += piece - 8;
}

/* Runs of one kind of ASCII character whose effect on the state is known
 * without going through char_step(): lower-case letters continuing a
 * piece, " word", a word start ([A-Z]*[a-z]*: one piece), more spaces of
 * a whitespace run, more digits of a digit run. Returns the bytes
 * consumed, 0 when none applies. Same counts as char_step() byte by byte
 * (fit/features.c output is checked unchanged when this is edited). */
static size_t scan_ascii_fast(struct scan *s, const unsigned char *p, size_t i,
                              size_t len, int k)
{
    size_t j = i;
    unsigned nonhex = 0;
    unsigned char b = p[i];
    if (k == K_LOWER && s->alast == K_LOWER && s->piece && s->prev == K_LOWER) {
        while (j < len && p[j] >= 'a' && p[j] <= 'z')
            nonhex |= p[j++] > 'f';
        s->alen += (uint32_t)(j - i);
        s->piece += (uint32_t)(j - i);
        if (nonhex)
            s->amask |= A_NONHEX;
        return j - i;
    }
    if (b == ' ' && s->wlen) {
        while (j < len && p[j] == ' ')
            j++;
        s->wlen += (uint32_t)(j - i);
        return j - i;
    }
    if (k == K_DIGIT && s->prev == K_DIGIT && s->alast == K_DIGIT) {
        while (j < len && p[j] >= '0' && p[j] <= '9')
            j++;
        s->alen += (uint32_t)(j - i);
        s->digits += (uint32_t)(j - i);
        return j - i;
    }
    int lead_space = b == ' ' && !s->wlen && i + 1 < len && p[i + 1] >= 'a' &&
                     p[i + 1] <= 'z';
    if (!lead_space && !((k == K_LOWER || k == K_UPPER) && !s->alen))
        return 0;
    /* a word starts (after a single space riding on it, or not) */
    if (s->alen)
        alnum_end(s);
    if (s->wlen)
        space_end(s, 0);
    s->plen = 0;
    j += (size_t)lead_space;
    for (;;) {
        size_t w0 = j, u;
        while (j < len && p[j] >= 'A' && p[j] <= 'Z')
            j++;
        u = j - w0;
        j = lower_run(p, j, len);
        size_t l = j - w0 - u;
        if (j == len ||
            (p[j] < 0x80 && ascii_class[p[j]] != K_LOWER &&
             ascii_class[p[j]] != K_UPPER && ascii_class[p[j]] != K_DIGIT)) {
            /* what follows ends the run (ASCII, not a letter or digit; or
             * the end): the word is counted now, as alnum_end() would
             * (letters only, at most one transition: never hex or base64) */
            word_done(s, (uint32_t)u, (uint32_t)(u + l));
            if (j + 1 < len && p[j] == ' ' && p[j + 1] >= 'a' &&
                p[j + 1] <= 'z') {
                j++; /* " word": its space rides on it; take it here */
                continue;
            }
            /* the state alnum_end() leaves */
            s->alen = s->atrans = s->piece = s->pupper = 0;
            s->amask = 0;
            s->p_word = 0;
            s->alast = s->prev = l ? K_LOWER : K_UPPER;
            s->group = G_LATIN;
            return j - i;
        }
        nonhex = 0; /* only this last word's letters matter */
        for (size_t q = w0; q < j; q++)
            nonhex |= (p[q] | 0x20) > 'f';
        s->alen = s->piece = (uint32_t)(j - w0);
        s->pupper = (uint32_t)u;
        s->atrans = u && l;
        s->alast = s->prev = l ? K_LOWER : K_UPPER;
        s->amask =
            (u ? A_UPPER : 0) | (l ? A_LOWER : 0) | (nonhex ? A_NONHEX : 0);
        s->p_word = 1;
        s->group = G_LATIN;
        return j - i;
    }
}

/* fast = 0: char_step() on every character (the reference the fast paths
 * must match, est_scan_slow). */
EST_INLINE void scan_text(const char *text, size_t len, est_counts *c, int fast)
{
    struct scan s;
    memset(&s, 0, sizeof s);
    s.f = c->f;
    s.prev = K_SPACE;
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char b = p[i];
        if (b < 0x80) {
            int k = ascii_class[b];
            size_t n = fast ? scan_ascii_fast(&s, p, i, len, k) : 0;
            if (n) {
                i += n;
                continue;
            }
            char_step(&s, k, b);
            i++;
            continue;
        }
        uint32_t cp;
        i += utf8_next(p + i, len - i, &cp);
        int k = cp_class(cp);
        if (fast && k == s.prev && k >= K_CJK && k <= K_OTHERL && k != K_CJKP) {
            /* fast path: more letters of the same script run */
            s.f[group_feature[class_group[k]][0]]++;
            continue;
        }
        char_step(&s, k, cp);
    }
    alnum_end(&s);
    space_end(&s, 1);
}

void est_scan(const char *text, size_t len, est_counts *c)
{
    scan_text(text, len, c, 1);
}

void est_scan_slow(const char *text, size_t len, est_counts *c)
{
    scan_text(text, len, c, 0);
}

double est_weigh(const est_counts *c)
{
    double t = 0;
    for (int i = 0; i < EST_NFEATURES; i++)
        t += est_weights[i] * (double)c->f[i];
    return t;
}

uint64_t est_tokens(const char *text, size_t len)
{
    est_counts c;
    memset(&c, 0, sizeof c);
    est_scan(text, len, &c);
    double t = est_weigh(&c);
    return t > 0 ? (uint64_t)ceil(t) : 0;
}

static const char *const feature_names[EST_NFEATURES] = {
    "word",          "word_exc4",   "word_exc8",   "word_upper",  "latin1",
    "latin_ext",     "latin_vi",    "digit_group", "punct",       "punct_run",
    "repeat",        "newline_run", "space_run",   "space_char",  "cjk",
    "cjk_punct",     "kana",        "hangul",      "hangul_word", "cyrillic",
    "cyrillic_word", "arabic",      "arabic_word", "indic",       "indic_word",
    "thai",          "other",       "other_word",  "mark",        "emoji",
    "joiner",        "symbol",      "hex",         "base64",
};

const char *est_feature_name(int feature)
{
    return feature >= 0 && feature < EST_NFEATURES ? feature_names[feature]
                                                   : "?";
}
