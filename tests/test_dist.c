/* Data-parallel pieces without MPI: ranks are threads of this process, joined by an in-process
 * communicator, so that synchronised BN (forward and backward) and the loader's slices are
 * checked against one process's numbers here; tests/mpi_check.sh checks whole runs under mpirun. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"

#include "mn/cls_eval.h"
#include "mn/cls_model.h"
#include "mn/comm.h"
#include "mn/ops.h"
#include "mn/synth.h"

/* ---- an in-process communicator: R threads meet at a barrier for every collective ---- */

#define MAX_RANKS 4

typedef struct hub {
    int size;
    pthread_barrier_t bar;
    const void *parts[MAX_RANKS];   /* each rank's buffer during a collective */
} hub;

typedef struct thread_comm {
    mn_comm comm;                   /* first: the library sees this */
    hub *h;
} thread_comm;

static int t_reduce(mn_comm *c, void *buf, int64_t n, bool f64, enum mn_comm_op op)
{
    hub *h = ((thread_comm *)c)->h;
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    void *mine = malloc(elem * (size_t)n);
    memcpy(mine, buf, elem * (size_t)n);
    h->parts[c->rank] = mine;
    pthread_barrier_wait(&h->bar);
    /* every rank reduces in rank order: the same result everywhere, as MPI gives */
    for (int64_t i = 0; i < n; i++) {
        double acc = f64 ? ((const double *)h->parts[0])[i] : ((const float *)h->parts[0])[i];
        for (int r = 1; r < h->size; r++) {
            double v = f64 ? ((const double *)h->parts[r])[i] : ((const float *)h->parts[r])[i];
            acc = op == MN_COMM_SUM ? (f64 ? acc + v : (double)((float)acc + (float)v)) : op == MN_COMM_MAX ? fmax(acc, v)
                                                                                                        : fmin(acc, v);
        }
        if (f64) ((double *)buf)[i] = acc;
        else ((float *)buf)[i] = (float)acc;
    }
    pthread_barrier_wait(&h->bar);
    free(mine);
    return 0;
}

static int t_f32(mn_comm *c, float *buf, int64_t n, enum mn_comm_op op) { return t_reduce(c, buf, n, false, op); }
static int t_f64(mn_comm *c, double *buf, int64_t n, enum mn_comm_op op) { return t_reduce(c, buf, n, true, op); }

static void thread_comm_init(thread_comm *tc, hub *h, int rank)
{
    memset(tc, 0, sizeof *tc);
    tc->comm.rank = rank;
    tc->comm.size = h->size;
    tc->comm.allreduce_f32 = t_f32;
    tc->comm.allreduce_f64 = t_f64;
    tc->h = h;
}

/* ---- synchronised BN ---- */

enum { N = 4, C = 3, H = 5, W = 6 };

typedef struct bn_job {
    int rank, ranks, act;
    hub *h;
    const float *x, *gamma, *beta, *dy;   /* the whole batch's (N, C, H, W), (C), (C), (N, C, H, W) */
    float *y, *dx, *dgamma, *dbeta;       /* this rank's part of y, dx; its dgamma, dbeta */
    float mean[C], var[C];                /* running statistics after the step */
    int rc;
} bn_job;

