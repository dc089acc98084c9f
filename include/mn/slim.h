/* Slimmable layers (MutualNet / US-Net): parameters are allocated once at the largest width
 * and a sub-network at width w uses the leading channels of each, as views (no copies).
 * The channel rules are those of the spec (mutualnet-spec.md §2). */
#ifndef MN_SLIM_H
#define MN_SLIM_H

#include "ops.h"
#include "param.h"
#include "rng.h"

/* TF-slim rounding: the multiple of divisor nearest v (at least min_value), raised by one
 * divisor when rounding lost more than 10%. */
MN_API int mn_make_divisible(double v, int divisor, int min_value);
/* Channels of a layer whose full-width count is base, at width w, tied to its parent by
 * ratio: int(make_divisible(base * w / ratio, 8) * ratio). */
MN_API int mn_slim_channels(int base, float w, float ratio);

struct mn_comm;

/* How one forward pass runs. Layers read it and add to its counters. */
typedef struct mn_run {
    mn_tape *tape;
    float width;          /* width multiplier of this sub-network */
    bool training;        /* BN normalises with batch statistics */
    float bn_momentum;    /* running-statistic update in training: > 0 moving average,
                           * < 0 cumulative average (BN calibration), 0 none */
    int64_t macs;         /* multiply-accumulates of conv and linear layers, accumulated */
    int64_t params;       /* weights those layers used at this width, accumulated */
    struct mn_comm *sync_bn; /* training with several ranks: BN statistics over all of them (SyncBN);
                              * NULL: this process's batch alone */
} mn_run;

typedef struct mn_slim_conv {
    mn_param *weight;     /* (Cout_max, Cin_max / groups, K, K) */
    mn_param *bias;       /* (Cout_max) or NULL */
    int cin_max, cout_max, k, stride, pad, dil;
    bool depthwise;       /* groups = channels, one filter per channel */
} mn_slim_conv;

typedef struct mn_slim_bn {
    mn_param *gamma, *beta;   /* (C_max) */
    mn_param *mean, *var;     /* (C_max) running statistics (buffers) */
    int64_t num_batches;
    /* Fine-tuning (model.norm_eval, frozen stages): in training too, normalise with the running
     * statistics and leave them as they are. BN calibration (bn_momentum < 0) still
     * re-estimates them, per configuration. */
    bool frozen_stats;
} mn_slim_bn;

typedef struct mn_slim_linear {
    mn_param *weight;     /* (OUT_max, IN_max) */
    mn_param *bias;       /* (OUT_max) */
} mn_slim_linear;

/* Registers "<name>.weight" (and "<name>.bias") initialised N(0, sqrt(2 / (K K Cout_max))).
 * pad = dil * (K - 1) / 2 ("same" for odd K). */
MN_API int mn_slim_conv_init(mn_slim_conv *c, mn_param_set *ps, mn_rng *rng, const char *name, int cin_max,
                             int cout_max, int k, int stride, int dil, bool depthwise, bool bias);
/* x (N, cin, H, W), cin <= cin_max -> (N, cout, Ho, Wo); depthwise: cout = cin. */
MN_API mn_var *mn_slim_conv_forward(const mn_slim_conv *c, mn_run *r, mn_var *x, int cout);

/* Registers "<name>.weight" = 1, "<name>.bias" = 0, "<name>.running_mean" = 0,
 * "<name>.running_var" = 1 (torchvision's names). */
MN_API int mn_slim_bn_init(mn_slim_bn *bn, mn_param_set *ps, const char *name, int c_max);
/* x (N, C, H, W) or (N, C), C <= C_max. */
MN_API mn_var *mn_slim_bn_forward(mn_slim_bn *bn, mn_run *r, mn_var *x);
/* Running statistics back to mean 0, variance 1, count 0 (before BN calibration). */
MN_API void mn_slim_bn_reset(mn_slim_bn *bn);

/* Registers "<name>.weight" N(0, 0.01) and "<name>.bias" = 0. */
MN_API int mn_slim_linear_init(mn_slim_linear *l, mn_param_set *ps, mn_rng *rng, const char *name, int in_max,
                               int out_max);
/* x (N, in), in <= IN_max -> (N, out). */
MN_API mn_var *mn_slim_linear_forward(const mn_slim_linear *l, mn_run *r, mn_var *x, int out);

/* conv -> BN -> activation (0 none, 1 ReLU, 6 ReLU6) for a conv and a BN layer (a linear
 * bottleneck's projection is act 0). In eval mode (r->training false) it runs as one
 * mn_conv2d_bn_act: the same values as the three ops, without two more passes. */
MN_API mn_var *mn_slim_conv_bn_forward(const mn_slim_conv *c, mn_slim_bn *bn, int act, mn_run *r, mn_var *x,
                                       int cout);

/* conv -> BN -> activation (0 none, 1 ReLU, 6 ReLU6), the unit every backbone repeats. */
typedef struct mn_slim_cba {
    mn_slim_conv conv;
    mn_slim_bn bn;
    int act;
} mn_slim_cba;

/* Registers "<name>.0" (conv, no bias) and "<name>.1" (BN), torchvision's layout. */
MN_API int mn_slim_cba_init(mn_slim_cba *u, mn_param_set *ps, mn_rng *rng, const char *name, int cin_max,
                            int cout_max, int k, int stride, int dil, bool depthwise, int act);
MN_API mn_var *mn_slim_cba_forward(mn_slim_cba *u, mn_run *r, mn_var *x, int cout);

#endif
