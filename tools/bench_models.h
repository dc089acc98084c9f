/* mutualnet bench for whole models (tools/bench_models.c). */
#ifndef MN_TOOLS_BENCH_MODELS_H
#define MN_TOOLS_BENCH_MODELS_H

#include <stdbool.h>

typedef struct mn_bench_models_options {
    const char *model;    /* "deeplabv3plus" or "faster_rcnn" */
    const char *config;   /* NULL: configs/seg_cityscapes_mbv2.json or configs/det_coco128_mbv2.json */
    int classes;          /* 0: 19 (Cityscapes) or 81 (COCO with background) */
    int batch;            /* training rows; 0: the configuration's train.batch_size */
    int reps;
    bool quick;           /* small sizes, for checks */
    int only;             /* -1 all rows; 0 forward, 1 train, 2 sandwich */
    int h, w;             /* non-zero: only rows with this input */
    int at_h, at_w;       /* segmenter, non-zero: the rows at this input instead of the default sizes */
    int short_side;       /* detector, non-zero: the rows at this short side instead of 512 and 800 */
    bool list;            /* print the rows and their MACs without timing them */
} mn_bench_models_options;

/* Prints the rows' table; returns an exit status. */
int mn_bench_models(const mn_bench_models_options *o);

#endif
