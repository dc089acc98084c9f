/* mn_json_parse: duplicate keys, nesting depth, trailing text and syntax errors are refused
 * with a message naming the origin and the place; valid documents parse unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "mn/json.h"

/* Parses text expecting failure with code; asserts that the message contains each of the
 * NULL-terminated fragments. */
static void expect_error(const char *text, int code, ...)
{
    cJSON *root = (cJSON *)1;
    int rc = mn_json_parse(text, strlen(text), "cfg.json", &root);
    cr_assert_eq(rc, code, "got %d for %.80s: %s", rc, text, mn_last_error());
    cr_assert_null(root);
    const char *msg = mn_last_error();
    cr_assert(!strncmp(msg, "cfg.json: ", 10), "message does not start with the origin: %s", msg);
    va_list ap;
    va_start(ap, code);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        cr_assert(strstr(msg, frag), "message lacks \"%s\": %s", frag, msg);
    va_end(ap);
}

static cJSON *parse_ok(const char *text)
{
    cJSON *root = NULL;
    int rc = mn_json_parse(text, strlen(text), "cfg.json", &root);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    cr_assert_not_null(root);
    return root;
}

Test(json, duplicate_at_top_level)
{
    expect_error("{\"lr\": 0.1, \"seed\": 3, \"lr\": 0.01}", MN_EFORMAT,
                 "duplicate key \"lr\" in the top-level object (JSON keeps one silently; remove one)", NULL);
}

Test(json, duplicate_in_nested_object_names_its_path)
{
    expect_error("{\"train\": {\"iterations\": 10, \"optim\": {\"lr\": 1, \"momentum\": 0.9, \"lr\": 2}}}", MN_EFORMAT,
                 "duplicate key \"lr\" in train.optim (", NULL);
    expect_error("{\"train\": {\"lr\": 1, \"lr\": 1}}", MN_EFORMAT, "duplicate key \"lr\" in train (", NULL);
}

Test(json, duplicate_inside_array_of_objects_names_the_index)
{
    /* a COCO-like file: the thirteenth annotation holds "bbox" twice */
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"images\": [], \"annotations\": [");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s{\"id\": %d, \"bbox\": [1, 2, 3, 4]%s}", i ? ", " : "", i,
                              i == 12 ? ", \"bbox\": [5, 6, 7, 8]" : "");
    snprintf(text + n, sizeof text - n, "]}");
    expect_error(text, MN_EFORMAT, "duplicate key \"bbox\" in annotations[12] (", NULL);
    /* arrays inside arrays */
    expect_error("[[1, {\"a\": 1}], [2, [3, {\"b\": {\"c\": 1, \"c\": 2}}]]]", MN_EFORMAT,
                 "duplicate key \"c\" in [1][1][1].b (", NULL);
}

Test(json, duplicate_among_many_keys_is_found_by_the_sorted_path)
{
    /* more than 16 keys takes the sort-based check; the duplicate pair is far apart */
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"big\": {");
    for (int i = 0; i < 200; i++) n += (size_t)snprintf(text + n, sizeof text - n, "\"k%03d\": %d, ", i, i);
    snprintf(text + n, sizeof text - n, "\"k007\": 0}}");
    expect_error(text, MN_EFORMAT, "duplicate key \"k007\" in big (", NULL);
    /* the same object without the duplicate is fine, and keeps all 200 keys */
    snprintf(text + n - 2, sizeof text - n + 2, "}}");
    cJSON *root = parse_ok(text);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "big")), 200);
    cJSON_Delete(root);
}

Test(json, same_key_in_different_objects_is_fine)
{
    cJSON *root = parse_ok("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}, \"x\": [{\"x\": 3}, {\"x\": 4}]}");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "b"), "x")->valueint, 2);
    cr_assert_eq(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "x"), 1)->child->valueint, 4);
    cJSON_Delete(root);
    /* keys differing only in case are different keys */
    root = parse_ok("{\"LR\": 1, \"lr\": 2}");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(root, "lr")->valueint, 2);
    cJSON_Delete(root);
}

static char *nested(int depth, char open, char close)
{
    char *s = malloc((size_t)depth * 2 + 2);
    cr_assert_not_null(s);
    memset(s, open, (size_t)depth);
    memset(s + depth, close, (size_t)depth);
    s[2 * depth] = 0;
    return s;
}

Test(json, nesting_is_capped_before_cjson_recurses)
{
    char *ok = nested(MN_JSON_MAX_DEPTH, '[', ']');
    cJSON *root = parse_ok(ok);
    cJSON_Delete(root);
    free(ok);
    char *deep = nested(MN_JSON_MAX_DEPTH + 1, '[', ']');
    expect_error(deep, MN_EFORMAT, "JSON nested deeper than 512 levels at line 1, column 513 (byte 512)", NULL);
    free(deep);
    /* far beyond cJSON's own cap of 1000: the same message, not a generic syntax error */
    deep = nested(100000, '[', ']');
    expect_error(deep, MN_EFORMAT, "nested deeper than 512 levels", NULL);
    free(deep);
    /* brackets inside strings do not count */
    char text[3000];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"s\": \"");
    memset(text + n, '[', 2000);
    snprintf(text + n + 2000, sizeof text - n - 2000, "\"}");
    root = parse_ok(text);
    cr_assert_eq(strlen(cJSON_GetObjectItemCaseSensitive(root, "s")->valuestring), 2000);
    cJSON_Delete(root);
}