/* BN (train mode, momentum 0.1) of images [rank N / R, (rank + 1) N / R) with gradient dy. */
static void *bn_rank(void *arg)
{
    bn_job *j = arg;
    thread_comm tc;
    if (j->ranks > 1) thread_comm_init(&tc, j->h, j->rank);
    const int n = N / j->ranks, off = j->rank * n * C * H * W;
    mn_tape t;
    mn_tape_init(&t, 0);
    int64_t xs[4] = {n, C, H, W}, cs[1] = {C};
    mn_var *x = tc_leaf(j->x + off, 4, xs, true), *g = tc_leaf(j->gamma, 1, cs, true), *b = tc_leaf(j->beta, 1, cs, true);
    int64_t batches = 0;
    for (int c = 0; c < C; c++) j->mean[c] = 0.0f, j->var[c] = 1.0f;
    mn_bn_state st = {j->mean, j->var, &batches};
    mn_bn_params p = {1e-5f, 0.1f, true, j->ranks > 1 ? &tc.comm : NULL};
    mn_var *y = j->act ? mn_batch_norm_act(&t, x, g, b, &st, &p, j->act) : mn_batch_norm(&t, x, g, b, &st, &p);
    j->rc = y ? mn_backward_grad(&t, y, j->dy + off) : mn_last_error_code();
    if (!j->rc) {
        memcpy(j->y + off, y->val.data, sizeof(float) * (size_t)(n * C * H * W));
        memcpy(j->dx + off, x->grad.data, sizeof(float) * (size_t)(n * C * H * W));
        memcpy(j->dgamma, g->grad.data, sizeof(float) * C);
        memcpy(j->dbeta, b->grad.data, sizeof(float) * C);
    }
    tc_leaf_free(x), tc_leaf_free(g), tc_leaf_free(b);
    mn_tape_free(&t);
    return NULL;
}

static void sync_bn_case(int ranks, int act)
{
    const int64_t total = (int64_t)N * C * H * W;
    float *x = tc_random(1, total, -2.0f, 3.0f), *dy = tc_random(2, total, -1.0f, 1.0f);
    float *gamma = tc_random(3, C, 0.5f, 1.5f), *beta = tc_random(4, C, -0.5f, 0.5f);
    float y1[N * C * H * W], dx1[N * C * H * W], yr[N * C * H * W], dxr[N * C * H * W];
    bn_job one = {.rank = 0, .ranks = 1, .act = act, .x = x, .gamma = gamma, .beta = beta, .dy = dy, .y = y1, .dx = dx1};
    float dg1[C], db1[C];
    one.dgamma = dg1, one.dbeta = db1;
    bn_rank(&one);
    cr_assert_eq(one.rc, 0, "%s", mn_last_error());
    hub h = {.size = ranks};
    pthread_barrier_init(&h.bar, NULL, (unsigned)ranks);
    bn_job jobs[MAX_RANKS];
    float dg[MAX_RANKS][C], db[MAX_RANKS][C];
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < ranks; r++) {
        jobs[r] = (bn_job){.rank = r, .ranks = ranks, .act = act, .h = &h, .x = x, .gamma = gamma, .beta = beta,
                           .dy = dy, .y = yr, .dx = dxr, .dgamma = dg[r], .dbeta = db[r]};
        pthread_create(&th[r], NULL, bn_rank, &jobs[r]);
    }
    for (int r = 0; r < ranks; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&h.bar);
    for (int r = 0; r < ranks; r++) cr_assert_eq(jobs[r].rc, 0);
    tc_expect_close(yr, y1, total, 1e-5f, 1e-5f, "synchronised BN output");
    tc_expect_close(dxr, dx1, total, 1e-5f, 1e-4f, "synchronised BN input gradient");
    /* the ranks' parameter gradients add up to the one process's (gradient averaging then divides
     * by R along with every other gradient, as the losses are R shares of the global mean) */
    float sg[C] = {0}, sb[C] = {0};
    for (int r = 0; r < ranks; r++)
        for (int c = 0; c < C; c++) sg[c] += dg[r][c], sb[c] += db[r][c];
    tc_expect_close(sg, dg1, C, 1e-4f, 1e-4f, "synchronised BN gamma gradient");
    tc_expect_close(sb, db1, C, 1e-4f, 1e-4f, "synchronised BN beta gradient");
    for (int r = 0; r < ranks; r++) {
        tc_expect_close(jobs[r].mean, one.mean, C, 1e-6f, 1e-5f, "running mean");
        tc_expect_close(jobs[r].var, one.var, C, 1e-6f, 1e-5f, "running variance");
    }
    free(x), free(dy), free(gamma), free(beta);
}

Test(dist, sync_bn_equals_one_process)
{
    sync_bn_case(2, 0);
    sync_bn_case(4, 0);
}

Test(dist, sync_bn_act_equals_one_process)
{
    sync_bn_case(2, 1);
    sync_bn_case(2, 6);
}

/* ---- BN calibration: one process's statistics to the last bit ---- */

