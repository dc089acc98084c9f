/* Helpers shared by the Criterion suites: fixtures, tolerant comparisons, gradient checks. */
#ifndef MN_TESTS_COMMON_H
#define MN_TESTS_COMMON_H

#include <stdint.h>

#include "mn/config.h"
#include "mn/param.h"
#include "mn/safetensors.h"
#include "mn/tape.h"

/* Loads tests/fixtures/<name>.safetensors (made by tools/fixtures/gen_<name>.py); asserts. */
void tc_fixture(const char *name, mn_safetensors *st);
/* The F32 tensor `name` of a fixture; asserts it exists. */
mn_tensor tc_get(const mn_safetensors *st, const char *name);
/* Asserts |got - want| <= atol + rtol |want| elementwise; the message names `what` and
 * gives the worst element. */
void tc_expect_close(const float *got, const float *want, int64_t n, float atol, float rtol, const char *what);

/* A leaf variable over malloc'd copies of val (and a zeroed gradient when requires_grad);
 * free with tc_leaf_free. */
mn_var *tc_leaf(const float *val, int ndim, const int64_t *shape, bool requires_grad);
void tc_leaf_free(mn_var *v);
/* n floats uniform in [lo, hi) from a seeded generator (caller frees). */
float *tc_random(uint64_t seed, int64_t n, float lo, float hi);

/* Builds the op under test from its inputs; returns its output (any shape). */
typedef mn_var *(*tc_op_fn)(mn_tape *t, mn_var *const *in, void *ctx);

typedef struct tc_gradcheck_opts {
    float eps;           /* central-difference step */
    float atol, rtol;    /* per-element tolerance on the gradient */
    int max_checks;      /* elements checked per input (a random subset when larger; 0 = all) */
} tc_gradcheck_opts;

/* Checks the analytic gradient of L = sum(op(in) * R), R random and fixed, against central
 * differences (L accumulated in double) for every input that requires a gradient. */
void tc_gradcheck(tc_op_fn op, void *ctx, mn_var *const *in, int n_in, const tc_gradcheck_opts *o);

#endif

/* tools/ref/slimmable.py's hash_uniform: a 32-bit integer hash of (seed, k) mapped to [-1, 1). */
double tc_hash_uniform(uint32_t seed, int64_t k);
/* Fills every parameter and buffer as tools/ref/slimmable.py det_fill does (by name). */
void tc_det_fill(mn_param_set *ps);
/* Checks every trainable parameter's gradient against the fixture rows "<tag>.grad_samples",
 * ".grad_norms", ".grad_noise" (parameters in name order; see tools/fixtures/gen_backbone.py),
 * within 8x PyTorch float32's own error, or for at most 1 in 4 parameters within kink_frac x
 * the gradient's RMS (ReLU kinks; see common.c). */
void tc_check_param_grads(const mn_safetensors *st, const char *tag, const mn_param_set *ps, float kink_frac);

/* Training runs' metrics logs: every training line of OUT_DIR/metrics.jsonl without its
 * ", \"seconds\"..." tail, at lines[iteration] (iterations below max); returns the last
 * iteration seen. Asserts that the log exists. */
#define TC_METRICS_LINE 2048
int tc_metrics_lines(const char *out_dir, char lines[][TC_METRICS_LINE], int max);
/* The full network's loss of each logged iteration, at loss[iteration]; the last iteration. */
int tc_metrics_losses(const char *out_dir, double *loss, int max);
/* Trains a to the end, and b (the same run in another out_dir) stopped after `stop` iterations as
 * a kill would stop it, then resumed from its checkpoint; asserts that both logged the same
 * full-network loss at every iteration, bit for bit. */
void tc_expect_resume_matches(int (*train)(const mn_config *c, const char *resume, int64_t stop_at), const mn_config *a,
                              const mn_config *b, int stop);
/* rm -rf dir (test data under /tmp). */
void tc_remove_tree(const char *dir);
/* Runs a command's entry point (mn_cmd_predict, ...) in this process with its standard error
 * captured through the file stderr_path (removed after): *err gets the text (malloc'd). */
int tc_run_cmd(int (*cmd)(int, char **), const char *stderr_path, char **err, int argc, char **argv);