Test(json, text_after_the_value_is_refused)
{
    expect_error("{\"a\": 1} x", MN_EFORMAT, "invalid JSON at line 1, column 10 (byte 9): unexpected text after the value",
                 NULL);
    expect_error("{\"a\": 1}\n{\"a\": 2}\n", MN_EFORMAT, "invalid JSON at line 2, column 1 (byte 9)", NULL);
    expect_error("[1, 2]]", MN_EFORMAT, "byte 6", NULL);
    /* whitespace around the value is fine */
    cJSON *root = parse_ok(" \n\t{\"a\": [1, 2]}\r\n  ");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "a")), 2);
    cJSON_Delete(root);
}

Test(json, syntax_errors_give_line_column_and_byte)
{
    expect_error("{\n  \"a\": 1,\n  \"b\": tru\n}", MN_EFORMAT, "invalid JSON at line 3, column", NULL);
    expect_error("", MN_EFORMAT, "empty JSON (no value)", NULL);
    expect_error(" \n ", MN_EFORMAT, "empty JSON", NULL);
    expect_error("{\"a\": 1", MN_EFORMAT, "invalid JSON at line 1", NULL);
    /* control bytes: cJSON would take them as whitespace, JSON (and Python) do not */
    expect_error("{\"a\":\x01 1}", MN_EFORMAT, "(byte 5): control byte 0x01 outside a string", NULL);
    expect_error("{\"a\": \"x\ty\"}", MN_EFORMAT, "(byte 8): control byte inside a string", NULL);
}

Test(json, embedded_nul_and_unterminated_buffers)
{
    /* the length, not a NUL, ends the text: a NUL inside is an error, not an early end */
    const char with_nul[] = "{\"a\": 1}\0{\"a\": 2}";
    cJSON *root = (cJSON *)1;
    cr_assert_eq(mn_json_parse(with_nul, sizeof with_nul - 1, "x.json", &root), MN_EFORMAT);
    cr_assert_null(root);
    cr_assert(strstr(mn_last_error(), "x.json: invalid JSON at line 1, column 9 (byte 8)"), "%s", mn_last_error());
    /* a buffer with no terminator at all (ASan would see a read past its end) */
    const char text[] = "{\"n\": 12345}";
    char *exact = malloc(sizeof text - 1);
    cr_assert_not_null(exact);
    memcpy(exact, text, sizeof text - 1);
    cr_assert_eq(mn_json_parse(exact, sizeof text - 1, "x.json", &root), 0, "%s", mn_last_error());
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(root, "n")->valueint, 12345);
    cJSON_Delete(root);
    memcpy(exact, "{\"n\": 1234", sizeof text - 3);
    cr_assert_eq(mn_json_parse(exact, sizeof text - 3, "x.json", &root), MN_EFORMAT);
    free(exact);
}

Test(json, valid_documents_parse_as_cjson_parses_them)
{
    const char *docs[] = {
        "{\"model\": {\"backbone\": \"mbv2\", \"widths\": [0.35, 0.5, 1.0]}, \"train\": {\"lr\": 0.01, \"seed\": 7}}",
        "[{\"id\": 1, \"bbox\": [0, 0, 1, 1], \"score\": 0.5}, {\"id\": 2, \"bbox\": [1, 1, 2, 2], \"score\": 0.25}]",
        "\"just a string with \\\"quotes\\\" and \\u00e9\"",
        "-12.5e3",
        "null",
        "{}",
        "[]",
        "{\"\": 1, \"a\": {\"\": 2}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        cJSON *a = parse_ok(docs[i]), *b = cJSON_Parse(docs[i]);
        cr_assert_not_null(b);
        char *sa = cJSON_PrintUnformatted(a), *sb = cJSON_PrintUnformatted(b);
        cr_assert_str_eq(sa, sb);
        free(sa);
        free(sb);
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
}

Test(json, many_small_objects_stay_fast)
{
    /* a COCO-sized array (100k annotations of 8 keys) is checked in linear time */
    size_t cap = 100000 * 128 + 64, n = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    n += (size_t)snprintf(text + n, cap - n, "{\"annotations\": [");
    for (int i = 0; i < 100000; i++)
        n += (size_t)snprintf(text + n, cap - n,
                              "%s{\"id\":%d,\"image_id\":%d,\"category_id\":1,\"bbox\":[1,2,3,4],\"area\":12,"
                              "\"iscrowd\":0,\"a\":1,\"b\":2}",
                              i ? "," : "", i, i / 7);
    n += (size_t)snprintf(text + n, cap - n, "]}");
    cJSON *root = NULL;
    cr_assert_eq(mn_json_parse(text, n, "big.json", &root), 0, "%s", mn_last_error());
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "annotations")), 100000);
    cJSON_Delete(root);
    free(text);
}