enum { CALIB_BATCHES = 2 };

typedef struct calib_job {
    int rank, ranks, act;
    hub *h;
    const float *x[CALIB_BATCHES];        /* each batch's (N, C, H, W) */
    float *y;                             /* this rank's part of the last batch's output */
    float mean[C], var[C];
    int rc;
} calib_job;

/* Calibration-mode BN (training, cumulative averaging, no gradients) over this rank's images of
 * each batch. */
static void *calib_rank(void *arg)
{
    calib_job *j = arg;
    thread_comm tc;
    if (j->ranks > 1) thread_comm_init(&tc, j->h, j->rank);
    const int n = N / j->ranks, off = j->rank * n * C * H * W;
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int64_t batches = 0;
    for (int c = 0; c < C; c++) j->mean[c] = 0.0f, j->var[c] = 1.0f;
    mn_bn_state st = {j->mean, j->var, &batches};
    mn_bn_params p = {1e-5f, -1.0f, true, j->ranks > 1 ? &tc.comm : NULL};
    for (int b = 0; b < CALIB_BATCHES && !j->rc; b++) {
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d((float *)j->x[b] + off, n, C, H, W));
        mn_var *y = j->act ? mn_batch_norm_act(&t, x, NULL, NULL, &st, &p, j->act) : mn_batch_norm(&t, x, NULL, NULL, &st, &p);
        if (!y) j->rc = mn_last_error_code();
        else memcpy(j->y + off, y->val.data, sizeof(float) * (size_t)(n * C * H * W));
    }
    mn_tape_free(&t);
    return NULL;
}

/* R ranks' calibration-mode BN stores exactly one process's running statistics and outputs:
 * its statistics are the kernel's own sums added up (SyncBN in training sums differently). */
static void calib_case(int ranks, int act)
{
    const int64_t total = (int64_t)N * C * H * W;
    /* far from zero mean, as activations are: a one-pass variance would lose bits here */
    float *x[CALIB_BATCHES] = {tc_random(11, total, 3.0f, 5.0f), tc_random(12, total, -1.0f, 2.0f)};
    float y1[N * C * H * W], yr[N * C * H * W];
    calib_job one = {.rank = 0, .ranks = 1, .act = act, .x = {x[0], x[1]}, .y = y1};
    calib_rank(&one);
    cr_assert_eq(one.rc, 0, "%s", mn_last_error());
    hub h = {.size = ranks};
    pthread_barrier_init(&h.bar, NULL, (unsigned)ranks);
    calib_job jobs[MAX_RANKS];
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < ranks; r++) {
        jobs[r] = (calib_job){.rank = r, .ranks = ranks, .act = act, .h = &h, .x = {x[0], x[1]}, .y = yr};
        pthread_create(&th[r], NULL, calib_rank, &jobs[r]);
    }
    for (int r = 0; r < ranks; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&h.bar);
    for (int r = 0; r < ranks; r++) {
        cr_assert_eq(jobs[r].rc, 0);
        cr_assert(!memcmp(jobs[r].mean, one.mean, sizeof one.mean), "rank %d of %d: running mean differs", r, ranks);
        cr_assert(!memcmp(jobs[r].var, one.var, sizeof one.var), "rank %d of %d: running variance differs", r, ranks);
    }
    cr_assert(!memcmp(yr, y1, sizeof y1), "%d ranks: outputs differ from one process's", ranks);
    free(x[0]), free(x[1]);
}

Test(dist, calibration_bn_is_one_process_bits)
{
    calib_case(2, 0);
    calib_case(4, 0);
    calib_case(2, 6);
}

/* ---- a whole query table built by ranks ---- */

typedef struct table_job {
    int rank, ranks;
    hub *h;
    const mn_config *c;
    const mn_calib_config *g;
    mn_query_table table;                 /* the table this rank ended with */
    int rc;
} table_job;

