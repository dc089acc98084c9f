/* Configuration JSON (mn_config_parse), then --set KEY=VALUE overrides (mn_config_set) and the
 * round trip through mn_config_to_json that checkpoints rely on.
 *
 * Input: the JSON text, optionally followed by NUL-separated "key=value" overrides. A config
 * that is accepted must come back from its own JSON unchanged (the same JSON again). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mn/config.h"

static void round_trip(const mn_config *c)
{
    char *json = mn_config_to_json(c);
    if (!json) return; /* out of memory */
    mn_config back;
    mn_config_default(&back);
    if (mn_config_parse(json, "round trip", &back) != 0) {
        fprintf(stderr, "an accepted configuration does not read back: %s\n%s\n", mn_last_error(), json);
        abort();
    }
    char *again = mn_config_to_json(&back);
    if (again && strcmp(json, again)) {
        fprintf(stderr, "configuration JSON changed on a round trip:\n%s\n---\n%s\n", json, again);
        abort();
    }
    free(again);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = mn_fuzz_text(data, size);
    if (!text) return 0;
    mn_config c;
    mn_config_default(&c); /* the parser reads over the defaults */
    if (mn_config_parse(text, "fuzz.json", &c) == 0) {
        round_trip(&c);
        bool changed = false;
        for (size_t at = strlen(text) + 1; at < size; at += strlen(text + at) + 1) {
            char *set = text + at, *eq = strchr(set, '=');
            if (!eq) continue;
            *eq = 0;
            changed |= mn_config_set(&c, set, eq + 1) == 0;
        }
        if (changed && mn_config_check(&c, "fuzz --set") == 0) round_trip(&c);
    }
    free(text);
    return 0;
}
