/* The collective operations data-parallel training, calibration and evaluation need, behind a
 * table of functions: MPI provides them in a launched job (dist/mpi.c, when built with MPI), and
 * a NULL communicator everywhere means one process. The library never starts or stops MPI: the
 * program that owns the process does.
 *
 * Every rank must call the same collectives in the same order with the same sizes; each returns
 * 0 or an error code with the message set (a rank that died stops the whole job: MPI aborts it). */
#ifndef MN_COMM_H
#define MN_COMM_H

#include <stdint.h>

#include "error.h"

enum mn_comm_op { MN_COMM_SUM = 0, MN_COMM_MAX = 1, MN_COMM_MIN = 2 };

typedef struct mn_comm mn_comm;
struct mn_comm {
    int rank, size;
    /* buf (n) replaced by the element-wise reduction over all ranks */
    int (*allreduce_f32)(mn_comm *c, float *buf, int64_t n, enum mn_comm_op op);
    int (*allreduce_f64)(mn_comm *c, double *buf, int64_t n, enum mn_comm_op op);
    /* every rank's send (n_send bytes, which may differ by rank) concatenated in rank order:
     * *recv malloc'd, *n_recv bytes; counts (size) gets each rank's byte count when not NULL */
    int (*allgather)(mn_comm *c, const void *send, int64_t n_send, void **recv, int64_t *n_recv, int64_t *counts);
    /* buf (n bytes) from rank root to every rank */
    int (*bcast)(mn_comm *c, void *buf, int64_t n, int root);
    void *impl;
};

/* Helpers that accept comm == NULL (one process: the values stay as they are). */
static inline int mn_comm_rank(const mn_comm *c) { return c ? c->rank : 0; }
static inline int mn_comm_size(const mn_comm *c) { return c ? c->size : 1; }
static inline int mn_comm_sum_f32(mn_comm *c, float *buf, int64_t n)
{
    return c && c->size > 1 ? c->allreduce_f32(c, buf, n, MN_COMM_SUM) : 0;
}
static inline int mn_comm_sum_f64(mn_comm *c, double *buf, int64_t n)
{
    return c && c->size > 1 ? c->allreduce_f64(c, buf, n, MN_COMM_SUM) : 0;
}
static inline int mn_comm_reduce_f64(mn_comm *c, double *buf, int64_t n, enum mn_comm_op op)
{
    return c && c->size > 1 ? c->allreduce_f64(c, buf, n, op) : 0;
}

/* Whether every rank succeeded: rc is this rank's status; returns it where it failed, and
 * MN_EINVAL with "rank R failed" on the others, so that all ranks stop together instead of some
 * waiting forever in the next collective. */
MN_API int mn_comm_agree(mn_comm *c, int rc);

#endif