/* One rank of mn_cls_build_table_ranks: its own model (the same seed) and data sets. */
static void *table_rank(void *arg)
{
    table_job *j = arg;
    thread_comm tc;
    if (j->ranks > 1) thread_comm_init(&tc, j->h, j->rank);
    mn_cls_model m;
    const char *names[] = {"circle", "square", "triangle"};
    mn_dataset *tr = NULL, *va = NULL;
    mn_dataset_options o;
    mn_config_dataset_options(j->c, "train", &o);
    j->rc = mn_cls_model_create(&m, j->c, 3, names, 7);
    if (j->rc) return NULL;
    if (!(j->rc = mn_dataset_open(&tr, &o))) {
        mn_config_dataset_options(j->c, "val", &o);
        j->rc = mn_dataset_open(&va, &o);
    }
    if (!j->rc)
        j->rc = mn_cls_build_table_ranks(&m, tr, va, j->g, 8, 0, 3, NULL, NULL, j->ranks > 1 ? &tc.comm : NULL);
    j->table = m.table; /* kept: the model gives up its table */
    memset(&m.table, 0, sizeof m.table);
    mn_cls_model_free(&m);
    mn_dataset_close(tr);
    mn_dataset_close(va);
    return NULL;
}

/* 2 ranks (threads here; under mpirun in tests/mpi_check.sh) build one process's table: every
 * score and every BN statistic to the last bit, on every rank. */
Test(dist, calibration_table_equals_one_process)
{
    char dir[64] = "/tmp/mn_dist_XXXXXX", data[128];
    cr_assert(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/shapes", dir);
    mn_synth_config s;
    mn_synth_config_default(&s);
    s.out_dir = data;
    s.n_images = 24;
    s.width = s.height = 64;
    s.seed = 5;
    s.png = true;
    s.classification = true;
    cr_assert_eq(mn_synth_set_classes(&s, "circle,square,triangle"), 0);
    cr_assert_eq(mn_synth_generate(&s, NULL), 0, "%s", mn_last_error());
    mn_config c;
    mn_config_default(&c);
    c.task = MN_TASK_CLASSIFICATION;
    strcpy(c.data.kind, "imagefolder");
    strcpy(c.data.images, "{split}");
    snprintf(c.data.root, sizeof c.data.root, "%s", data);
    c.data.crop[0] = c.data.crop[1] = 64;
    c.data.eval_size[0] = c.data.eval_size[1] = 64;
    c.data.workers = 0;
    c.train.batch_size = 8;
    mn_calib_config g = {.widths = {1.0f, 0.35f}, .n_widths = 2, .sizes = {{64, 64}, {32, 32}}, .n_sizes = 2, .batches = 2};

    table_job one = {.rank = 0, .ranks = 1, .c = &c, .g = &g};
    table_rank(&one);
    cr_assert_eq(one.rc, 0, "%s", mn_last_error());
    hub h = {.size = 2};
    pthread_barrier_init(&h.bar, NULL, 2);
    table_job jobs[2];
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
        jobs[r] = (table_job){.rank = r, .ranks = 2, .h = &h, .c = &c, .g = &g};
        pthread_create(&th[r], NULL, table_rank, &jobs[r]);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&h.bar);
    const mn_query_table *a = &one.table;
    cr_assert_eq(a->n, 4);
    for (int r = 0; r < 2; r++) {
        const mn_query_table *b = &jobs[r].table;
        cr_assert_eq(jobs[r].rc, 0, "rank %d failed", r);
        cr_assert_eq(b->n, a->n);
        cr_assert_eq(b->n_stats, a->n_stats);
        for (int i = 0; i < a->n; i++) {
            cr_assert(b->e[i].width == a->e[i].width && b->e[i].h == a->e[i].h && b->e[i].macs == a->e[i].macs);
            cr_assert(b->e[i].score == a->e[i].score, "rank %d, entry %d: score %.17g, one process %.17g", r, i,
                      b->e[i].score, a->e[i].score);
            cr_assert(!memcmp(b->e[i].bn_stats, a->e[i].bn_stats, sizeof(float) * (size_t)a->n_stats),
                      "rank %d, entry %d: BN statistics differ from one process's", r, i);
        }
        mn_query_free(&jobs[r].table);
    }
    mn_query_free(&one.table);
    tc_remove_tree(dir);
}
