/* The dist layer with MPI: the communicator's collectives over MPI_COMM_WORLD. Only the main
 * thread calls MPI (MPI_THREAD_FUNNELED): loader and OpenMP threads never do. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "dist/internal.h"

bool mn_dist_has_mpi(void) { return true; }

static int mpi_fail(int code, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return mn_error(MN_EIO, "MPI %s failed: %s", what, msg);
}

static MPI_Op op_of(enum mn_comm_op op) { return op == MN_COMM_MAX ? MPI_MAX : op == MN_COMM_MIN ? MPI_MIN : MPI_SUM; }

/* MPI counts are int: large buffers go in pieces */
#define CHUNK ((int64_t)1 << 28)

static int allreduce(void *buf, int64_t n, MPI_Datatype t, size_t elem, enum mn_comm_op op)
{
    for (int64_t off = 0; off < n; off += CHUNK) {
        int m = (int)(n - off < CHUNK ? n - off : CHUNK);
        int e = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * elem, m, t, op_of(op), MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_fail(e, "allreduce");
    }
    return 0;
}

static int ar_f32(mn_comm *c, float *buf, int64_t n, enum mn_comm_op op)
{
    (void)c;
    return allreduce(buf, n, MPI_FLOAT, sizeof(float), op);
}

static int ar_f64(mn_comm *c, double *buf, int64_t n, enum mn_comm_op op)
{
    (void)c;
    return allreduce(buf, n, MPI_DOUBLE, sizeof(double), op);
}

static int allgather(mn_comm *c, const void *send, int64_t n_send, void **recv, int64_t *n_recv, int64_t *counts)
{
    *recv = NULL;
    *n_recv = 0;
    if (n_send > INT_MAX) return mn_error(MN_EINVAL, "allgather: %lld bytes from one rank", (long long)n_send);
    int mine = (int)n_send, *cnt = malloc(sizeof(int) * (size_t)c->size * 2);
    if (!cnt) return mn_error(MN_ENOMEM, "allgather: out of memory");
    int *disp = cnt + c->size;
    int e = MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, MPI_COMM_WORLD);
    if (e != MPI_SUCCESS) {
        free(cnt);
        return mpi_fail(e, "allgather");
    }
    int64_t total = 0;
    for (int r = 0; r < c->size; r++) {
        disp[r] = (int)total;
        total += cnt[r];
        if (counts) counts[r] = cnt[r];
    }
    if (total > INT_MAX) {
        free(cnt);
        return mn_error(MN_EINVAL, "allgather: %lld bytes in all", (long long)total);
    }
    char *out = malloc((size_t)total + 1);
    if (!out) {
        free(cnt);
        return mn_error(MN_ENOMEM, "allgather: out of memory");
    }
    e = MPI_Allgatherv(send, mine, MPI_BYTE, out, cnt, disp, MPI_BYTE, MPI_COMM_WORLD);
    free(cnt);
    if (e != MPI_SUCCESS) {
        free(out);
        return mpi_fail(e, "allgatherv");
    }
    *recv = out;
    *n_recv = total;
    return 0;
}

static int bcast(mn_comm *c, void *buf, int64_t n, int root)
{
    (void)c;
    for (int64_t off = 0; off < n; off += CHUNK) {
        int m = (int)(n - off < CHUNK ? n - off : CHUNK);
        int e = MPI_Bcast((char *)buf + off, m, MPI_BYTE, root, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_fail(e, "bcast");
    }
    return 0;
}

int mn_dist_open(mn_dist *d)
{
    memset(d, 0, sizeof *d);
    d->comm.size = 1;
    d->local_ranks = 1;
    if (!dist_launched()) {
        dist_threads(d);
        return 0;
    }
    int provided = 0;
    int e = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (e != MPI_SUCCESS) return mpi_fail(e, "init");
    d->mpi = true;
    /* errors come back as codes (and become messages) instead of aborting inside MPI */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->comm.size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->comm.rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &d->local_ranks);
        MPI_Comm_free(&node);
    }
    d->comm.allreduce_f32 = ar_f32;
    d->comm.allreduce_f64 = ar_f64;
    d->comm.allgather = allgather;
    d->comm.bcast = bcast;
    dist_threads(d);
    return 0;
}

void mn_dist_close(mn_dist *d, int rc)
{
    if (!d->mpi) return;
    /* a rank that failed alone may leave the others inside a collective: end them all */
    if (rc && d->comm.size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
    d->mpi = false;
}
