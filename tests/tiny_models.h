/* Tiny untrained models of each task, saved as checkpoints with a three-entry query table, and a
 * test image: fixtures for the inference API's tests (test_infer.c) and for the install check
 * (infer_fixture.c, which has no Criterion). Errors come back as codes with mn_last_error() set. */
#ifndef MN_TESTS_TINY_MODELS_H
#define MN_TESTS_TINY_MODELS_H

#include <stdbool.h>
#include <stdint.h>

#include "mn/config.h"

/* The configurations of the query table: segmentation and classification inputs h x w, detection
 * (short side, max side). Entry k scores better than entry k - 1, so a budget of exactly entry
 * k's MACs picks entry k. */
#define TM_ENTRIES 3
typedef struct tm_entry {
    float width;
    int h, w;
    int64_t macs;
} tm_entry;

/* The entries of a task's table (macs filled in when the model is saved). */
void tm_entries(enum mn_task_kind task, tm_entry *e /* (TM_ENTRIES) */);
/* Saves a tiny model of the task (64x64 evaluation input, detection short side 64, max side 96);
 * with_table adds the three entries (their MACs written to e when non-NULL), entry k timed at
 * TM_MS(k) milliseconds as if by one thread. */
#define TM_MS(k) (2.0 * ((k) + 1))
int tm_save(const char *path, enum mn_task_kind task, bool with_table, tm_entry *e /* (TM_ENTRIES) or NULL */);
/* Writes a w x h RGB test pattern (PNG). */
int tm_write_image(const char *path, int w, int h, uint8_t seed);

#endif
