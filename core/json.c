/* Strict JSON parsing on top of cJSON: nesting capped before cJSON recurses, the whole input
 * consumed, duplicate keys refused with the path of their object. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/json.h"

/* 1-based line and column (in bytes) of text[at]. */
static void line_col(const char *text, size_t at, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int syntax_error(const char *text, size_t at, const char *origin, const char *why)
{
    int line, col;
    line_col(text, at, &line, &col);
    return mn_error(MN_EFORMAT, "%s: invalid JSON at line %d, column %d (byte %zu)%s%s", origin, line, col, at,
                    why ? ": " : "", why ? why : "");
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* One pass over the bytes before cJSON sees them: cJSON recurses once per level (up to its
 * own cap of 1000), and it skips any byte below 0x20 as whitespace where JSON allows four. */
static int prescan(const char *text, size_t len, const char *origin)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (in_string) {
            if (c < 0x20) return syntax_error(text, i, origin, "control byte inside a string (escape it)");
            if (c == '\\') i++;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > MN_JSON_MAX_DEPTH) {
                int line, col;
                line_col(text, i, &line, &col);
                return mn_error(MN_EFORMAT, "%s: JSON nested deeper than %d levels at line %d, column %d (byte %zu)",
                                origin, MN_JSON_MAX_DEPTH, line, col, i);
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c < 0x20 && !is_space((char)c)) {
            char why[48];
            snprintf(why, sizeof why, "control byte 0x%02x outside a string", c);
            return syntax_error(text, i, origin, why);
        }
    }
    return 0;
}

typedef struct frame {
    const cJSON *node;  /* an array or object */
    const cJSON *next;  /* its next child to visit */
    int index;          /* the index of the child visited last */
} frame;

/* The path of stack[top-1] as "a.b[3].c" (empty for the root), cut short if long. */
static void render_path(const frame *stack, int top, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 1; i < top && n < size; i++) {
        const frame *parent = &stack[i - 1];
        int w;
        if (cJSON_IsArray(parent->node))
            w = snprintf(buf + n, size - n, "[%d]", parent->index);
        else
            w = snprintf(buf + n, size - n, "%s%s", n ? "." : "", stack[i].node->string ? stack[i].node->string : "");
        if (w < 0) break;
        n += (size_t)w;
    }
    if (n >= size && size > 4) memcpy(buf + size - 4, "...", 4);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that obj holds twice, or NULL. Objects are small (a COCO annotation has
 * about eight keys) but numerous, so pairs are compared directly up to 16 keys and sorted
 * beyond; keys is a scratch array grown as needed. */
static const char *find_duplicate(const cJSON *obj, const char ***keys, size_t *cap, bool *oom)
{
    size_t k = 0;
    for (const cJSON *c = obj->child; c; c = c->next) k++;
    if (k <= 16) {
        for (const cJSON *a = obj->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string && b->string && !strcmp(a->string, b->string)) return a->string;
        return NULL;
    }
    if (k > *cap) {
        const char **grown = realloc(*keys, k * sizeof *grown);
        if (!grown) {
            *oom = true;
            return NULL;
        }
        *keys = grown;
        *cap = k;
    }
    size_t m = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string) (*keys)[m++] = c->string;
    qsort(*keys, m, sizeof **keys, cmp_keys);
    for (size_t i = 1; i < m; i++)
        if (!strcmp((*keys)[i - 1], (*keys)[i])) return (*keys)[i];
    return NULL;
}

/* Depth-first over the tree with an explicit stack (the prescan bounds its depth). */
static int check_keys(const cJSON *root, const char *origin)
{
    if (!cJSON_IsArray(root) && !cJSON_IsObject(root)) return 0;
    frame stack[MN_JSON_MAX_DEPTH];
    const char **keys = NULL;
    size_t cap = 0;
    int top = 0, rc = 0;
    const cJSON *node = root;
    for (;;) {
        if (node) {
            if (top == MN_JSON_MAX_DEPTH) {
                rc = mn_error(MN_EFORMAT, "%s: JSON nested deeper than %d levels", origin, MN_JSON_MAX_DEPTH);
                break;
            }
            stack[top++] = (frame){node, node->child, -1};
            bool oom = false;
            const char *dup = cJSON_IsObject(node) ? find_duplicate(node, &keys, &cap, &oom) : NULL;
            if (oom) {
                rc = mn_error(MN_ENOMEM, "%s: out of memory checking JSON keys", origin);
                break;
            }
            if (dup) {
                char path[256];
                render_path(stack, top, path, sizeof path);
                rc = mn_error(MN_EFORMAT, "%s: duplicate key \"%.80s\" in %s%s (JSON keeps one silently; remove one)",
                              origin, dup, path[0] ? "" : "the top-level object", path);
                break;
            }
        }
        if (!top) break;
        frame *f = &stack[top - 1];
        const cJSON *c = f->next;
        if (!c) {
            top--;
            node = NULL;
            continue;
        }
        f->next = c->next;
        f->index++;
        node = (cJSON_IsArray(c) || cJSON_IsObject(c)) ? c : NULL;
    }
    free(keys);
    return rc;
}

int mn_json_parse(const char *text, size_t len, const char *origin, cJSON **out)
{
    *out = NULL;
    if (!origin) origin = "JSON";
    size_t first = 0;
    while (first < len && is_space(text[first])) first++;
    if (first == len) return mn_error(MN_EFORMAT, "%s: empty JSON (no value)", origin);
    int rc = prescan(text, len, origin);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t at = (end && end >= text && end <= text + len) ? (size_t)(end - text) : len;
    if (!root) return syntax_error(text, at < len ? at : len - 1, origin, NULL);
    while (at < len && is_space(text[at])) at++;
    if (at < len) {
        cJSON_Delete(root);
        return syntax_error(text, at, origin, "unexpected text after the value");
    }
    rc = check_keys(root, origin);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return 0;
}
