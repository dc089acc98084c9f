/* JSON text from outside (configurations, COCO files, checkpoint headers) into a cJSON tree.
 *
 * cJSON accepts two things that would make a file mean something else here than in the
 * Python tools that write and read the same files: an object holding the same key twice
 * (cJSON's lookups return the first value, Python's json and pycocotools keep the last) and
 * nesting deep enough to exhaust a recursive reader's stack. Both are refused, as is any text
 * after the value. */
#ifndef MN_JSON_H
#define MN_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"

/* Deepest nesting of arrays and objects accepted (cJSON's own cap is 1000). */
#define MN_JSON_MAX_DEPTH 512
/* Largest JSON file read whole (COCO's train2017 instances file is 448 MB; cJSON's tree takes
 * several times the text). */
#define MN_JSON_MAX_BYTES ((size_t)4 << 30)

/* Parses text[0, len) (no NUL terminator needed; a NUL inside is an error) as one JSON value,
 * with only whitespace around it. origin names the source in messages (a path, "--set lr").
 * On success *out owns the tree (free it with cJSON_Delete). On failure *out is NULL and the
 * message gives the line, column and byte offset of a syntax error, or the key and the path
 * of the object (e.g. annotations[12].bbox) holding a duplicate key. MN_EFORMAT or MN_ENOMEM. */
MN_API int mn_json_parse(const char *text, size_t len, const char *origin, cJSON **out);

#endif
