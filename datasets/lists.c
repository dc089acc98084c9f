/* Class lists and split lists: small text files that users write by hand, parsed from memory so
 * that the same code serves the loaders and the fuzz targets. Every problem is an error naming
 * file:line; nothing is resolved silently (a repeated index used to rename a class). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mn/fileio.h"

/* ---- lines ---- */

typedef struct line_iter {
    const char *p, *end;
    int lineno;
} line_iter;

/* Lines of text; a UTF-8 byte-order mark (Windows editors write one) is not part of the first. */
static line_iter lines_of(const char *text, size_t len)
{
    line_iter it = {text, text + len, 0};
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) it.p += 3;
    return it;
}

/* The next line without its end and with blanks trimmed at both ends, copied into buf (NUL-ended);
 * 0 at the end of the text, 1 for a line, negative for a line no list may hold. */
static int next_line(line_iter *it, char *buf, size_t size, const char *path)
{
    if (it->p >= it->end) return 0;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    const char *s = it->p, *e = nl ? nl : it->end;
    it->p = nl ? nl + 1 : it->end;
    it->lineno++;
    if (e > s && e[-1] == '\r') e--;
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    for (const char *c = s; c < e; c++) {
        unsigned char u = (unsigned char)*c;
        if (u == 0) return mn_error(MN_EFORMAT, "%s:%d: NUL byte (not a text file?)", path, it->lineno);
        if ((u < 0x20 && u != '\t') || u == 0x7f)
            return mn_error(MN_EFORMAT, "%s:%d: control character 0x%02x", path, it->lineno, u);
    }
    if ((size_t)(e - s) >= size)
        return mn_error(MN_EFORMAT, "%s:%d: line longer than %zu characters", path, it->lineno, size - 1);
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = 0;
    return 1;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A name/line pair, sorted by name to find repeats. */
typedef struct named_line {
    const char *name;
    int line;
} named_line;

static int cmp_named(const void *a, const void *b)
{
    const named_line *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* The earliest line that repeats a name of an earlier line: *line and *first (0 when none). */
static int find_repeat(const char *const *names, const int *lines, int n, int *line, int *first, const char **name)
{
    *line = *first = 0;
    named_line *t = malloc(sizeof *t * (size_t)(n ? n : 1));
    if (!t) return MN_ENOMEM;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (names[i]) t[m++] = (named_line){names[i], lines[i]};
    qsort(t, (size_t)m, sizeof *t, cmp_named);
    for (int i = 1; i < m; i++) {
        if (strcmp(t[i].name, t[i - 1].name)) continue;
        int j = i - 1; /* the first line of this run of equal names */
        while (j > 0 && !strcmp(t[j - 1].name, t[i].name)) j--;
        if (!*line || t[i].line < *line) {
            *line = t[i].line;
            *first = t[j].line;
            *name = t[i].name;
        }
    }
    free(t);
    return 0;
}

/* ---- class lists ---- */

void mn_ds_classes_free(mn_ds_classes *c)
{
    if (!c) return;
    for (int k = 0; k < c->n; k++) free(c->names[k]);
    free(c->names);
    free(c->line);
    memset(c, 0, sizeof *c);
}

/* Room for index k (entries in between NULL). */
static int classes_reserve(mn_ds_classes *c, int k, int *cap, const char *path)
{
    if (k < *cap) return 0;
    int n = *cap ? *cap : 64;
    while (n <= k) n *= 2;
    char **names = realloc(c->names, sizeof *names * (size_t)n);
    if (!names) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    c->names = names;
    int *line = realloc(c->line, sizeof *line * (size_t)n);
    if (!line) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    c->line = line;
    for (int i = *cap; i < n; i++) {
        c->names[i] = NULL;
        c->line[i] = 0;
    }
    *cap = n;
    return 0;
}

/* Splits "INDEX NAME" lines: *idx = -1 when the line is a bare name. A one-word line is always a name
 * ("0", "001.Black_footed_Albatross" are folder names); in a longer line a first word that starts like a
 * number but is not one ("1x cat", "1.5 cat") is an error, so a typo cannot become part of a name. */
static int split_index(char *line, char **name, long long *idx, const char *path, int lineno)
{
    *idx = -1;
    *name = line;
    size_t word = strcspn(line, " \t");
    const char *s = line;
    if (*s == '+' || *s == '-') s++;
    if (!line[word] || !is_digit(*s)) return 0;
    const char *d = s;
    long long v = 0;
    bool big = false;
    while (is_digit(*d)) {
        if (v > 1000000000LL) big = true;
        else v = v * 10 + (*d - '0');
        d++;
    }
    if ((size_t)(d - line) != word)
        return mn_error(MN_EFORMAT, "%s:%d: \"%.*s\" is not a class index (lines are \"INDEX NAME\" or a name; a "
                        "name of several words must not start with a digit)", path, lineno,
                        (int)(word > 40 ? 40 : word), line);
    char *p = line + word;
    while (*p == ' ' || *p == '\t') p++;
    *name = p;
    *idx = big ? (line[0] == '-' ? -2000000000LL : 2000000000LL) : (line[0] == '-' ? -v : v);
    return 0;
}

int mn_ds_classes_parse(mn_ds_classes *out, const char *text, size_t len, const char *path,
                        enum mn_ds_class_format format, int max_classes)
{
    memset(out, 0, sizeof *out);
    line_iter it = lines_of(text, len);
    char buf[1024];
    int cap = 0, next = 0, rc = 0, got;
    while (!rc && (got = next_line(&it, buf, sizeof buf, path)) != 0) {
        if (got < 0) {
            rc = got;
            break;
        }
        if (!buf[0] || buf[0] == '#') continue;
        char *name = buf;
        long long idx = -1;
        if (format != MN_DS_CLASSES_NAMES && (rc = split_index(buf, &name, &idx, path, it.lineno))) break;
        if (idx < 0 && name == buf) idx = next; /* a bare name takes the next index */
        if (format == MN_DS_CLASSES_ORDERED && idx != next) {
            rc = mn_error(MN_EFORMAT, "%s:%d: class index %lld but this is class %d of the list", path, it.lineno, idx,
                          next);
            break;
        }
        if (idx < 0 || idx >= max_classes) {
            rc = format == MN_DS_CLASSES_INDEXED
                     ? mn_error(MN_EFORMAT, "%s:%d: class index %lld is outside [0, %d]", path, it.lineno, idx,
                                max_classes - 1)
                     : mn_error(MN_EFORMAT, "%s:%d: more than %d classes", path, it.lineno, max_classes);
            break;
        }
        if (strlen(name) > MN_DS_CLASS_NAME_MAX) {
            rc = mn_error(MN_EFORMAT, "%s:%d: class name longer than %d characters", path, it.lineno,
                          MN_DS_CLASS_NAME_MAX);
            break;
        }
        int k = (int)idx;
        if ((rc = classes_reserve(out, k, &cap, path))) break;
        if (out->names[k]) {
            rc = mn_error(MN_EFORMAT, "%s:%d: class index %d is given twice (line %d names it \"%s\", this line \"%s\")",
                          path, it.lineno, k, out->line[k], out->names[k], name);
            break;
        }
        if (!(out->names[k] = strdup(name))) {
            rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
            break;
        }
        out->line[k] = it.lineno;
        if (k + 1 > out->n) out->n = k + 1;
        next = k + 1;
    }
    if (!rc && out->n == 0) rc = mn_error(MN_EFORMAT, "%s: the class list is empty", path);
    if (!rc) {
        int line, first;
        const char *name = NULL;
        if (find_repeat((const char *const *)out->names, out->line, out->n, &line, &first, &name))
            rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
        else if (line)
            rc = mn_error(MN_EFORMAT, "%s:%d: class name \"%s\" is given twice (first at line %d)", path, line, name,
                          first);
    }
    if (rc) mn_ds_classes_free(out); /* every name set so far sits below n */
    return rc;
}

int mn_ds_classes_read(mn_ds_classes *out, const char *path, enum mn_ds_class_format format, int max_classes)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    int rc = mn_read_file(path, MN_DS_LIST_MAX_BYTES, "class list", &text, &len);
    if (rc) return rc;
    rc = mn_ds_classes_parse(out, text, len, path, format, max_classes);
    free(text);
    return rc;
}

/* ---- split lists ---- */

int mn_ds_split_parse(mn_ds_files *out, int **lines, const char *text, size_t len, const char *path)
{
    memset(out, 0, sizeof *out);
    *lines = NULL;
    line_iter it = lines_of(text, len);
    char buf[1024];
    int rc = 0, got;
    while (!rc && (got = next_line(&it, buf, sizeof buf, path)) != 0) {
        if (got < 0) {
            rc = got;
            break;
        }
        if (!buf[0]) continue;
        buf[strcspn(buf, " \t")] = 0; /* detection lists carry a second column; the id comes first */
        if (strlen(buf) > 200) {
            rc = mn_error(MN_EFORMAT, "%s:%d: image id longer than 200 characters", path, it.lineno);
        } else if (strchr(buf, '/') || !strcmp(buf, ".") || !strcmp(buf, "..")) {
            /* ids are file stems in the images folder: a path could reach files outside the data set */
            rc = mn_error(MN_EFORMAT, "%s:%d: \"%s\" is not an image id (ids are file names without extension, "
                          "no '/')", path, it.lineno, buf);
        } else if (out->n == out->cap) {
            int cap = out->cap ? 2 * out->cap : 256;
            char **names = realloc(out->names, sizeof *names * (size_t)cap);
            int *l = names ? realloc(*lines, sizeof *l * (size_t)cap) : NULL;
            if (names) out->names = names;
            if (l) *lines = l;
            if (!names || !l) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
            else out->cap = cap;
        }
        if (rc) break;
        if (!(out->names[out->n] = strdup(buf))) {
            rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
            break;
        }
        (*lines)[out->n++] = it.lineno;
    }
    if (!rc) {
        int line, first;
        const char *name = NULL;
        if (find_repeat((const char *const *)out->names, *lines, out->n, &line, &first, &name))
            rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
        else if (line)
            rc = mn_error(MN_EFORMAT, "%s:%d: image id \"%s\" is listed twice (first at line %d)", path, line, name,
                          first);
    }
    if (rc) {
        mn_ds_files_free(out);
        free(*lines);
        *lines = NULL;
    }
    return rc;
}
